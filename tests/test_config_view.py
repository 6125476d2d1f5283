"""The daemon's config views (modemd.config_view): the validated models as plain objects.

`modemd run` validates its config in a forked child and runs on a freeze of it, so the
resident daemon never loads pydantic. A view must answer every attribute read and method call
the daemon makes exactly as the model does, and the models must grow no method a view lacks.
"""

from __future__ import annotations

import inspect
import marshal
import os
import signal
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from modemd import config as config_models
from modemd import config_checks
from modemd.config import Config, load_config
from modemd.config_view import ConfigView, decode, encode, freeze, read_config_apart
from modemd.errors import ConfigError, ModemdError
from modemd.payload import config as payload_models
from modemd.settings import Secret
from tests.helpers import REPO, run_python

#: model methods the running daemon never calls, so its views need not have them
MODEL_ONLY = {
    "Config.redacted": "`modemd config show`",
    "ParserRule.field_by_name": "the validators and the device_key property",
}

_RULE_FILES = ("devices-tracker.toml", "devices-watermeter.toml")  # the pump's is in the example


def every_feature(tmp_path: Path) -> Path:
    """The example config with verify on, every rule example and a transceiver bind."""
    text = (REPO / "config" / "modemd.example.toml").read_text(encoding="utf-8")
    text = text.replace('state_dir = "/var/lib/modemd"', f'state_dir = "{tmp_path / "state"}"')
    assert "[verify]\nenabled = false" in text
    text = text.replace("[verify]\nenabled = false", "[verify]\nenabled = true")
    for name in _RULE_FILES:
        text += "\n" + (REPO / "config" / name).read_text(encoding="utf-8")
    text += ('\n[[smpp]]\nname = "agg"\nhost = "127.0.0.1"\nsystem_id = "gw"\n'
             'bind = "transceiver"\n')
    path = tmp_path / "modemd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def with_pin(path: Path, pin: str) -> str:
    """The config at *path* with a SIM PIN in the file and no secret files to read."""
    text = path.read_text(encoding="utf-8").replace("[[modem]]\n", f'[[modem]]\npin = "{pin}"\n', 1)
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith(("password_file", "token_file", "secret_file",
                                             "pin_file")))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "changed.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _models() -> list[type[BaseModel]]:
    found = [member for module in (config_models, payload_models)
             for member in vars(module).values()
             if inspect.isclass(member) and issubclass(member, BaseModel)
             and member.__module__ == module.__name__ and not member.__name__.startswith("_")]
    return sorted(found, key=lambda cls: cls.__name__)


def assert_same(model: Any, view: Any, where: str = "config") -> None:
    """*view* reads as *model* does: every field and property, all the way down."""
    if isinstance(model, BaseModel):
        assert isinstance(view, ConfigView), where
        assert type(view).__name__ == type(model).__name__, where
        names = [*type(model).model_fields, *_properties(type(model))]
        for name in names:
            assert_same(getattr(model, name), getattr(view, name), f"{where}.{name}")
    elif isinstance(model, SecretStr):
        assert isinstance(view, Secret), where
        assert view.get_secret_value() == model.get_secret_value(), where
    elif isinstance(model, list | tuple):
        assert type(view) is type(model) and len(view) == len(model), where
        for index, (one, other) in enumerate(zip(model, view, strict=True)):
            assert_same(one, other, f"{where}[{index}]")
    elif isinstance(model, dict):
        assert type(view) is dict and list(view) == list(model), where
        for key in model:
            assert_same(model[key], view[key], f"{where}[{key!r}]")
    else:
        assert view == model and type(view) is type(model), where


def _properties(model: type) -> list[str]:
    return [name for cls in model.__mro__ if issubclass(cls, BaseModel) and cls is not BaseModel
            for name, member in vars(cls).items()
            if isinstance(member, property | cached_property)]


def test_a_view_reads_as_the_model_every_field_and_property(tmp_path: Path) -> None:
    cfg = load_config(every_feature(tmp_path))
    assert cfg.parser and cfg.devices and cfg.influx and cfg.smpp and cfg.verify.enabled
    assert any(rule.device_tracker for rule in cfg.parser)
    assert any(rule.format == "binary" for rule in cfg.parser)
    view = freeze(cfg)
    assert_same(cfg, view)
    assert_same(cfg, decode(marshal.loads(marshal.dumps(encode(view)))))  # as it crosses


def test_a_view_answers_the_methods_the_daemon_calls(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEMD_MQTT_PASSWORD", "broker-secret")
    monkeypatch.setenv("MODEMD_VERIFY_SECRET", "a verify secret of some length")
    cfg = load_config(write(tmp_path, with_pin(every_feature(tmp_path), "1234")))
    view = decode(marshal.loads(marshal.dumps(encode(freeze(cfg)))))
    assert view.senders() == cfg.senders() == ["quectel", "sim800", "agg"]
    assert view.file_problems() == cfg.file_problems() == []
    for model, frozen in zip(cfg.modem, view.modem, strict=True):
        assert frozen.resolved_pin() == model.resolved_pin()
        assert frozen.matches(imei=None, iccid=None) == model.matches(imei=None, iccid=None)
        assert frozen.matches(imei="1" * 15, iccid=None) == model.matches(imei="1" * 15,
                                                                          iccid=None)
    assert view.modem[0].resolved_pin() == "1234"
    password = view.mqtt.password()
    assert password is not None and password.get_secret_value() == "broker-secret"
    assert view.verify.secret(tmp_path) == cfg.verify.secret(tmp_path)


def test_every_model_method_is_in_a_mixin_the_view_shares() -> None:
    """A method added to a model is one the daemon may call: it belongs in the model's
    pydantic-free mixin (modemd.settings), or in MODEL_ONLY with the reason."""
    model_only = set()
    for model in _models():
        for name, member in vars(model).items():
            if name.startswith("_") or not inspect.isfunction(member):
                continue
            model_only.add(f"{model.__name__}.{name}")
    assert model_only == set(MODEL_ONLY)


def test_a_view_is_read_only_and_shows_no_secret(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, with_pin(every_feature(tmp_path), "4321")))
    view = freeze(cfg)
    with pytest.raises(AttributeError, match="read-only"):
        view.gateway.id = "other"
    with pytest.raises(AttributeError, match="read-only"):
        del view.modem[0].name
    assert "4321" not in repr(view) and "4321" not in str(view.modem[0].pin)


def test_a_view_crosses_to_a_process_without_pydantic_and_answers_there(tmp_path: Path) -> None:
    cfg = load_config(every_feature(tmp_path))
    frozen = tmp_path / "config.marshal"
    frozen.write_bytes(marshal.dumps(encode(freeze(cfg))))
    probe = (
        "import marshal, sys\n"
        "from modemd.config_view import decode\n"
        f"view = decode(marshal.loads(open({str(frozen)!r}, 'rb').read()))\n"
        "print(view.senders(), view.parser_rules[0].output_specs[0].is_numeric,"
        " view.gateway.state_dir)\n"
        "import modemd.daemon\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'modemd.config'))))\n")
    done = run_python(probe)
    assert done.returncode == 0, done.stderr
    first, modules = done.stdout.splitlines()
    assert first == f"{cfg.senders()} {cfg.parser_rules[0].output_specs[0].is_numeric} " \
                    f"{cfg.gateway.state_dir}"
    assert modules == "['modemd.config_view']"


def test_read_apart_gives_the_views_and_the_warnings(tmp_path: Path) -> None:
    path = every_feature(tmp_path)
    cfg = load_config(path)
    view, warnings = read_config_apart(path)
    assert_same(cfg, view)
    assert warnings == config_checks.warnings(cfg)


def test_read_apart_reports_the_problems_of_a_bad_file(tmp_path: Path) -> None:
    bad = write(tmp_path, '[gateway]\nid = "a/b"\n\n[[modem]]\nname = "m"\nport = "/x"\n'
                          'baudrate = 1\n')
    with pytest.raises(ConfigError) as in_process:
        load_config(bad)
    with pytest.raises(ConfigError) as apart:
        read_config_apart(bad)
    assert apart.value.problems == in_process.value.problems and len(apart.value.problems) == 2
    assert apart.value.source == str(bad)


def test_read_apart_says_what_went_wrong_when_the_child_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = every_feature(tmp_path)

    def broken(_: Path) -> Config:
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(config_models, "load_config", broken)  # the fork inherits the patch
    with pytest.raises(ModemdError, match="RuntimeError: the disk went away"):
        read_config_apart(path)

    def killed(_: Path) -> Config:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("not reached")

    monkeypatch.setattr(config_models, "load_config", killed)
    with pytest.raises(ModemdError, match=r"without an answer \(signal 9\)"):
        read_config_apart(path)

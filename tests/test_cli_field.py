"""Field set-up: `modemd config init` / `config check`, `modemd ports`, scripts/install-pi."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from modemd.cli import app
from modemd.config import config_from_dict, load_config
from modemd.modem.discovery import PortInfo, field_hints
from modemd.starter_config import PLACEHOLDER_PORT, starter_config
from tests.helpers import REPO

INSTALL = REPO / "scripts" / "install-pi"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_config_init_output_passes_config_check(tmp_path: Path) -> None:
    target = tmp_path / "modemd.toml"
    code, out = invoke("config", "init", "-o", str(target))
    assert code == 0, out
    assert f"wrote {target}" in out
    code, out = invoke("config", "check", str(target))
    assert code == 0, out
    assert "OK (" in out and "1 parser rule(s)" in out
    config = load_config(target)
    assert config.gateway.state_dir == Path("/var/lib/modemd")
    assert config.mqtt is not None and config.mqtt.qos == 1
    assert config.influx is None  # commented out until the engineer enables it
    assert config.modem  # a real port or the placeholder to edit
    # The file explains itself: mostly comments.
    text = target.read_text()
    assert text.count("\n#") > 20
    # Not overwritten without --force.
    code, out = invoke("config", "init", "-o", str(target))
    assert code == 1 and "--force" in out


def test_starter_config_with_found_ports_and_without() -> None:
    ports = ["/dev/serial/by-id/usb-Quectel_EC25_0123-if02-port0", '/dev/odd"name',
             "rfc2217://10.0.0.5:2217", "/dev/serial/by-id/usb-Quectel_EC25_0123-if02-port0"]
    config = config_from_dict(tomllib.loads(starter_config(ports, gateway_id="pi-north")))
    assert [(m.name, m.port) for m in config.modem] == [
        ("modem1", ports[0]), ("modem2", ports[1]), ("modem3", ports[2])]
    assert config.gateway.id == "pi-north"
    empty = starter_config([], gateway_id="pi-north")
    config = config_from_dict(tomllib.loads(empty))
    assert [m.port for m in config.modem] == [PLACEHOLDER_PORT]
    assert "EDIT" in empty and "modemd ports" in empty


def test_starter_config_example_rule_parses_the_design_payload(tmp_path: Path) -> None:
    target = tmp_path / "modemd.toml"
    target.write_text(starter_config([], gateway_id="gw"))
    code, out = invoke("parse", "ID=PUMP01;BAT=3.71;T=21.5", "--sender", "+4915112345678",
                       "-c", str(target), "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["device"] == "PUMP01"
    assert result["state"]["battery"] == 3.71 and result["state"]["temperature"] == 21.5


def test_reference_config_loads_and_names_every_key() -> None:
    path = REPO / "config" / "modemd.example.toml"
    config = load_config(path)
    assert config.influx is not None and config.mqtt is not None and config.mqtt.tls is not None
    assert len(config.modem) == 2 and config.parser and config.devices
    data = tomllib.loads(path.read_text())
    # Every key of the top-level sections appears (set or as a commented example).
    text = path.read_text()
    for model, section in ((type(config.gateway), "gateway"), (type(config.mqtt), "mqtt"),
                           (type(config.influx), "influx"), (type(config.outbox), "outbox"),
                           (type(config.modem[0]), "modem"),
                           (type(config.mqtt.tls), "mqtt.tls")):
        for key in model.model_fields:
            assert f"{key} =" in text or f"[{section}.{key}]" in text, \
                f"[{section}] {key} is not in the reference config"
    assert data["gateway"]["state_dir"] == "/var/lib/modemd"


def test_ports_runs_without_modems() -> None:
    code, out = invoke("ports")
    assert code == 0, out
    assert out.strip()  # "no serial ports found" or one line per port
    code, out = invoke("ports", "--json")
    assert code == 0, out
    for port in json.loads(out):
        assert {"device", "stable_path", "usb_id", "looks_like_at"} <= set(port)


def test_field_hints_without_modems(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    (sysfs / "1-1").mkdir(parents=True)
    (sysfs / "1-1" / "idVendor").write_text("12d1\n")
    (sysfs / "1-1" / "idProduct").write_text("14dc\n")
    proc = tmp_path / "proc"
    (proc / "812").mkdir(parents=True)
    (proc / "812" / "comm").write_text("ModemManager\n")
    serial0 = PortInfo(device="/dev/ttyS0", stable_path="/dev/ttyS0", usb_id=None,
                       interface=None, description="n/a", profile_hint=None, looks_like_at=False)
    hints = field_hints([serial0], sysfs=sysfs, proc=proc)
    assert len(hints) == 3
    assert "no port looks like a modem" in hints[0]
    assert "12d1:14dc" in hints[1] and "usb_modeswitch" in hints[1]
    assert "ModemManager is running" in hints[2]
    ec25 = PortInfo(device="/dev/ttyUSB2", stable_path="/dev/serial/by-id/x", usb_id="2c7c:0125",
                    interface="2", description="EC25", profile_hint="quectel_ec25",
                    looks_like_at=True)
    assert field_hints([ec25], sysfs=tmp_path / "none", proc=tmp_path / "none") == []


def run_install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INSTALL), *args], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "LC_ALL": "C"})


def test_install_pi_dry_run_lists_its_steps_and_changes_nothing(tmp_path: Path) -> None:
    prefix = tmp_path / "opt-modemd"
    result = run_install("--dry-run", "--prefix", str(prefix))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "dry run, nothing is changed" in out
    steps = [line for line in out.splitlines() if line.startswith("==> ")]
    assert [s.split()[1] for s in steps] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    commands = [line.strip()[2:] for line in out.splitlines() if line.strip().startswith("+ ")]
    joined = "\n".join(commands)
    # the user, in dialout
    assert ("useradd --system" in joined and "--groups dialout" in joined) or \
        "usermod -a -G dialout modemd" in joined or "already in dialout" in out
    # the venv and this checkout in it
    assert f"-m venv {prefix}/venv" in joined or "venv exists" in out
    assert f"{prefix}/venv/bin/pip install --quiet --upgrade {REPO}" in joined
    # unit and rules
    assert f"install -m 0644 {REPO}/systemd/modemd.service /etc/systemd/system/modemd.service" \
        in joined
    assert f"install -m 0644 {REPO}/systemd/99-modemd.rules /etc/udev/rules.d/99-modemd.rules" \
        in joined
    assert "udevadm control --reload-rules" in joined
    # a config only when there is none
    if Path("/etc/modemd/modemd.toml").exists():
        assert "left as it is" in out
    else:
        assert f"{prefix}/venv/bin/modemd config init -o /etc/modemd/modemd.toml" in joined
    assert f"{prefix}/venv/bin/modemd config check /etc/modemd/modemd.toml" in joined
    # the service, in this order
    order = [joined.index(c) for c in ("systemctl daemon-reload", "systemctl enable modemd",
                                       "systemctl restart --no-block modemd")]
    assert order == sorted(order)
    assert not prefix.exists()  # a dry run changes nothing


def test_install_pi_refuses_unknown_options() -> None:
    result = run_install("--frobnicate")
    assert result.returncode == 2
    assert "unknown option --frobnicate" in result.stderr


def test_install_pi_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(INSTALL)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert os.access(INSTALL, os.X_OK)

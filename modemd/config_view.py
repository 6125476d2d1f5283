"""The validated config as plain objects, so the resident daemon never loads pydantic.

pydantic and the models built from it take about 14 MiB of a daemon that otherwise needs
about 28 (``benchmarks/rss_steps.py``), and the daemon only ever *reads* its config. So
``modemd run`` forks a child that reads and validates the file with the models of
:mod:`modemd.config` and sends back a :func:`freeze` of the result; the daemon process runs on
that and never imports the validation code.

A frozen model is a :class:`ConfigView`: the model's fields as attributes (nested models
frozen too, pydantic's SecretStr as :class:`modemd.settings.Secret`), plus the values of its
properties, which are functions of those fields, computed once in the child. Methods come from
the model's pydantic-free mixins (:mod:`modemd.settings`), which the view inherits as well.
"""

from __future__ import annotations

import marshal
import os
import sys
from functools import cache
from importlib import import_module
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from modemd.errors import ConfigError, ModemdError
from modemd.settings import Secret

if TYPE_CHECKING:
    from modemd.config import Config

__all__ = ["ConfigView", "decode", "encode", "freeze", "read_config_apart"]


class ConfigView:
    """One validated config model, read-only, as plain attributes."""

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __repr__(self) -> str:
        items = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"{type(self).__name__}({items})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ConfigView) and type(other).__name__ == type(self).__name__
                and vars(other) == vars(self))

    def __hash__(self) -> int:
        return hash((type(self).__name__, *vars(self)))


@cache
def _view_class(name: str, mixins: tuple[type, ...]) -> type[ConfigView]:
    return type(name, (*mixins, ConfigView), {"__module__": __name__})


def _view(name: str, mixins: tuple[type, ...], attributes: dict[str, Any]) -> ConfigView:
    view = object.__new__(_view_class(name, mixins))
    vars(view).update(attributes)
    return view


# The child's answer crosses the pipe as marshal data (no code runs when it is read, and the
# daemon need not load pickle): plain values as they are, the rest tagged in a tuple.
_VIEW, _PATH, _SECRET, _TUPLE = "view", "path", "secret", "tuple"


def encode(value: Any) -> Any:
    """*value* (views, paths, secrets, containers of them) as marshal can write it."""
    if isinstance(value, ConfigView):
        mixins = tuple(f"{cls.__module__}:{cls.__qualname__}" for cls in type(value).__bases__
                       if cls is not ConfigView)
        return (_VIEW, type(value).__name__, mixins, encode(vars(value)))
    if isinstance(value, PurePath):
        return (_PATH, str(value))
    if isinstance(value, Secret):
        return (_SECRET, value.get_secret_value())
    if isinstance(value, tuple):
        return (_TUPLE, [encode(item) for item in value])
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    if value is None or isinstance(value, str | int | float | bytes):
        return value
    raise TypeError(f"a config value of type {type(value).__name__} cannot cross to the daemon")


def decode(data: Any) -> Any:
    """The values :func:`encode` wrote, views rebuilt on this side's mixin classes."""
    if isinstance(data, tuple):
        tag, *rest = data
        if tag == _VIEW:
            name, mixins, attributes = rest
            return _view(name, tuple(_mixin(path) for path in mixins), decode(attributes))
        if tag == _PATH:
            return Path(rest[0])
        if tag == _SECRET:
            return Secret(rest[0])
        return tuple(decode(item) for item in rest[0])
    if isinstance(data, list):
        return [decode(item) for item in data]
    if isinstance(data, dict):
        return {key: decode(item) for key, item in data.items()}
    return data


def _mixin(path: str) -> type:
    module, _, name = path.partition(":")
    cls = getattr(import_module(module), name)
    if not isinstance(cls, type) or not module.startswith("modemd."):
        raise TypeError(f"{path} is not a config mixin")
    return cls


def freeze(value: Any) -> Any:
    """*value* with every pydantic model in it made a :class:`ConfigView` (in the child)."""
    from pydantic import BaseModel, SecretStr

    frozen: dict[int, ConfigView] = {}  # a model reached twice is one view, as it was one model

    def convert(item: Any) -> Any:
        if isinstance(item, BaseModel):
            done = frozen.get(id(item))
            if done is None:
                model = type(item)
                attributes = {name: convert(getattr(item, name)) for name in model.model_fields}
                attributes.update((name, convert(getattr(item, name)))
                                  for name in _derived(model))
                mixins = tuple(base for base in model.__mro__
                               if not issubclass(base, BaseModel) and base is not object)
                done = frozen[id(item)] = _view(model.__name__, mixins, attributes)
            return done
        if isinstance(item, SecretStr):
            return Secret(item.get_secret_value())
        if isinstance(item, tuple | list):
            return type(item)(convert(element) for element in item)
        if isinstance(item, dict):
            return {key: convert(element) for key, element in item.items()}
        return item

    return convert(value)


def _derived(model: type) -> list[str]:
    """The properties a model class defines (not pydantic's own): the view holds their
    values."""
    from functools import cached_property

    from pydantic import BaseModel

    names: list[str] = []
    for cls in model.__mro__:
        if cls is BaseModel or not issubclass(cls, BaseModel):
            continue
        names += [name for name, member in vars(cls).items()
                  if isinstance(member, property | cached_property) and name not in names]
    return names


def read_config_apart(path: Path) -> tuple[Config, list[tuple[str, str]]]:
    """The config at *path*, validated in a forked child, and the warnings about it.

    The views stand in for the models (the type says Config: they answer the same attribute
    reads and method calls). Raises :class:`ConfigError` with the child's problems.
    """
    reader, writer = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: validate, answer, leave without running the parent's cleanup
        os.close(reader)
        code = 0
        try:
            with os.fdopen(writer, "wb") as out:
                out.write(_answer(path))
        except BaseException:  # noqa: BLE001 - the parent reports a child that says nothing
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as answer:
        data = answer.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise ModemdError(f"the config reader stopped without an answer ({_ended(status)})")
    kind, *rest = decode(marshal.loads(data))
    if kind == "problems":
        problems, source = rest
        raise ConfigError(problems, source=source)
    if kind == "failed":
        raise ModemdError(f"cannot read the config {path}: {rest[0]}")
    config, warnings = rest
    return config, warnings


def _answer(path: Path) -> bytes:
    from modemd import config_checks
    from modemd.config import load_config

    try:
        config = load_config(path)
        return marshal.dumps(encode(("config", freeze(config), config_checks.warnings(config))))
    except ConfigError as exc:
        return marshal.dumps(encode(("problems", exc.problems, exc.source)))
    except Exception as exc:  # noqa: BLE001 - one line for the parent to report, not a traceback
        return marshal.dumps(encode(("failed", f"{type(exc).__name__}: {exc}")))


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"

"""The switchable misbehaviours of real modems, with their value types.

``set_quirk(name, value)`` takes Python values; :func:`parse_quirk_value` turns the text of the
control protocol (``quirk slow 0.5``, ``quirk cms_error +CMGD=321,+CMGR=500``) into them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields


@dataclass(slots=True)
class Quirks:
    echo: bool = True  # the power-on echo state (ATE1); setting it also sets the current one
    lowercase_hex: bool = False  # PDUs in +CMGL/+CMGR/+CMT in lower case
    extra_blank_lines: bool = False  # an empty line between every line of an answer
    urc_inside_answer: bool = False  # URCs are held back and written before the next final
    cms_error: dict[str, int] = field(default_factory=dict)  # "+CMGD" -> 321
    hang: bool = False  # reads, never answers; no URCs either
    slow: float = 0.0  # seconds before each answer
    garbage_every: int = 0  # b"\xff\x00\xfe" before every Nth answer; 0: never
    pin_required: bool = False  # the SIM wants its PIN (the modem's pin, or "1234")
    not_registered: bool | int = False  # True: +CREG stat 2 (searching); an int: that stat
    storage_full: bool = False  # every memory reports full
    baud: int = 0  # pace what the modem writes to this line speed (10 bits a byte); 0: off
    refuse_csms: bool = False  # AT+CSMS=1 is refused (+CMT is then never held for +CNMA)
    answers: dict[str, str] = field(default_factory=dict)  # "+CPIN?" -> "+CME ERROR: 10"
    inside_answers: tuple[str, ...] = ()  # lines written in the middle of every answer
    chatter: float = 0.0  # chance per answer of one of the profile's vendor URCs inside it
    silent_commands: tuple[str, ...] = ()  # commands (by prefix, "+CPIN=") never answered
    slow_commands: dict[str, float] = field(default_factory=dict)  # "+CPIN?" -> 3.0 s (SIM)

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


GARBAGE = b"\xff\x00\xfe"


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "on", "yes"}:
        return True
    if lowered in {"0", "false", "off", "no"}:
        return False
    raise ValueError(f"not a boolean: {text!r} (use on/off)")


def _parse_cms_map(text: str) -> dict[str, int]:
    text = text.strip()
    if text.startswith("{"):
        loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError("cms_error wants an object")
        return {str(k): int(v) for k, v in loaded.items()}
    if text.lower() in {"", "off", "none", "{}"}:
        return {}
    result: dict[str, int] = {}
    for item in text.split(","):
        prefix, sep, code = item.strip().rpartition("=")
        if not sep or not prefix:
            raise ValueError(f"cms_error entries look like +CMGD=321, not {item!r}")
        result[prefix] = int(code)
    return result


def _parse_answers(text: str) -> dict[str, str]:
    loaded = json.loads(text) if text.strip().startswith("{") else {}
    if not isinstance(loaded, dict):
        raise ValueError("answers wants an object")
    return {normalise_cms_prefix(str(k)): str(v) for k, v in loaded.items()}


def _parse_lines(text: str) -> tuple[str, ...]:
    return tuple(line for line in text.split("|") if line) if text.lower() != "off" else ()


def _parse_registration(text: str) -> bool | int:
    try:
        return _parse_bool(text)
    except ValueError:
        return int(text)


_PARSERS: dict[str, Callable[[str], object]] = {
    "echo": _parse_bool,
    "lowercase_hex": _parse_bool,
    "extra_blank_lines": _parse_bool,
    "urc_inside_answer": _parse_bool,
    "cms_error": _parse_cms_map,
    "hang": _parse_bool,
    "slow": float,
    "garbage_every": int,
    "pin_required": _parse_bool,
    "not_registered": _parse_registration,
    "storage_full": _parse_bool,
    "baud": int,
    "refuse_csms": _parse_bool,
    "answers": _parse_answers,
    "inside_answers": _parse_lines,
    "chatter": float,
    "slow_commands": lambda text: {normalise_cms_prefix(k): float(v)
                                   for k, v in json.loads(text).items()},
    "silent_commands": lambda text: tuple(normalise_cms_prefix(p) for p in _parse_lines(text)),
}

QUIRK_NAMES: tuple[str, ...] = tuple(_PARSERS)


def parse_quirk_value(name: str, text: str) -> object:
    if name not in _PARSERS:
        raise ValueError(f"unknown quirk {name!r} (known: {', '.join(QUIRK_NAMES)})")
    return _PARSERS[name](text)


def normalise_cms_prefix(prefix: str) -> str:
    """"at+cmgd" / "+CMGD" / "AT+CMGD=" all become "+CMGD"."""
    upper = prefix.strip().upper()
    if upper.startswith("AT"):
        upper = upper[2:]
    return upper


def checked_value(name: str, value: object) -> object:
    """``value`` in the quirk's type; ValueError / TypeError when it cannot be."""
    if name not in _PARSERS:
        raise ValueError(f"unknown quirk {name!r} (known: {', '.join(QUIRK_NAMES)})")
    if isinstance(value, str):
        return checked_value(name, parse_quirk_value(name, value))
    if name == "cms_error":
        if not isinstance(value, dict):
            raise TypeError("cms_error wants a dict of command prefix -> error code")
        return {normalise_cms_prefix(str(k)): int(v) for k, v in value.items()}
    if name == "answers":
        if not isinstance(value, dict):
            raise TypeError("answers wants a dict of command -> reply text")
        return {normalise_cms_prefix(str(k)): str(v) for k, v in value.items()}
    if name == "slow_commands":
        if not isinstance(value, dict):
            raise TypeError("slow_commands wants a dict of command prefix -> seconds")
        return {normalise_cms_prefix(str(k)): float(v) for k, v in value.items()}
    if name == "silent_commands":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise TypeError("silent_commands wants a list of command prefixes")
        return tuple(normalise_cms_prefix(v) for v in value)
    if name == "inside_answers":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise TypeError("inside_answers wants a list of lines")
        return tuple(value)
    if name in ("baud", "chatter"):
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} wants a number >= 0")
        return int(value) if name == "baud" else float(value)
    if name == "slow":
        if not isinstance(value, int | float) or value < 0:
            raise ValueError("slow wants a number of seconds >= 0")
        return float(value)
    if name == "garbage_every":
        if not isinstance(value, int) or value < 0:
            raise ValueError("garbage_every wants an integer >= 0")
        return value
    if name == "not_registered":
        if not isinstance(value, int):
            raise TypeError("not_registered wants a bool or a +CREG <stat>")
        return value
    if not isinstance(value, bool):
        raise TypeError(f"{name} wants a bool")
    return value

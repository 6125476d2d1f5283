"""Splitting a received AT command line into commands (V.250 5.2-5.4).

``AT+CMGF=0;+CSDH=1`` gives two extended commands; ``ATE0V1`` two basic ones. Names are
upper-cased; quoted arguments keep their case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Op = Literal["exec", "query", "test", "set"]

_EXTENDED_START = "+^#$%!*"
_EXTENDED_NAME = re.compile(r"[+^#$%!*][A-Za-z0-9_]+")
_BASIC = re.compile(r"(&?[A-RT-Za-rt-z])(\d*)|([Ss])(\d+)(\?|=\d*)?")


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # "+CMGL", "^ICCID", "E", "&F", "S0"
    op: Op
    args: tuple[str, ...]  # unquoted; empty for exec/query/test
    text: str  # as it came after "AT" (or after ';'), upper case outside quotes

    @property
    def raw_args(self) -> str:
        """Everything after '=' (for set) as received, upper-cased outside quotes."""
        return self.text.split("=", 1)[1] if self.op == "set" else ""


def upper_outside_quotes(text: str) -> str:
    parts = text.split('"')
    return '"'.join(part if i % 2 else part.upper() for i, part in enumerate(parts))


def split_segments(body: str) -> list[str]:
    """Split at ';' outside double quotes."""
    segments: list[str] = []
    current: list[str] = []
    quoted = False
    for char in body:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    segments.append("".join(current))
    return [s.strip() for s in segments if s.strip()]


def split_args(text: str) -> tuple[str, ...]:
    """Comma-separated arguments, quotes removed; an empty argument stays ""."""
    args: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
            continue
        if char == "," and not quoted:
            args.append("".join(current))
            current = []
        else:
            current.append(char)
    args.append("".join(current))
    return tuple(a.strip() for a in args)


def _extended(text: str) -> Command:
    match = _EXTENDED_NAME.match(text)
    if match is None:
        raise ValueError(f"not a command: {text!r}")
    name = match.group(0).upper()
    rest = text[match.end() :]
    if rest == "":
        return Command(name, "exec", (), name)
    if rest == "?":
        return Command(name, "query", (), name + "?")
    if rest == "=?":
        return Command(name, "test", (), name + "=?")
    if rest.startswith("="):
        value = rest[1:]
        return Command(name, "set", split_args(value), name + "=" + upper_outside_quotes(value))
    raise ValueError(f"not a command: {text!r}")


def parse_segment(segment: str) -> list[Command]:
    """The commands of one ';'-separated segment (several when basic commands are chained)."""
    commands: list[Command] = []
    position = 0
    while position < len(segment):
        if segment[position] in _EXTENDED_START:
            commands.append(_extended(segment[position:].strip()))
            break
        if segment[position].isspace():
            position += 1
            continue
        match = _BASIC.match(segment, position)
        if match is None:
            raise ValueError(f"not a command: {segment[position:]!r}")
        if match.group(1):
            name, value = match.group(1).upper(), match.group(2)
            op: Op = "set" if value else "exec"
            commands.append(Command(name, op, (value,) if value else (), name + value))
        else:
            name = "S" + match.group(4)
            suffix = match.group(5) or ""
            if suffix == "?":
                commands.append(Command(name, "query", (), name + "?"))
            elif suffix.startswith("="):
                commands.append(Command(name, "set", (suffix[1:],), name + suffix))
            else:
                commands.append(Command(name, "exec", (), name))
        position = match.end()
    return commands


def parse_line(line: str) -> list[Command] | None:
    """The commands of a whole line, or None when it does not start with AT.

    Raises ValueError for a line that starts with AT but cannot be split into commands.
    """
    stripped = line.strip()
    if stripped[:2].upper() != "AT":
        return None
    commands: list[Command] = []
    for segment in split_segments(stripped[2:]):
        commands.extend(parse_segment(segment))
    return commands

"""What a command's answer looks like, declared by the command (the framing of an answer).

The parser gives a line to the command in flight only when it fits the command's declared
:class:`Answer`: one of its information prefixes, a bare line of its shape (15 digits for
``AT+CGSN``), free text (``ATI``, ``AT+CGMR``), or the body that follows a listing entry's
header (a PDU line, or text framed by the ``+CSDH=1`` length). Every other line is
unsolicited: a URC when known, else reported as Garbage and counted, never part of the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DIAL",
    "FREE_TEXT",
    "IMEI",
    "IMSI",
    "NOTHING",
    "Answer",
    "bare",
    "entries",
    "prefixed",
    "text_body_length",
]

EntryBody = Literal["pdu", "text"]


@dataclass(frozen=True, slots=True)
class Answer:
    """The declared shape of one command's answer.

    ``prefixes``: information lines ``NAME: ...`` that belong to the answer (a URC name among
    them is an answer line for this command, e.g. ``+CREG`` for ``AT+CREG?``).
    ``bare``: a pattern a line without prefix must match in full to belong (``\\d{15}``).
    ``free_text``: any line that is not a known URC belongs (identity strings, ``ATI``).
    ``entries``: each prefixed line is a listing entry's header followed by its body:
    ``"pdu"`` one line, ``"text"`` text framed by the header's length when it has one.
    ``dialling``: ``NO CARRIER``/``BUSY``/``NO ANSWER`` end this command (ATD, ATA);
    for any other command they are call events.
    ``prompt``: the command expects the ``> `` prompt (AT+CMGS, AT+CMGW).
    ``strict``: a free-text answer still refuses a ``+NAME: ...``-style line whose name it
    does not declare (an unknown vendor URC); text without such a prefix cannot be told from
    the answer and is taken (an identity string may be any text).
    """

    prefixes: tuple[str, ...] = ()
    bare: str | None = None
    free_text: bool = False
    entries: EntryBody | None = None
    dialling: bool = False
    prompt: bool = False
    strict: bool = True  # free text refuses "+NAME: ..." lines of other commands (unsolicited)

    def bare_pattern(self) -> re.Pattern[str] | None:
        return None if self.bare is None else _compiled(self.bare)


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    found = _PATTERNS.get(pattern)
    if found is None:
        found = _PATTERNS[pattern] = re.compile(pattern)
    return found


NOTHING: Final = Answer()
"""A command that answers with its final result only (``AT``, ``ATE0``, ``AT+CMGD=3``)."""

FREE_TEXT: Final = Answer(free_text=True)
DIAL: Final = Answer(dialling=True)
IMEI: Final = Answer(prefixes=("+CGSN", "+GSN"), bare=r'"?\d{15}"?')
IMSI: Final = Answer(prefixes=("+CIMI",), bare=r'"?\d{6,15}"?')


def prefixed(*names: str, free_text: bool = False) -> Answer:
    return Answer(prefixes=names, free_text=free_text)


def bare(pattern: str, *names: str) -> Answer:
    return Answer(prefixes=names, bare=pattern)


def entries(name: str, body: EntryBody) -> Answer:
    return Answer(prefixes=(name,), entries=body)


def text_body_length(name: str, args: str) -> int | None:
    """How many characters of body follow a text-mode header, from its ``+CSDH=1`` length.

    ``None`` when the header carries no length (``+CSDH=0``): the body is then framed by
    content, as well as that can be done. 0 for a status report (it has no body).
    """
    fields = _fields(args)
    if name == "+CMGL":
        fields = fields[1:]  # the same fields as +CMGR after the index
    if len(fields) >= 2 and fields[1].isdigit():
        return 0  # <stat>,<fo>,<mr>,...: a status report, no body line
    if len(fields) < 5:
        return None
    last = fields[-1]
    return int(last) if last.isascii() and last.isdigit() else None


def _fields(args: str) -> list[str]:
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for char in args:
        if char == '"':
            quoted = not quoted
            current.append(char)
        elif char == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    fields.append("".join(current).strip())
    return fields

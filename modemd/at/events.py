"""What the sans-IO AT parser emits: frozen dataclasses, one per kind of thing a modem says.

The parser turns bytes into these events; it never does I/O and never looks at the clock.
Text is decoded as Latin-1 so every byte survives one-to-one (a modem line is ASCII in
practice; Latin-1 makes a stray 0xFF show up instead of raising).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ResultKind(StrEnum):
    """The final result codes that end a command (V.250 and 3GPP TS 27.005/27.007)."""

    OK = "OK"
    ERROR = "ERROR"
    CME_ERROR = "+CME ERROR"
    CMS_ERROR = "+CMS ERROR"
    NO_CARRIER = "NO CARRIER"
    BUSY = "BUSY"
    NO_ANSWER = "NO ANSWER"
    NO_DIALTONE = "NO DIALTONE"
    COMMAND_NOT_SUPPORT = "COMMAND NOT SUPPORT"  # Huawei/ZTE say this instead of ERROR


@dataclass(frozen=True, slots=True)
class InfoLine:
    """An information-text line that belongs to the command in flight (e.g. ``+CSQ: 20,99``).

    ``body`` marks a line of the body a listing entry's header announced (the PDU line after
    ``+CMGL: ...``, or text-mode message text, its whitespace kept), never a header itself.
    """

    text: str
    body: bool = False


@dataclass(frozen=True, slots=True)
class FinalResult:
    """The final result code that ends the command in flight.

    ``code`` is the numeric +CME/+CMS error code when there is one; ``text`` is the whole
    line as the modem sent it (for verbose errors such as ``+CME ERROR: SIM PIN required``).
    """

    kind: ResultKind
    code: int | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.kind is ResultKind.OK


@dataclass(frozen=True, slots=True)
class Prompt:
    """The ``> `` prompt that asks for PDU/text data after AT+CMGS / AT+CMGW."""


@dataclass(frozen=True, slots=True)
class Urc:
    """An unsolicited result code.

    ``name`` is the prefix without the colon (``+CMTI``, ``+CMT``, ``RING``, ``^SMMEMFULL``);
    ``args`` is the text after the colon, stripped; ``body`` is the second line for the
    two-line URCs (+CMT, +CDS: the PDU in hex, or the text in text mode), else None.
    """

    name: str
    args: str = ""
    body: str | None = None


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes or a line that fit nowhere (noise, a stray result, an unknown line between
    commands). Reported so the driver can count and log it; never an exception."""

    data: bytes
    reason: str


ATEvent = InfoLine | FinalResult | Prompt | Urc | Garbage

"""Sans-IO AT response parser: bytes in, :mod:`modemd.at.events` out.

The parser follows ITU-T V.250 (lines, echo, final result codes) and 3GPP TS 27.007 / 27.005
(``+CME ERROR``, ``+CMS ERROR``, unsolicited result codes, the ``> `` prompt of ``+CMGS``).
It does no I/O, reads no clock and starts no thread: the modem driver feeds it whatever bytes
the serial port produced, in any chunking, and gets back a list of events. The same bytes give
the same events however they are split.

How a line is classified, in order:

1. A pending two-line URC (``+CMT``, ``+CDS``, ``+CBM``) takes the line as its body, unless the
   line is plainly not a body (a final result, a URC, the prompt): then the URC is emitted
   with ``body=None`` and the line is classified normally.
2. The echo of the command in flight (before any information line) is dropped.
3. Final result codes end the command (outside a command they are :class:`Garbage`).
4. A line ``NAME: args`` whose NAME is a URC prefix is a :class:`Urc`, unless the command in
   flight declared NAME in ``response_prefixes``. Parameterless URCs (``RING``, ``RDY``,
   ``^SYSSTART`` ...) match the whole line.
5. Anything else is an :class:`InfoLine` inside a command and :class:`Garbage` outside.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from modemd.at.events import ATEvent, FinalResult, Garbage, InfoLine, Prompt, ResultKind, Urc

__all__ = [
    "DEFAULT_TWO_LINE_URCS",
    "DEFAULT_URC_PREFIXES",
    "MAX_LINE_BYTES",
    "PARAMETERLESS_URCS",
    "ATParser",
]

#: Unsolicited result codes recognised by default (names without the colon).
DEFAULT_URC_PREFIXES: Final[tuple[str, ...]] = (
    # 3GPP TS 27.005: message indications and direct deliveries
    "+CMTI",
    "+CMT",
    "+CDSI",
    "+CDS",
    "+CBMI",
    "+CBM",
    # 3GPP TS 27.007: calls, registration, SS, indicators, SIM, functionality
    "RING",
    "+CRING",
    "+CLIP",
    "+CCWA",
    "+CREG",
    "+CGREG",
    "+CEREG",
    "+C5GREG",
    "+CGEV",
    "+CUSD",
    "+CIEV",
    "+CPIN",
    "+CFUN",
    "+CTZV",
    "+CTZE",
    # Huawei
    "^SMMEMFULL",
    "^RSSI",
    "^HCSQ",
    "^BOOT",
    "^MODE",
    "^SRVST",
    "^SIMST",
    "^DSFLOWRPT",
    "^CEND",
    "^ORIG",
    "^CONF",
    "^CONN",
    "^STIN",
    "^NDISSTAT",
    # Quectel / SIMCom
    "+QIND",
    "+QUSIM",
    "+PBREADY",
    "+SIMCARD",
    "RDY",
    "Call Ready",
    "SMS Ready",
    "NORMAL POWER DOWN",
    # Cinterion / Siemens, SIM toolkit
    "^SYSSTART",
    "+STIN",
    # ZTE
    "+ZDONR",
    "+ZPASR",
    "+ZEND",
    "+ZUSIMR",
    # Wavecom
    "+WIND",
)

#: URCs whose second line is the message (PDU hex in PDU mode, text in text mode).
DEFAULT_TWO_LINE_URCS: Final[tuple[str, ...]] = ("+CMT", "+CDS", "+CBM")

#: Names starting with ``+``/``^``/``$``/``*``/``#``/``%`` normally carry parameters and only
#: match as ``NAME: ...``; a bare ``+CREG`` line (e.g. in an ``AT+CLAC`` listing) is not a URC.
#: These are the exceptions that are sent as a whole line. Names without such a sigil
#: (``RING``, ``RDY``, ``Call Ready``) always match as a whole line too.
PARAMETERLESS_URCS: Final[frozenset[str]] = frozenset({"+PBREADY", "^SYSSTART", "^SHUTDOWN"})

#: A line longer than this without a terminator is reported as Garbage and dropped.
MAX_LINE_BYTES: Final[int] = 8192

_SIGILS: Final[str] = "+^$*#%&!"

_FINAL_WORDS: Final[dict[str, ResultKind]] = {
    "OK": ResultKind.OK,
    "ERROR": ResultKind.ERROR,
    "NO CARRIER": ResultKind.NO_CARRIER,
    "BUSY": ResultKind.BUSY,
    "NO ANSWER": ResultKind.NO_ANSWER,
    "NO DIALTONE": ResultKind.NO_DIALTONE,
    "NO DIAL TONE": ResultKind.NO_DIALTONE,
    "COMMAND NOT SUPPORT": ResultKind.COMMAND_NOT_SUPPORT,
}
_EXTENDED_ERROR: Final = re.compile(r"\+CM([ES]) ERROR\b\s*:?\s*(.*)")

#: Bytes removed from a line as noise: C0 controls except TAB, DEL, and 0xFF (the idle level
#: of a floating RX line; it never occurs in ASCII, GSM, UCS2-hex or UTF-8 text). Other bytes
#: above 0x7F are kept, as Latin-1: a text-mode message in the 8859-1 or UTF-8 character set
#: carries them, and the consumer can re-encode the line as Latin-1 to get the bytes back.
_NOISE: Final[bytes] = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F, 0xFF])
_LINE_END: Final = re.compile(rb"[\r\n]")
#: After the prompt the modem may echo the PDU/text ending in Ctrl-Z (send) or ESC (cancel).
_DATA_END: Final = re.compile(rb"[\r\n\x1a\x1b]")
_CR_LF: Final[bytes] = b"\r\n"
_PROMPT_BYTE: Final[int] = ord(">")


def _final_result(text: str) -> FinalResult | None:
    """The final result code ``text`` is, or None. ``text`` is already stripped."""
    kind = _FINAL_WORDS.get(text)
    if kind is not None:
        return FinalResult(kind, None, text)
    if not text.startswith("+CM"):
        return None
    match = _EXTENDED_ERROR.fullmatch(text)
    if match is None:
        return None
    kind = ResultKind.CME_ERROR if match.group(1) == "E" else ResultKind.CMS_ERROR
    detail = match.group(2).strip()
    code = int(detail) if detail.isdecimal() and detail.isascii() else None
    return FinalResult(kind, code, text)


def _name(prefix: str) -> str:
    return prefix.strip().rstrip(":").rstrip()


class ATParser:
    """Incremental, chunking-independent parser of what an AT modem says.

    ``feed()`` accepts any bytes and never raises; everything it cannot place comes back as
    :class:`Garbage`. One command at a time is tracked: ``command_started()`` before writing
    it, and the parser ends it on its final result code (or ``command_aborted()`` after a
    timeout).
    """

    __slots__ = (
        "_body_names",
        "_buf",
        "_command",
        "_events",
        "_expects_prompt",
        "_overlong",
        "_pending",
        "_prompted",
        "_response_names",
        "_scanned",
        "_seen_response",
        "_urc_names",
        "_whole_line_urcs",
    )

    def __init__(
        self,
        *,
        urc_prefixes: Iterable[str] = DEFAULT_URC_PREFIXES,
        two_line_urcs: Iterable[str] = DEFAULT_TWO_LINE_URCS,
    ) -> None:
        names = {_name(p) for p in urc_prefixes} - {""}
        self._urc_names: frozenset[str] = frozenset(names)
        self._whole_line_urcs: frozenset[str] = frozenset(
            n for n in names if n[0] not in _SIGILS or n in PARAMETERLESS_URCS
        )
        self._body_names: frozenset[str] = frozenset(_name(p) for p in two_line_urcs)
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already known to hold no line end
        self._overlong = False  # discarding the rest of a line that was too long
        self._events: list[ATEvent] = []
        self._pending: Urc | None = None  # two-line URC waiting for its body
        self._command: str | None = None
        self._response_names: frozenset[str] = frozenset()
        self._expects_prompt = False
        self._prompted = False
        self._seen_response = False

    # ------------------------------------------------------------------ command tracking

    @property
    def in_command(self) -> bool:
        """True from ``command_started()`` until its final result (or ``command_aborted()``)."""
        return self._command is not None

    def command_started(
        self,
        command: str,
        *,
        response_prefixes: Sequence[str] = (),
        expects_prompt: bool = False,
    ) -> None:
        """Announce the command just written (without its CR). Replaces any command in flight.

        ``response_prefixes`` are the information-line prefixes this command answers with
        (``("+CREG",)`` for ``AT+CREG?``): lines with these prefixes are :class:`InfoLine`
        even when they are also URC prefixes. ``expects_prompt`` makes ``> `` a
        :class:`Prompt` (``AT+CMGS``, ``AT+CMGW``).
        """
        self._command = command.strip().casefold()
        self._response_names = frozenset(_name(p) for p in response_prefixes)
        self._expects_prompt = expects_prompt
        self._prompted = False
        self._seen_response = False

    def command_aborted(self) -> None:
        """Forget the command in flight (after a timeout); a late answer becomes Garbage."""
        self._end_command()

    def _end_command(self) -> None:
        self._command = None
        self._response_names = frozenset()
        self._expects_prompt = False
        self._prompted = False
        self._seen_response = False

    # ------------------------------------------------------------------ framing

    def feed(self, data: bytes) -> list[ATEvent]:
        """Add received bytes; return the events of every line they completed."""
        self._buf += data
        events: list[ATEvent] = []
        self._events = events
        buf = self._buf
        pos = 0
        while pos < len(buf):
            if not self._overlong and self._wants_prompt():
                if buf[pos] in _CR_LF:  # blank line (or the LF of a CRLF)
                    pos += 1
                    continue
                if buf[pos] == _PROMPT_BYTE:
                    self._on_prompt()
                    pos += 1
                    self._scanned = pos  # the line ends have changed: rescan from here
                    continue
            ends = _DATA_END if self._prompted else _LINE_END
            match = ends.search(buf, max(pos, self._scanned))
            end = match.start() if match else len(buf)
            if end - pos > MAX_LINE_BYTES:
                self._garbage(bytes(buf[pos : pos + MAX_LINE_BYTES]), "line too long")
                pos += MAX_LINE_BYTES
                self._overlong = True
                self._scanned = pos
                continue
            if match is None:
                self._scanned = len(buf)
                break
            line = bytes(buf[pos:end])
            terminator = buf[end]
            pos = end + 1
            self._scanned = pos
            if self._overlong:
                self._overlong = False
                if line:
                    self._garbage(line, "rest of a line that was too long")
            elif terminator in _CR_LF:
                self._on_line(line)
            # else: Ctrl-Z/ESC after the prompt ends the modem's echo of the data we sent;
            # that echo is not part of the answer and is dropped.
        del buf[:pos]
        self._scanned -= pos
        self._events = []
        return events

    # ------------------------------------------------------------------ classification

    def _wants_prompt(self) -> bool:
        return self._expects_prompt and not self._prompted and self._command is not None

    def _on_prompt(self) -> None:
        self._flush_pending()
        self._prompted = True
        self._events.append(Prompt())

    def _on_line(self, raw: bytes) -> None:
        cleaned = raw.translate(None, _NOISE)
        if len(cleaned) != len(raw):
            junk = bytes(b for b in raw if b in _NOISE)
            self._garbage(junk, "control bytes in line")
            if not any(0x21 <= b <= 0x7E for b in cleaned):
                # What is left of a noisy line without one printable ASCII character is
                # noise too (0xFE after 0xFF 0x00), not an answer line or a PDU.
                if cleaned.strip():
                    self._garbage(cleaned, "noise line")
                return
        text = cleaned.decode("latin-1").strip()
        if not text:
            return
        if self._pending is not None and self._take_body(text):
            return
        if self._is_echo(text):
            return
        if self._wants_prompt() and text == ">":
            self._on_prompt()
            return
        final = _final_result(text)
        if final is not None:
            self._on_final(final)
            return
        urc = self._match_urc(text)
        if urc is not None:
            self._on_urc(urc)
            return
        if self._command is not None:
            self._seen_response = True
            self._events.append(InfoLine(text))
        else:
            self._garbage(text.encode("latin-1"), "line outside a command")

    def _take_body(self, text: str) -> bool:
        """Give ``text`` to the pending two-line URC; False if it is clearly not a body."""
        assert self._pending is not None
        is_prompt = self._wants_prompt() and text == ">"
        if is_prompt or _final_result(text) is not None or self._match_urc(text) is not None:
            self._flush_pending()
            return False
        pending, self._pending = self._pending, None
        self._events.append(Urc(pending.name, pending.args, text))
        return True

    def _flush_pending(self) -> None:
        if self._pending is not None:
            self._events.append(self._pending)
            self._pending = None

    def _is_echo(self, text: str) -> bool:
        return (
            self._command is not None
            and not self._seen_response
            and text.casefold() == self._command
        )

    def _on_final(self, final: FinalResult) -> None:
        if self._command is None:
            self._garbage(final.text.encode("latin-1"), "stray result outside a command")
            return
        self._end_command()
        self._events.append(final)

    def _match_urc(self, text: str) -> Urc | None:
        colon = text.find(":")
        if colon > 0:
            name = text[:colon].rstrip()
            if name in self._urc_names and name not in self._response_names:
                return Urc(name, text[colon + 1 :].strip())
        if text in self._whole_line_urcs and text not in self._response_names:
            return Urc(text)
        return None

    def _on_urc(self, urc: Urc) -> None:
        if self._expects_body(urc):
            self._pending = urc
        else:
            self._events.append(urc)

    def _expects_body(self, urc: Urc) -> bool:
        if urc.name not in self._body_names:
            return False
        if urc.name == "+CDS":
            # PDU mode: "+CDS: <length>" + PDU line. Text mode: one line with all fields.
            return urc.args.isdecimal()
        return True

    def _garbage(self, data: bytes, reason: str) -> None:
        self._events.append(Garbage(data, reason))

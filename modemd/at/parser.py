"""Sans-IO AT response parser: bytes in, :mod:`modemd.at.events` out.

The parser follows ITU-T V.250 (lines, echo, final result codes) and 3GPP TS 27.007 / 27.005
(``+CME ERROR``, ``+CMS ERROR``, unsolicited result codes, the ``> `` prompt of ``+CMGS``).
It does no I/O, reads no clock and starts no thread: the modem driver feeds it whatever bytes
the serial port produced, in any chunking, and gets back a list of events. The same bytes give
the same events however they are split.

How a line is classified, in order (the command's declared :class:`~modemd.at.answers.Answer`
decides what belongs to its answer):

1. The body a listing entry's header announced (``+CMGL``/``+CMGR``): the PDU line, or in text
   mode as many characters as the ``+CSDH=1`` length says, whatever they look like (a body
   reading ``OK`` or ``+CMGL: ...`` is text). A two-line URC (``+CMT``, ``+CDS``, ``+CBM``)
   takes its body the same way.
2. The echo of the command in flight (before any information line) is dropped.
3. Final result codes end the command. ``NO CARRIER``, ``BUSY``, ``NO ANSWER`` and ``NO
   DIALTONE`` end only a dialling command; otherwise they are call events (:class:`Urc`).
4. A line ``NAME: args`` whose NAME the answer declares is an :class:`InfoLine`.
5. A URC name (``NAME: args``, a whole line such as ``RING``/``RDY``, or a line prefix such as
   SIM800's ``UNDER-VOLTAGE``) is a :class:`Urc`.
6. A bare line of the answer's shape (15 digits for AT+CGSN), or any line for a free-text
   answer, is an :class:`InfoLine`.
7. Anything else is unsolicited and unknown: :class:`Garbage`, never part of an answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from modemd.at.answers import Answer, text_body_length
from modemd.at.events import ATEvent, FinalResult, Garbage, InfoLine, Prompt, ResultKind, Urc
from modemd.at.redact import redact

__all__ = [
    "CALL_RESULTS",
    "DEFAULT_LINE_PREFIX_URCS",
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
    "+COLP",
    "+CSSI",
    "+CSSU",
    "MISSED_CALL",  # SIMCom SIM800: "MISSED_CALL: 10:31AM +4915..."
    "VOICE CALL",  # SIMCom SIM7600/A76xx: "VOICE CALL: BEGIN" / "VOICE CALL: END: 000012"
    "+CUSATP",
    "+CUSATEND",
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

#: URCs recognised by the start of their line (SIM800: "UNDER-VOLTAGE WARNNING").
DEFAULT_LINE_PREFIX_URCS: Final[tuple[str, ...]] = ()

#: Results that end a dialling command and are call events at any other time.
CALL_RESULTS: Final[frozenset[ResultKind]] = frozenset(
    {ResultKind.NO_CARRIER, ResultKind.BUSY, ResultKind.NO_ANSWER, ResultKind.NO_DIALTONE}
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
#: A "+NAME: ..." line (any sigil): in a strict free-text answer, another command's line.
_FOREIGN_PREFIX: Final = re.compile(r"[+^*#$%!&][A-Za-z0-9_]+\s*:")
#: What an unsolicited line looks like where a PDU line is due: a name and a colon, or words.
_URC_LIKE: Final = re.compile(r"[+^*#$%!&]?[A-Za-z][A-Za-z0-9_ -]*:.*|\S+( \S+)+")
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


_OUTSIDE: Final = Answer(free_text=True, strict=False)


@dataclass(slots=True)
class _Body:
    """The body a header announced: ``length`` characters (text), one line (PDU: None)."""

    length: int | None
    content_framed: bool = False  # text without a length: up to the next header or result
    lines: list[str] = field(default_factory=list)
    urc: Urc | None = None  # the two-line URC this body belongs to, if any

    def complete(self) -> bool:
        if self.length is None:
            return bool(self.lines) and not self.content_framed
        return len("\n".join(self.lines)) >= self.length


class ATParser:
    """Incremental, chunking-independent parser of what an AT modem says.

    ``feed()`` accepts any bytes and never raises; everything it cannot place comes back as
    :class:`Garbage`. One command at a time is tracked: ``command_started()`` before writing
    it, and the parser ends it on its final result code (or ``command_aborted()`` after a
    timeout).
    """

    __slots__ = (
        "_after_cr",
        "_answer",
        "_bare",
        "_body",
        "_body_names",
        "_buf",
        "_command",
        "_events",
        "_line_prefix_urcs",
        "_overlong",
        "_pending",
        "_prompted",
        "_response_names",
        "_scanned",
        "_seen_response",
        "_shown",
        "_urc_names",
        "_whole_line_urcs",
    )

    def __init__(
        self,
        *,
        urc_prefixes: Iterable[str] = DEFAULT_URC_PREFIXES,
        two_line_urcs: Iterable[str] = DEFAULT_TWO_LINE_URCS,
        line_prefix_urcs: Iterable[str] = DEFAULT_LINE_PREFIX_URCS,
    ) -> None:
        names = {_name(p) for p in urc_prefixes} - {""}
        self._urc_names: frozenset[str] = frozenset(names)
        self._whole_line_urcs: frozenset[str] = frozenset(
            n for n in names if n[0] not in _SIGILS or n in PARAMETERLESS_URCS
        )
        self._line_prefix_urcs: tuple[str, ...] = tuple(p for p in line_prefix_urcs if p)
        self._body_names: frozenset[str] = frozenset(_name(p) for p in two_line_urcs)
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already known to hold no line end
        self._overlong = False  # discarding the rest of a line that was too long
        self._after_cr = False  # the last line ended in CR: an LF next is the same line end
        self._events: list[ATEvent] = []
        self._pending: Urc | None = None  # two-line URC waiting for its body
        self._body: _Body | None = None  # the body an entry header or a URC announced
        self._command: str | None = None
        self._shown = ""
        self._answer = _OUTSIDE
        self._bare: re.Pattern[str] | None = None
        self._response_names: frozenset[str] = frozenset()
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
        answer: Answer | None = None,
    ) -> None:
        """Announce the command just written (without its CR). Replaces any command in flight.

        ``answer`` declares what its answer looks like (see :class:`Answer`). Without one,
        the older form applies: ``response_prefixes`` are the information-line prefixes
        (lines with them are :class:`InfoLine` even when they are also URC prefixes) and any
        other line that is not a URC belongs to the answer; ``expects_prompt`` makes ``> `` a
        :class:`Prompt` (``AT+CMGS``, ``AT+CMGW``).
        """
        if answer is None:
            answer = Answer(prefixes=tuple(response_prefixes), free_text=True,
                            prompt=expects_prompt, dialling=_is_dialling(command),
                            strict=False)
        self._command = command.strip().casefold()
        self._shown = redact(command.strip())  # what a Garbage reason may name: no PIN
        self._answer = answer
        self._bare = answer.bare_pattern()
        self._response_names = frozenset(_name(p) for p in answer.prefixes)
        self._prompted = False
        self._seen_response = False
        if self._body is not None and self._body.urc is None:
            self._body = None

    def command_aborted(self) -> None:
        """Forget the command in flight (after a timeout); a late answer becomes Garbage."""
        self._end_command()

    def _end_command(self) -> None:
        self._command = None
        self._answer = _OUTSIDE
        self._bare = None
        self._response_names = frozenset()
        self._prompted = False
        self._seen_response = False
        if self._body is not None and self._body.urc is None:
            self._body = None

    # ------------------------------------------------------------------ framing

    def feed(self, data: bytes) -> list[ATEvent]:
        """Add received bytes; return the events of every line they completed."""
        self._buf += data
        events: list[ATEvent] = []
        self._events = events
        buf = self._buf
        pos = 0
        while pos < len(buf):
            if self._after_cr and buf[pos] == 0x0A:
                self._after_cr = False  # CR LF: one line end
                pos += 1
                self._scanned = max(self._scanned, pos)
                continue
            self._after_cr = False
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
            self._after_cr = terminator == 0x0D
            if self._overlong:
                self._overlong = False
                if line:
                    self._garbage(line, "rest of a line that was too long")
            elif terminator in _CR_LF:
                self._on_line(line)
            # else: Ctrl-Z/ESC after the prompt ends the modem's echo of the data we sent;
            # that echo is not part of the answer and is dropped.
        del buf[:pos]
        self._scanned = max(0, self._scanned - pos)
        self._events = []
        return events

    # ------------------------------------------------------------------ classification

    def _wants_prompt(self) -> bool:
        return self._answer.prompt and not self._prompted and self._command is not None

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
        line = cleaned.decode("latin-1")
        body = self._body
        if body is not None and body.length is not None and body.length > 0:
            self._take_framed_body(body, line)
            return
        text = line.strip()
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
        if self._is_answer_header(text):
            self._on_header(text)
            return
        urc = self._match_urc(text)
        if urc is not None:
            self._on_urc(urc)
            return
        if body is not None and self._command is not None:
            self._take_unframed_body(body, line)
            return
        if self._command is not None and self._belongs(text):
            self._seen_response = True
            self._events.append(InfoLine(text))
        elif self._command is not None:
            self._garbage(text.encode("latin-1"), f"unsolicited line during {self._shown}")
        else:
            self._garbage(text.encode("latin-1"), "line outside a command")

    def _belongs(self, text: str) -> bool:
        if self._answer.free_text:
            return not (self._answer.strict and _FOREIGN_PREFIX.match(text))
        return self._bare is not None and self._bare.fullmatch(text) is not None

    def _is_answer_header(self, text: str) -> bool:
        if self._command is None or not self._response_names:
            return False
        colon = text.find(":")
        return colon > 0 and text[:colon].rstrip() in self._response_names

    def _on_header(self, text: str) -> None:
        self._seen_response = True
        self._body = None
        self._events.append(InfoLine(text))
        kind = self._answer.entries
        if kind == "pdu":
            self._body = _Body(length=None)
        elif kind == "text":
            colon = text.find(":")
            name, args = text[:colon].rstrip(), text[colon + 1 :]
            length = text_body_length(name, args)
            if length != 0:
                self._body = _Body(length=length, content_framed=length is None)

    def _take_framed_body(self, body: _Body, line: str) -> None:
        """A line of a body whose length the header gave: text, whatever it looks like."""
        if not body.lines and not line:
            return  # the blank line some modems put between the header and the text
        body.lines.append(line)
        if body.urc is None:
            self._seen_response = True
            self._events.append(InfoLine(line, body=True))
        if body.complete():
            self._body = None
            if body.urc is not None:
                urc = body.urc
                self._events.append(Urc(urc.name, urc.args, "\n".join(body.lines)))

    def _take_unframed_body(self, body: _Body, line: str) -> None:
        """A PDU line, or text without a length (up to the next header or final result)."""
        if not body.content_framed and _URC_LIKE.fullmatch(line.strip()):
            # "NAME: ..." or words with spaces where a PDU (hex) should be: an unknown
            # unsolicited line, not this entry's PDU, which may still follow.
            self._garbage(line.strip().encode("latin-1"),
                          f"unsolicited line during {self._shown}")
            return
        self._seen_response = True
        if body.content_framed:
            body.lines.append(line)
            self._events.append(InfoLine(line.rstrip(), body=True))
            return
        self._body = None
        self._events.append(InfoLine(line.strip(), body=True))

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
        if final.kind in CALL_RESULTS and not (self._command and self._answer.dialling):
            self._events.append(Urc(final.text))  # a call event (a caller hung up)
            return
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
        for prefix in self._line_prefix_urcs:
            if text.startswith(prefix):
                return Urc(prefix, text[len(prefix) :].strip(" :"))
        return None

    def _on_urc(self, urc: Urc) -> None:
        if not self._expects_body(urc):
            self._events.append(urc)
            return
        length = text_body_length(urc.name, urc.args) if urc.name == "+CMT" else None
        if length:
            self._body = _Body(length=length, urc=urc)
        else:
            self._pending = urc

    def _expects_body(self, urc: Urc) -> bool:
        if urc.name not in self._body_names:
            return False
        if urc.name == "+CDS":
            # PDU mode: "+CDS: <length>" + PDU line. Text mode: one line with all fields.
            return urc.args.isdecimal()
        return True

    def _garbage(self, data: bytes, reason: str) -> None:
        self._events.append(Garbage(data, reason))


def _is_dialling(command: str) -> bool:
    head = command.strip().upper()
    return head.startswith(("ATD", "ATA")) and not head.startswith("ATD?")

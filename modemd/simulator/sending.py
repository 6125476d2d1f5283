"""Sending on the simulated modem: AT+CMGS (PDU and text mode), AT+CSMP, error injection and
the status reports the network would send back.

``AT+CMGS=<length>`` (PDU mode) or ``AT+CMGS="<da>"`` (text mode) answers ``> ``; what follows
up to Ctrl-Z is the PDU in hex (or the text). The modem then answers ``+CMGS: <mr>`` and, when
the SUBMIT asked for one (TP-SRR) and :attr:`SendingState.report_status` is set, sends a status
report after ``report_delay`` seconds: ``+CDS: <length>`` + PDU with ``AT+CNMI`` <ds> 1, or
stored in ``SR`` with ``+CDSI: "SR",<index>`` with <ds> 2, like a real modem.

Tests drive it through ``sim.sending``: :meth:`SendingState.fail_next` answers the next
submits with ``+CMS ERROR`` codes, ``stall`` makes the modem fall silent after taking a PDU
(a crash window between AT+CMGS and its answer), and :attr:`SendingState.sent` holds every
PDU it took.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, cast

from modemd.simulator.at_line import Command
from modemd.simulator.handlers import (
    HANDLERS,
    BadArguments,
    Context,
    HandlerSpec,
    PromptRequest,
    Reply,
    cms_error,
)
from modemd.simulator.pdu_text import format_scts, parse_hex, to_hex, tpdu_length

if TYPE_CHECKING:
    from modemd.simulator.modem import SimulatedModem


@dataclass(frozen=True, slots=True)
class SentMessage:
    """What the modem took after one AT+CMGS prompt."""

    mr: int
    pdu: bytes | None  # PDU mode: the PDU as written (SMSC field first)
    destination: str  # the TP-DA digits (``+`` for international)
    text: str | None = None  # text mode: the text as written
    status_report: bool = False
    at: float = 0.0


@dataclass(slots=True)
class SendingState:
    sent: list[SentMessage] = field(default_factory=list)
    next_mr: int = 0
    failures: deque[int | None] = field(default_factory=deque)
    report_status: int | None = 0x00  # TP-ST of the status report sent back; None: none
    report_delay: float = 0.05
    stall: bool = False  # take the PDU, then never answer (until quirk hang is cleared)
    csmp: tuple[int, int, int, int] = (17, 167, 0, 0)
    reports_sent: int = 0

    def fail_next(self, *codes: int | None) -> None:
        """Answer the next len(codes) submits with these +CMS ERROR codes, in order (None:
        that one goes through)."""
        self.failures.extend(codes)


class SendingContext(Context, Protocol):
    @property
    def sending(self) -> SendingState: ...


def _state(ctx: Context) -> SendingState:
    return cast(SendingContext, ctx).sending


def h_csmp(ctx: Context, c: Command) -> Reply:
    state = _state(ctx)
    if c.op == "test":
        return Reply()
    if c.op == "query":
        return Reply(["+CSMP: " + ",".join(map(str, state.csmp))])
    values = [int(a) for a in c.args if a.strip()]
    if not 1 <= len(values) <= 4 or any(not 0 <= v <= 255 for v in values):
        raise BadArguments(c.text)
    state.csmp = cast(tuple[int, int, int, int], tuple(values + list(state.csmp[len(values):])))
    return Reply()


def h_cmgs(ctx: Context, c: Command) -> Reply:
    if c.op == "test":
        return Reply()
    if c.op != "set" or not c.args:
        raise BadArguments(c.text)
    if ctx.state.cmgf == 1:
        destination = c.args[0]
        if not destination.lstrip("+").isdigit():
            return cms_error(ctx, 305)
        request = PromptRequest(0, 0, finish=finish_cmgs_text, destination=destination)
        return Reply(final="", prompt=request)
    length = int(c.args[0])
    if not 1 <= length <= 164:
        raise BadArguments(c.text)
    return Reply(final="", prompt=PromptRequest(length, 0, finish=finish_cmgs))


def _submit_header(pdu: bytes) -> tuple[int, str]:
    """(first octet, TP-DA) of a SUBMIT PDU; ValueError when it is not one."""
    tpdu = pdu[1 + pdu[0]:]
    if len(tpdu) < 4 or tpdu[0] & 0x03 != 0x01:
        raise ValueError("not an SMS-SUBMIT")
    digits, toa = tpdu[2], tpdu[3]
    raw = tpdu[4 : 4 + (digits + 1) // 2]
    nibbles = "".join(f"{b & 0x0F:X}{b >> 4:X}" for b in raw)[:digits]
    return tpdu[0], ("+" if toa & 0x70 == 0x10 else "") + nibbles


def _accept(ctx: Context, message: SentMessage) -> Reply:
    state = _state(ctx)
    code = state.failures.popleft() if state.failures else None
    if code is not None:
        return cms_error(ctx, code)
    state.sent.append(message)
    state.next_mr = (state.next_mr + 1) % 256
    if state.stall:
        ctx.quirks.hang = True  # it took the PDU and will never say so
        return Reply()
    if message.status_report and state.report_status is not None:
        _schedule_report(cast("SimulatedModem", ctx), message, state.report_status,
                         state.report_delay)
    return Reply([f"+CMGS: {message.mr}"])


def finish_cmgs(ctx: Context, request: PromptRequest, text: str) -> Reply:
    try:
        pdu = parse_hex(text)
        if tpdu_length(pdu) != request.length:
            return cms_error(ctx, 304)
        first, destination = _submit_header(pdu)
    except (ValueError, IndexError):
        return cms_error(ctx, 304)
    state = _state(ctx)
    return _accept(ctx, SentMessage(mr=state.next_mr, pdu=pdu, destination=destination,
                                    status_report=bool(first & 0x20), at=time.monotonic()))


def finish_cmgs_text(ctx: Context, request: PromptRequest, text: str) -> Reply:
    state = _state(ctx)
    return _accept(ctx, SentMessage(mr=state.next_mr, pdu=None,
                                    destination=request.destination, text=text,
                                    status_report=bool(state.csmp[0] & 0x20),
                                    at=time.monotonic()))


def _schedule_report(sim: SimulatedModem, message: SentMessage, status: int,
                     delay: float) -> None:
    def send() -> None:
        from modemd.sms.submit import encode_status_report

        now = datetime.now(UTC).replace(microsecond=0)
        pdu = encode_status_report(message_reference=message.mr,
                                   recipient=message.destination, scts=now,
                                   discharge_time=now, status=status,
                                   smsc=sim.state.csca or None)
        if sim.state.cmgf == 1 and sim.state.cnmi[3] == 1:
            # text mode: "+CDS: <fo>,<mr>,"<ra>",<tora>,"<scts>","<dt>",<st>" on one line
            toa = 145 if message.destination.startswith("+") else 129
            stamp = format_scts(now)
            sim._urc([f'+CDS: 6,{message.mr},"{message.destination}",{toa},"{stamp}",'
                      f'"{stamp}",{status}'])
            sim.sending.reports_sent += 1
            return
        deliver_status_report(sim, pdu)

    sim._schedule(delay, send)


def deliver_status_report(sim: SimulatedModem, pdu: bytes) -> int | None:
    """Route a status report by AT+CNMI <ds>: +CDS (1), SR storage + +CDSI (2), else SR."""
    ds = sim.state.cnmi[3] if len(sim.state.cnmi) > 3 else 0
    sim.sending.reports_sent += 1
    if ds == 1 and sim.state.cmgf == 0:
        sim._urc([f"+CDS: {tpdu_length(pdu)}\r\n{to_hex(pdu)}"])
        return None
    names = sim.profile.all_storages()
    storage = sim.storage("SR" if "SR" in names else sim.state.cpms[2])
    index = storage.store(pdu)
    if index is not None and ds == 2:
        sim._urc([f'+CDSI: "{storage.name}",{index}'])
    return index


def inject_status_report(sim: SimulatedModem, pdu: bytes) -> int | None:
    """A status report from the network, from any thread (tests: a late report)."""
    return sim._call_in_thread(lambda: deliver_status_report(sim, pdu))


# Registered here, next to the handlers, when the simulator imports this module.
HANDLERS.update({
    "+CMGS": HandlerSpec(h_cmgs, sim="cms", kind="cms"),
    "+CSMP": HandlerSpec(h_csmp, kind="cms"),
})

__all__ = [
    "SendingState",
    "SentMessage",
    "deliver_status_report",
    "finish_cmgs",
    "finish_cmgs_text",
    "h_cmgs",
    "h_csmp",
    "inject_status_report",
]

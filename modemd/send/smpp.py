"""Sending over an SMPP transceiver bind: queued parts as submit_sm, one sender per bind.

The send queue holds every part as the SMS-SUBMIT TPDU a modem would be given (so a request
is split once, whichever way it leaves). :func:`submit_sm_fields` reads that TPDU back into
the submit_sm a bind sends (SMPP 3.4 section 4.4): the recipient, the UDH (``esm_class``
UDHI) of a concatenated or port-addressed part, the alphabet as ``data_coding``, the
validity period in SMPP's relative time format, a receipt when TP-SRR asked for a status
report, and a flash message (class 0) as ``dest_addr_subunit`` "MS display".

:class:`SmppSender` runs one thread per transceiver bind. It takes parts from the send
service only while the bind is bound, marks each ``sending`` durably (the service's
:meth:`~modemd.send.service.SendService.begin`) and hands it to the bind; up to the bind's
``submit_window`` wait for their submit_sm_resp at once (the parts of one request go one
after another). A part whose answer never came is ``unknown``, never sent again. The
SMSC's receipts come back through the journal (deliver_sm) and the pipeline's
``on_smpp_receipt`` hook.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from modemd.errors import DecodeError
from modemd.modem.sending import SendJob, SendJobs, SubmitError
from modemd.sms.decode import decode_pdu, user_data_payload
from modemd.sms.encode import user_data_header
from modemd.sms.gsm7 import encode_gsm7
from modemd.sms.model import SmsSubmit
from modemd.sms.smpp import DefaultAlphabet
from modemd.sources.smpp.bind import SmppBind
from modemd.sources.smpp.session import (
    SessionError,
    SubmitRefused,
    SubmitResult,
    SubmitUnknown,
)

log = logging.getLogger(__name__)

ESM_UDHI = 0x40
#: SMPP 3.4 section 5.2.19: data_coding values modemd sends
DATA_CODING_DEFAULT = 0x00  # the SMSC's default alphabet ([[smpp]] default_alphabet)
DATA_CODING_BINARY = 0x04
DATA_CODING_UCS2 = 0x08
#: dest_addr_subunit 1, "MS display": the SMPP way to ask for a class 0 (flash) message
SUBUNIT_MS_DISPLAY = 0x01
#: submit_sm_resp statuses that say "not now" rather than "never" (section 5.1.3)
TRANSIENT_STATUSES = frozenset({
    0x00000008,  # ESME_RSYSERR: system error
    0x00000014,  # ESME_RMSGQFUL: message queue full
    0x00000058,  # ESME_RTHROTTLED: throttling error
    0x00000064,  # ESME_RX_T_APPN: temporary application error
})
#: how long past the bind's response_timeout a part may wait for its submit_sm_resp
ANSWER_MARGIN = 5.0
_IDLE_LOOK = 1.0  # the longest a sender sleeps without looking (stop, bind state)
_STOP_LOOK = 0.2  # how often a sender waiting for answers looks at its stop flag and deadlines


def relative_validity(period: timedelta) -> str:
    """SMPP relative time "YYMMDDhhmmss000R" (section 7.1.1.1) for ``period``; past 99 days
    in years of 365 and months of 30 days, as SMSCs count them."""
    seconds = max(int(period.total_seconds()), 0)
    days, seconds = divmod(seconds, 86400)
    years = months = 0
    if days > 99:
        years, days = divmod(days, 365)
        months, days = divmod(days, 30)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return (f"{min(years, 99):02d}{months:02d}{days:02d}{hours:02d}{minutes:02d}"
            f"{seconds:02d}000R")


def _addressing(number: str) -> tuple[int, int, str]:
    """(ton, npi, address) of an SMPP address as modemd writes numbers."""
    if not number:
        return 0, 0, ""
    if number.startswith("+") and number[1:].isdigit():
        return 1, 1, number[1:]  # international, E.164
    if number.isdigit():
        return 0, 1, number  # unknown (national or short code), E.164 plan
    return 5, 0, number  # alphanumeric


def _text_octets(text: str, alphabet: DefaultAlphabet) -> bytes:
    """A GSM 7-bit part's text as the SMSC's default alphabet writes it."""
    if alphabet == "gsm7":
        return encode_gsm7(text)  # unpacked septets: SMPP carries one per octet
    codec = "latin-1" if alphabet == "latin1" else "ascii"
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"the text holds {text[exc.start]!r}, which the SMSC's default alphabet "
            f"({alphabet}, [[smpp]] default_alphabet) cannot write") from None


def submit_sm_fields(tpdu: bytes, *, alphabet: DefaultAlphabet = "gsm7",
                     source_addr: str = "") -> dict[str, Any]:
    """The submit_sm (smpplib field names) that sends one queued SMS-SUBMIT TPDU.

    Raises ValueError when the TPDU is not an SMS-SUBMIT or its text cannot be written in
    the SMSC's default alphabet.
    """
    try:
        message = decode_pdu(tpdu, with_smsc=False)
    except DecodeError as exc:
        raise ValueError(f"a queued part is unreadable: {exc}") from None
    if not isinstance(message, SmsSubmit):
        raise ValueError(f"a queued part is not an SMS-SUBMIT: {type(message).__name__}")
    header = user_data_header(message.udh.elements) if message.udh is not None else b""
    if message.dcs.alphabet == "gsm7":
        data_coding, body = DATA_CODING_DEFAULT, _text_octets(message.text or "", alphabet)
    elif message.dcs.alphabet == "ucs2":
        data_coding, body = DATA_CODING_UCS2, user_data_payload(tpdu)
    else:
        data_coding, body = DATA_CODING_BINARY, user_data_payload(tpdu)
    dest_ton, dest_npi, destination = _addressing(message.recipient.number)
    source_ton, source_npi, source = _addressing(source_addr)
    fields: dict[str, Any] = {
        "source_addr_ton": source_ton, "source_addr_npi": source_npi, "source_addr": source,
        "dest_addr_ton": dest_ton, "dest_addr_npi": dest_npi,
        "destination_addr": destination,
        "esm_class": ESM_UDHI if header else 0,
        "protocol_id": message.pid,
        "registered_delivery": 1 if tpdu[0] & 0x20 else 0,  # TP-SRR: a receipt, please
        "data_coding": data_coding,
        "short_message": header + body,
    }
    if isinstance(message.validity, timedelta):
        fields["validity_period"] = relative_validity(message.validity)
    if message.dcs.message_class == 0:
        fields["dest_addr_subunit"] = SUBUNIT_MS_DISPLAY
    return fields


class SmppSender:
    """The thread that sends queued parts through one transceiver bind."""

    def __init__(self, bind: SmppBind, jobs: SendJobs, *, next_look: Callable[[], float],
                 alphabet: DefaultAlphabet = "gsm7", source_addr: str = "") -> None:
        self.bind = bind
        self.jobs = jobs
        self.next_look = next_look  # when (monotonic) to look at the queue next
        self.alphabet = alphabet
        self.source_addr = source_addr
        self.answer_timeout = bind.settings.response_timeout + ANSWER_MARGIN
        self.window = bind.settings.submit_window
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.bind.name

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"smpp-send-{self.name}",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        """Take no more parts. A part in flight still waits for its answer: stop the bind
        next (its goodbye reads the answer, or makes the part unknown), then :meth:`join`."""
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        in_flight: list[_InFlight] = []
        while not (self._stop.is_set() and not in_flight):
            try:
                if not self._stop.is_set() and self.bind.bound.is_set():
                    self._fill(in_flight)
                if in_flight:
                    wait([entry.future for entry in in_flight], timeout=_STOP_LOOK,
                         return_when=FIRST_COMPLETED)
                    in_flight[:] = [entry for entry in in_flight if not self._settled(entry)]
                    continue
            except Exception:
                # a bug must not end sending for good (nor the daemon): log it and go on
                log.exception("smpp %s: unexpected error while sending", self.name)
                self._stop.wait(_IDLE_LOOK)
                continue
            if self._stop.is_set():
                break
            if not self.bind.bound.is_set():
                # a part is taken only while the bind is up: one waiting for a session
                # would turn "unknown" if the daemon stopped meanwhile, never having left
                self.bind.bound.wait(_IDLE_LOOK)
                continue
            wait_for = min(max(self.next_look() - time.monotonic(), 0.0), _IDLE_LOOK)
            if wait_for > 0:
                self._wake.wait(wait_for)
            self._wake.clear()

    def _fill(self, in_flight: list[_InFlight]) -> None:
        """Hand the bind due parts until ``submit_window`` wait for their answers (parts of
        one request go one after another: the queue offers the next once this one is sent)."""
        while len(in_flight) < self.window and not self._stop.is_set():
            if not self.jobs.wanted(self.name):
                return
            job = self.jobs.next_job(self.name)
            if job is None:
                return
            if not self.jobs.begin(job, self.name):
                continue  # another sender took it
            try:
                fields = submit_sm_fields(job.pdu[-job.tpdu_length:], alphabet=self.alphabet,
                                          source_addr=self.source_addr)
                future = self.bind.submit(**fields)
            except (ValueError, SessionError) as exc:  # (SessionError: a receiver bind)
                self.jobs.failed(job, self.name, SubmitError(None, str(exc), transient=False))
                continue
            in_flight.append(_InFlight(job, future, time.monotonic() + self.answer_timeout))

    def _settled(self, entry: _InFlight) -> bool:
        """Record how ``entry`` went once that is known; False while its answer may come."""
        job, future = entry.job, entry.future
        if not future.done():
            expired = time.monotonic() >= entry.deadline
            if (self._stop.is_set() or expired) and future.cancel():
                # still queued in the bind: nothing was written, it may go later
                self.jobs.failed(job, self.name, SubmitError(
                    None, "not written: the bind had no session for it in time",
                    transient=True))
                return True
            if not expired:
                return False
            self.jobs.unknown(job, self.name, f"no submit_sm_resp within "
                              f"{self.answer_timeout:.0f} s; not sent again")
            return True
        try:
            result = future.result()
        except CancelledError:
            self.jobs.failed(job, self.name, SubmitError(None, "cancelled before it was sent",
                                                         transient=True))
        except SubmitUnknown as exc:
            self.jobs.unknown(job, self.name, f"{exc}; not sent again")
        except SubmitRefused as exc:
            log.warning("smpp %s: send %s part %d/%d: %s", self.name, job.request_id,
                        job.sequence, job.total, exc)
            self.jobs.failed(job, self.name, SubmitError(
                None, str(exc), transient=exc.status in TRANSIENT_STATUSES))
        except SessionError as exc:
            self.jobs.unknown(job, self.name, f"{exc}; not sent again")
        else:
            self.jobs.sent(job, self.name, None, smsc_id=result.message_id)
        return True


@dataclass(slots=True)
class _InFlight:
    job: SendJob
    future: Future[SubmitResult]
    deadline: float  # monotonic: no answer by then is "unknown"

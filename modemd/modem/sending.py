"""Sending one SMS-SUBMIT part over an AT session (``AT+CMGS``, 3GPP TS 27.005 3.5.1 / 4.3).

PDU mode: ``AT+CMGS=<tpdu length>``, the ``> `` prompt, the PDU in hex, Ctrl-Z; the answer is
``+CMGS: <mr>`` (the TP-MR the modem gave the message) or ``+CMS ERROR: <code>``. Text mode:
``AT+CSMP=<fo>,<vp>,<pid>,<dcs>`` sets what the PDU would carry, then ``AT+CMGS="<da>"``.

At most once: the job source marks the part ``sending`` durably before the PDU is written.
An answer settles it (``sent`` with its TP-MR, or an error classified here as transient or
permanent); no answer (timeout, port lost) leaves it ``unknown``: it is never written again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from modemd.at.answers import NOTHING, prefixed
from modemd.errors import (
    CommandFailed,
    CommandTimeout,
    ModemdError,
    PromptTimeout,
    TransportError,
)
from modemd.modem.session import Response

if TYPE_CHECKING:
    from modemd.modem.driver import ModemDriver

log = logging.getLogger(__name__)

#: seconds to wait for the +CMGS answer: the network round trip, often 3-10 s, up to a minute
SUBMIT_TIMEOUT = 60.0
#: seconds to wait for the "> " prompt
PROMPT_TIMEOUT = 10.0

# +CMS ERROR codes (TS 27.005 3.2.5; 0-127 are TS 24.011 RP-causes, 128-255 TS 23.040 TP-FCS).
CMS_MEANINGS: dict[int, str] = {
    1: "unassigned (unallocated) number",
    8: "operator determined barring",
    10: "call barred",
    21: "short message transfer rejected",
    27: "destination out of service",
    28: "unidentified subscriber",
    29: "facility rejected",
    30: "unknown subscriber",
    38: "network out of order",
    41: "temporary failure",
    42: "congestion",
    47: "resources unavailable",
    50: "requested facility not subscribed",
    69: "requested facility not implemented",
    81: "invalid short message transfer reference value",
    95: "invalid message",
    96: "invalid mandatory information",
    97: "message type non-existent or not implemented",
    98: "message not compatible with short message protocol state",
    99: "information element non-existent or not implemented",
    111: "protocol error",
    127: "interworking error",
    128: "telematic interworking not supported",
    129: "short message type 0 not supported",
    130: "cannot replace short message",
    143: "unspecified TP-PID error",
    144: "data coding scheme (alphabet) not supported",
    145: "message class not supported",
    159: "unspecified TP-DCS error",
    160: "command cannot be actioned",
    161: "command unsupported",
    175: "unspecified TP-Command error",
    176: "TPDU not supported",
    192: "SC busy",
    193: "no SC subscription",
    194: "SC system failure",
    195: "invalid SME address",
    196: "destination SME barred",
    197: "SM rejected: duplicate SM",
    198: "TP-VPF not supported",
    199: "TP-VP not supported",
    208: "SIM SMS storage full",
    209: "no SMS storage capability in SIM",
    210: "error in MS",
    211: "memory capacity exceeded",
    212: "SIM application toolkit busy",
    213: "SIM data download error",
    255: "unspecified error",
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    312: "PH-SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    315: "SIM wrong",
    316: "SIM PUK required",
    317: "SIM PIN2 required",
    318: "SIM PUK2 required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}

#: Codes that mean "not now": the same PDU may succeed later (network, congestion, busy SIM).
TRANSIENT_CMS = frozenset({27, 38, 41, 42, 47, 98, 111, 127, 192, 194, 212, 300, 314, 331,
                           332, 500})


class SubmitError(ModemdError):
    """The modem answered a submit with an error: the part was not sent."""

    def __init__(self, code: int | None, meaning: str, *, transient: bool) -> None:
        self.code = code
        self.meaning = meaning
        self.transient = transient
        label = f"+CMS ERROR {code}" if code is not None else "ERROR"
        super().__init__(f"{label}: {meaning}")


def classify(exc: CommandFailed) -> SubmitError:
    """Transient or permanent, with its meaning, for an error answer to AT+CMGS / AT+CSMP."""
    code = exc.code
    if code is None:
        # a bare ERROR (no +CMEE) or a text answer: nothing says it cannot work later
        return SubmitError(None, f"the modem answered {exc.result}", transient=True)
    meaning = CMS_MEANINGS.get(code)
    if meaning is None:
        meaning = "manufacturer-specific error" if code >= 512 else "reserved error code"
        return SubmitError(code, meaning, transient=code >= 512)
    return SubmitError(code, meaning, transient=code in TRANSIENT_CMS)


@dataclass(frozen=True, slots=True)
class SendJob:
    """One part to write: the PDU (SMSC field ``00`` first) and, for text mode, its text."""

    request_id: str
    sequence: int
    total: int
    to: str
    pdu: bytes
    tpdu_length: int
    text: str | None = None  # set when text mode can send it (one GSM 7 bit part)
    text_parameters: tuple[int, int, int, int] = (17, 167, 0, 0)  # AT+CSMP fo, vp, pid, dcs


class SendJobs(Protocol):
    """Where a modem worker takes its send work from (modemd.send.service.SendService)."""

    def wanted(self, modem: str) -> bool:
        """Cheap: may there be a due job for ``modem``?"""

    def next_job(self, modem: str) -> SendJob | None: ...

    def begin(self, job: SendJob, modem: str) -> bool:
        """Durably mark the part ``sending`` (before anything is written); False when another
        worker took it first."""

    def sent(self, job: SendJob, modem: str, mr: int | None, *,
             smsc_id: str | None = None) -> None:
        """The part left: its TP-MR from a modem, or the SMSC's message id from a bind."""

    def failed(self, job: SendJob, modem: str, error: SubmitError) -> None: ...

    def unknown(self, job: SendJob, modem: str, reason: str) -> None: ...



Execute = Callable[..., Response]


def submit_part(execute: Execute, job: SendJob, *, mode: str,
                timeout: float = SUBMIT_TIMEOUT) -> int | None:
    """Write one part; its TP-MR (None if the modem did not say). Raises CommandFailed,
    CommandTimeout or TransportError as the session does."""
    if mode == "text":
        if job.text is None:
            raise SubmitError(None, "this message needs PDU mode (several parts, UCS-2 or "
                              "8-bit data) and the modem is in text mode", transient=False)
        fo, vp, pid, dcs = job.text_parameters
        execute(f"AT+CSMP={fo},{vp},{pid},{dcs}", timeout=PROMPT_TIMEOUT, answer=NOTHING)
        command = f'AT+CMGS="{job.to}"'
        payload = job.text.encode("latin-1", "replace")
    else:
        command = f"AT+CMGS={job.tpdu_length}"
        payload = job.pdu.hex().upper().encode("ascii")
    response = execute(command, timeout=timeout, answer=prefixed("+CMGS"), data=payload)
    return message_reference(response)


def message_reference(response: Response) -> int | None:
    value = response.first("+CMGS")
    if value is None:
        return None
    head = value.split(",", 1)[0].strip()
    return int(head) if head.isdigit() and int(head) <= 0xFF else None


def send_one(execute: Execute, jobs: SendJobs, *, modem: str, mode: str) -> bool:
    """Take one due part from ``jobs`` and write it; False when there was nothing to send.

    CommandTimeout and TransportError are re-raised (after marking the part ``unknown``) so
    the driver's recovery ladder runs as for any command.
    """
    job = jobs.next_job(modem)
    if job is None:
        return False
    if not jobs.begin(job, modem):
        return True  # another modem took it: look again
    try:
        mr = submit_part(execute, job, mode=mode)
    except SubmitError as exc:
        jobs.failed(job, modem, exc)
    except CommandFailed as exc:
        error = classify(exc)
        log.warning("modem %s: send %s part %d/%d: %s", modem, job.request_id, job.sequence,
                    job.total, error)
        jobs.failed(job, modem, error)
    except PromptTimeout as exc:
        # nothing was written: a transient failure; re-raised for the recovery ladder
        jobs.failed(job, modem, SubmitError(None, f"no prompt for the PDU ({exc})",
                                            transient=True))
        raise
    except (CommandTimeout, TransportError) as exc:
        jobs.unknown(job, modem, f"no answer to AT+CMGS ({exc}); not sent again")
        raise
    except BaseException as exc:
        jobs.unknown(job, modem, f"interrupted while sending ({exc!r}); not sent again")
        raise
    else:
        jobs.sent(job, modem, mr)
    return True


def send_hook(jobs: SendJobs) -> Callable[[ModemDriver], None]:
    """A modem worker hook: at most one part per turn of the worker, and only when no received
    message waits to be taken, so sending never delays receiving by more than one command."""

    def send(driver: ModemDriver) -> None:
        name = driver.config.name
        if driver.receive_work_waiting() or not jobs.wanted(name):
            return
        if send_one(driver.command, jobs, modem=name, mode=driver.state.mode or "pdu"):
            driver.wake()  # maybe more: look again after any receive work

    return send

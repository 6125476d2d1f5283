"""The send service: accepts requests, feeds modem workers, follows delivery reports.

One object per daemon (and one per CLI call, over the same store). Every state change is one
transaction that also writes the status document for the sinks, so what is published is what
the queue holds. The modem workers call :meth:`next_job` / :meth:`begin` / :meth:`sent` ...
(the :class:`~modemd.modem.sending.SendJobs` protocol), as do the senders of SMPP
transceiver binds (modemd.send.smpp); the pipeline calls :meth:`on_status_report`,
:meth:`on_smpp_receipt` and :meth:`in_reply_to` inside its own transactions.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from modemd.modem.sending import SendJob, SubmitError
from modemd.send.policy import SendPolicy
from modemd.send.request import RequestRefused, SendRequest, parse_request
from modemd.sms.dcs import build_dcs
from modemd.sms.model import Ports, SmsStatusReport
from modemd.sms.smpp import SmppReceipt
from modemd.sms.submit import choose_alphabet, encode_submit_parts, validity_octet
from modemd.store import Store
from modemd.store.outbox import Outbox
from modemd.store.sendq import (
    FINAL_STATES,
    NewPart,
    PartRow,
    SendQueue,
    SendRow,
    smsc_key,
)

if TYPE_CHECKING:
    from modemd.config import SendConfig

log = logging.getLogger(__name__)

#: seconds between looks at the store for requests queued by another process (the CLI)
POLL_INTERVAL = 0.5
#: TP-ST values that mean "the SC gave up because the validity period ran out"
_EXPIRED = frozenset({0x46})
#: an SMPP receipt's message_state (modemd.sms.smpp.MESSAGE_STATES) as a part state; the
#: states not here (enroute, accepted, unknown, skipped) are not final: the part stays sent
_RECEIPT_STATES = {"delivered": "delivered", "expired": "expired", "deleted": "failed",
                   "undeliverable": "failed", "rejected": "failed"}
_MAX_BACKOFF = 600.0
#: finished requests are kept this long (for `modemd sms list`, late reports, replies)
KEEP_FINISHED = 30 * 86400.0


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def status_document(row: SendRow, parts: Sequence[PartRow]) -> dict[str, Any]:
    """The ``<base>/<gw>/sms/status`` payload for a request in its current state."""
    doc: dict[str, Any] = {
        "id": row.id,
        "to": row.to,
        "state": row.state,
        "parts": row.parts,
        "mr": [p.mr for p in parts if p.mr is not None],
        "error": row.error,
        "at": _iso(row.updated_at),
    }
    message_ids = [p.smsc_id for p in parts if p.smsc_id is not None]
    if message_ids:  # sent over an SMPP transceiver: the SMSC's ids instead of TP-MRs
        doc["message_ids"] = message_ids
    if row.error_code is not None:
        doc["error_code"] = row.error_code
    if row.refused:
        doc["refused"] = True
    modems = sorted({p.modem for p in parts if p.modem})
    if modems:
        doc["modem"] = modems[0] if len(modems) == 1 else modems
    if row.attempts:
        doc["attempts"] = row.attempts
    return doc


def _digits(number: str) -> str:
    return number.lstrip("+").lstrip("0")


def same_number(a: str, b: str) -> bool:
    """The same subscriber, written internationally or nationally (``+4915...`` / ``015...``)."""
    da, db = _digits(a), _digits(b)
    if not da or not db:
        return a == b
    short, long_ = sorted((da, db), key=len)
    return long_.endswith(short) and len(short) >= min(len(long_), 6)


class SendService:
    def __init__(
        self,
        store: Store,
        config: SendConfig,
        *,
        modems: Sequence[str],
        status_sinks: Sequence[str] = (),
        response_sinks: Sequence[str] = (),
        default_country_code: str | None = None,
        on_published: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.queue: SendQueue = store.sendq
        self.config = config
        self.modems = frozenset(modems)
        self.status_sinks = tuple(status_sinks)
        self.response_sinks = tuple(response_sinks)
        self.default_country_code = default_country_code
        self.policy = SendPolicy(config, default_country_code=default_country_code)
        self.on_published = on_published
        self.clock = clock
        self._lock = threading.Lock()
        # per sender (a modem worker or a bind's sender): new work was queued / when to look
        # at the store next; one sender's empty look must not hide a request pinned to another
        self._hinted: set[str] = set(self.modems)
        self._next_poll: dict[str, float] = {}
        self._next_prune = 0.0
        self._reference = int(clock() * 1000) % (1 << config.concat_reference_bits)

    # --- accepting ---

    def accept(self, payload: bytes | str | dict[str, Any], *, origin: str = "mqtt",
               response_topic: str | None = None,
               correlation: bytes | None = None) -> dict[str, Any]:
        """Check a request and queue it (or record its refusal); its first status document.

        A request whose id is already known is not queued again (an MQTT redelivery); the
        current status of the first one is returned, and published again to the asker.
        """
        try:
            request = parse_request(payload, default_country_code=self.default_country_code)
        except RequestRefused as exc:
            return self._refuse(exc.request_id, exc.to or "", exc.reason, origin=origin,
                                response_topic=response_topic, correlation=correlation)
        with self.store.db.transaction(durable=True) as conn:
            existing = self.queue.get_in(conn, request.id)
            if existing is not None:
                log.info("send %s: request seen before (state %s); not queued again",
                         request.id, existing.state)
                doc = status_document(existing, self.queue.parts_in(conn, request.id))
                self._respond(conn, request.id, doc, response_topic, correlation)
                self.on_published()
                return doc
            accepted = self.queue.accepted_since(conn, self.clock() - 3600.0)
            reason = self.policy.refusal(request, accepted_last_hour=accepted,
                                         modems=self.modems)
            parts: list[NewPart] = []
            if reason is None:
                try:
                    parts = self._encode(request)
                except (ValueError, RequestRefused) as exc:
                    reason = exc.reason if isinstance(exc, RequestRefused) else str(exc)
            if reason is not None:
                doc = self._insert_refusal(conn, request.id, request.to, reason, origin,
                                           response_topic, correlation)
            else:
                self.queue.insert(conn, request_id=request.id, to=request.to,
                                  modem=request.modem or self._configured_modem(),
                                  request=request.stored(), state="queued", parts=parts,
                                  origin=origin, response_topic=response_topic,
                                  correlation=correlation, at=self.clock())
                doc = self._publish(conn, request.id)
        if reason is None:
            log.info("send %s: queued for %s, %d part(s)", request.id, request.to, len(parts))
            self._hint()
        else:
            log.warning("send %s: refused: %s", request.id, reason)
        self.on_published()
        return doc

    def _configured_modem(self) -> str | None:
        return None if self.config.modem == "auto" else self.config.modem

    def _refuse(self, request_id: str | None, to: str, reason: str, *, origin: str,
                response_topic: str | None, correlation: bytes | None) -> dict[str, Any]:
        log.warning("send %s: refused: %s", request_id or "(no id)", reason)
        with self.store.db.transaction() as conn:
            if request_id is not None and self.queue.get_in(conn, request_id) is None:
                doc = self._insert_refusal(conn, request_id, to, reason, origin,
                                           response_topic, correlation)
            else:  # no usable id (or a taken one): answer, but keep no row
                doc = {"id": request_id, "to": to, "state": "failed", "parts": 0, "mr": [],
                       "error": reason, "at": _iso(self.clock()), "refused": True}
                self.queue.publish(conn, self.status_sinks, request_id, doc)
                self._respond(conn, request_id, doc, response_topic, correlation)
        self.on_published()
        return doc

    def _insert_refusal(self, conn: sqlite3.Connection, request_id: str, to: str, reason: str,
                        origin: str, response_topic: str | None,
                        correlation: bytes | None) -> dict[str, Any]:
        self.queue.insert(conn, request_id=request_id, to=to, modem=None, request={},
                          state="failed", parts=[], error=reason, refused=True, origin=origin,
                          response_topic=response_topic, correlation=correlation,
                          at=self.clock())
        self.store.db.bump(conn, "send.refused")
        return self._publish(conn, request_id)

    def _encode(self, request: SendRequest) -> list[NewPart]:
        cfg = self.config
        with self._lock:
            self._reference = (self._reference + 1) % (1 << cfg.concat_reference_bits)
            reference = self._reference
        validity = timedelta(seconds=request.valid_for) if request.valid_for else None
        pdus = encode_submit_parts(
            recipient=request.to, text=request.text, data=request.data,
            ports=Ports(request.port, 0, 16) if request.port is not None else None,
            reference=reference, ref_bits=cfg.concat_reference_bits, flash=request.flash,
            validity=validity, status_report=cfg.status_reports)
        if len(pdus) > cfg.max_parts:
            raise RequestRefused(f"the message needs {len(pdus)} parts; [send] max_parts is "
                                 f"{cfg.max_parts}")
        text_ok = (len(pdus) == 1 and request.text is not None
                   and choose_alphabet(request.text, None) == "gsm7"
                   and request.text.isascii() and request.text.isprintable())
        return [NewPart(p.pdu, p.tpdu_length, request.text if text_ok else None) for p in pdus]

    # --- the modem workers' side (SendJobs) ---

    def _hint(self) -> None:
        with self._lock:
            self._hinted.update(self.modems)

    def wanted(self, modem: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if modem in self._hinted or now >= self._next_poll.get(modem, 0.0):
                self._next_poll[modem] = now + POLL_INTERVAL
                return True
        return False

    def next_look(self, modem: str) -> float:
        """When (monotonic) ``modem``'s sender should next ask :meth:`wanted`: at once when
        work was hinted, else at its next store poll (requests from the CLI, another
        process)."""
        with self._lock:
            if modem in self._hinted:
                return time.monotonic()
            return self._next_poll.get(modem, 0.0)

    def next_job(self, modem: str) -> SendJob | None:
        self._maybe_prune()
        while True:
            found = self.queue.due(modem=modem, at=self.clock())
            if found is None:
                with self._lock:
                    self._hinted.discard(modem)
                return None
            row, part = found
            if part.sequence > 1 or self.clock() - row.created_at <= self.config.queue_timeout:
                break
            self._expire_queued(row)
        return SendJob(request_id=row.id, sequence=part.sequence, total=row.parts, to=row.to,
                       pdu=part.pdu, tpdu_length=part.tpdu_length, text=part.text,
                       text_parameters=self._text_parameters(row))

    def _set(self, conn: sqlite3.Connection, request_id: str, **values: Any) -> None:
        self.queue.set_request(conn, request_id, updated_at=self.clock(), **values)

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_prune:
                return
            self._next_prune = now + 3600.0
        keep = max(KEEP_FINISHED, self.config.report_timeout, self.config.reply_window)
        with self.store.db.transaction() as conn:
            pruned = self.queue.prune(conn, older_than=self.clock() - keep)
        if pruned:
            log.info("send queue: forgot %d finished request(s) older than %.0f days", pruned,
                     keep / 86400)

    def _expire_queued(self, row: SendRow) -> None:
        """A request that waited longer than queue_timeout is not sent any more."""
        reason = (f"not sent within [send] queue_timeout ({self.config.queue_timeout:.0f} s); "
                  f"last error: {row.error or 'none'}")
        with self.store.db.transaction(durable=True) as conn:
            self._set(conn, row.id, state="failed", error=reason)
            self._publish(conn, row.id)
        log.warning("send %s: %s", row.id, reason)
        self.on_published()

    def _text_parameters(self, row: SendRow) -> tuple[int, int, int, int]:
        valid_for = row.request.get("valid_for")
        first = 0x11 | (0x20 if self.config.status_reports else 0)
        vp = validity_octet(timedelta(seconds=valid_for)) if valid_for else 167
        dcs = build_dcs("gsm7", 0 if row.request.get("flash") else None)
        return first, vp, 0, dcs

    def begin(self, job: SendJob, modem: str) -> bool:
        with self.store.db.transaction(durable=True) as conn:
            return self.queue.claim(conn, job.request_id, job.sequence, modem)

    def sent(self, job: SendJob, modem: str, mr: int | None, *,
             smsc_id: str | None = None) -> None:
        now = self.clock()
        with self.store.db.transaction(durable=True) as conn:
            self.queue.set_part(conn, job.request_id, job.sequence, state="sent", mr=mr,
                                smsc_id=smsc_id,
                                smsc_key=smsc_key(smsc_id) if smsc_id is not None else None,
                                sent_at=now)
            if job.sequence < job.total:
                self._hint()  # the next part is due at once
                return
            self._set(conn, job.request_id, state="sent", sent_at=now)
            self._publish(conn, job.request_id)
        log.info("send %s: sent (%d part(s)) on %s", job.request_id, job.total, modem)
        self.on_published()

    def failed(self, job: SendJob, modem: str, error: SubmitError) -> None:
        with self.store.db.transaction(durable=True) as conn:
            row = self.queue.get_in(conn, job.request_id)
            attempts = (row.attempts if row else 0) + 1
            self.queue.set_part(conn, job.request_id, job.sequence, state="pending")
            if error.transient and attempts < self.config.retry_attempts:
                delay = min(self.config.retry_backoff * 2 ** (attempts - 1), _MAX_BACKOFF)
                self._set(conn, job.request_id, attempts=attempts,
                                       next_attempt_at=self.clock() + delay,
                                       error=f"{error} (retrying in {delay:.0f} s)",
                                       error_code=error.code)
                log.warning("send %s: %s; retry %d in %.0f s", job.request_id, error,
                            attempts, delay)
            else:
                self.queue.set_part(conn, job.request_id, job.sequence, state="failed")
                gave_up = f" (gave up after {attempts} attempts)" if error.transient else ""
                self._set(conn, job.request_id, attempts=attempts, state="failed",
                                       error=f"{error}{gave_up}", error_code=error.code)
                log.warning("send %s: failed: %s%s", job.request_id, error, gave_up)
            self._publish(conn, job.request_id)
        self.on_published()

    def unknown(self, job: SendJob, modem: str, reason: str) -> None:
        with self.store.db.transaction(durable=True) as conn:
            self._mark_unknown(conn, job.request_id, reason)
        self.on_published()

    def _mark_unknown(self, conn: sqlite3.Connection, request_id: str, reason: str) -> None:
        conn.execute("UPDATE send_parts SET state = 'unknown' WHERE request_id = ? "
                     "AND state = 'sending'", (request_id,))
        self._set(conn, request_id, state="unknown", error=reason,
                               sent_at=self.clock())
        self._publish(conn, request_id)
        log.warning("send %s: unknown: %s", request_id, reason)

    def recover_interrupted(self) -> int:
        """At start-up: parts left ``sending`` by a crash make their request ``unknown``."""
        with self.store.db.transaction(durable=True) as conn:
            interrupted = self.queue.interrupted(conn)
            for request_id in interrupted:
                self._mark_unknown(conn, request_id, "the daemon stopped between writing a part "
                                   "(AT+CMGS or submit_sm) and its answer; not sent again")
        if interrupted:
            self.on_published()
        return len(interrupted)

    # --- the pipeline's side ---

    def on_status_report(self, conn: sqlite3.Connection, report: SmsStatusReport,
                         received_at: float) -> str | None:
        """Match a status report to the part it reports on (TP-MR and recipient); the id of
        its request, and a status document published if the request's state changed."""
        since = received_at - self.config.report_timeout
        for part in self.queue.sent_part_for(conn, report.message_reference, since):
            row = self.queue.get_in(conn, part.request_id)
            if row is None or not same_number(row.to, report.recipient.number):
                continue
            if report.status >= 0x20 and report.status < 0x40:
                state = "sent"  # the SC is still trying: not final yet
            elif report.status in _EXPIRED:
                state = "expired"
            else:
                state = "delivered" if report.status < 0x20 else "failed"
            self.queue.set_part(conn, part.request_id, part.sequence, state=state,
                                status=report.status, status_text=report.status_text)
            self._settle(conn, row, report.status_text)
            return row.id
        log.info("status report for TP-MR %d to %s matches no send", report.message_reference,
                 report.recipient.number)
        return None

    def on_smpp_receipt(self, conn: sqlite3.Connection, bind: str,
                        receipt: SmppReceipt) -> str | None:
        """Match an SMSC delivery receipt to the part sent over ``bind`` with its message id
        (and to its recipient); the id of its request, or None."""
        if receipt.message_id is None:
            log.info("smpp %s: a receipt without a message id matches no send", bind)
            return None
        since = self.clock() - self.config.report_timeout
        for part in self.queue.smpp_part_for(conn, bind, receipt.message_id, since):
            row = self.queue.get_in(conn, part.request_id)
            if row is None or not same_number(row.to, receipt.recipient.number):
                continue
            state = _RECEIPT_STATES.get(receipt.state)
            if state is None:
                return row.id  # still under way at the SMSC
            detail = receipt.stat or receipt.state
            if receipt.error:
                detail += f" (error {receipt.error})"
            self.queue.set_part(conn, part.request_id, part.sequence, state=state,
                                status_text=f"SMSC receipt: {detail}")
            self._settle(conn, row, f"SMSC receipt: {detail}")
            return row.id
        log.info("smpp %s: receipt for message id %s to %s matches no send", bind,
                 receipt.message_id, receipt.recipient.number)
        return None

    def _settle(self, conn: sqlite3.Connection, row: SendRow, error: str | None) -> None:
        if row.state in FINAL_STATES - {"unknown"}:
            return
        parts = self.queue.parts_in(conn, row.id)
        states = {p.state for p in parts}
        if "failed" in states:
            new = "failed"
        elif "expired" in states:
            new = "expired"
        elif states == {"delivered"}:
            new = "delivered"
        else:
            return
        self._set(conn, row.id, state=new, error=None if new == "delivered" else error)
        self._publish(conn, row.id)

    def in_reply_to(self, conn: sqlite3.Connection, sender: str,
                    received_at: float) -> str | None:
        """The id of the latest request sent to ``sender`` within reply_window, or None."""
        window = self.config.reply_window
        if window <= 0 or not sender:
            return None
        numbers = {sender}
        if not sender.startswith("+") and self.default_country_code and sender.startswith("0"):
            numbers.add("+" + self.default_country_code + sender[1:])
        return self.queue.last_sent_to(conn, sorted(numbers), received_at - window)

    # --- publishing ---

    def _publish(self, conn: sqlite3.Connection, request_id: str) -> dict[str, Any]:
        row = self.queue.get_in(conn, request_id)
        assert row is not None
        doc = status_document(row, self.queue.parts_in(conn, request_id))
        self.queue.publish(conn, self.status_sinks, request_id, doc)
        self._respond(conn, request_id, doc, row.response_topic, row.correlation)
        return doc

    def _respond(self, conn: sqlite3.Connection, request_id: str | None, doc: dict[str, Any],
                 response_topic: str | None, correlation: bytes | None) -> None:
        if not response_topic:
            return
        body = {"topic": response_topic, "status": doc,
                "correlation_b64": base64.b64encode(correlation).decode("ascii")
                if correlation is not None else None}
        for sink in self.response_sinks:
            Outbox.enqueue(conn, sink=sink, kind="send_response", msg_id=request_id, body=body)

    # --- the CLI's side ---

    def wait(self, request_id: str, *, timeout: float,
             until: frozenset[str] = FINAL_STATES) -> SendRow | None:
        """Poll the store until the request reaches one of ``until`` (or the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.queue.get(request_id)
            if row is not None and row.state in until:
                return row
            if time.monotonic() >= deadline:
                return row
            time.sleep(0.1)


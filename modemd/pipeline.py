"""From the journal to the outbox: decode, reassemble, check the sender, parse, route.

Runs on one thread. Every journal row ends ``done`` (delivered, or dead-lettered with its
reason) or ``held`` (a part waiting for its set); the outbox rows it produces are written in
the same transaction that marks the row, so a crash re-runs the row and never half-runs it.
"""

from __future__ import annotations

import base64
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from modemd.clock import Clock, SystemClock
from modemd.errors import DecodeError, PayloadError, StoreError
from modemd.multipart import LATE_PART_GRACE, Duplicate, Held, Ready, Reassembler
from modemd.payload.engine import PayloadEngine
from modemd.payload.model import InboundMessage
from modemd.payload.senders import AllowList, sender_type
from modemd.records import Undecodable, decode_record
from modemd.sms import Assembled, SmsDeliver, SmsStatusReport, assemble
from modemd.sms.smpp import Alphabets, SmppReceipt, deliver_fields
from modemd.store import Store, held
from modemd.store.journal import JournalRecord
from modemd.store.outbox import Outbox, OutboxRow

if TYPE_CHECKING:
    from modemd.verify import Verifier

log = logging.getLogger(__name__)

__all__ = ["LATE_PART_GRACE", "Pipeline", "Route", "sms_document"]

#: Journal rows taken per batch.
BATCH = 64
INLINE_BATCH = 4  # rows a receiving thread processes itself; a backlog is the pipeline's
#: Failed attempts at one journal row before it is quarantined (dead-lettered with the reason).
MAX_ATTEMPTS = 5
#: Seconds without progress (on a row, or round the loop) after which the pipeline is stalled.
STALL_AFTER = 60.0
HOUSEKEEPING_INTERVAL = 5.0  # s: expired multipart sets, outbox bounds

Discovery = Callable[[Any], list[tuple[str, dict[str, Any]]]]
#: told of each SMPP delivery receipt inside the transaction that publishes it (for [send])
ReceiptHook = Callable[[sqlite3.Connection, str, SmppReceipt], object]


class SendTracker(Protocol):
    """What sending (modemd.send.service) adds to received messages (issue 15)."""

    def on_status_report(self, conn: sqlite3.Connection, report: SmsStatusReport,
                         received_at: float) -> str | None: ...

    def in_reply_to(self, conn: sqlite3.Connection, sender: str,
                    received_at: float) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Route:
    """A sink's outbox queue and the kinds of rows it takes."""

    sink: str
    kinds: frozenset[str]


def _iso(ts: float | datetime | None) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return ts.isoformat()
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def sms_document(
    msg_id: str,
    *,
    modem: str,
    received_at: float,
    messages: Sequence[SmsDeliver],
    assembled: Assembled | None = None,
) -> dict[str, Any]:
    """The ``modemd/<gw>/sms`` payload of design.md for one (possibly joined) message."""
    head = messages[0]
    text = assembled.text if assembled else head.text
    data = assembled.data if assembled else head.data
    warnings = [w for m in messages for w in m.warnings]
    doc: dict[str, Any] = {
        "id": msg_id,
        "type": "deliver",
        "modem": modem,
        "sender": head.sender.number,
        "sender_type": sender_type(head.sender.number, head.sender.kind),
        "smsc": head.smsc.number if head.smsc else None,
        "sent_at": _iso(head.scts),
        "received_at": _iso(received_at),
        "encoding": head.encoding,
        "parts": assembled.total if assembled else 1,
        "complete": assembled.complete if assembled else True,
    }
    if data is not None:
        doc["data_b64"] = base64.b64encode(data).decode("ascii")
    else:
        doc["text"] = text
    if assembled and not assembled.complete:
        doc["missing"] = list(assembled.missing)
    if head.ports is not None:
        doc["port"] = head.ports.destination
    if head.message_class is not None:
        doc["class"] = head.message_class
    if warnings:
        doc["warnings"] = warnings
    return doc


class Pipeline:
    def __init__(
        self,
        store: Store,
        *,
        routes: Sequence[Route],
        engine: PayloadEngine | None = None,
        senders: AllowList | None = None,
        multipart_timeout: float = 86400.0,
        max_rows: int = 200_000,
        max_age: float = 30 * 86400.0,
        on_enqueued: Callable[[], None] = lambda: None,
        on_rows: Callable[[Sequence[OutboxRow]], None] | None = None,
        discovery: Discovery | None = None,
        verifier: Verifier | None = None,
        clock: Clock | None = None,
        stall_after: float = STALL_AFTER,
        send_tracker: SendTracker | None = None,
    ) -> None:
        self.store = store
        self.send_tracker = send_tracker
        self.routes = tuple(routes)
        self.engine = engine
        self.senders = senders or AllowList({})
        self.clock: Clock = clock or SystemClock()
        self.parts = Reassembler(store.journal, timeout=multipart_timeout, clock=self.clock)
        self.stall_after = stall_after
        self.max_rows = max_rows
        self.max_age = max_age
        self.on_enqueued = on_enqueued
        # told of the rows a processed record put in the outbox, after their commit, so a
        # sink can publish them without reading them back (else on_enqueued wakes them)
        self.on_rows = on_rows
        self._new_rows: list[OutboxRow] | None = None  # collecting: a list
        self._collaborated = False  # a collaborator may have enqueued rows of its own
        self.discovery = discovery
        self.verifier = verifier
        self.on_smpp_receipt: ReceiptHook | None = None  # the send queue's, when it sends
        self._wake = threading.Event()
        self._stop = threading.Event()
        # one batch at a time: the pipeline thread's, or one a source runs (process_now)
        self._turn_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._next_housekeeping = 0.0
        self._retry_at: dict[str, float] = {}  # raw_id -> monotonic time of its next attempt
        self._looped_at = self.clock.monotonic()  # or the end of the idle wait it is in
        self._working: tuple[str, float] | None = None  # (raw_id, since) while processing
        self.processed = 0
        self.quarantined = 0

    @property
    def multipart_timeout(self) -> float:
        return self.parts.timeout

    @multipart_timeout.setter
    def multipart_timeout(self, seconds: float) -> None:
        self.parts.timeout = seconds

    # --- thread ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def process_now(self) -> None:
        """Called by a modem worker right after its commit: process the new rows on that
        thread while the pipeline thread is idle, so the message is published without a
        thread hop; otherwise (busy, stopping, failing) leave them to the pipeline thread.
        Housekeeping stays on the pipeline thread."""
        if self._stop.is_set() or not self.alive or not self._turn_lock.acquire(blocking=False):
            self.wake()
            return
        try:
            more = self._process_batch(INLINE_BATCH)
        except Exception:  # the store failing: the pipeline thread retries and reports it
            log.debug("pipeline: processing on the receiving thread failed", exc_info=True)
            more = True
        finally:
            self._turn_lock.release()
        if more:
            self.wake()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def stalled(self, now: float) -> str | None:
        """Why the pipeline is not making progress (monotonic *now*), or None if it is."""
        if not self.alive:
            return "the pipeline thread is not running"
        working = self._working
        if working is not None and now - working[1] > self.stall_after:
            return (f"the pipeline has been on journal row {working[0]} for "
                    f"{now - working[1]:.0f} s")
        if now - self._looped_at > self.stall_after:
            return f"the pipeline has not come round its loop for {now - self._looped_at:.0f} s"
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._looped_at = self.clock.monotonic()
            self._wake.clear()  # before the work: a wake during it is not lost
            try:
                busy = self.run_once()
            except Exception:
                # The store failing (disk full, I/O error), not a row: rows stay 'new' and
                # the batch is tried again; one bad row never comes here (see process()).
                log.exception("pipeline: cannot work on the store; retrying in 1 s")
                self._stop.wait(1.0)
                continue
            if not busy:
                wait = self._idle_wait()
                self._looped_at = self.clock.monotonic() + wait  # idle is not stuck
                self._wake.wait(wait)

    def _idle_wait(self) -> float:
        """Seconds until something is due unasked: housekeeping (which releases expired
        multipart sets) or a failed row's retry. New rows wake the thread."""
        due = min(self._next_housekeeping, *self._retry_at.values(), math.inf)
        return min(max(due - self.clock.monotonic(), 0.0), HOUSEKEEPING_INTERVAL)

    def run_once(self) -> bool:
        """Process one batch of new journal rows (and housekeeping when due); True if there
        may be more."""
        with self._turn_lock:
            busy = self._process_batch()
            now = self.clock.monotonic()
            if now >= self._next_housekeeping:
                self._next_housekeeping = now + HOUSEKEEPING_INTERVAL
                self.expire_partial_sets()
                self.store.outbox.enforce_bounds(max_rows=self.max_rows, max_age=self.max_age)
        return busy

    def _process_batch(self, size: int = BATCH) -> bool:
        now = self.clock.monotonic()
        waiting = self._retry_at
        limit = size + len(waiting)
        records = self.store.journal.pending(limit=limit)
        if waiting and len(records) < limit:  # every pending row is here: forget the others
            pending = {r.raw_id for r in records}
            for raw_id in [k for k in waiting if k not in pending]:
                del waiting[raw_id]
        batch = [r for r in records if waiting.get(r.raw_id, 0.0) <= now][:size]
        for record in batch:
            self.process(record)
        return len(batch) == size

    # --- one record ----------------------------------------------------------------------------

    def process(self, record: JournalRecord) -> None:
        """Process one row in one transaction. A failure of any kind is the row's, not the
        pipeline's: the row is retried a few times (the count survives restarts), then
        quarantined, and the rows behind it go on. Only the store failing stops the batch."""
        self._working = (record.raw_id, self.clock.monotonic())
        new_rows: list[OutboxRow] = []
        self._collaborated = False
        try:
            self._new_rows = new_rows if self.on_rows is not None else None
            with self.store.db.transaction() as conn:
                self._process(conn, record)
        except StoreError:
            new_rows.clear()  # rolled back
            raise
        except Exception as exc:
            new_rows.clear()
            self._new_rows = None  # what quarantining enqueues is read back by the sinks
            log.exception("pipeline: journal row %s failed", record.raw_id)
            try:
                self._failed(record, f"{type(exc).__name__}: {exc}"[:300])
            except StoreError:
                raise
            except Exception:
                # even quarantining it failed: leave the row for a minute, go on with the rest
                log.exception("pipeline: cannot quarantine journal row %s", record.raw_id)
                self._retry_at[record.raw_id] = self.clock.monotonic() + 60.0
        else:
            self._retry_at.pop(record.raw_id, None)
        finally:
            self._working = None
            self._new_rows = None
        self.processed += 1
        if self.on_rows is not None and new_rows:
            self.on_rows(new_rows)
        if not new_rows or self.on_rows is None or self._collaborated:
            self.on_enqueued()

    def _failed(self, record: JournalRecord, reason: str) -> None:
        """Count a failed attempt; at MAX_ATTEMPTS dead-letter the row with the reason."""
        with self.store.db.transaction() as conn:
            attempts = held.add_attempt(conn, record.raw_id, reason)
            if attempts >= MAX_ATTEMPTS:
                self.store.db.bump(conn, "pipeline.quarantined")
                self._dead_letter(conn, record, f"processing failed {attempts} times: {reason}")
        if attempts >= MAX_ATTEMPTS:
            self.quarantined += 1
            self._retry_at.pop(record.raw_id, None)
        else:
            self._retry_at[record.raw_id] = self.clock.monotonic() + 2.0 ** (attempts - 1)

    def _process(self, conn: sqlite3.Connection, record: JournalRecord) -> None:
        journal = self.store.journal
        message = decode_record(record)
        if isinstance(message, Undecodable):
            self._dead_letter(conn, record, message.reason)
            return
        if isinstance(message, SmppReceipt):
            doc = self._smpp_receipt_document(record, message)
            if self.on_smpp_receipt is not None:
                self._collaborated = True
                send_id = self.on_smpp_receipt(conn, record.modem, message)
                if isinstance(send_id, str):
                    doc["send_id"] = send_id
            self._deliver_sms(conn, record.raw_id, record, doc, sender=doc["recipient"],
                              sent_at=doc["sent_at"])
            journal.mark(conn, record.raw_id, state="done", msg_id=record.raw_id)
            return
        if isinstance(message, SmsStatusReport):
            doc = self._status_report_document(record, message)
            if self.send_tracker is not None:
                self._collaborated = True
                send_id = self.send_tracker.on_status_report(conn, message, record.received_at)
                if send_id is not None:
                    doc["send_id"] = send_id
            self._deliver_sms(conn, record.raw_id, record, doc, sender=doc["recipient"],
                              sent_at=doc["sent_at"])
            journal.mark(conn, record.raw_id, state="done", msg_id=record.raw_id)
            return
        if not self.senders.allows(record.modem, message.sender.number,
                                   kind=message.sender.kind):
            self.store.db.bump(conn, "senders.rejected")
            self._dead_letter(conn, record, f"sender {message.sender.number} is not allowed "
                                            f"on modem {record.modem}")
            return
        concat = message.concat
        if concat is None or concat.total <= 1:
            self._deliver_message(conn, record.raw_id, [record], [message])
            return
        if concat.sequence < 1 or concat.sequence > concat.total:
            self._dead_letter(conn, record, f"part {concat.sequence} of {concat.total} is out of "
                                            "range")
            return
        offer = self.parts.offer(conn, record, message)
        if isinstance(offer, Duplicate):
            self.store.db.bump(conn, "parts.duplicates")
            journal.mark(conn, record.raw_id, state="done", error="duplicate part")
            return
        journal.mark(conn, record.raw_id, state="held")
        if isinstance(offer, Ready):
            self._release(conn, offer.group_key)
        else:
            assert isinstance(offer, Held)

    def _release(self, conn: sqlite3.Connection, key: str) -> None:
        release = self.parts.release(conn, key)
        records_by_id = self.store.journal.get(p.raw_id for p in release.parts)
        records = [records_by_id[p.raw_id] for p in release.parts if p.raw_id in records_by_id]
        messages = [m for m in map(decode_record, records) if isinstance(m, SmsDeliver)]
        self._deliver_message(conn, release.msg_id, records, messages,
                              late_for=release.late_for)

    def expire_partial_sets(self) -> int:
        """Deliver sets still incomplete after the timeout, marked incomplete. A set whose
        release fails is quarantined whole, and the other sets go on."""
        groups = self.parts.due()
        for key in groups:
            try:
                with self.store.db.transaction() as conn:
                    self._release(conn, key)
            except StoreError:
                raise
            except Exception as exc:
                log.exception("pipeline: releasing multipart set %s failed", key)
                self._quarantine_set(key, f"{type(exc).__name__}: {exc}"[:300])
            self.on_enqueued()
        return len(groups)

    def _quarantine_set(self, key: str, reason: str) -> None:
        with self.store.db.transaction() as conn:
            release = self.parts.release(conn, key)
            records = self.store.journal.get(p.raw_id for p in release.parts)
            self.store.db.bump(conn, "pipeline.quarantined")
            for n, record in enumerate(records.values()):
                if n == 0:
                    self._dead_letter(conn, record, f"releasing the set failed: {reason}",
                                      msg_id=release.msg_id)
                else:
                    self.store.journal.mark(conn, record.raw_id, state="failed",
                                            msg_id=release.msg_id, error=reason)
        self.quarantined += 1

    # --- documents and routing --------------------------------------------------------------

    def _deliver_message(
        self,
        conn: sqlite3.Connection,
        msg_id: str,
        records: Sequence[JournalRecord],
        messages: Sequence[SmsDeliver],
        *,
        late_for: str | None = None,
    ) -> None:
        journal = self.store.journal
        first_record = min(records, key=lambda r: r.received_at)
        if not messages:
            for rec in records:
                journal.mark(conn, rec.raw_id, state="done", msg_id=msg_id)
            self._dead_letter(conn, first_record, "no part of the set could be decoded",
                              msg_id=msg_id)
            return
        try:
            assembled = assemble(messages) if len(messages) > 1 or (
                messages and messages[0].concat is not None) else None
        except DecodeError as exc:
            for rec in records:
                journal.mark(conn, rec.raw_id, state="done", msg_id=msg_id)
            self._dead_letter(conn, first_record, f"cannot join parts: {exc}", msg_id=msg_id)
            return
        doc = sms_document(msg_id, modem=first_record.modem,
                           received_at=first_record.received_at, messages=messages,
                           assembled=assembled)
        if late_for is not None:
            doc["late_for"] = late_for
        doc.update(_source_fields(first_record))
        if self.send_tracker is not None:
            reply_to = self.send_tracker.in_reply_to(conn, doc["sender"],
                                                     first_record.received_at)
            if reply_to is not None:
                doc["in_reply_to"] = reply_to
        head = messages[0]
        ports = head.ports
        for rec in records:
            journal.mark(conn, rec.raw_id, state="done", msg_id=msg_id)
        if self.verifier is not None:
            self._collaborated = True
            screening = self.verifier.screen(
                conn, msg_id=msg_id, sender=head.sender.number, sender_kind=head.sender.kind,
                text=assembled.text if assembled else head.text, scts=head.scts,
                received_at=first_record.received_at, document=doc)
            if screening is not None:
                # It answered a challenge: the code goes nowhere in clear, not even the
                # journal, and a verification SMS is no device payload.
                for rec in records:
                    journal.redact(conn, rec.raw_id)
                self._deliver_sms(conn, msg_id, first_record, screening.document,
                                  sender=doc["sender"], sent_at=doc["sent_at"],
                                  publish=screening.publish)
                return
        self._deliver_sms(conn, msg_id, first_record, doc, sender=doc["sender"],
                          sent_at=doc["sent_at"])
        if self.engine is not None:
            self._parse(conn, msg_id, first_record, doc,
                        text=assembled.text if assembled else head.text,
                        data=assembled.data if assembled else head.data,
                        port=ports.destination if ports else None, sent_at=head.scts)

    def _deliver_sms(self, conn: sqlite3.Connection, msg_id: str, record: JournalRecord,
                     doc: dict[str, Any], *, sender: str | None, sent_at: str | None,
                     publish: bool = True) -> None:
        if not self.store.journal.record_message(
            conn, msg_id=msg_id, modem=record.modem, sender=sender, sent_at=sent_at,
            status="ok", reason=None, document=doc,
        ):
            return  # already delivered under this id (a re-read after a crash)
        if publish:
            self._enqueue(conn, "sms", msg_id, doc)

    def _parse(self, conn: sqlite3.Connection, msg_id: str, record: JournalRecord,
               doc: dict[str, Any], *, text: str | None, data: bytes | None,
               port: int | None, sent_at: datetime) -> None:
        assert self.engine is not None
        inbound = InboundMessage(msg_id=msg_id, modem=record.modem, sender=doc["sender"],
                                 sender_type=doc.get("sender_type"),
                                 text=text, data=data, port=port, sent_at=sent_at)
        try:
            reading = self.engine.parse(inbound)
        except PayloadError as exc:
            self.store.db.bump(conn, "payload.rejected")
            raw = text if text is not None else doc.get("data_b64", "")
            self._enqueue(conn, "deadletter", msg_id,
                          {"msg_id": msg_id, "reason": str(exc), "raw": raw,
                           "sender": doc["sender"], "modem": record.modem,
                           "rule": exc.rule})
            return
        body: dict[str, Any] = {
            "device": reading.device,
            "modem": record.modem,
            "measurement": reading.measurement,
            "fields": dict(reading.fields),
            "enum_codes": reading.enum_codes(),
            "tags": {},
            "units": dict(reading.units),
            "sent_at": _iso(reading.sent_at),
            "msg_id": msg_id,
            "rule": reading.rule,
            "expire_after": reading.expire_after,
            "state": reading.state_document(),
        }
        if self.discovery is not None:
            body["discovery"] = [[topic, payload] for topic, payload in self.discovery(reading)]
        self._enqueue(conn, "reading", msg_id, body)

    def _dead_letter(self, conn: sqlite3.Connection, record: JournalRecord, reason: str,
                     *, msg_id: str | None = None) -> None:
        msg_id = msg_id or record.raw_id
        raw = record.raw.hex().upper() if record.mode in ("pdu", "smpp") else record.raw.decode(
            "utf-8", "replace")
        log.warning("dead letter %s from modem %s: %s", msg_id, record.modem, reason)
        self.store.db.bump(conn, "deadletters")
        self.store.journal.mark(conn, record.raw_id, state="failed", msg_id=msg_id, error=reason)
        doc = {"msg_id": msg_id, "reason": reason, "raw": raw, "modem": record.modem}
        self.store.journal.record_message(conn, msg_id=msg_id, modem=record.modem, sender=None,
                                          sent_at=None, status="deadletter", reason=reason,
                                          document=doc)
        self._enqueue(conn, "deadletter", msg_id, doc)

    def _status_report_document(self, record: JournalRecord,
                                report: SmsStatusReport) -> dict[str, Any]:
        return {
            "id": record.raw_id,
            "type": "status_report",
            "modem": record.modem,
            "recipient": report.recipient.number,
            "message_reference": report.message_reference,
            "status": report.status,
            "status_text": report.status_text,
            "sent_at": _iso(report.scts),
            "discharged_at": _iso(report.discharge_time),
            "received_at": _iso(record.received_at),
            "source": record.modem,
        }

    def _smpp_receipt_document(self, record: JournalRecord,
                               receipt: SmppReceipt) -> dict[str, Any]:
        """A delivery receipt from an SMPP bind: /sms with type status_report."""
        return {
            "id": record.raw_id,
            "type": "status_report",
            "modem": None,
            "source": record.modem,
            "via": "smpp",
            "recipient": receipt.recipient.number,
            "message_id": receipt.message_id,
            "status": receipt.state,
            "status_text": receipt.stat or receipt.state,
            "error": receipt.error,
            "receipt_type": receipt.kind,
            "sent_at": _iso(receipt.submitted_at),
            "discharged_at": _iso(receipt.done_at),
            "received_at": _iso(record.received_at),
        }

    def _enqueue(self, conn: sqlite3.Connection, kind: str, msg_id: str | None,
                 body: dict[str, Any]) -> None:
        for route in self.routes:
            if kind in route.kinds:
                seq = Outbox.enqueue(conn, sink=route.sink, kind=kind, msg_id=msg_id, body=body)
                if self._new_rows is not None:
                    self._new_rows.append(OutboxRow(seq=seq, sink=route.sink, kind=kind,
                                                   msg_id=msg_id, body=dict(body),
                                                   created_at=time.time(), attempts=0))


def _source_fields(record: JournalRecord) -> dict[str, Any]:
    """Where a message came from, for /sms: the modem, or the SMPP bind and its address."""
    if record.mode != "smpp":
        return {"source": record.modem}
    fields = deliver_fields(record.raw, alphabets=Alphabets.from_stored(record.storage))
    return {"modem": None, "source": record.modem, "via": "smpp",
            "destination": fields.destination, "encoding": fields.encoding,
            "data_coding": fields.data_coding}

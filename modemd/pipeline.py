"""From the journal to the outbox: decode, reassemble, check the sender, parse, route.

Runs on one thread. Every journal row ends ``done`` (delivered, or dead-lettered with its
reason) or ``held`` (a part waiting for its set); the outbox rows it produces are written in
the same transaction that marks the row, so a crash re-runs the row and never half-runs it.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modemd.errors import DecodeError, PayloadError
from modemd.payload.engine import PayloadEngine
from modemd.payload.model import InboundMessage
from modemd.payload.senders import AllowList
from modemd.sms import (
    Assembled,
    SmsDeliver,
    SmsStatusReport,
    assemble,
    decode_pdu,
    decode_text_record,
)
from modemd.store import Store
from modemd.store.journal import JournalRecord, set_id_for
from modemd.store.outbox import Outbox

log = logging.getLogger(__name__)

#: Seconds a part of an already released (incomplete) set waits for siblings of its own.
LATE_PART_GRACE = 60.0

Discovery = Callable[[Any], list[tuple[str, dict[str, Any]]]]


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
        discovery: Discovery | None = None,
    ) -> None:
        self.store = store
        self.routes = tuple(routes)
        self.engine = engine
        self.senders = senders or AllowList({})
        self.multipart_timeout = multipart_timeout
        self.max_rows = max_rows
        self.max_age = max_age
        self.on_enqueued = on_enqueued
        self.discovery = discovery
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_housekeeping = 0.0
        self.processed = 0

    # --- thread ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the work: a wake during it is not lost
            try:
                busy = self.run_once()
            except Exception:
                # A bug in one place must not stop reception; the rows stay 'new' and are
                # retried, and the error is in the log for a person to look at.
                log.exception("pipeline: unexpected error; retrying in 1 s")
                self._stop.wait(1.0)
                continue
            if not busy:
                self._wake.wait(1.0)

    def run_once(self) -> bool:
        """Process one batch of new journal rows; True if there may be more."""
        records = self.store.journal.pending(limit=64)
        for record in records:
            self.process(record)
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + 5.0
            self.expire_partial_sets()
            self.store.outbox.enforce_bounds(max_rows=self.max_rows, max_age=self.max_age)
        return len(records) == 64

    # --- one record ----------------------------------------------------------------------------

    def process(self, record: JournalRecord) -> None:
        with self.store.db.transaction() as conn:
            self._process(conn, record)
        self.processed += 1
        self.on_enqueued()

    def _decode(self, record: JournalRecord) -> tuple[Any | None, str | None]:
        """(message, None) or (None, reason). Strict first; lenient recovery is labelled."""
        if record.mode == "invalid":
            return None, "the modem returned a PDU line that is not hexadecimal"
        try:
            if record.mode == "text":
                header, _, body = record.raw.decode("utf-8", "replace").partition("\n")
                return decode_text_record(header, body), None
            return decode_pdu(record.raw, with_smsc=True, strict=True), None
        except DecodeError as strict_error:
            if record.mode != "pdu":
                return None, f"undecodable text record: {strict_error}"
            try:
                return decode_pdu(record.raw, with_smsc=True, strict=False), None
            except DecodeError:
                return None, f"undecodable PDU: {strict_error}"

    def _process(self, conn: sqlite3.Connection, record: JournalRecord) -> None:
        journal = self.store.journal
        message, reason = self._decode(record)
        if message is None:
            self._dead_letter(conn, record, reason or "undecodable")
            return
        if isinstance(message, SmsStatusReport):
            doc = self._status_report_document(record, message)
            self._deliver_sms(conn, record.raw_id, record, doc, sender=doc["recipient"],
                              sent_at=doc["sent_at"])
            journal.mark(conn, record.raw_id, state="done", msg_id=record.raw_id)
            return
        if not isinstance(message, SmsDeliver):
            self._dead_letter(conn, record, f"not a received message ({type(message).__name__})")
            return
        if not self.senders.allows(record.modem, message.sender.number):
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
        key = "|".join((record.modem, message.sender.number, f"{concat.ref_bits}:"
                        f"{concat.reference}", str(concat.total)))
        first_seen = None
        now = time.time()
        if journal.released_as(conn, key, since=now - self.multipart_timeout):
            # A straggler of a set already published incomplete: its siblings, if any, come
            # with it, so it waits a short grace rather than another whole timeout.
            first_seen = now - self.multipart_timeout + min(LATE_PART_GRACE,
                                                             self.multipart_timeout)
        if not journal.add_part(conn, group_key=key, sequence=concat.sequence,
                                total=concat.total, raw_id=record.raw_id,
                                first_seen=first_seen):
            self.store.db.bump(conn, "parts.duplicates")
            journal.mark(conn, record.raw_id, state="done", error="duplicate part")
            return
        journal.mark(conn, record.raw_id, state="held")
        parts = journal.parts_of(conn, key)
        if len(parts) == concat.total:
            self._complete_set(conn, key)

    def _complete_set(self, conn: sqlite3.Connection, key: str) -> None:
        journal = self.store.journal
        parts = journal.parts_of(conn, key)
        records_by_id = journal.get(p.raw_id for p in parts)
        records = [records_by_id[p.raw_id] for p in parts if p.raw_id in records_by_id]
        messages = []
        for rec in records:
            decoded, _ = self._decode(rec)
            if isinstance(decoded, SmsDeliver):
                messages.append(decoded)
        msg_id = set_id_for([p.raw_id for p in parts])
        late_for = None
        if parts and len(parts) < parts[0].total:
            # a straggler set is released within two timeouts of the set it belongs to;
            # releases older than that are of no more use (pruned here, not on a timer)
            since = time.time() - 2 * self.multipart_timeout
            late_for = journal.released_as(conn, key, since=since)
            journal.forget_releases(conn, older_than=since)
            journal.record_release(conn, key, msg_id)
        journal.drop_parts(conn, key)
        self._deliver_message(conn, msg_id, records, messages, late_for=late_for)

    def expire_partial_sets(self) -> int:
        """Deliver sets still incomplete after the timeout, marked incomplete."""
        cutoff = time.time() - self.multipart_timeout
        groups = self.store.journal.expired_groups(older_than=cutoff)
        for key in groups:
            with self.store.db.transaction() as conn:
                self._complete_set(conn, key)
            self.on_enqueued()
        return len(groups)

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
        head = messages[0]
        ports = head.ports
        for rec in records:
            journal.mark(conn, rec.raw_id, state="done", msg_id=msg_id)
        self._deliver_sms(conn, msg_id, first_record, doc, sender=doc["sender"],
                          sent_at=doc["sent_at"])
        if self.engine is not None:
            self._parse(conn, msg_id, first_record, doc,
                        text=assembled.text if assembled else head.text,
                        data=assembled.data if assembled else head.data,
                        port=ports.destination if ports else None, sent_at=head.scts)

    def _deliver_sms(self, conn: sqlite3.Connection, msg_id: str, record: JournalRecord,
                     doc: dict[str, Any], *, sender: str | None, sent_at: str | None) -> None:
        if not self.store.journal.record_message(
            conn, msg_id=msg_id, modem=record.modem, sender=sender, sent_at=sent_at,
            status="ok", reason=None, document=doc,
        ):
            return  # already delivered under this id (a re-read after a crash)
        self._enqueue(conn, "sms", msg_id, doc)

    def _parse(self, conn: sqlite3.Connection, msg_id: str, record: JournalRecord,
               doc: dict[str, Any], *, text: str | None, data: bytes | None,
               port: int | None, sent_at: datetime) -> None:
        assert self.engine is not None
        inbound = InboundMessage(msg_id=msg_id, modem=record.modem, sender=doc["sender"],
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
        raw = record.raw.hex().upper() if record.mode == "pdu" else record.raw.decode(
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
        }

    def _enqueue(self, conn: sqlite3.Connection, kind: str, msg_id: str | None,
                 body: dict[str, Any]) -> None:
        for route in self.routes:
            if kind in route.kinds:
                Outbox.enqueue(conn, sink=route.sink, kind=kind, msg_id=msg_id, body=body)

"""The journal: every PDU the modem handed over, committed before the modem may forget it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from modemd.errors import DecodeError
from modemd.sms.smpp import record_identity as smpp_record_identity
from modemd.sms.text_mode import decode_text_record
from modemd.store.database import Database, now

RecordMode = Literal["pdu", "text", "invalid", "smpp"]


def tpdu_of(pdu: bytes) -> bytes:
    """The TPDU inside a PDU that starts with the SMSC field (length octet first).

    Hashing the TPDU, not the whole PDU, keeps the id stable when one modem reports the
    SMSC and another (or the same one in another mode) does not.
    """
    if not pdu:
        return pdu
    smsc_len = pdu[0]
    if 1 + smsc_len > len(pdu):
        return pdu
    return pdu[1 + smsc_len :]


def text_record_identity(raw: bytes) -> bytes:
    """What identifies a journalled text-mode record: sender, time stamp and body.

    The header differs between reads of the same message (``"REC UNREAD"`` and the +CSDH
    fields from +CMGR, ``"REC READ"`` and a shorter tail from +CMGL), so hashing it whole would
    give a message read twice (a crash before +CMGD) two ids. A record that does not decode
    falls back to its bytes.
    """
    header, _, body = raw.decode("utf-8", "replace").partition("\n")
    try:
        return decode_text_record(header, body).tpdu
    except DecodeError:
        return raw


def raw_id_for(mode: RecordMode, raw: bytes) -> str:
    """The stable id of one received record: sha256 of its TPDU (or of the record's identity)."""
    if mode == "pdu":
        material = tpdu_of(raw)
    elif mode == "text":
        material = text_record_identity(raw)
    elif mode == "smpp":
        material = smpp_record_identity(raw)
    else:
        material = raw
    return hashlib.sha256(mode.encode() + b"\0" + material).hexdigest()[:32]


def set_id_for(part_ids: Sequence[str]) -> str:
    """The stable id of a multipart message: sha256 over its parts' ids in sequence order."""
    return hashlib.sha256("\n".join(part_ids).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class JournalRecord:
    seq: int
    raw_id: str
    modem: str
    imei: str | None
    storage: str | None
    sim_index: int | None
    mode: RecordMode
    raw: bytes
    received_at: float
    state: str
    error: str | None
    msg_id: str | None


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One record to journal: what commit_raw() takes, as a value (for batches)."""

    modem: str  # the source: a modem name or an SMPP bind name
    mode: RecordMode
    raw: bytes
    imei: str | None = None
    storage: str | None = None
    sim_index: int | None = None
    received_at: float | None = None


@dataclass(frozen=True, slots=True)
class CommitResult:
    raw_id: str
    inserted: bool  # False: this exact record was already journalled (re-read after a crash)
    ticket: int = 0  # the store's commit count after it: what make_durable syncs through


@dataclass(frozen=True, slots=True)
class PartRow:
    group_key: str
    sequence: int
    total: int
    raw_id: str
    first_seen: float


_RECORD_COLUMNS = (
    "seq, raw_id, modem, imei, storage, sim_index, mode, raw, received_at, state, error, msg_id"
)


def _record(row: tuple[Any, ...]) -> JournalRecord:
    seq, raw_id, modem, imei, storage, sim_index, mode, raw, received_at, state, error, msg_id = row
    return JournalRecord(
        seq, raw_id, modem, imei, storage, sim_index, mode, bytes(raw), received_at, state,
        error, msg_id,
    )


class RawWriter(Protocol):
    """What a modem worker journals through: record (committed, visible to the pipeline),
    then make durable before the modem may forget the message."""

    def record_raw(self, *, modem: str, mode: RecordMode, raw: bytes, imei: str | None = None,
                   storage: str | None = None, sim_index: int | None = None,
                   received_at: float | None = None) -> CommitResult: ...

    def make_durable(self, result: CommitResult) -> None: ...


class Journal:
    """Raw records, multipart parts and delivered messages."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- ingest (the modem worker's thread) -------------------------------------------

    def commit_raw(
        self,
        *,
        modem: str,
        mode: RecordMode,
        raw: bytes,
        imei: str | None = None,
        storage: str | None = None,
        sim_index: int | None = None,
        received_at: float | None = None,
    ) -> CommitResult:
        """Commit one received record durably (fsync) and say whether it was new.

        Only after this returns may the modem be told to delete the message.
        """
        result = self.record_raw(modem=modem, mode=mode, raw=raw, imei=imei, storage=storage,
                                 sim_index=sim_index, received_at=received_at)
        self.make_durable(result)
        return result

    def record_raw(
        self,
        *,
        modem: str,
        mode: RecordMode,
        raw: bytes,
        imei: str | None = None,
        storage: str | None = None,
        sim_index: int | None = None,
        received_at: float | None = None,
    ) -> CommitResult:
        """Commit one received record, not yet durable: the pipeline may process it at once
        while :meth:`make_durable` waits for the disk. The modem must keep the message until
        make_durable has returned (a power loss may take this commit back)."""
        entry = RawEntry(modem=modem, mode=mode, raw=raw, imei=imei, storage=storage,
                         sim_index=sim_index, received_at=received_at)
        with self.db.transaction() as conn:
            raw_id, inserted = self._insert(conn, entry)
        return CommitResult(raw_id=raw_id, inserted=inserted, ticket=self.db.commits)

    def make_durable(self, result: CommitResult) -> None:
        """Return once *result*'s commit is on the disk (StoreVanished: it is not the store's)."""
        self.db.sync_through(result.ticket)

    def commit_many(self, entries: Sequence[RawEntry]) -> list[CommitResult]:
        """Commit several records in ONE durable transaction (one fsync), in order.

        The group committer's batch; a record already journalled (or twice in the batch) is
        not inserted again and says so.
        """
        with self.db.transaction(durable=True) as conn:
            inserts = [self._insert(conn, entry) for entry in entries]
        return [CommitResult(raw_id=raw_id, inserted=inserted) for raw_id, inserted in inserts]

    def _insert(self, conn: sqlite3.Connection, entry: RawEntry) -> tuple[str, bool]:
        """INSERT one record in the caller's transaction: its raw id, and whether it was new
        (an already journalled one is counted as a duplicate)."""
        raw_id = raw_id_for(entry.mode, entry.raw)
        cur = conn.execute(
            "INSERT OR IGNORE INTO journal"
            "(raw_id, modem, imei, storage, sim_index, mode, raw, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (raw_id, entry.modem, entry.imei, entry.storage, entry.sim_index, entry.mode,
             entry.raw, entry.received_at or now()),
        )
        inserted = cur.rowcount == 1
        if not inserted:
            self.db.bump(conn, "journal.duplicates")
        return raw_id, inserted

    # --- processing (the pipeline thread) ---------------------------------------------

    def pending(self, *, limit: int = 100, after_seq: int = 0) -> list[JournalRecord]:
        rows = self.db.connection().execute(
            f"SELECT {_RECORD_COLUMNS} FROM journal WHERE state = 'new' AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [_record(row) for row in rows]

    def get(self, raw_ids: Iterable[str]) -> dict[str, JournalRecord]:
        ids = list(raw_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.connection().execute(
            f"SELECT {_RECORD_COLUMNS} FROM journal WHERE raw_id IN ({marks})", ids
        )
        return {rec.raw_id: rec for rec in map(_record, rows)}

    @staticmethod
    def mark(
        conn: sqlite3.Connection,
        raw_id: str,
        *,
        state: Literal["done", "failed", "held"],
        msg_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome of processing one journal row (inside the caller's transaction).

        ``held``: a multipart part waiting for its set; it stays in ``parts`` until then.
        """
        conn.execute(
            "UPDATE journal SET state = ?, msg_id = ?, error = ? WHERE raw_id = ?",
            (state, msg_id, error, raw_id),
        )

    @staticmethod
    def redact(conn: sqlite3.Connection, raw_id: str) -> None:
        """Drop a processed row's raw bytes (its id stays): it held a secret, e.g. a code."""
        conn.execute("UPDATE journal SET raw = X'' WHERE raw_id = ? AND state != 'new'",
                     (raw_id,))

    @staticmethod
    def released_as(conn: sqlite3.Connection, group_key: str, *, since: float) -> str | None:
        """The id the set *group_key* went out under incomplete, if that was after *since*."""
        row = conn.execute(
            "SELECT msg_id FROM released_sets WHERE group_key = ? AND released_at >= ?",
            (group_key, since),
        ).fetchone()
        return str(row[0]) if row else None

    @staticmethod
    def forget_releases(conn: sqlite3.Connection, *, older_than: float) -> None:
        conn.execute("DELETE FROM released_sets WHERE released_at < ?", (older_than,))

    @staticmethod
    def parts_of(conn: sqlite3.Connection, group_key: str) -> list[PartRow]:
        rows = conn.execute(
            "SELECT group_key, sequence, total, raw_id, first_seen FROM parts"
            " WHERE group_key = ? ORDER BY sequence",
            (group_key,),
        )
        return [PartRow(*row) for row in rows]

    @staticmethod
    def drop_parts(conn: sqlite3.Connection, group_key: str) -> None:
        conn.execute("DELETE FROM parts WHERE group_key = ?", (group_key,))

    @staticmethod
    def record_message(
        conn: sqlite3.Connection,
        *,
        msg_id: str,
        modem: str,
        sender: str | None,
        sent_at: str | None,
        status: str,
        reason: str | None,
        document: dict[str, Any],
    ) -> bool:
        """Store one delivered (or dead-lettered) message; False if the id is known already."""
        cur = conn.execute(
            "INSERT OR IGNORE INTO messages(id, modem, sender, sent_at, received_at, status,"
            " reason, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (msg_id, modem, sender, sent_at, now(), status, reason, json.dumps(document)),
        )
        return cur.rowcount == 1

    # --- reading (CLI) ------------------------------------------------------------------

    def recent_messages(self, *, limit: int = 20) -> list[dict[str, Any]]:
        conn = self.db.connection()
        rows = conn.execute(
            "SELECT id, status, reason, document, received_at FROM messages"
            " ORDER BY received_at DESC, rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        result: list[dict[str, Any]] = []
        for msg_id, status, reason, document, received_at in rows:
            deliveries = dict(
                conn.execute(
                    "SELECT sink, state FROM deliveries WHERE msg_id = ?", (msg_id,)
                ).fetchall()
            )
            for sink, in conn.execute(
                "SELECT DISTINCT sink FROM outbox WHERE msg_id = ?", (msg_id,)
            ):
                deliveries.setdefault(sink, "pending")
            result.append(
                {
                    "id": msg_id,
                    "status": status,
                    "reason": reason,
                    "received_at": received_at,
                    "message": json.loads(document),
                    "deliveries": deliveries,
                }
            )
        return result

    def records(self, *, limit: int = 20) -> list[JournalRecord]:
        rows = self.db.connection().execute(
            f"SELECT {_RECORD_COLUMNS} FROM journal ORDER BY seq DESC LIMIT ?", (limit,)
        )
        return [_record(row) for row in rows]

    def count(self) -> int:
        row = self.db.connection().execute("SELECT COUNT(*) FROM journal").fetchone()
        return int(row[0])

"""The durable send queue: one row per request, one per SMS-SUBMIT part.

Request states (what users see): ``queued → sent → delivered | failed | expired``, and
``unknown`` when the daemon died (or the modem fell silent) between writing a PDU and its
answer. Part states add ``pending`` (not written yet) and ``sending`` (committed with a full
fsync *before* the PDU is written: found at start-up, it becomes ``unknown``, never resent).

A part sent over an SMPP transceiver has no TP-MR: it keeps the SMSC's ``message_id``
(``smsc_id``, as the SMSC wrote it) and a key its receipts are matched on (``smsc_key``, see
:func:`smsc_keys`), added by store version 6.

Status documents for the sinks are written to the outbox in the same transaction that changes
a request's state, so a state change is published once, through crashes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modemd.store.database import Database, now
from modemd.store.outbox import Outbox

SEND_SCHEMA = """
CREATE TABLE IF NOT EXISTS send_requests (
    id TEXT PRIMARY KEY,
    to_number TEXT NOT NULL,
    modem TEXT,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    parts INTEGER NOT NULL,
    error TEXT,
    error_code INTEGER,
    refused INTEGER NOT NULL DEFAULT 0,
    origin TEXT NOT NULL DEFAULT 'mqtt',
    response_topic TEXT,
    correlation BLOB,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    sent_at REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS send_requests_due ON send_requests(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS send_requests_created ON send_requests(created_at);
CREATE INDEX IF NOT EXISTS send_requests_to ON send_requests(to_number, sent_at);
CREATE TABLE IF NOT EXISTS send_parts (
    request_id TEXT NOT NULL REFERENCES send_requests(id) ON DELETE CASCADE,
    sequence INTEGER NOT NULL,
    pdu BLOB NOT NULL,
    tpdu_length INTEGER NOT NULL,
    text TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    modem TEXT,
    mr INTEGER,
    sent_at REAL,
    status INTEGER,
    status_text TEXT,
    PRIMARY KEY (request_id, sequence)
);
CREATE INDEX IF NOT EXISTS send_parts_mr ON send_parts(mr, state);
"""

def migrate_smsc_ids(conn: sqlite3.Connection) -> None:
    """Store version 6: the SMPP message ids of parts sent over a transceiver (SEND_SCHEMA,
    version 5, is a released step and stays as it was). Idempotent, as every step is."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(send_parts)")}
    for column in ("smsc_id", "smsc_key"):
        if column not in have:
            conn.execute(f"ALTER TABLE send_parts ADD COLUMN {column} TEXT")
    conn.execute("CREATE INDEX IF NOT EXISTS send_parts_smsc_key ON send_parts(smsc_key, state)")

FINAL_STATES = frozenset({"delivered", "failed", "expired", "unknown"})


def migrate_send(conn: sqlite3.Connection) -> None:
    """Create the send tables (idempotent), inside the caller's transaction (a migration step)."""
    from modemd.store.migrations import run_script

    run_script(conn, SEND_SCHEMA)


@dataclass(frozen=True, slots=True)
class SendRow:
    id: str
    to: str
    modem: str | None
    request: dict[str, Any]
    state: str
    parts: int
    error: str | None
    error_code: int | None
    refused: bool
    origin: str
    response_topic: str | None
    correlation: bytes | None
    attempts: int
    created_at: float
    sent_at: float | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class PartRow:
    request_id: str
    sequence: int
    pdu: bytes
    tpdu_length: int
    text: str | None
    state: str
    modem: str | None
    mr: int | None
    sent_at: float | None
    status: int | None
    status_text: str | None
    smsc_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewPart:
    pdu: bytes
    tpdu_length: int
    text: str | None = None


_REQUEST_COLUMNS = (
    "id, to_number, modem, request, state, parts, error, error_code, refused, origin, "
    "response_topic, correlation, attempts, created_at, sent_at, updated_at"
)
_PART_COLUMNS = (
    "request_id, sequence, pdu, tpdu_length, text, state, modem, mr, sent_at, status, status_text, "
    "smsc_id"
)


def smsc_key(message_id: str) -> str:
    """The form of an SMSC message id that receipts are matched on (case and leading zeros
    do not count)."""
    return message_id.strip().lower().lstrip("0") or "0"


def smsc_keys(message_id: str) -> set[str]:
    """Every key a receipt's ``message_id`` may match. Many SMSCs answer submit_sm with the
    id in hex and write it in decimal in the receipt (or the other way round): both count."""
    keys = {smsc_key(message_id)}
    text = message_id.strip()
    if text.isdigit() and len(text) <= 20:
        keys.add(smsc_key(format(int(text), "x")))
    if text and len(text) <= 16 and all(c in "0123456789abcdefABCDEF" for c in text):
        keys.add(smsc_key(str(int(text, 16))))
    return keys


def _request_row(row: Sequence[Any]) -> SendRow:
    return SendRow(
        id=row[0], to=row[1], modem=row[2], request=json.loads(row[3]), state=row[4],
        parts=int(row[5]), error=row[6], error_code=row[7], refused=bool(row[8]), origin=row[9],
        response_topic=row[10], correlation=row[11], attempts=int(row[12]),
        created_at=float(row[13]), sent_at=row[14], updated_at=float(row[15]),
    )


def _part_row(row: Sequence[Any]) -> PartRow:
    return PartRow(
        request_id=row[0], sequence=int(row[1]), pdu=bytes(row[2]), tpdu_length=int(row[3]),
        text=row[4], state=row[5], modem=row[6], mr=row[7], sent_at=row[8], status=row[9],
        status_text=row[10], smsc_id=row[11],
    )


class SendQueue:
    """SQL for the send tables; the rules of the state machine live in modemd.send."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- reading ------------------------------------------------------------------------------

    @staticmethod
    def get_in(conn: sqlite3.Connection, request_id: str) -> SendRow | None:
        row = conn.execute(f"SELECT {_REQUEST_COLUMNS} FROM send_requests WHERE id = ?",
                           (request_id,)).fetchone()
        return _request_row(row) if row else None

    def get(self, request_id: str) -> SendRow | None:
        return self.get_in(self.db.connection(), request_id)

    @staticmethod
    def parts_in(conn: sqlite3.Connection, request_id: str) -> list[PartRow]:
        rows = conn.execute(f"SELECT {_PART_COLUMNS} FROM send_parts WHERE request_id = ? "
                            "ORDER BY sequence", (request_id,))
        return [_part_row(r) for r in rows]

    def parts(self, request_id: str) -> list[PartRow]:
        return self.parts_in(self.db.connection(), request_id)

    def recent(self, *, limit: int = 20) -> list[SendRow]:
        rows = self.db.connection().execute(
            f"SELECT {_REQUEST_COLUMNS} FROM send_requests ORDER BY created_at DESC LIMIT ?",
            (limit,))
        return [_request_row(r) for r in rows]

    @staticmethod
    def accepted_since(conn: sqlite3.Connection, since: float) -> int:
        """Requests accepted (not refused) since ``since``: what max_per_hour counts."""
        row = conn.execute("SELECT COUNT(*) FROM send_requests WHERE created_at >= ? "
                           "AND refused = 0", (since,)).fetchone()
        return int(row[0])

    def due(self, *, modem: str, at: float) -> tuple[SendRow, PartRow] | None:
        """The oldest queued request due now for ``modem`` and its next unsent part."""
        conn = self.db.connection()
        row = conn.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM send_requests r WHERE state = 'queued' "
            "AND next_attempt_at <= ? AND (modem IS NULL OR modem = ?) AND NOT EXISTS "
            "(SELECT 1 FROM send_parts p WHERE p.request_id = r.id AND p.state = 'sending') "
            "ORDER BY created_at, id LIMIT 1", (at, modem)).fetchone()
        if row is None:
            return None
        request = _request_row(row)
        part = conn.execute(
            f"SELECT {_PART_COLUMNS} FROM send_parts WHERE request_id = ? AND state = 'pending' "
            "ORDER BY sequence LIMIT 1", (request.id,)).fetchone()
        if part is None:
            return None
        return request, _part_row(part)

    @staticmethod
    def sent_part_for(conn: sqlite3.Connection, mr: int, since: float) -> list[PartRow]:
        """Parts sent with TP-MR ``mr`` since ``since``, newest first."""
        rows = conn.execute(
            f"SELECT {_PART_COLUMNS} FROM send_parts WHERE mr = ? AND sent_at >= ? "
            "AND state = 'sent' ORDER BY sent_at DESC", (mr, since))
        return [_part_row(r) for r in rows]

    @staticmethod
    def smpp_part_for(conn: sqlite3.Connection, bind: str, message_id: str,
                      since: float) -> list[PartRow]:
        """Parts sent over ``bind`` since ``since`` whose SMSC id matches ``message_id``
        (any of :func:`smsc_keys`), newest first."""
        keys = sorted(smsc_keys(message_id))
        marks = ",".join("?" * len(keys))
        rows = conn.execute(
            f"SELECT {_PART_COLUMNS} FROM send_parts WHERE smsc_key IN ({marks}) "
            "AND modem = ? AND sent_at >= ? AND state = 'sent' ORDER BY sent_at DESC",
            (*keys, bind, since))
        return [_part_row(r) for r in rows]

    @staticmethod
    def last_sent_to(conn: sqlite3.Connection, numbers: Sequence[str],
                     since: float) -> str | None:
        marks = ",".join("?" * len(numbers))
        row = conn.execute(
            f"SELECT id FROM send_requests WHERE to_number IN ({marks}) AND sent_at >= ? "
            "ORDER BY sent_at DESC LIMIT 1", (*numbers, since)).fetchone()
        return str(row[0]) if row else None

    # --- writing (inside the caller's transaction) ------------------------------------------------

    @staticmethod
    def insert(conn: sqlite3.Connection, *, request_id: str, to: str, modem: str | None,
               request: dict[str, Any], state: str, parts: Sequence[NewPart],
               error: str | None = None, refused: bool = False, origin: str = "mqtt",
               response_topic: str | None = None, correlation: bytes | None = None,
               at: float | None = None) -> bool:
        """Add a request and its parts; False when the id exists already (nothing written)."""
        at = now() if at is None else at
        cursor = conn.execute(
            "INSERT OR IGNORE INTO send_requests(id, to_number, modem, request, state, parts, "
            "error, refused, origin, response_topic, correlation, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (request_id, to, modem, json.dumps(request, ensure_ascii=False), state,
             len(parts), error, int(refused), origin, response_topic, correlation, at, at))
        if cursor.rowcount == 0:
            return False
        conn.executemany(
            "INSERT INTO send_parts(request_id, sequence, pdu, tpdu_length, text) "
            "VALUES (?, ?, ?, ?, ?)",
            [(request_id, i, p.pdu, p.tpdu_length, p.text) for i, p in enumerate(parts, 1)])
        return True

    @staticmethod
    def set_request(conn: sqlite3.Connection, request_id: str, **values: Any) -> None:
        values.setdefault("updated_at", now())
        columns = ", ".join(f"{name} = ?" for name in values)
        conn.execute(f"UPDATE send_requests SET {columns} WHERE id = ?",
                     (*values.values(), request_id))

    @staticmethod
    def set_part(conn: sqlite3.Connection, request_id: str, sequence: int, **values: Any) -> None:
        columns = ", ".join(f"{name} = ?" for name in values)
        conn.execute(f"UPDATE send_parts SET {columns} WHERE request_id = ? AND sequence = ?",
                     (*values.values(), request_id, sequence))

    @staticmethod
    def claim(conn: sqlite3.Connection, request_id: str, sequence: int, modem: str) -> bool:
        """Mark a pending part ``sending`` for ``modem``; False if another worker has it.

        The request is pinned to that modem: every part of a set leaves from one number.
        """
        cursor = conn.execute(
            "UPDATE send_parts SET state = 'sending', modem = ? WHERE request_id = ? "
            "AND sequence = ? AND state = 'pending'", (modem, request_id, sequence))
        if cursor.rowcount != 1:
            return False
        conn.execute("UPDATE send_requests SET modem = ? WHERE id = ? AND modem IS NULL",
                     (modem, request_id))
        return True

    @staticmethod
    def prune(conn: sqlite3.Connection, *, older_than: float) -> int:
        """Forget finished requests (and their parts) last changed before ``older_than``."""
        marks = ",".join("?" * len(FINAL_STATES))
        ids = [r[0] for r in conn.execute(
            f"SELECT id FROM send_requests WHERE state IN ({marks}) AND updated_at < ?",
            (*sorted(FINAL_STATES), older_than))]
        conn.executemany("DELETE FROM send_parts WHERE request_id = ?", [(i,) for i in ids])
        conn.executemany("DELETE FROM send_requests WHERE id = ?", [(i,) for i in ids])
        return len(ids)

    @staticmethod
    def interrupted(conn: sqlite3.Connection) -> list[str]:
        """Requests with a part that was being written when the daemon stopped."""
        rows = conn.execute("SELECT DISTINCT request_id FROM send_parts WHERE state = 'sending'")
        return [str(r[0]) for r in rows]

    @staticmethod
    def publish(conn: sqlite3.Connection, sinks: Sequence[str], request_id: str | None,
                body: dict[str, Any]) -> None:
        for sink in sinks:
            Outbox.enqueue(conn, sink=sink, kind="send_status", msg_id=request_id, body=body)

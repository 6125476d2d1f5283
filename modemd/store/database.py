"""The SQLite file that holds the journal, multipart parts, messages and the outbox.

WAL mode so readers (CLI, sinks) never block the writer. One connection per thread. The
ingest connection runs with ``synchronous=FULL``: its commit is the durability promise that
allows deleting the message from the modem. Everything downstream of the journal (messages,
outbox, acks) can be rebuilt from the journal, so those connections use ``NORMAL``: a power
loss may roll back their last transactions, which re-runs processing and at worst repeats a
delivery that carries the same id.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modemd.errors import StoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    raw_id TEXT NOT NULL UNIQUE,
    modem TEXT NOT NULL,
    imei TEXT,
    storage TEXT,
    sim_index INTEGER,
    mode TEXT NOT NULL,
    raw BLOB NOT NULL,
    received_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'new',
    error TEXT,
    msg_id TEXT
);
CREATE INDEX IF NOT EXISTS journal_state ON journal(state, seq);
CREATE TABLE IF NOT EXISTS parts (
    group_key TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    total INTEGER NOT NULL,
    raw_id TEXT NOT NULL,
    first_seen REAL NOT NULL,
    PRIMARY KEY (group_key, sequence)
);
CREATE INDEX IF NOT EXISTS parts_age ON parts(first_seen);
-- sets released incomplete: a part of one that turns up later is released quickly, linked
CREATE TABLE IF NOT EXISTS released_sets (
    group_key TEXT PRIMARY KEY,
    msg_id TEXT NOT NULL,
    released_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    modem TEXT NOT NULL,
    sender TEXT,
    sent_at TEXT,
    received_at REAL NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_received ON messages(received_at);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    kind TEXT NOT NULL,
    msg_id TEXT,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(sink, state, seq);
CREATE TABLE IF NOT EXISTS deliveries (
    msg_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    state TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (msg_id, sink)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS announced_topics (
    owner TEXT NOT NULL,
    topic TEXT NOT NULL,
    PRIMARY KEY (owner, topic)
);
"""


class Database:
    """Opens the store file, creates the schema, and hands each thread its own connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._open(durable=True)
            conn.executescript(SCHEMA)
            from modemd.store.sendq import migrate_send  # issue 15 (late: sendq uses us)

            migrate_send(conn)
            conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise StoreError(f"{path}: integrity check failed: {check}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc

    def _open(self, *, durable: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._connections.append(conn)
        return conn

    def connection(self, *, durable: bool = False) -> sqlite3.Connection:
        """This thread's connection; ``durable`` ones fsync every commit."""
        attr = "durable" if durable else "normal"
        conn: sqlite3.Connection | None = getattr(self._local, attr, None)
        if conn is None:
            try:
                conn = self._open(durable=durable)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: {exc}") from exc
            setattr(self._local, attr, conn)
        return conn

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT on this thread's connection; rolls back on error.

        Writers of this process take turns on a lock rather than in SQLite's busy handler,
        which sleeps 1, 2, 5, 10 … ms between tries and made the latency tail with several
        modems. Any SQLite failure (disk full, I/O error) comes out as StoreError.
        """
        conn = self.connection(durable=durable)
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: {exc}") from exc
            try:
                yield conn
            except sqlite3.DatabaseError as exc:
                _rollback(conn)
                raise StoreError(f"{self.path}: {exc}") from exc
            except BaseException:
                _rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                _rollback(conn)
                raise StoreError(f"{self.path}: commit failed: {exc}") from exc

    def bump(self, conn: sqlite3.Connection, name: str, by: int = 1) -> None:
        """Add to a named counter inside the caller's transaction."""
        conn.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def counters(self) -> dict[str, int]:
        rows = self.connection().execute("SELECT name, value FROM counters ORDER BY name")
        return {name: int(value) for name, value in rows}

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: SQLite has already rolled back after some
    failures (SQLITE_FULL on COMMIT), and a second ROLLBACK would raise over the real error."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            log.debug("rollback failed: %s", exc)


def now() -> float:
    return time.time()

"""The store's schema history: one step per version, applied in order when the store opens.

``PRAGMA user_version`` holds the version of a store file. Step N takes a file from version
N-1 to N; a new file runs every step from 0, so a new store and an upgraded one are built by
the same code. All pending steps run in ONE transaction: a crash or an error part-way leaves
the file at its old version, untouched. A file newer than this modemd knows is refused before
anything is written to it (:class:`StoreVersionError`).

To change the schema, append a step to :data:`MIGRATIONS`, never edit a released one::

    Migration(3, "journal rows count their processing attempts",
              "ALTER TABLE journal ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;")

A step is an SQL script (statements separated by ``;``, triggers allowed; no BEGIN/COMMIT)
or a function taking the connection. Version 1 is the schema modemd used before versions
were kept in ``user_version`` (it wrote ``meta.schema_version = '1'``); such a file is read
as version 1.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modemd.errors import StoreError

__all__ = [
    "MIGRATIONS",
    "Migration",
    "StoreVersionError",
    "latest_version",
    "migrate",
    "stored_version",
]


class StoreVersionError(StoreError):
    """The store file was written by a newer modemd (or is a version this one cannot read)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int  # the version this step produces
    description: str
    apply: str | Callable[[sqlite3.Connection], None]


# Version 1: the schema of modemd before this ladder (commit a4613ad). Frozen: do not edit.
V1_SCHEMA = """
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

# Version 2: what the CLI and housekeeping look up without scanning, and the store clock.
V2_SCHEMA = """
-- `modemd messages` asks the outbox per message id; retention asks "anything left for it?"
CREATE INDEX outbox_msg ON outbox(msg_id) WHERE msg_id IS NOT NULL;
-- the head of each sink's queue (oldest row, bounds) whatever the rows' states
CREATE INDEX outbox_sink_seq ON outbox(sink, seq);
-- rows per sink and state, kept by triggers so counting never scans the queue
CREATE TABLE outbox_counts (
    sink TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (sink, state)
);
INSERT INTO outbox_counts(sink, state, n) SELECT sink, state, COUNT(*) FROM outbox
    GROUP BY sink, state;
CREATE TRIGGER outbox_counted_in AFTER INSERT ON outbox BEGIN
    INSERT INTO outbox_counts(sink, state, n) VALUES (NEW.sink, NEW.state, 1)
        ON CONFLICT(sink, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER outbox_counted_out AFTER DELETE ON outbox BEGIN
    UPDATE outbox_counts SET n = n - 1 WHERE sink = OLD.sink AND state = OLD.state;
END;
CREATE TRIGGER outbox_counted_moved AFTER UPDATE OF sink, state ON outbox
    WHEN OLD.sink IS NOT NEW.sink OR OLD.state IS NOT NEW.state BEGIN
    UPDATE outbox_counts SET n = n - 1 WHERE sink = OLD.sink AND state = OLD.state;
    INSERT INTO outbox_counts(sink, state, n) VALUES (NEW.sink, NEW.state, 1)
        ON CONFLICT(sink, state) DO UPDATE SET n = n + 1;
END;
-- The store clock (seconds the store has been open, summed over runs: wall-clock steps do
-- not move it) and marks of how far each table's sequence had reached at a store-clock time.
-- Ages (outbox bound, retention) are read from the marks, never from wall-clock stamps.
CREATE TABLE clock_marks (
    clock REAL PRIMARY KEY,
    wall REAL NOT NULL,
    journal_seq INTEGER NOT NULL,
    outbox_seq INTEGER NOT NULL,
    message_rowid INTEGER NOT NULL
);
INSERT OR REPLACE INTO meta(key, value) VALUES ('clock', '0');
"""


def _v2(conn: sqlite3.Connection) -> None:
    run_script(conn, V2_SCHEMA)
    # Rows already in an upgraded file are dated "at clock 0": their age counts from now,
    # which can only keep them longer than their true age, never drop them early.
    conn.execute(
        "INSERT INTO clock_marks(clock, wall, journal_seq, outbox_seq, message_rowid)"
        " VALUES (0, ?, (SELECT COALESCE(MAX(seq), 0) FROM journal),"
        " (SELECT COALESCE(MAX(seq), 0) FROM outbox),"
        " (SELECT COALESCE(MAX(rowid), 0) FROM messages))",
        (time.time(),),
    )


def _pipeline_columns(conn: sqlite3.Connection) -> None:
    from modemd.store.held import migrate_pipeline

    migrate_pipeline(conn)


def _verify_tables(conn: sqlite3.Connection) -> None:
    from modemd.verify.store import migrate_verify

    migrate_verify(conn)


def _send_tables(conn: sqlite3.Connection) -> None:
    from modemd.store.sendq import migrate_send

    migrate_send(conn)


def _smsc_ids(conn: sqlite3.Connection) -> None:
    from modemd.store.sendq import migrate_smsc_ids

    migrate_smsc_ids(conn)


MIGRATIONS: list[Migration] = [
    Migration(1, "the original schema (meta.schema_version = 1)", V1_SCHEMA),
    Migration(2, "indexes for the CLI, outbox counts, store clock marks", _v2),
    Migration(3, "journal attempts; parts measured on boot and monotonic clocks",
              _pipeline_columns),
    Migration(4, "verification challenges", _verify_tables),
    Migration(5, "the send queue: requests and their parts", _send_tables),
    Migration(6, "SMPP message ids of parts sent over a transceiver", _smsc_ids),
]


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run an SQL script statement by statement inside the caller's transaction.

    (``executescript`` may COMMIT first; a migration must stay one transaction.)
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip().strip(";").strip():
                conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {statement.strip()[:60]}")


def stored_version(conn: sqlite3.Connection) -> int:
    """The schema version of the open file: ``user_version``, or 1 for a file of the schema
    before versions were kept there, or 0 for an empty file."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version:
        return int(version)
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if has_meta is None:
        has_tables = conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
        if has_tables is not None:
            raise StoreVersionError("the file holds tables but is not a modemd store")
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return int(row[0]) if row else 1
    except ValueError:
        raise StoreVersionError(f"unreadable meta.schema_version {row[0]!r}") from None


def refuse_newer(version: int, *, path: object, migrations: Sequence[Migration] = MIGRATIONS,
                 ) -> None:
    known = latest_version(migrations)
    if version > known:
        from modemd import __version__

        raise StoreVersionError(
            f"{path}: the store has schema version {version}, written by a newer modemd; "
            f"this modemd ({__version__}) knows versions up to {known}. Upgrade modemd, or "
            "move the file aside to start a new store (the file was not changed)"
        )


def _check_ladder(migrations: Sequence[Migration]) -> None:
    for expected, step in enumerate(migrations, start=1):
        if step.version != expected:
            raise RuntimeError(
                f"migration ladder broken: step {step.description!r} has version "
                f"{step.version}, expected {expected}"
            )


def migrate(conn: sqlite3.Connection, *, path: object,
            migrations: Sequence[Migration] = MIGRATIONS) -> tuple[int, int]:
    """Bring the open file to the latest version in one transaction; (from, to) versions.

    The caller's connection must be in autocommit mode (``isolation_level=None``).
    """
    _check_ladder(migrations)
    target = latest_version(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = stored_version(conn)  # again, under the lock: another process may have won
        refuse_newer(current, path=path, migrations=migrations)
        for step in migrations[current:]:
            if isinstance(step.apply, str):
                run_script(conn, step.apply)
            else:
                step.apply(conn)
        if current != target:
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(target),),
            )
            conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return current, target

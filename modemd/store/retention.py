"""Retention: delivered data leaves the store after a while; undelivered data never does.

SMS carry one-time codes and personal text, so the store keeps them no longer than it must.
After ``retention`` (store-clock time, see :mod:`modemd.store.clock`) a journal row, its
message and the message's delivery records are deleted once no outbox row refers to the
message any more, i.e. every sink has it (delivered, or dropped by a bound and counted).
Rows still waiting or parked (``pending``/``poisoned``) in any outbox, journal rows not yet
processed (``new``), multipart parts held for their set (``held``) and any other state are
never pruned.

Work is done in chunks of :data:`CHUNK` rows, each its own short transaction, so ingest never
waits more than one chunk for the write lock. Freed pages go back to the file system with
``PRAGMA incremental_vacuum`` (stores created with ``auto_vacuum=INCREMENTAL``; a store from
before that reuses the freed pages instead, so its size is bounded all the same).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from modemd.store.database import Database

log = logging.getLogger(__name__)

CHUNK = 100
# Between chunks: threading.Lock is not fair, so without a pause this thread could take the
# write lock again before a waiting ingest commit runs.
PAUSE = 0.002
VACUUM_PAGES = 128  # pages returned per transaction (512 KiB at 4 KiB pages)
KEEP_FREE_PAGES = 256  # a little free space stays for the next rows


@dataclass
class PruneResult:
    journal: int = 0
    messages: int = 0
    pages_freed: int = 0

    def __bool__(self) -> bool:
        return bool(self.journal or self.messages or self.pages_freed)


class Retention:
    def __init__(self, db: Database, *, retention: float, chunk: int = CHUNK) -> None:
        self.db = db
        self.retention = retention
        self.chunk = chunk

    def prune(self, *, should_stop: Callable[[], bool] = lambda: False) -> PruneResult:
        """One pass over everything older than the retention, chunk by chunk."""
        result = PruneResult()
        conn = self.db.connection()
        clock = self.db.clock
        journal_upto = clock.seq_older_than(conn, self.retention, "journal_seq")
        message_upto = clock.seq_older_than(conn, self.retention, "message_rowid")
        cursor = 0
        while cursor < journal_upto and not should_stop():
            cursor, n = self._journal_chunk(cursor, journal_upto)
            result.journal += n
            self._breathe()
        cursor = 0
        while cursor < message_upto and not should_stop():
            cursor, n = self._message_chunk(cursor, message_upto)
            result.messages += n
            self._breathe()
        if not should_stop():
            result.pages_freed = self.vacuum(should_stop=should_stop)
        if result.journal or result.messages:
            log.info("retention: pruned %d journal row(s) and %d message(s) older than %.0f s",
                     result.journal, result.messages, self.retention)
        return result

    def _breathe(self) -> None:
        """Between chunks: let a waiting commit go first, keep the WAL short."""
        time.sleep(PAUSE)
        self.db.checkpoint_if_big()

    def _journal_chunk(self, after: int, upto: int) -> tuple[int, int]:
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT seq, state, msg_id FROM journal WHERE seq > ? AND seq <= ?"
                " ORDER BY seq LIMIT ?", (after, upto, self.chunk)).fetchall()
            if not rows:
                return upto, 0
            doomed = [seq for seq, state, msg_id in rows
                      if state in ("done", "failed") and not _waiting(conn, msg_id)]
            if doomed:
                conn.execute(f"DELETE FROM journal WHERE seq IN ({','.join('?' * len(doomed))})",
                             doomed)
                self.db.bump(conn, "retention.journal", len(doomed))
        return int(rows[-1][0]), len(doomed)

    def _message_chunk(self, after: int, upto: int) -> tuple[int, int]:
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT rowid, id FROM messages WHERE rowid > ? AND rowid <= ?"
                " ORDER BY rowid LIMIT ?", (after, upto, self.chunk)).fetchall()
            if not rows:
                return upto, 0
            doomed = [(rowid, msg_id) for rowid, msg_id in rows if not _waiting(conn, msg_id)]
            if doomed:
                marks = ",".join("?" * len(doomed))
                ids = [msg_id for _, msg_id in doomed]
                conn.execute(f"DELETE FROM deliveries WHERE msg_id IN ({marks})", ids)
                conn.execute(f"DELETE FROM messages WHERE rowid IN ({marks})",
                             [rowid for rowid, _ in doomed])
                self.db.bump(conn, "retention.messages", len(doomed))
        return int(rows[-1][0]), len(doomed)

    def vacuum(self, *, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Give free pages back to the file system, a few hundred per transaction."""
        conn = self.db.connection()
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            return 0
        freed = 0
        while not should_stop():
            (free,) = conn.execute("PRAGMA freelist_count").fetchone()
            n = min(VACUUM_PAGES, int(free) - KEEP_FREE_PAGES)
            if n <= 0:
                break
            self.db.run_alone(f"PRAGMA incremental_vacuum({int(n)});")
            freed += n
            self._breathe()
        return freed


def _waiting(conn: sqlite3.Connection, msg_id: str | None) -> bool:
    """Is any outbox row (pending or parked, any sink) still carrying this message?"""
    if msg_id is None:
        return False
    row = conn.execute(
        "SELECT 1 FROM outbox WHERE msg_id = ? LIMIT 1", (msg_id,)).fetchone()
    return row is not None

"""Challenges in the gateway's store: durable, so a restart mid-challenge loses nothing.

A challenge row holds the number, the keyed hash of the code (never the code), its salt, the
times, the state and the wrong-attempt count. ``verify_answers`` remembers every SMS that was
weighed against a challenge, so the same SMS read again (a replay, a re-run after a crash)
never counts twice; the unique index on ``msg_id`` makes "one SMS verifies at most one
challenge" a property of the file, not only of the code.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from modemd.store.database import Database

State = Literal["pending", "verified", "expired", "failed"]

VERIFY_SCHEMA = """
CREATE TABLE IF NOT EXISTS verify_challenges (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    salt BLOB NOT NULL,
    code_hash BLOB NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    msg_id TEXT,
    ended_at REAL,
    response_topic TEXT,
    correlation BLOB
);
CREATE INDEX IF NOT EXISTS verify_by_number ON verify_challenges(number, state, created_at);
CREATE INDEX IF NOT EXISTS verify_by_expiry ON verify_challenges(state, expires_at);
CREATE UNIQUE INDEX IF NOT EXISTS verify_by_msg ON verify_challenges(msg_id)
    WHERE msg_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS verify_answers (
    msg_id TEXT PRIMARY KEY,
    at REAL NOT NULL
);
"""


def migrate_verify(conn: sqlite3.Connection) -> None:
    """Create the verification tables (idempotent; inside the caller's transaction)."""
    for statement in VERIFY_SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str
    number: str
    salt: bytes
    code_hash: bytes
    created_at: float
    expires_at: float
    state: State
    attempts: int
    max_attempts: int
    msg_id: str | None
    ended_at: float | None
    response_topic: str | None
    correlation: bytes | None


_COLUMNS = ("id, number, salt, code_hash, created_at, expires_at, state, attempts, max_attempts,"
            " msg_id, ended_at, response_topic, correlation")


def _challenge(row: Sequence[object]) -> Challenge:
    return Challenge(*row)  # type: ignore[arg-type]  # columns in field order


class ChallengeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self) -> None:
        with self.db.transaction() as conn:
            migrate_verify(conn)

    @staticmethod
    def get(conn: sqlite3.Connection, challenge_id: str) -> Challenge | None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM verify_challenges WHERE id = ?",
                           (challenge_id,)).fetchone()
        return _challenge(row) if row else None

    @staticmethod
    def insert(conn: sqlite3.Connection, challenge: Challenge) -> None:
        conn.execute(
            f"INSERT INTO verify_challenges({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (challenge.id, challenge.number, challenge.salt, challenge.code_hash,
             challenge.created_at, challenge.expires_at, challenge.state, challenge.attempts,
             challenge.max_attempts, challenge.msg_id, challenge.ended_at,
             challenge.response_topic, challenge.correlation))

    @staticmethod
    def pending_for(conn: sqlite3.Connection, number: str) -> list[Challenge]:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM verify_challenges WHERE number = ? AND state = 'pending'"
            " ORDER BY created_at", (number,)).fetchall()
        return [_challenge(row) for row in rows]

    @staticmethod
    def created_since(conn: sqlite3.Connection, number: str, since: float) -> int:
        (count,) = conn.execute(
            "SELECT count(*) FROM verify_challenges WHERE number = ? AND created_at >= ?",
            (number, since)).fetchone()
        return int(count)

    @staticmethod
    def pending_count(conn: sqlite3.Connection) -> int:
        (count,) = conn.execute(
            "SELECT count(*) FROM verify_challenges WHERE state = 'pending'").fetchone()
        return int(count)

    @staticmethod
    def end(conn: sqlite3.Connection, challenge_id: str, *, state: State, at: float,
            msg_id: str | None = None) -> bool:
        """pending → *state*; False if it was no longer pending (it ends once)."""
        cur = conn.execute(
            "UPDATE verify_challenges SET state = ?, ended_at = ?, msg_id = ?"
            " WHERE id = ? AND state = 'pending'", (state, at, msg_id, challenge_id))
        return cur.rowcount == 1

    @staticmethod
    def count_attempt(conn: sqlite3.Connection, challenge_id: str) -> int:
        conn.execute("UPDATE verify_challenges SET attempts = attempts + 1 WHERE id = ?",
                     (challenge_id,))
        (attempts,) = conn.execute("SELECT attempts FROM verify_challenges WHERE id = ?",
                                   (challenge_id,)).fetchone()
        return int(attempts)

    @staticmethod
    def first_answer(conn: sqlite3.Connection, msg_id: str, at: float) -> bool:
        """Record that SMS *msg_id* was weighed; False if it had been already."""
        cur = conn.execute("INSERT OR IGNORE INTO verify_answers(msg_id, at) VALUES (?, ?)",
                           (msg_id, at))
        return cur.rowcount == 1

    @staticmethod
    def due(conn: sqlite3.Connection, now: float, *, limit: int = 500) -> list[Challenge]:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM verify_challenges WHERE state = 'pending'"
            " AND expires_at <= ? ORDER BY expires_at LIMIT ?", (now, limit)).fetchall()
        return [_challenge(row) for row in rows]

    def next_expiry(self) -> float | None:
        row = self.db.connection().execute(
            "SELECT min(expires_at) FROM verify_challenges WHERE state = 'pending'").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    @staticmethod
    def forget_ended(conn: sqlite3.Connection, *, older_than: float) -> int:
        cur = conn.execute("DELETE FROM verify_challenges WHERE state != 'pending'"
                           " AND ended_at < ?", (older_than,))
        conn.execute("DELETE FROM verify_answers WHERE at < ?", (older_than,))
        return cur.rowcount

    def listing(self, *, state: str | None = "pending", limit: int = 100) -> list[Challenge]:
        """Newest first; nothing (rather than an error) in a store that never verified."""
        conn = self.db.connection()
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'verify_challenges'"
                        ).fetchone() is None:
            return []
        if state is None:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM verify_challenges"
                                " ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        else:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM verify_challenges WHERE state = ?"
                                " ORDER BY created_at DESC LIMIT ?", (state, limit)).fetchall()
        return [_challenge(row) for row in rows]

"""What the pipeline holds between runs: processing attempts per journal row, and the parts
of multipart sets with the clocks their waiting is measured on.

Statements run inside the caller's transaction (the pipeline's), like ``Journal.mark``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def migrate_pipeline(conn: sqlite3.Connection) -> None:
    """Add the pipeline's columns to an existing store; idempotent, so run at every open.

    * ``journal.attempts``: how many times processing the row failed (bounded retries that
      survive restarts);
    * ``parts.boot_id``, ``parts.mono_seen``: the boot and the CLOCK_MONOTONIC reading the
      part's wait is measured on (see :mod:`modemd.multipart`); ``parts.sent_at``: the part's
      service-centre time stamp, which tells two sets under one reused reference apart.
    """
    if "attempts" not in _columns(conn, "journal"):
        conn.execute("ALTER TABLE journal ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
    have = _columns(conn, "parts")
    for column in ("boot_id TEXT", "mono_seen REAL", "sent_at REAL"):
        if column.split()[0] not in have:
            conn.execute(f"ALTER TABLE parts ADD COLUMN {column}")


# --- attempts ----------------------------------------------------------------------------------


def add_attempt(conn: sqlite3.Connection, raw_id: str, error: str) -> int:
    """Count one failed attempt at processing *raw_id*; the attempts so far."""
    conn.execute(
        "UPDATE journal SET attempts = attempts + 1, error = ? WHERE raw_id = ?",
        (error, raw_id),
    )
    row = conn.execute("SELECT attempts FROM journal WHERE raw_id = ?", (raw_id,)).fetchone()
    return int(row[0]) if row else 0


def attempts_of(conn: sqlite3.Connection, raw_id: str) -> int:
    row = conn.execute("SELECT attempts FROM journal WHERE raw_id = ?", (raw_id,)).fetchone()
    return int(row[0]) if row else 0


# --- parts ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeldPart:
    group_key: str
    sequence: int
    total: int
    raw_id: str
    first_seen: float
    sent_at: float | None


def generations(conn: sqlite3.Connection, base_key: str) -> dict[str, list[HeldPart]]:
    """The held sets under *base_key* (``base_key`` itself, from before generations, and
    ``base_key#N``), each with its parts."""
    rows = conn.execute(
        "SELECT group_key, sequence, total, raw_id, first_seen, sent_at FROM parts"
        " WHERE group_key = ? OR (group_key > ? AND group_key < ?)"
        " ORDER BY group_key, sequence",
        (base_key, base_key + "#", base_key + "$"),  # '$' is the character after '#'
    )
    sets: dict[str, list[HeldPart]] = {}
    for row in rows:
        part = HeldPart(*row)
        sets.setdefault(part.group_key, []).append(part)
    return sets


def hold_part(
    conn: sqlite3.Connection,
    *,
    group_key: str,
    sequence: int,
    total: int,
    raw_id: str,
    first_seen: float,
    boot_id: str,
    mono_seen: float,
    sent_at: float | None,
) -> bool:
    """Keep a part for its set; False if that slot of the set is taken already."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO parts(group_key, sequence, total, raw_id, first_seen, boot_id,"
        " mono_seen, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (group_key, sequence, total, raw_id, first_seen, boot_id, mono_seen, sent_at),
    )
    return cur.rowcount == 1


def record_release(conn: sqlite3.Connection, base_key: str, msg_id: str, *, at: float) -> None:
    """Remember that the set under *base_key* went out incomplete as *msg_id* at *at*."""
    conn.execute(
        "INSERT OR REPLACE INTO released_sets(group_key, msg_id, released_at) VALUES (?, ?, ?)",
        (base_key, msg_id, at),
    )


def adopt_parts(
    conn: sqlite3.Connection, *, boot_id: str, wall_now: float, mono_now: float,
    max_elapsed: float,
) -> int:
    """Put parts held under another boot (or before these columns existed) on this boot's
    monotonic clock: the wall-clock time they have waited, clamped to 0..*max_elapsed*."""
    cur = conn.execute(
        "UPDATE parts SET boot_id = ?, mono_seen = ? - MIN(MAX(? - first_seen, 0), ?)"
        " WHERE boot_id IS NULL OR boot_id != ? OR mono_seen IS NULL",
        (boot_id, mono_now, wall_now, max_elapsed, boot_id),
    )
    return cur.rowcount


def waited_since(conn: sqlite3.Connection, *, mono_before: float) -> list[str]:
    """Sets whose first part was taken at or before *mono_before* (this boot's clock)."""
    rows = conn.execute(
        "SELECT group_key FROM parts GROUP BY group_key HAVING MIN(mono_seen) <= ?",
        (mono_before,),
    )
    return [row[0] for row in rows]

"""The store clock: how long the store has been open, summed over runs, whatever the wall clock.

A Raspberry Pi without a real-time clock boots in 1970 (or at its last shutdown time) and
steps forward by years when NTP syncs; a wrong clock can also be stepped back. A bound
computed from wall-clock stamps ("older than 30 days") then drops or keeps the wrong rows.

The rule: **an age is time modemd observed**. The store clock advances with the process's
monotonic clock while the store is open and is persisted (``meta.clock``); time while
modemd is stopped does not count. Every ``interval`` seconds of store clock a *mark* records
how far the journal, outbox and messages sequences had reached. A row is older than *age*
when its sequence number is at or below the mark taken *age* ago. An age read this way can
only be shorter than the true one, so a bound may act late but never early; wall-clock
steps in either direction change nothing. Wall-clock stamps stay in the rows for display.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Monotonic = Callable[[], float]
Wall = Callable[[], float]
MarkColumn = Literal["journal_seq", "outbox_seq", "message_rowid"]

MARK_INTERVAL = 60.0  # seconds of store clock between marks: the resolution of every age


@dataclass(frozen=True, slots=True)
class Mark:
    clock: float
    journal_seq: int
    outbox_seq: int
    message_rowid: int


class StoreClock:
    """Store-clock time now, from the persisted value and this process's monotonic clock."""

    def __init__(self, start: float = 0.0, *, monotonic: Monotonic = time.monotonic,
                 wall: Wall = time.time, interval: float = MARK_INTERVAL) -> None:
        self._start = start
        self._monotonic = monotonic
        self._origin = monotonic()
        self.wall = wall
        self.interval = interval
        self._lock = threading.Lock()
        self._last_mark: float | None = None

    def now(self) -> float:
        return self._start + max(0.0, self._monotonic() - self._origin)

    @staticmethod
    def load(conn: sqlite3.Connection) -> float:
        row = conn.execute("SELECT value FROM meta WHERE key = 'clock'").fetchone()
        try:
            return max(0.0, float(row[0])) if row else 0.0
        except ValueError:
            return 0.0

    def mark_if_due(self, conn: sqlite3.Connection) -> bool:
        """Inside the caller's write transaction: persist the clock and record a mark if the
        last one is ``interval`` old. O(1): every value read is a b-tree end."""
        now = self.now()
        with self._lock:
            if self._last_mark is None:
                row = conn.execute("SELECT MAX(clock) FROM clock_marks").fetchone()
                self._last_mark = float(row[0]) if row and row[0] is not None else -1e18
            if now - self._last_mark < self.interval:
                return False
            self._last_mark = now
        conn.execute(
            "INSERT OR REPLACE INTO clock_marks(clock, wall, journal_seq, outbox_seq,"
            " message_rowid) VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) FROM journal),"
            " (SELECT COALESCE(MAX(seq), 0) FROM outbox),"
            " (SELECT COALESCE(MAX(rowid), 0) FROM messages))",
            (now, self.wall()),
        )
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('clock', ?)", (repr(now),))
        return True

    def persist(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('clock', ?)", (repr(self.now()),)
        )

    def seq_older_than(self, conn: sqlite3.Connection, age: float, column: MarkColumn) -> int:
        """The highest sequence number of *column* certainly older than *age* (0: none)."""
        row = conn.execute(
            f"SELECT {column} FROM clock_marks WHERE clock <= ? ORDER BY clock DESC LIMIT 1",
            (self.now() - age,),
        ).fetchone()
        return int(row[0]) if row else 0

    def age_of_seq(self, conn: sqlite3.Connection, seq: int, column: MarkColumn) -> float | None:
        """At least how long ago the row *seq* of *column* was written (None: under a mark)."""
        row = conn.execute(
            f"SELECT clock FROM clock_marks WHERE {column} >= ? ORDER BY clock LIMIT 1", (seq,)
        ).fetchone()
        return None if row is None else max(0.0, self.now() - float(row[0]))

    def forget_marks(self, conn: sqlite3.Connection, *, keep: float) -> None:
        """Drop marks older than *keep*, keeping the newest of those (it still answers)."""
        conn.execute(
            "DELETE FROM clock_marks WHERE clock < (SELECT MAX(clock) FROM clock_marks"
            " WHERE clock <= ?)",
            (self.now() - keep,),
        )

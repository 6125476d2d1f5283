"""Per-sink delivery queues: a row leaves only when its sink confirms it.

Rows are written in the pipeline's transaction together with the message they carry. A
sink fetches due rows, delivers them, and acks (delete), retries (later, with backoff) or
poisons them (kept, with the server's reason, out of the way of the rest). The queue is
bounded by rows and age; what the bound drops is counted and logged, never silent.

Housekeeping never holds the write lock for long: rows per sink and state are counted by
triggers (``outbox_counts``), ages are read from store-clock marks (see
:mod:`modemd.store.clock`, immune to wall-clock steps), and a bound drops rows in chunks of
:data:`CHUNK` by sequence number, each chunk its own short transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from modemd.store.database import Database, now

log = logging.getLogger(__name__)

KINDS = ("sms", "reading", "deadletter", "modem_state", "modem_health", "smpp_state")

CHUNK = 200  # rows per housekeeping transaction: about a millisecond of write lock
MAX_CHUNKS = 100  # per call; a bigger backlog is worked off at the next call
# Retry delays are seconds to minutes. A row due further ahead than this was scheduled
# before the wall clock stepped back; it is due now rather than stalled for the step.
RETRY_HORIZON = 3600.0
# Between chunks: threading.Lock is not fair (and another process's SQLite busy handler
# sleeps before trying again), so without a pause the next chunk could go first.
PAUSE = 0.002


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    sink: str
    kind: str
    msg_id: str | None
    body: dict[str, Any]
    created_at: float
    attempts: int


@dataclass(frozen=True, slots=True)
class SinkStats:
    sink: str
    pending: int
    poisoned: int
    oldest_age: float | None
    dropped: int
    delivered: int


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def enqueue(
        conn: sqlite3.Connection, *, sink: str, kind: str, msg_id: str | None, body: dict[str, Any]
    ) -> int:
        """Add a row inside the caller's transaction; its seq."""
        cur = conn.execute(
            "INSERT INTO outbox(sink, kind, msg_id, body, created_at) VALUES (?, ?, ?, ?, ?)",
            (sink, kind, msg_id, json.dumps(body, ensure_ascii=False), now()),
        )
        return int(cur.lastrowid or 0)

    def put(self, *, sink: str, kind: str, msg_id: str | None, body: dict[str, Any]) -> None:
        """Add a row in a transaction of its own (modem state and health, not messages)."""
        with self.db.transaction() as conn:
            self.enqueue(conn, sink=sink, kind=kind, msg_id=msg_id, body=body)

    def fetch(self, sink: str, *, limit: int, exclude: Sequence[int] = ()) -> list[OutboxRow]:
        """Rows of ``sink`` that are due now, oldest first, skipping ``exclude`` (in flight)."""
        query = (
            "SELECT seq, sink, kind, msg_id, body, created_at, attempts FROM outbox"
            " WHERE sink = ? AND state = 'pending'"
            " AND (next_attempt_at <= ? OR next_attempt_at > ?)"
        )
        wall = now()
        params: list[Any] = [sink, wall, wall + RETRY_HORIZON]
        if exclude:
            query += f" AND seq NOT IN ({','.join('?' * len(exclude))})"
            params.extend(exclude)
        query += " ORDER BY seq LIMIT ?"
        params.append(limit)
        rows = self.db.connection().execute(query, params)
        return [
            OutboxRow(seq, sink_, kind, msg_id, json.loads(body), created_at, attempts)
            for seq, sink_, kind, msg_id, body, created_at, attempts in rows
        ]

    def waiting_between(self, sink: str, *, after: int, before: int,
                        besides: Sequence[int] = ()) -> bool:
        """Whether a pending row of *sink* has a seq in (after, before), other than
        *besides*: rows that would have to go out first (one index lookup)."""
        query = ("SELECT seq FROM outbox WHERE sink = ? AND seq > ? AND seq < ?"
                 " AND state = 'pending'")
        params: list[Any] = [sink, after, before]
        if besides:
            query += f" AND seq NOT IN ({','.join('?' * len(besides))})"
            params.extend(besides)
        return self.db.connection().execute(query + " LIMIT 1", params).fetchone() is not None

    def ack(self, sink: str, seqs: Sequence[int]) -> None:
        """The sink confirmed these rows: forget them, remember the delivery."""
        if not seqs:
            return
        marks = ",".join("?" * len(seqs))
        with self.db.transaction() as conn:
            self._note_delivery(conn, sink, "delivered", f"seq IN ({marks})", tuple(seqs))
            cur = conn.execute(
                f"DELETE FROM outbox WHERE sink = ? AND seq IN ({marks})", (sink, *seqs)
            )
            self.db.bump(conn, f"outbox.{sink}.delivered", cur.rowcount)

    def retry(self, sink: str, seqs: Sequence[int], *, delay: float, error: str) -> None:
        if not seqs:
            return
        marks = ",".join("?" * len(seqs))
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, error = ?"
                f" WHERE sink = ? AND seq IN ({marks})",
                (now() + delay, error, sink, *seqs),
            )

    def poison(self, sink: str, seqs: Sequence[int], *, reason: str) -> None:
        """Park rows the server refuses for good (e.g. HTTP 400), with its reason."""
        if not seqs:
            return
        marks = ",".join("?" * len(seqs))
        with self.db.transaction() as conn:
            self._note_delivery(conn, sink, "poisoned", f"seq IN ({marks})", tuple(seqs))
            cur = conn.execute(
                "UPDATE outbox SET state = 'poisoned', error = ?, attempts = attempts + 1"
                f" WHERE sink = ? AND seq IN ({marks})",
                (reason, sink, *seqs),
            )
            self.db.bump(conn, f"outbox.{sink}.poisoned", cur.rowcount)
        log.error("outbox %s: %d row(s) parked as poisoned: %s", sink, len(seqs), reason)

    def enforce_bounds(self, *, max_rows: int, max_age: float) -> dict[str, int]:
        """Drop the oldest rows beyond the bounds; count and log every drop.

        Cheap when nothing is over a bound (the counts table and one mark). An age is store-
        clock time (see :mod:`modemd.store.clock`): a wall-clock step drops nothing.
        """
        clock = self.db.clock
        with self.db.transaction() as conn:
            clock.mark_if_due(conn)
            too_old = clock.seq_older_than(conn, max_age, "outbox_seq")
            counts = self._counts(conn)
        dropped: dict[str, int] = {}
        budget = MAX_CHUNKS
        for sink in sorted({sink for sink, _ in counts}):
            total = sum(n for (s, _), n in counts.items() if s == sink)
            n, budget = self._drop_head(sink, up_to_seq=too_old, rows=None, budget=budget)
            if total - n > max_rows:
                more, budget = self._drop_head(sink, up_to_seq=None, rows=total - n - max_rows,
                                               budget=budget)
                n += more
            if n:
                dropped[sink] = n
        for sink, n in dropped.items():
            log.warning("outbox %s: bound reached, dropped the %d oldest row(s)", sink, n)
        return dropped

    def _drop_head(self, sink: str, *, up_to_seq: int | None, rows: int | None,
                   budget: int) -> tuple[int, int]:
        """Drop the oldest rows of *sink*: those with seq <= *up_to_seq*, or *rows* of them,
        one chunk per transaction, at most *budget* chunks; (dropped, budget left)."""
        dropped = 0
        while budget > 0 and (up_to_seq is None or up_to_seq > 0) and (
                rows is None or dropped < rows):
            limit = CHUNK if rows is None else min(CHUNK, rows - dropped)
            with self.db.transaction() as conn:
                seqs = [row[0] for row in conn.execute(
                    "SELECT seq FROM outbox WHERE sink = ? AND seq <= ? ORDER BY seq LIMIT ?",
                    (sink, up_to_seq if up_to_seq is not None else 2**62, limit))]
                if not seqs:
                    break
                n = self._drop(conn, sink, f"seq IN ({','.join('?' * len(seqs))})",
                               tuple(seqs))
                self.db.bump(conn, f"outbox.{sink}.dropped", n)
            dropped += n
            budget -= 1
            if len(seqs) < limit:
                break
            time.sleep(PAUSE)
            self.db.checkpoint_if_big()
        return dropped, budget

    @staticmethod
    def _counts(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
        return {(sink, state): int(n) for sink, state, n in conn.execute(
            "SELECT sink, state, n FROM outbox_counts WHERE n > 0")}

    @staticmethod
    def _note_delivery(
        conn: sqlite3.Connection, sink: str, state: str, where: str, params: tuple[Any, ...]
    ) -> None:
        """Remember what became of each message's rows, for `modemd messages`."""
        conn.execute(
            "INSERT OR REPLACE INTO deliveries(msg_id, sink, state, at)"
            f" SELECT msg_id, sink, ?, ? FROM outbox WHERE sink = ? AND {where}"
            " AND msg_id IS NOT NULL",
            (state, now(), sink, *params),
        )

    @staticmethod
    def _drop(conn: sqlite3.Connection, sink: str, where: str, params: tuple[Any, ...]) -> int:
        Outbox._note_delivery(conn, sink, "dropped", where, params)
        cur = conn.execute(f"DELETE FROM outbox WHERE sink = ? AND {where}", (sink, *params))
        return cur.rowcount

    def replay(self, sink: str | None = None) -> int:
        """Make every row (poisoned included) due now again, in short transactions."""

        def due(conn: sqlite3.Connection, marks: str, seqs: list[int]) -> int:
            return conn.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = 0, error = NULL"
                f" WHERE seq IN ({marks})", seqs).rowcount

        return self._chunked(sink, poisoned_only=False, apply=due)

    def purge(self, sink: str | None = None, *, poisoned_only: bool = False) -> int:
        """Delete rows on the operator's say-so (counted as purged), in short transactions."""

        def delete(conn: sqlite3.Connection, marks: str, seqs: list[int]) -> int:
            n = conn.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", seqs).rowcount
            self.db.bump(conn, "outbox.purged", n)
            return n

        return self._chunked(sink, poisoned_only=poisoned_only, apply=delete)

    def _chunked(self, sink: str | None, *, poisoned_only: bool,
                 apply: Callable[[sqlite3.Connection, str, list[int]], int]) -> int:
        """Apply *apply* to the selected rows :data:`CHUNK` at a time, one transaction each,
        so an operator's replay or purge of 200,000 rows never holds up a message coming in."""
        where = "seq > ?" + ("" if sink is None else " AND sink = ?")
        if poisoned_only:
            where += " AND state = 'poisoned'"
        total, after = 0, 0
        while True:
            with self.db.transaction() as conn:
                params: tuple[Any, ...] = (after,) if sink is None else (after, sink)
                seqs = [row[0] for row in conn.execute(
                    f"SELECT seq FROM outbox WHERE {where} ORDER BY seq LIMIT ?",
                    (*params, CHUNK))]
                if not seqs:
                    return total
                total += apply(conn, ",".join("?" * len(seqs)), seqs)
            after = seqs[-1]
            if len(seqs) < CHUNK:
                return total
            time.sleep(PAUSE)
            self.db.checkpoint_if_big()

    def stats(self, sinks: Sequence[str] = ()) -> list[SinkStats]:
        """Per sink: rows waiting and parked, the oldest row's age, drops and deliveries.

        Counts come from the trigger-kept table and the oldest row from the (sink, seq) index,
        so this costs the same with 200,000 rows waiting as with none. The age is store-clock
        time (at least this old), not the wall-clock stamp, which a clock step falsifies.
        """
        conn = self.db.connection()
        counters = self.db.counters()
        counts = self._counts(conn)
        names = set(sinks) | {sink for sink, _ in counts}
        result = []
        for sink in sorted(names):
            head = conn.execute(
                "SELECT seq, created_at FROM outbox WHERE sink = ? ORDER BY seq LIMIT 1",
                (sink,),
            ).fetchone()
            age = None
            if head is not None:
                age = self.db.clock.age_of_seq(conn, int(head[0]), "outbox_seq")
                if age is None:  # younger than the last mark: the wall clock, within reason
                    age = min(max(0.0, now() - float(head[1])), self.db.clock.interval)
            result.append(
                SinkStats(
                    sink=sink,
                    pending=counts.get((sink, "pending"), 0),
                    poisoned=counts.get((sink, "poisoned"), 0),
                    oldest_age=age,
                    dropped=counters.get(f"outbox.{sink}.dropped", 0),
                    delivered=counters.get(f"outbox.{sink}.delivered", 0),
                )
            )
        return result

    def poisoned(self, sink: str, *, limit: int = 20) -> list[tuple[int, str, str | None]]:
        rows = self.db.connection().execute(
            "SELECT seq, kind, error FROM outbox WHERE sink = ? AND state = 'poisoned'"
            " ORDER BY seq LIMIT ?",
            (sink, limit),
        )
        return [(int(seq), kind, error) for seq, kind, error in rows]

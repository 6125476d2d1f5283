"""Multipart sets between parts: which set a part belongs to, and when a set stops waiting.

The pipeline offers each part here inside its own transaction; the parts wait in the store's
``parts`` table, so a restart loses none.

**Which set.** A set is keyed by modem, sender, reference (and its width) and total. References
are only 0-255 and devices start again from their first one after a reboot, so a key can come
round while an earlier set under it is still held. A part therefore joins a held set under its
key only if that set's slot for its sequence number is free and the set's parts were stamped by
the service centre within :data:`MAX_SET_SPREAD` of it (the parts of one message are submitted
back to back). Of several such sets it joins the nearest in time, the newest on a tie (a reused
key is newer than the set it collides with). Otherwise it starts a new set, ``key#N`` with the
next generation N. Only the very same part (same raw id, so the same octets) is a duplicate; a
part with other content in a taken slot is never dropped: it is the start of another message.

**When a set stops waiting** (the clock rule). A set is released, marked incomplete, once its
first part has waited ``timeout`` seconds. Waiting is measured on CLOCK_MONOTONIC, which NTP
never steps: a Pi that boots with an old wall clock and jumps forward at sync neither releases
sets early nor (jumping back) holds them for ever. Each part stores its boot id and monotonic
reading, so a daemon restarted within the same boot goes on measuring exactly. After a reboot
the monotonic reading means nothing: the first look at the parts re-bases them on the new
boot's clock, counting what the wall clock says they waited, clamped to 0 (a wall clock behind
the part's time waits a whole timeout, never longer) and to ``timeout - REBOOT_GRACE`` (a
wall clock that leapt forward leaves the set REBOOT_GRACE seconds, enough for the start-up
sweep to bring in parts that came while the gateway was down).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from modemd.clock import Clock, SystemClock
from modemd.records import set_scope
from modemd.sms import SmsDeliver
from modemd.store import held
from modemd.store.journal import Journal, JournalRecord, PartRow, set_id_for

#: Seconds a part of an already released (incomplete) set waits for siblings of its own.
LATE_PART_GRACE = 60.0
#: Seconds a held set still waits at least after a reboot, whatever the wall clock says.
REBOOT_GRACE = 120.0
#: Service-centre time stamps of the parts of one set lie within this many seconds.
MAX_SET_SPREAD = 600.0


@dataclass(frozen=True, slots=True)
class Held:
    """The part waits in ``group_key`` for the rest of its set."""

    group_key: str


@dataclass(frozen=True, slots=True)
class Ready:
    """The part completed ``group_key``: release it now."""

    group_key: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """This very part is held already (in ``group_key``)."""

    group_key: str


Offer = Held | Ready | Duplicate


@dataclass(frozen=True, slots=True)
class Release:
    """A set leaving the parts table: its parts in sequence order and its message id;
    ``late_for`` is the id of the incomplete set it is a straggler of."""

    group_key: str
    parts: tuple[PartRow, ...]
    msg_id: str
    late_for: str | None

    @property
    def complete(self) -> bool:
        return bool(self.parts) and len(self.parts) == self.parts[0].total


def base_key(record: JournalRecord, message: SmsDeliver) -> str:
    concat = message.concat
    assert concat is not None
    return "|".join((set_scope(record), message.sender.number,
                     f"{concat.ref_bits}:{concat.reference}", str(concat.total)))


def _split(group_key: str) -> tuple[str, int]:
    """(base key, generation); keys from before generations are generation 0."""
    base, sep, generation = group_key.rpartition("#")
    if sep and generation.isdigit():
        return base, int(generation)
    return group_key, 0


class Reassembler:
    """Holds parts until their set is complete or has waited ``timeout`` seconds."""

    def __init__(self, journal: Journal, *, timeout: float, clock: Clock | None = None) -> None:
        self.journal = journal
        self.timeout = timeout
        self.clock: Clock = clock or SystemClock()
        self._adopted_boot: str | None = None

    def offer(self, conn: sqlite3.Connection, record: JournalRecord,
              message: SmsDeliver) -> Offer:
        concat = message.concat
        assert concat is not None and 1 <= concat.sequence <= concat.total
        base = base_key(record, message)
        sent_at = message.scts.timestamp()
        sets = held.generations(conn, base)
        for key, parts in sets.items():
            if any(part.raw_id == record.raw_id for part in parts):
                return Duplicate(key)
        key = self._set_for(base, sets, concat.sequence, sent_at)
        wall, mono = self.clock.wall(), self.clock.monotonic()
        if key not in sets and self.journal.released_as(conn, base, since=wall - self.timeout):
            # A straggler of a set already published incomplete: its siblings, if any, come
            # with it, so it waits a short grace rather than another whole timeout.
            waited = max(0.0, self.timeout - LATE_PART_GRACE)
            wall, mono = wall - waited, mono - waited
        held.hold_part(conn, group_key=key, sequence=concat.sequence, total=concat.total,
                       raw_id=record.raw_id, first_seen=wall, boot_id=self.clock.boot_id,
                       mono_seen=mono, sent_at=sent_at)
        have = len(sets.get(key, ())) + 1
        return Ready(key) if have >= concat.total else Held(key)

    @staticmethod
    def _set_for(base: str, sets: dict[str, list[held.HeldPart]], sequence: int,
                 sent_at: float) -> str:
        best: tuple[float, int, str] | None = None
        newest = 0
        for key, parts in sets.items():
            generation = _split(key)[1]
            newest = max(newest, generation)
            if any(part.sequence == sequence for part in parts):
                continue
            stamps = [part.sent_at for part in parts if part.sent_at is not None]
            distance = min(abs(stamp - sent_at) for stamp in stamps) if stamps else 0.0
            if distance > MAX_SET_SPREAD:
                continue
            candidate = (distance, -generation, key)
            if best is None or candidate < best:
                best = candidate
        return best[2] if best is not None else f"{base}#{newest + 1}"

    def release(self, conn: sqlite3.Connection, group_key: str) -> Release:
        """Take the set out of the parts table (complete, or given up waiting)."""
        journal = self.journal
        parts = tuple(journal.parts_of(conn, group_key))
        msg_id = set_id_for([part.raw_id for part in parts])
        late_for = None
        if parts and len(parts) < parts[0].total:
            base = _split(group_key)[0]
            # a straggler set is released within two timeouts of the set it belongs to;
            # releases older than that are of no more use (pruned here, not on a timer)
            since = self.clock.wall() - 2 * self.timeout
            late_for = journal.released_as(conn, base, since=since)
            journal.forget_releases(conn, older_than=since)
            held.record_release(conn, base, msg_id, at=self.clock.wall())
        journal.drop_parts(conn, group_key)
        return Release(group_key, parts, msg_id, late_for)

    def due(self) -> list[str]:
        """The sets whose first part has waited ``timeout`` seconds (see the module doc)."""
        clock = self.clock
        if self._adopted_boot != clock.boot_id:
            with self.journal.db.transaction() as conn:
                held.adopt_parts(conn, boot_id=clock.boot_id, wall_now=clock.wall(),
                                 mono_now=clock.monotonic(),
                                 max_elapsed=max(0.0, self.timeout - REBOOT_GRACE))
            self._adopted_boot = clock.boot_id
        return held.waited_since(self.journal.db.connection(),
                                 mono_before=clock.monotonic() - self.timeout)

"""Multipart sets: reused references start new sets, and waiting follows the monotonic clock
(NTP steps either way, restarts, reboots), driven by an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modemd.clock import ManualClock
from modemd.multipart import REBOOT_GRACE, Duplicate, Held, Reassembler
from modemd.pipeline import Pipeline, Route
from modemd.records import decode_record
from modemd.sms import SmsDeliver
from modemd.sms.encode import encode_deliver_parts
from modemd.store import Store

SCTS = datetime(2026, 11, 25, 9, 30, 15, tzinfo=UTC)
SENDER = "+4915112345678"
ROUTES = [Route("mqtt", frozenset({"sms", "reading", "deadletter"}))]
TIMEOUT = 3600.0
A_TEXT = "A" * 153 + "B" * 153 + "C" * 20
B_TEXT = "x" * 153 + "y" * 153 + "z" * 20


def outbox(store: Store) -> list[dict[str, Any]]:
    return [r.body for r in store.outbox.fetch("mqtt", limit=10_000) if r.kind == "sms"]


def commit(store: Store, pdu: bytes) -> None:
    store.journal.commit_raw(modem="m1", mode="pdu", raw=pdu)


def drain(pipeline: Pipeline) -> None:
    while pipeline.run_once():
        pass


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(tmp_path)
    yield s
    s.close()


def pipeline(store: Store, clock: ManualClock) -> Pipeline:
    return Pipeline(store, routes=ROUTES, multipart_timeout=TIMEOUT, clock=clock)


def two_messages(b_later: timedelta = timedelta(minutes=5)) -> tuple[list[bytes], list[bytes]]:
    a = encode_deliver_parts(sender=SENDER, text=A_TEXT, scts=SCTS, reference=77)
    b = encode_deliver_parts(sender=SENDER, text=B_TEXT, scts=SCTS + b_later, reference=77)
    assert len(a) == len(b) == 3
    return a, b


# --- reused references ---------------------------------------------------------------------------


def test_a_reused_reference_does_not_lose_b_or_glue_it_to_a(store: Store,
                                                            clock: ManualClock) -> None:
    a, b = two_messages()
    p = pipeline(store, clock)
    for pdu in (a[0], a[1], b[0], b[1], b[2]):
        commit(store, pdu)
    drain(p)
    (whole,) = outbox(store)
    assert whole["text"] == B_TEXT and whole["complete"] is True
    assert "parts.duplicates" not in store.db.counters()
    clock.advance(TIMEOUT)
    assert p.expire_partial_sets() == 1
    _, partial = outbox(store)
    assert partial["text"] == A_TEXT[:306] and partial["missing"] == [3]


@pytest.mark.parametrize("order", [
    "a1 b1 a2 b2 b3 a3", "b3 a3 b2 a2 b1 a1", "a1 a2 b1 a3 b2 b3", "b1 b2 b3 a1 a2 a3",
])
def test_interleaved_sets_under_one_reference_each_come_out_whole(
        store: Store, clock: ManualClock, order: str) -> None:
    a, b = two_messages()
    by_name = {f"a{i + 1}": pdu for i, pdu in enumerate(a)} | {
        f"b{i + 1}": pdu for i, pdu in enumerate(b)}
    p = pipeline(store, clock)
    for name in order.split():
        commit(store, by_name[name])
        drain(p)
    assert sorted(m["text"] for m in outbox(store)) == sorted([A_TEXT, B_TEXT])
    assert all(m["complete"] for m in outbox(store))


def test_a_reuse_with_the_same_time_stamp_arriving_in_order(store: Store,
                                                            clock: ManualClock) -> None:
    a, b = two_messages(b_later=timedelta(0))
    p = pipeline(store, clock)
    for pdu in (a[0], a[1], b[0], b[1], b[2]):  # A's last part lost
        commit(store, pdu)
    drain(p)
    assert [m["text"] for m in outbox(store)] == [B_TEXT]


def test_a_part_hours_away_from_a_held_set_starts_its_own(store: Store,
                                                         clock: ManualClock) -> None:
    a, b = two_messages(b_later=timedelta(hours=3))
    p = pipeline(store, clock)
    commit(store, a[0])
    commit(store, b[1])  # slot 2 of A is free, but B was sent three hours later
    drain(p)
    keys = store.db.connection().execute("SELECT DISTINCT group_key FROM parts").fetchall()
    assert len(keys) == 2


def test_only_the_very_same_part_is_a_duplicate(store: Store, clock: ManualClock) -> None:
    a, _ = two_messages()
    commit(store, a[0])
    (record,) = store.journal.pending()
    message = decode_record(record)
    assert isinstance(message, SmsDeliver)
    parts = Reassembler(store.journal, timeout=TIMEOUT, clock=clock)
    with store.db.transaction() as conn:
        first = parts.offer(conn, record, message)
        again = parts.offer(conn, record, message)
    assert isinstance(first, Held)
    assert again == Duplicate(first.group_key)


# --- clock steps ---------------------------------------------------------------------------------


def hold_one_part(store: Store, clock: ManualClock) -> Pipeline:
    a, _ = two_messages()
    p = pipeline(store, clock)
    commit(store, a[0])
    drain(p)
    assert p.expire_partial_sets() == 0
    return p


def test_a_forward_wall_clock_step_does_not_release_early(store: Store,
                                                         clock: ManualClock) -> None:
    p = hold_one_part(store, clock)
    clock.step_wall(365 * 86400)  # NTP sync on a Pi that booted with last year's time
    assert p.expire_partial_sets() == 0
    clock.advance(TIMEOUT - 1)
    assert p.expire_partial_sets() == 0
    clock.advance(2)
    assert p.expire_partial_sets() == 1


def test_a_backward_wall_clock_step_does_not_hold_for_ever(store: Store,
                                                          clock: ManualClock) -> None:
    p = hold_one_part(store, clock)
    clock.step_wall(-365 * 86400)
    clock.advance(TIMEOUT + 1)
    assert p.expire_partial_sets() == 1


def test_a_restart_within_the_same_boot_keeps_measuring(store: Store,
                                                       clock: ManualClock) -> None:
    hold_one_part(store, clock)
    clock.advance(TIMEOUT / 2)
    clock.step_wall(-86400)  # and the wall clock went back meanwhile
    p = pipeline(store, clock)  # a new process, same boot
    assert p.expire_partial_sets() == 0
    clock.advance(TIMEOUT / 2 + 1)
    assert p.expire_partial_sets() == 1


def test_after_a_reboot_with_the_wall_clock_behind_a_set_waits_one_timeout(
        store: Store, clock: ManualClock) -> None:
    hold_one_part(store, clock)
    clock.reboot(wall=clock.wall() - 30 * 86400)  # booted with an old time
    p = pipeline(store, clock)
    assert p.expire_partial_sets() == 0
    clock.advance(TIMEOUT - 1)
    assert p.expire_partial_sets() == 0
    clock.advance(2)
    assert p.expire_partial_sets() == 1


def test_after_a_reboot_with_the_wall_clock_far_ahead_a_set_gets_the_reboot_grace(
        store: Store, clock: ManualClock) -> None:
    hold_one_part(store, clock)
    clock.reboot(wall=clock.wall() + 365 * 86400)
    p = pipeline(store, clock)
    assert p.expire_partial_sets() == 0  # the start-up sweep may still bring its parts
    clock.advance(REBOOT_GRACE + 1)
    assert p.expire_partial_sets() == 1


def test_after_a_reboot_the_wall_clock_time_waited_counts(store: Store,
                                                         clock: ManualClock) -> None:
    hold_one_part(store, clock)
    clock.reboot(wall=clock.wall() + TIMEOUT / 2)  # down for half the timeout
    p = pipeline(store, clock)
    assert p.expire_partial_sets() == 0  # the daemon's first look, at start
    clock.advance(TIMEOUT / 2 - 10)
    assert p.expire_partial_sets() == 0
    clock.advance(20)
    assert p.expire_partial_sets() == 1

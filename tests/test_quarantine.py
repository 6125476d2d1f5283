"""One journal row that fails, whatever the exception, never stops the rows behind it: bounded
retries whose count survives restarts, then quarantine (dead letter with the reason)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modemd.clock import ManualClock
from modemd.config import config_from_dict
from modemd.payload.engine import PayloadEngine
from modemd.pipeline import MAX_ATTEMPTS, Pipeline, Route
from modemd.sms.encode import encode_deliver, encode_deliver_parts
from modemd.store import Store

SCTS = datetime(2026, 11, 25, 9, 30, 15, tzinfo=UTC)
SENDER = "+4915112345678"
ROUTES = [Route("mqtt", frozenset({"sms", "reading", "deadletter"}))]
LONG = "Pumpstation Nord meldet Druckabfall im Hauptstrang. " * 8


def outbox(store: Store, kind: str) -> list[dict[str, Any]]:
    return [r.body for r in store.outbox.fetch("mqtt", limit=10_000) if r.kind == kind]


def commit(store: Store, pdu: bytes) -> None:
    store.journal.commit_raw(modem="m1", mode="pdu", raw=pdu)


def drain(pipeline: Pipeline) -> None:
    while pipeline.run_once():
        pass


def engine() -> PayloadEngine:
    cfg = config_from_dict({"parser": [{
        "name": "meter", "match": {"text": "^ID="}, "format": "kv", "device_field": "ID",
        "fields": {"T": {"name": "t", "type": "float"}},
    }]})
    return PayloadEngine(cfg.parser, cfg.devices)


def exploding_discovery(reading: Any) -> list[tuple[str, dict[str, Any]]]:
    """A bug that meets one device: a KeyError nobody foresaw, not a PayloadError."""
    if reading.device == "BOOM":
        raise KeyError("unit")
    return []


def pipeline_for(store: Store, clock: ManualClock, **kwargs: Any) -> Pipeline:
    return Pipeline(store, routes=ROUTES, engine=engine(), discovery=exploding_discovery,
                    clock=clock, **kwargs)


def sms(text: str, second: int = 0) -> bytes:
    return encode_deliver(sender=SENDER, text=text, scts=SCTS + timedelta(seconds=second))


def retry_until_quarantined(pipeline: Pipeline, clock: ManualClock, rounds: int) -> None:
    for _ in range(rounds):
        clock.advance(60)  # past any backoff
        drain(pipeline)


def test_any_exception_is_retried_a_bounded_number_of_times_then_quarantined(
        tmp_path: Path) -> None:
    store, clock = Store(tmp_path), ManualClock()
    pipeline = pipeline_for(store, clock)
    commit(store, sms("ID=BOOM;T=1"))
    commit(store, sms("ID=OK;T=2", 1))
    drain(pipeline)
    # the row behind the failing one is through at once
    assert [r["device"] for r in outbox(store, "reading")] == ["OK"]
    assert len(store.journal.pending()) == 1
    drain(pipeline)  # within the backoff: not tried again
    assert store.db.connection().execute(
        "SELECT attempts FROM journal WHERE state = 'new'").fetchone()[0] == 1
    retry_until_quarantined(pipeline, clock, MAX_ATTEMPTS - 1)
    assert store.journal.pending() == []
    (dead,) = outbox(store, "deadletter")
    assert dead["reason"] == f"processing failed {MAX_ATTEMPTS} times: KeyError: 'unit'"
    assert dead["raw"] == sms("ID=BOOM;T=1").hex().upper()
    counters = store.db.counters()
    assert counters["pipeline.quarantined"] == 1 and counters["deadletters"] == 1
    states = dict(store.db.connection().execute("SELECT state, count(*) FROM journal GROUP BY 1"))
    assert states == {"done": 1, "failed": 1}
    (message,) = [m for m in store.journal.recent_messages() if m["status"] == "deadletter"]
    assert "KeyError" in message["reason"]
    retry_until_quarantined(pipeline, clock, 2)
    assert len(outbox(store, "deadletter")) == 1  # quarantined once, not again
    store.close()


def test_the_attempt_count_survives_a_restart(tmp_path: Path) -> None:
    clock = ManualClock()
    store = Store(tmp_path)
    pipeline = pipeline_for(store, clock)
    commit(store, sms("ID=BOOM;T=1"))
    retry_until_quarantined(pipeline, clock, MAX_ATTEMPTS - 2)
    assert outbox(store, "deadletter") == []
    store.close()
    store = Store(tmp_path)  # a restart (or a restart loop): the count goes on
    pipeline = pipeline_for(store, clock)
    retry_until_quarantined(pipeline, clock, 2)
    assert len(outbox(store, "deadletter")) == 1
    assert store.journal.pending() == []
    store.close()


def test_a_row_waiting_for_its_retry_does_not_hold_back_a_full_batch(tmp_path: Path) -> None:
    store, clock = Store(tmp_path), ManualClock()
    pipeline = pipeline_for(store, clock)
    commit(store, sms("ID=BOOM;T=1"))
    for i in range(150):
        commit(store, sms(f"ID=OK{i};T={i}", i + 1))
    drain(pipeline)
    assert len(outbox(store, "reading")) == 150
    assert len(store.journal.pending()) == 1
    store.close()


def test_a_set_whose_release_fails_is_quarantined_whole(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store, clock = Store(tmp_path), ManualClock()
    pipeline = Pipeline(store, routes=ROUTES, multipart_timeout=600, clock=clock)
    parts = encode_deliver_parts(sender=SENDER, text=LONG, scts=SCTS, reference=5)
    assert len(parts) == 3

    def broken_assemble(messages: Any) -> Any:
        raise RuntimeError("a bug in joining")

    monkeypatch.setattr("modemd.pipeline.assemble", broken_assemble)
    commit(store, parts[0])
    commit(store, parts[1])
    commit(store, sms("single message", 9))
    drain(pipeline)
    assert [s["text"] for s in outbox(store, "sms")] == ["single message"]
    clock.advance(601)
    assert pipeline.expire_partial_sets() == 1
    (dead,) = outbox(store, "deadletter")
    assert dead["reason"] == "releasing the set failed: RuntimeError: a bug in joining"
    rows = store.db.connection().execute("SELECT state FROM journal").fetchall()
    assert sorted(r[0] for r in rows) == ["done", "failed", "failed"]
    assert store.db.connection().execute("SELECT count(*) FROM parts").fetchone()[0] == 0
    store.close()


def test_a_store_from_before_the_attempt_and_clock_columns_is_migrated(tmp_path: Path) -> None:
    store = Store(tmp_path)
    parts = encode_deliver_parts(sender=SENDER, text=LONG, scts=SCTS, reference=12)
    commit(store, parts[0])
    store.close()
    # the previous version's schema, with part 1 held under a key without a generation
    conn = sqlite3.connect(tmp_path / "modemd.sqlite3")
    for table, column in (("journal", "attempts"), ("parts", "boot_id"),
                          ("parts", "mono_seen"), ("parts", "sent_at")):
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    (raw_id,) = conn.execute("SELECT raw_id FROM journal").fetchone()
    conn.execute("UPDATE journal SET state = 'held'")
    conn.execute("INSERT INTO parts(group_key, sequence, total, raw_id, first_seen)"
                 " VALUES (?, 1, 3, ?, ?)", (f"m1|{SENDER}|8:12|3", raw_id, 1_790_000_000.0))
    conn.execute("PRAGMA user_version = 2")  # the schema version before these columns
    conn.commit()
    conn.close()

    store = Store(tmp_path)
    for pdu in parts[1:]:
        commit(store, pdu)
    drain(Pipeline(store, routes=ROUTES, clock=ManualClock(wall=1_790_000_100.0)))
    (whole,) = outbox(store, "sms")
    assert whole["text"] == LONG and whole["complete"] is True
    store.close()

"""Journal → decode → reassemble → parse → outbox, on a real store (no modem, no network)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modemd.clock import ManualClock
from modemd.config import config_from_dict
from modemd.payload.engine import PayloadEngine
from modemd.payload.senders import AllowList
from modemd.pipeline import Pipeline, Route
from modemd.sms.encode import encode_deliver, encode_deliver_parts
from modemd.store import Store

SCTS = datetime(2026, 11, 25, 9, 30, 15, tzinfo=UTC)
LONG = ("Pumpstation Nord meldet: Druckabfall im Hauptstrang, Reserve-Pumpe gestartet. "
        "Bitte Ventil V3 pruefen und den Filter tauschen, sobald ein Techniker vor Ort ist. "
        "Naechste Meldung in 15 Minuten oder bei Aenderung des Zustands.") * 2

ROUTES = [Route("mqtt", frozenset({"sms", "reading", "deadletter"}))]


def outbox(store: Store, kind: str | None = None) -> list[dict[str, Any]]:
    rows = store.outbox.fetch("mqtt", limit=1000)
    return [r.body for r in rows if kind is None or r.kind == kind]


def commit(store: Store, pdu: bytes, modem: str = "m1") -> None:
    store.journal.commit_raw(modem=modem, mode="pdu", raw=pdu)


def drain(pipeline: Pipeline) -> None:
    while pipeline.run_once():
        pass


def test_shuffled_parts_make_one_message(tmp_path: Path) -> None:
    store = Store(tmp_path)
    pipeline = Pipeline(store, routes=ROUTES)
    parts = encode_deliver_parts(sender="+4915112345678", text=LONG, scts=SCTS, reference=42)
    assert len(parts) >= 3
    random.Random(3).shuffle(parts)
    for pdu in parts:
        commit(store, pdu)
    drain(pipeline)
    (sms,) = outbox(store, "sms")
    assert sms["text"] == LONG
    assert sms["parts"] == len(parts) and sms["complete"] is True
    assert store.journal.pending() == []
    store.close()


def test_a_restart_in_the_middle_of_a_set(tmp_path: Path) -> None:
    parts = encode_deliver_parts(sender="+4915112345678", text=LONG, scts=SCTS, reference=300,
                                 ref_bits=16)
    store = Store(tmp_path)
    commit(store, parts[0])
    drain(Pipeline(store, routes=ROUTES))
    assert outbox(store, "sms") == []
    store.close()
    # The daemon restarts: the held part must still be there.
    store = Store(tmp_path)
    pipeline = Pipeline(store, routes=ROUTES)
    for pdu in parts[1:]:
        commit(store, pdu)
    drain(pipeline)
    (sms,) = outbox(store, "sms")
    assert sms["text"] == LONG and sms["complete"] is True
    store.close()


def test_an_incomplete_set_is_delivered_after_the_timeout(tmp_path: Path) -> None:
    store = Store(tmp_path)
    parts = encode_deliver_parts(sender="+4915112345678", text=LONG, scts=SCTS, reference=7)
    pipeline = Pipeline(store, routes=ROUTES, multipart_timeout=3600)
    for pdu in (parts[0], parts[2]):
        commit(store, pdu)
    drain(pipeline)
    assert outbox(store, "sms") == []  # held, not dropped, not delivered early
    pipeline.multipart_timeout = 0.0
    assert pipeline.expire_partial_sets() == 1
    (sms,) = outbox(store, "sms")
    assert sms["complete"] is False
    assert sms["missing"] == [2]
    assert sms["parts"] == len(parts)
    store.close()


def test_a_redelivered_part_with_other_octets_is_never_glued_or_dropped(tmp_path: Path) -> None:
    clock = ManualClock()
    store = Store(tmp_path)
    pipeline = Pipeline(store, routes=ROUTES, multipart_timeout=3600, clock=clock)
    parts = encode_deliver_parts(sender="+4915112345678", text=LONG, scts=SCTS, reference=9)
    # The network re-delivers part 1 with a later service-centre time: other octets. Only the
    # very same part is a duplicate; this one waits as a set of its own.
    again = encode_deliver_parts(sender="+4915112345678", text=LONG,
                                 scts=SCTS.replace(second=59), reference=9)[0]
    commit(store, parts[0])
    commit(store, again)
    for pdu in parts[1:]:
        commit(store, pdu)
    drain(pipeline)
    (sms,) = outbox(store, "sms")
    assert sms["text"] == LONG and sms["complete"] is True
    assert "parts.duplicates" not in store.db.counters()
    clock.advance(3600)
    assert pipeline.expire_partial_sets() == 1
    _, extra = outbox(store, "sms")
    assert extra["complete"] is False and extra["missing"] == [2, 3]
    assert extra["text"] == LONG[:153]
    store.close()


def test_the_same_pdu_twice_is_one_message(tmp_path: Path) -> None:
    store = Store(tmp_path)
    pipeline = Pipeline(store, routes=ROUTES)
    pdu = encode_deliver(sender="+4915112345678", text="hello", scts=SCTS)
    commit(store, pdu)
    drain(pipeline)
    commit(store, pdu)  # re-read after a crash between commit and delete
    drain(pipeline)
    assert len(outbox(store, "sms")) == 1
    store.close()


@pytest.mark.parametrize(("raw", "reason"), [
    (bytes.fromhex("0791"), "undecodable PDU"),
    (bytes.fromhex("07914306073011F0040B914316709807F20008806042902240"), "undecodable PDU"),
])
def test_an_undecodable_pdu_is_dead_lettered_and_the_next_one_flows(
        tmp_path: Path, raw: bytes, reason: str) -> None:
    store = Store(tmp_path)
    pipeline = Pipeline(store, routes=ROUTES)
    commit(store, raw)
    commit(store, encode_deliver(sender="+4915112345678", text="after the bad one", scts=SCTS))
    drain(pipeline)
    (dead,) = outbox(store, "deadletter")
    assert dead["reason"].startswith(reason)
    assert dead["raw"] == raw.hex().upper()
    assert [s["text"] for s in outbox(store, "sms")] == ["after the bad one"]
    assert store.db.counters()["deadletters"] == 1
    store.close()


def test_a_sender_not_allowed_is_dead_lettered_not_parsed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    pipeline = Pipeline(store, routes=ROUTES,
                        senders=AllowList({"m1": ["+49151*"]}))
    commit(store, encode_deliver(sender="+4915112345678", text="allowed", scts=SCTS))
    commit(store, encode_deliver(sender="+447700900123", text="stranger", scts=SCTS))
    drain(pipeline)
    assert [s["text"] for s in outbox(store, "sms")] == ["allowed"]
    (dead,) = outbox(store, "deadletter")
    assert "+447700900123 is not allowed" in dead["reason"]
    store.close()


def test_readings_and_unparseable_payloads(tmp_path: Path) -> None:
    cfg = config_from_dict({"parser": [{
        "name": "pump", "match": {"sender": "+49151*", "text": "^ID="}, "format": "kv",
        "device_field": "ID",
        "fields": {"BAT": {"name": "battery", "type": "float", "unit": "V", "max": 5},
                   "T": {"name": "temperature", "type": "float", "unit": "°C"}},
    }]})
    engine = PayloadEngine(cfg.parser, cfg.devices)
    store = Store(tmp_path)
    pipeline = Pipeline(store, routes=ROUTES, engine=engine)
    commit(store, encode_deliver(sender="+4915112345678", text="ID=PUMP01;BAT=3.71;T=21.5",
                                 scts=SCTS))
    commit(store, encode_deliver(sender="+4915112345678", text="ID=PUMP01;BAT=37.1;T=21.5",
                                 scts=SCTS.replace(second=16)))
    drain(pipeline)
    (reading,) = outbox(store, "reading")
    assert reading["device"] == "PUMP01"
    assert reading["fields"] == {"battery": 3.71, "temperature": 21.5}
    assert reading["sent_at"] == "2026-11-25T09:30:15+00:00"
    assert reading["state"]["battery"] == 3.71 and reading["state"]["device"] == "PUMP01"
    (dead,) = outbox(store, "deadletter")
    assert "battery" in dead["reason"] and dead["raw"] == "ID=PUMP01;BAT=37.1;T=21.5"
    assert len(outbox(store, "sms")) == 2  # both are still published as SMS
    store.close()


def test_a_straggler_of_a_released_set_is_published_linked_to_it(tmp_path: Path) -> None:
    clock = ManualClock()
    store = Store(tmp_path)
    parts = encode_deliver_parts(sender="+4915112345678", text=LONG, scts=SCTS, reference=8)
    assert len(parts) == 3
    pipeline = Pipeline(store, routes=ROUTES, multipart_timeout=3600, clock=clock)
    commit(store, parts[0])
    drain(pipeline)
    clock.advance(3600)
    assert pipeline.expire_partial_sets() == 1
    (first,) = outbox(store, "sms")
    assert first["missing"] == [2, 3] and "late_for" not in first

    # Parts 2 and 3 turn up late: held for the grace, not for another whole timeout.
    clock.advance(600)
    commit(store, parts[1])
    commit(store, parts[2])
    drain(pipeline)
    assert len(outbox(store, "sms")) == 1
    clock.advance(59)
    assert pipeline.expire_partial_sets() == 0  # the grace has not passed
    held = store.db.connection().execute("SELECT first_seen FROM parts").fetchall()
    assert len(held) == 2
    clock.advance(2)
    assert pipeline.expire_partial_sets() == 1
    first_again, late = outbox(store, "sms")
    assert first_again == first
    assert late["late_for"] == first["id"] and late["id"] != first["id"]
    assert late["complete"] is False and late["missing"] == [1]
    assert first["text"] + late["text"] == LONG
    store.close()


def test_a_new_set_long_after_a_release_is_not_late(tmp_path: Path) -> None:
    store = Store(tmp_path)
    parts = encode_deliver_parts(sender="+4915112345678", text=LONG, scts=SCTS, reference=8)
    pipeline = Pipeline(store, routes=ROUTES, multipart_timeout=3600)
    commit(store, parts[0])
    drain(pipeline)
    pipeline.multipart_timeout = 0.0
    assert pipeline.expire_partial_sets() == 1
    # The same reference comes round again two timeouts later: an ordinary new set.
    conn = store.db.connection()
    assert conn.execute("SELECT count(*) FROM released_sets").fetchone()[0] == 1
    conn.execute("UPDATE released_sets SET released_at = released_at - 7201")
    pipeline.multipart_timeout = 3600
    again = encode_deliver_parts(sender="+4915112345678", text=LONG, scts=SCTS.replace(hour=11),
                                 reference=8)
    commit(store, again[1])
    drain(pipeline)
    assert pipeline.expire_partial_sets() == 0
    (first_seen,) = conn.execute("SELECT first_seen FROM parts").fetchone()
    assert first_seen > time.time() - 60  # a whole timeout to wait, not a straggler's grace
    for pdu in (again[0], again[2]):
        commit(store, pdu)
    drain(pipeline)
    whole = [m for m in outbox(store, "sms") if m["complete"]]
    assert len(whole) == 1 and whole[0]["text"] == LONG and "late_for" not in whole[0]
    store.close()

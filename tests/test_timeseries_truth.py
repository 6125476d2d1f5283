"""The time-series store tells the truth (issues 11 and 14), read back from a real VictoriaMetrics.

SMS go through the real pipeline (decode, payload rules, outbox) into the time-series sink:

* enum fields are written as their numeric code, plain text fields are left out (the server
  would store them as 0, a flat "error = 0" that reads as "no error");
* the ``modem`` tag on readings can be switched off, so a device keeps one series;
* three readings of one device in the same service-centre second stay three points, and a
  replay of one of them still overwrites;
* a device id line protocol cannot carry is parked with the reason, never written mangled.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modemd.payload.config import load_payload_config
from modemd.payload.engine import PayloadEngine
from modemd.pipeline import Pipeline, Route
from modemd.sinks.influx import InfluxSink
from modemd.sms.encode import encode_deliver
from modemd.store import Store
from tests.victoriametrics import VictoriaMetrics

pytestmark = pytest.mark.integration

GATEWAY = "gw1"
SCTS = datetime(2026, 11, 25, 8, 15, 0, tzinfo=UTC)
SCTS_MS = int(SCTS.timestamp()) * 1000

RULES = """
[[parser]]
name = "pump"
match = { text = "^ID=" }
format = "kv"
device_field = "ID"
measurement = "pump_status"
[parser.fields]
BAT = { name = "battery", type = "float", unit = "V" }
MODE = { name = "mode", type = "enum", required = false, values = { "A" = "auto", "M" = "manual" } }
NOTE = { name = "note", type = "string", required = false }
[parser.fields.ERR]
name = "error"
type = "enum"
required = false
values = { "0" = "ok", "3" = "overheat", "7" = "dry_run" }
"""


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    with VictoriaMetrics(tmp_path / "vm") as server:
        yield server


def pipeline(store: Store) -> Pipeline:
    config = load_payload_config(tomllib.loads(RULES))
    return Pipeline(store, routes=[Route("influx", InfluxSink.kinds)],
                    engine=PayloadEngine(config.parser, config.devices))


def receive(store: Store, text: str, *, modem: str = "m1", sender: str = "+4915112345678",
            scts: datetime = SCTS) -> None:
    store.journal.commit_raw(modem=modem, mode="pdu",
                             raw=encode_deliver(sender=sender, scts=scts, text=text))


def run(store: Store, vm: VictoriaMetrics, **sink_options: Any) -> InfluxSink:
    p = pipeline(store)
    while p.run_once():
        pass
    sink = InfluxSink(store, url=vm.url, org="o", bucket="b", token=None, gateway_id=GATEWAY,
                      **sink_options)
    try:
        while sink.run_once():
            pass
    finally:
        sink.close()
    return sink


def series(vm: VictoriaMetrics, name: str) -> list[tuple[str, float, int]]:
    return [(s.labels["device"], s.value, s.timestamp_ms)
            for s in vm.export(f'{{__name__="{name}"}}')]


def parked(store: Store) -> dict[str, str]:
    return {json.loads(body)["device"]: error for body, error in store.db.connection().execute(
        "SELECT body, error FROM outbox WHERE sink = 'influx' AND state = 'poisoned'")}


def test_enums_are_their_codes_and_text_is_never_a_number(
    vm: VictoriaMetrics, store: Store
) -> None:
    receive(store, "ID=P1;BAT=3.7;ERR=3;MODE=M;NOTE=valve stuck", scts=SCTS)
    receive(store, "ID=P2;BAT=3.6;ERR=0;MODE=A", scts=SCTS.replace(minute=16))
    run(store, vm)
    # the code the device sent (all raw values are whole numbers) ...
    assert sorted((d, v) for d, v, _ in series(vm, "pump_status_error")) == [
        ("P1", 3.0), ("P2", 0.0)]
    # ... or the label's position in the options list (raw values "A", "M")
    assert sorted((d, v) for d, v, _ in series(vm, "pump_status_mode")) == [
        ("P1", 1.0), ("P2", 0.0)]
    assert vm.export('{__name__="pump_status_note"}') == []  # never a 0 nobody sent
    assert {d for d, _, _ in series(vm, "pump_status_battery")} == {"P1", "P2"}
    assert parked(store) == {}


def test_a_reading_with_text_fields_only_is_delivered_not_parked(
    vm: VictoriaMetrics, store: Store
) -> None:
    store.outbox.put(sink="influx", kind="reading", msg_id="x", body={
        "device": "T1", "measurement": "m", "fields": {"note": "hello"},
        "sent_at": SCTS.isoformat(), "msg_id": "x"})
    run(store, vm)
    (stats,) = store.outbox.stats(["influx"])
    assert (stats.pending, stats.poisoned) == (0, 0)
    assert vm.export('{__name__=~"m_.*"}') == []


def test_the_modem_tag_can_be_left_off_so_a_device_keeps_one_series(
    vm: VictoriaMetrics, store: Store
) -> None:
    receive(store, "ID=P1;BAT=3.7", modem="m1", scts=SCTS)
    receive(store, "ID=P1;BAT=3.6", modem="m2", scts=SCTS.replace(minute=20))
    run(store, vm, modem_tag=False)
    samples = vm.export('{__name__="pump_status_battery"}')
    assert [s.value for s in samples] == [3.7, 3.6]
    assert {tuple(sorted(s.labels.items())) for s in samples} == {
        (("device", "P1"), ("gateway", GATEWAY))}


def test_the_modem_tag_is_there_by_default(vm: VictoriaMetrics, store: Store) -> None:
    receive(store, "ID=P1;BAT=3.7", modem="m1")
    run(store, vm)
    (sample,) = vm.export('{__name__="pump_status_battery"}')
    assert sample.labels == {"device": "P1", "gateway": GATEWAY, "modem": "m1"}


def _offset_ms(msg_id: str) -> int:
    return int.from_bytes(hashlib.sha256(msg_id.encode()).digest()[:8], "big") % 1000


def test_three_readings_in_one_second_stay_three_points_and_a_replay_overwrites(
    vm: VictoriaMetrics, store: Store
) -> None:
    for battery in ("3.71", "3.72", "3.73"):
        receive(store, f"ID=P1;BAT={battery}", scts=SCTS)
    run(store, vm)
    samples = series(vm, "pump_status_battery")
    assert sorted(v for _, v, _ in samples) == [3.71, 3.72, 3.73]
    stamps = [ts for _, _, ts in samples]
    assert len(set(stamps)) == 3
    assert all(SCTS_MS <= ts < SCTS_MS + 1000 for ts in stamps)  # within the SCTS second
    ids = [row[0] for row in store.db.connection().execute("SELECT id FROM messages")]
    assert sorted(SCTS_MS + _offset_ms(i) for i in ids) == sorted(stamps)

    # The same SMS again (re-read after a crash, or `modemd outbox --replay`): same instant.
    store.outbox.put(sink="influx", kind="reading", msg_id=ids[0], body={
        "device": "P1", "measurement": "pump_status", "fields": {"battery": 3.7},
        "sent_at": SCTS.isoformat(), "msg_id": ids[0], "modem": "m1"})
    run(store, vm)
    after = series(vm, "pump_status_battery")
    assert len(after) == 3
    assert sorted(ts for _, _, ts in after) == sorted(stamps)


@pytest.mark.parametrize("device", ["BAD\\,X", "BAD\\=X", "BAD\\", "BAD\\\\X"])
def test_a_device_id_line_protocol_cannot_carry_is_parked_with_the_reason(
    vm: VictoriaMetrics, store: Store, device: str
) -> None:
    receive(store, f"ID={device};BAT=1.5", scts=SCTS)
    receive(store, "ID=GOOD;BAT=2.5", scts=SCTS)
    run(store, vm)
    reasons = parked(store)
    assert set(reasons) == {device}
    assert "backslash" in reasons[device]
    # nothing written under a mangled name, and the next reading was not held up
    assert {d for d, _, _ in series(vm, "pump_status_battery")} == {"GOOD"}


def test_a_backslash_that_escapes_nothing_is_written_and_read_back_unchanged(
    vm: VictoriaMetrics, store: Store
) -> None:
    receive(store, "ID=A\\B;BAT=1.5")
    run(store, vm)
    assert [d for d, _, _ in series(vm, "pump_status_battery")] == ["A\\B"]
    assert parked(store) == {}

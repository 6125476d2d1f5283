"""Rows published straight from the thread that committed them (issue 18), never twice and
never ahead of older rows.

The pipeline offers the rows a message put in the outbox to the MQTT sink, which publishes
them from the pipeline's (or the receiving modem's) thread instead of waking its own thread
to read them back. That is only allowed when nothing older waits: a reading published ahead
of an older one would leave the older value as the retained state.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from modemd.config import Config
from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.sinks.mqtt import MqttSettings, MqttSink
from modemd.store import Store
from modemd.store.journal import raw_id_for
from modemd.store.outbox import Outbox, OutboxRow
from tests.helpers import load, unique_pdus, wait_until, write_config
from tests.mosquitto import Mosquitto
from tests.mqtt_client import Recorder

pytestmark = pytest.mark.integration


def pending(store: Store) -> int:
    (stats,) = store.outbox.stats(["mqtt"])
    return int(stats.pending)


def one_modem(tmp_path: Path, sim: SimulatedModem, broker: Mosquitto,
              **mqtt: object) -> Config:
    return load(write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                             modems=[{"name": "m1", "port": sim.port}],
                             mqtt={"host": "127.0.0.1", "port": broker.port, "keepalive": 5,
                                   **mqtt}))


def committed_row(store: Store, n: int) -> OutboxRow:
    body = {"id": f"id{n}", "n": n}
    with store.db.transaction() as conn:
        seq = Outbox.enqueue(conn, sink="mqtt", kind="sms", msg_id=f"id{n}", body=body)
    return OutboxRow(seq=seq, sink="mqtt", kind="sms", msg_id=f"id{n}", body=body,
                     created_at=time.time(), attempts=0)


def test_a_row_the_sink_thread_already_published_is_not_published_again(
    store: Store, broker: Mosquitto
) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port, gateway_id="gw", keepalive=30)
    sink = MqttSink(store, settings)
    recorder = Recorder(broker.port, ["modemd/gw/sms"])
    sink.start()
    try:
        wait_until(sink.connected.is_set, what="connected")
        row = committed_row(store, 1)
        sink.wake()  # the sink thread reads it first (the committer's thread was slow)
        wait_until(lambda: pending(store) == 0, 10, what="published and acknowledged")
        sink.offer([row])  # the late offer of the same row
        later = committed_row(store, 2)
        sink.offer([later])
        wait_until(lambda: pending(store) == 0, 10, what="the second row acknowledged")
        time.sleep(0.3)
        assert [m.json()["n"] for m in recorder.messages] == [1, 2]
    finally:
        sink.stop()
        recorder.close()


def test_an_offer_never_overtakes_rows_that_wait(store: Store, broker: Mosquitto) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port, gateway_id="gw", keepalive=30,
                            max_inflight=5)
    sink = MqttSink(store, settings)
    recorder = Recorder(broker.port, ["modemd/gw/sms"])
    sink.start()
    try:
        wait_until(sink.connected.is_set, what="connected")
        for n in range(20):  # written by another process (the CLI): nobody woke the sink
            committed_row(store, n)
        sink.offer([committed_row(store, 20)])  # declined: 20 older rows wait
        recorder.wait_count("modemd/gw/sms", 21)
        assert [m.json()["n"] for m in recorder.messages] == list(range(21))
    finally:
        sink.stop()
        recorder.close()


def test_messages_arriving_while_a_backlog_drains_keep_their_order(
    tmp_path: Path, sim: SimulatedModem, broker: Mosquitto
) -> None:
    daemon = Daemon(one_modem(tmp_path, sim, broker, max_inflight=4))
    daemon.start()
    pdus = unique_pdus(60, sender="+4915112345678", text="reading {i}")
    try:
        sink = daemon.sinks[0]
        assert isinstance(sink, MqttSink)
        wait_until(sink.connected.is_set, what="connected")
        broker.stop()
        for pdu in pdus[:40]:
            sim.deliver(pdu)
        wait_until(lambda: daemon.store is not None and pending(daemon.store) >= 40,
                   what="40 rows waiting")
        broker.start()
        recorder = Recorder(broker.port, ["modemd/gw1/sms"])
        try:
            for pdu in pdus[40:]:  # while the 40 drain, four at a time
                sim.deliver(pdu)
                time.sleep(0.01)
            received = recorder.wait_count("modemd/gw1/sms", 60, timeout=60)
            time.sleep(0.3)
            ids = [m.json()["id"] for m in recorder.messages]
        finally:
            recorder.close()
        assert ids == [raw_id_for("pdu", p) for p in pdus]
        assert len(received) == 60
    finally:
        daemon.stop()


def test_a_message_that_comes_while_the_pipeline_is_busy_waits_for_it_and_arrives_once(
    tmp_path: Path, sim: SimulatedModem, broker: Mosquitto
) -> None:
    daemon = Daemon(one_modem(tmp_path, sim, broker))
    daemon.start()
    recorder = Recorder(broker.port, ["modemd/gw1/sms"])
    pdus = unique_pdus(3, sender="+4915112345678", text="busy {i}")
    try:
        assert daemon.pipeline is not None and daemon.store is not None
        store = daemon.store
        with daemon.pipeline._turn_lock:  # the pipeline thread is on a (long) batch
            for pdu in pdus:
                sim.deliver(pdu)
            wait_until(lambda: store.journal.count() == 3, what="journalled")
            time.sleep(0.3)
            assert recorder.messages == []  # not processed behind the pipeline's back
        received = recorder.wait_count("modemd/gw1/sms", 3)
        time.sleep(0.3)
        assert sorted(m.json()["id"] for m in recorder.messages) == \
            sorted(raw_id_for("pdu", p) for p in pdus)
        assert len(received) == 3
    finally:
        daemon.stop()
        recorder.close()

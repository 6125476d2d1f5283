"""Outbox and MQTT against a real mosquitto: contract, outages, crashes, Last Will, TLS."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.store import Store
from modemd.store.journal import raw_id_for
from tests.helpers import DaemonProcess, load, on_sim, unique_pdus, wait_until, write_config
from tests.mosquitto import Mosquitto, make_tls_files
from tests.mqtt_client import Recorder

pytestmark = pytest.mark.integration

SMS_FIELDS = {"id", "modem", "sender", "smsc", "sent_at", "received_at", "encoding", "text",
              "parts", "complete"}


@pytest.fixture
def recorder(broker: Mosquitto) -> Iterator[Recorder]:
    rec = Recorder(broker.port, ["modemd/#"])
    yield rec
    rec.close()


def config_for(tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, **mqtt: object) -> Path:
    return write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                        modems=[{"name": "m1", "port": sim.port}],
                        mqtt={"host": "127.0.0.1", "port": broker.port, "keepalive": 5,
                              **mqtt})


def sms_ids(recorder: Recorder) -> list[str]:
    return [m.json()["id"] for m in recorder.on("modemd/gw1/sms")]


def test_messages_arrive_with_the_documented_json(tmp_path: Path, sim: SimulatedModem,
                                                  broker: Mosquitto,
                                                  recorder: Recorder) -> None:
    daemon = Daemon(load(config_for(tmp_path, sim, broker)))
    daemon.start()
    try:
        pdus = unique_pdus(3, sender="+4915112345678", text="ID=PUMP01;BAT=3.7{i}")
        for pdu in pdus:
            sim.deliver(pdu)
        received = recorder.wait_count("modemd/gw1/sms", 3)
        docs = [m.json() for m in received]
        assert {d["id"] for d in docs} == {raw_id_for("pdu", p) for p in pdus}
        for i, doc in enumerate(sorted(docs, key=lambda d: d["text"])):
            assert set(doc) >= SMS_FIELDS
            assert doc["text"] == f"ID=PUMP01;BAT=3.7{i}"
            assert doc["sender"] == "+4915112345678"
            assert doc["smsc"] == "+491710760000"
            assert doc["modem"] == "m1"
            assert doc["encoding"] == "gsm7"
            assert doc["parts"] == 1 and doc["complete"] is True
            assert datetime.fromisoformat(doc["sent_at"]).utcoffset() is not None
            datetime.fromisoformat(doc["received_at"])
        assert all(not m.retain for m in received)
        status = recorder.wait_count("modemd/gw1/status", 1)
        assert status[-1].payload == b"online"
        state = recorder.wait_count("modemd/gw1/modem/m1/state", 1)[-1].json()
        assert state["imei"] == sim.identity.imei and state["online"] is True
        assert {"imsi", "iccid", "operator", "registration", "signal", "storage", "last_error",
                "updated_at"} <= set(state)
    finally:
        daemon.stop()
    # A clean stop says offline.
    recorder.wait_for(lambda msgs: [m.payload for m in msgs if m.topic == "modemd/gw1/status"]
                      [-1:] == [b"offline"])


def test_broker_down_for_20s_while_30_messages_arrive(tmp_path: Path, sim: SimulatedModem,
                                                      broker: Mosquitto,
                                                      recorder: Recorder) -> None:
    daemon = Daemon(load(config_for(tmp_path, sim, broker)))
    daemon.start()
    try:
        recorder.wait_count("modemd/gw1/status", 1)
        broker.stop()
        pdus = unique_pdus(30)
        started = time.monotonic()
        for pdu in pdus:
            sim.deliver(pdu)
            time.sleep(0.5)
        wait_until(lambda: not on_sim(sim), what="all taken off the SIM")
        time.sleep(max(0.0, 20 - (time.monotonic() - started)))
        broker.start()
        rec2 = Recorder(broker.port, ["modemd/gw1/sms"])
        try:
            rec2.wait_count("modemd/gw1/sms", 30, timeout=60)
            ids = [m.json()["id"] for m in rec2.on("modemd/gw1/sms")]
        finally:
            rec2.close()
        assert set(ids) == {raw_id_for("pdu", p) for p in pdus}
        assert daemon.store is not None
        wait_until(lambda: daemon.store is not None and daemon.store.outbox.stats(["mqtt"])[0]
                   .pending == 0, what="outbox empty")
    finally:
        daemon.stop()


def test_sigkill_with_rows_in_the_outbox_delivers_all_after_restart(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto) -> None:
    cfg = config_for(tmp_path, sim, broker)
    daemon = DaemonProcess(cfg).start()
    pdus = unique_pdus(10)
    try:
        rec = Recorder(broker.port, ["modemd/gw1/#"])
        rec.wait_count("modemd/gw1/status", 1, timeout=20)
        rec.close()
        broker.stop()
        for pdu in pdus:
            sim.deliver(pdu)

        def queued() -> bool:
            store = Store(tmp_path / "state")
            try:
                return store.outbox.stats(["mqtt"])[0].pending >= 10
            finally:
                store.close()

        wait_until(queued, timeout=20, what="10 rows in the outbox")
        daemon.kill()
        broker.start()
        rec = Recorder(broker.port, ["modemd/gw1/sms"])
        try:
            daemon = DaemonProcess(cfg).start()
            rec.wait_count("modemd/gw1/sms", 10, timeout=30)
            docs = [m.json() for m in rec.on("modemd/gw1/sms")]
        finally:
            rec.close()
        expected = {raw_id_for("pdu", p) for p in pdus}
        assert {d["id"] for d in docs} == expected
        # Duplicates are allowed, but each carries the same id as the original.
        assert all(d["id"] in expected for d in docs)
    finally:
        daemon.stop()


def test_status_goes_offline_by_will_on_kill_and_online_on_return(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, recorder: Recorder) -> None:
    cfg = config_for(tmp_path, sim, broker)
    daemon = DaemonProcess(cfg).start()
    try:
        def statuses() -> list[bytes]:
            return [m.payload for m in recorder.on("modemd/gw1/status")]

        wait_until(lambda: statuses()[-1:] == [b"online"], timeout=20, what="online")
        daemon.kill()
        wait_until(lambda: statuses()[-1:] == [b"offline"], timeout=20, what="Last Will")
        daemon = DaemonProcess(cfg).start()
        wait_until(lambda: statuses()[-1:] == [b"online"], timeout=20, what="online again")
        assert statuses()[-3:] == [b"online", b"offline", b"online"]
    finally:
        daemon.stop()


def test_tls_with_a_ca_made_by_the_test(tmp_path: Path, sim: SimulatedModem) -> None:
    tls = make_tls_files(tmp_path / "tls")
    with Mosquitto(tmp_path / "tls-broker", tls=tls) as broker:
        rec = Recorder(broker.port, ["modemd/#"], host="localhost", tls_ca=str(tls.ca))
        cfg = config_for(tmp_path, sim, broker, host="localhost", tls={"ca": str(tls.ca)})
        daemon = Daemon(load(cfg))
        daemon.start()
        try:
            (pdu,) = unique_pdus(1, text="over TLS")
            sim.deliver(pdu)
            (msg,) = rec.wait_count("modemd/gw1/sms", 1)
            assert msg.json()["text"] == "over TLS"
        finally:
            daemon.stop()
            rec.close()


def test_a_broker_down_at_boot_never_stops_reception(tmp_path: Path, sim: SimulatedModem,
                                                     broker: Mosquitto) -> None:
    broker.stop()
    daemon = Daemon(load(config_for(tmp_path, sim, broker)))
    daemon.start()
    try:
        wait_until(daemon.drivers[0].ready.is_set, what="modem up without broker")
        (pdu,) = unique_pdus(1)
        sim.deliver(pdu)
        wait_until(lambda: not on_sim(sim), what="taken off the SIM")
        broker.start()
        rec = Recorder(broker.port, ["modemd/gw1/sms"])
        try:
            (msg,) = rec.wait_count("modemd/gw1/sms", 1, timeout=40)
            assert json.loads(msg.payload)["id"] == raw_id_for("pdu", pdu)
        finally:
            rec.close()
    finally:
        daemon.stop()


def test_a_tls_table_without_ca_means_tls_with_the_system_store(
        tmp_path: Path, sim: SimulatedModem, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found: `[mqtt.tls]` with only `insecure = false` connected in plaintext. The system CA
    store is OpenSSL's default, which $SSL_CERT_FILE points at the test's CA here."""
    tls = make_tls_files(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
    monkeypatch.setenv("MODEMD_MQTT_PASSWORD", "not-in-clear")
    with Mosquitto(tmp_path / "tls-broker", tls=tls) as broker:
        rec = Recorder(broker.port, ["modemd/#"], host="localhost", tls_ca=str(tls.ca))
        cfg = config_for(tmp_path, sim, broker, host="localhost", username="gw",
                         tls={"insecure": False})
        daemon = Daemon(load(cfg))
        daemon.start()
        try:
            (pdu,) = unique_pdus(1, text="system CA store")
            sim.deliver(pdu)
            (msg,) = rec.wait_count("modemd/gw1/sms", 1, timeout=30)
            assert msg.json()["text"] == "system CA store"
        finally:
            daemon.stop()
            rec.close()


def test_with_a_tls_table_the_password_never_travels_in_clear(
        tmp_path: Path, sim: SimulatedModem, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the broker's port receives first: a TLS ClientHello, never an MQTT CONNECT."""
    import socket
    import threading

    monkeypatch.setenv("MODEMD_MQTT_PASSWORD", "s3cret-pw")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(20)
    received = bytearray()

    def accept() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(3)
            try:
                while len(received) < 64:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    received.extend(chunk)
            except OSError:
                pass

    listener = threading.Thread(target=accept)
    listener.start()
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}],
                       mqtt={"host": "127.0.0.1", "port": server.getsockname()[1],
                             "username": "gw", "tls": {"insecure": False}})
    daemon = Daemon(load(cfg))
    daemon.start()
    try:
        listener.join(25)
    finally:
        daemon.stop()
        server.close()
    assert received, "the sink never connected"
    assert received[0] == 0x16, f"not a TLS handshake record: {bytes(received[:16])!r}"
    assert b"s3cret-pw" not in received and b"MQTT" not in received

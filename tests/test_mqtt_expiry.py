"""Dead devices stay dead (issue 14): retained device state expires with the rule's expire_after.

Against a real mosquitto: over MQTT 5 the retained state carries a message expiry equal to
``expire_after``, so a subscriber that comes later (Home Assistant after a restart) gets no
state of a device that stopped reporting. A broker that only speaks MQTT 3.1.1 (a real
mosquitto behind a front that refuses MQTT 5 the way a 3.1.1 broker does: CONNACK return
code 1, then close) still gets every row with protocol "auto".
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from modemd.sinks.mqtt import MqttSettings, MqttSink
from modemd.store import Store
from tests.helpers import wait_until
from tests.mosquitto import Mosquitto
from tests.mqtt_client import Recorder

pytestmark = pytest.mark.integration


def pending(store: Store) -> int:
    (stats,) = store.outbox.stats(["mqtt"])
    return int(stats.pending)


def put_reading(store: Store, device: str, expire_after: int | None) -> None:
    store.outbox.put(sink="mqtt", kind="reading", msg_id=device, body={
        "device": device, "rule": "r", "expire_after": expire_after,
        "state": {"device": device, "battery": 3.7}})


def retained_states(port: int) -> set[str]:
    """Device ids whose retained state a subscriber arriving now receives."""
    recorder = Recorder(port, ["modemd/gw/device/+/state"])
    try:
        time.sleep(0.5)  # retained messages come right after the SUBACK
        return {m.topic.split("/")[3] for m in recorder.messages if m.retain and m.payload}
    finally:
        recorder.close()


def test_retained_device_state_expires_with_expire_after_over_mqtt5(
    store: Store, broker: Mosquitto
) -> None:
    sink = MqttSink(store, MqttSettings(host="127.0.0.1", port=broker.port, gateway_id="gw"))
    sink.start()
    try:
        # 3 s, not 1: the first look (connect, SUBACK, 0.5 s) must fall inside it on a busy CI
        put_reading(store, "DEAD", expire_after=3)
        put_reading(store, "FOREVER", expire_after=None)
        sink.wake()
        wait_until(lambda: pending(store) == 0, 10, what="both rows acknowledged")
        acked = time.monotonic()
        assert retained_states(broker.port) == {"DEAD", "FOREVER"}
        time.sleep(max(0.0, acked + 3.6 - time.monotonic()))
        # Home Assistant starting now must not see DEAD as alive.
        assert retained_states(broker.port) == {"FOREVER"}
    finally:
        sink.stop()


def test_a_shortened_expire_after_reaches_the_states_already_retained(
    store: Store, broker: Mosquitto
) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port, gateway_id="gw")

    def put(device: str, rule: str) -> None:
        store.outbox.put(sink="mqtt", kind="reading", msg_id=device, body={
            "device": device, "rule": rule, "expire_after": 3600,
            "state": {"device": device, "battery": 3.7}})

    # a run under expire_after = 3600 for rules r and q
    sink = MqttSink(store, settings, rule_expiry={"r": 3600, "q": 3600})
    sink.start()
    try:
        put("OLD", "r")
        sink.wake()
        wait_until(lambda: pending(store) == 0, 10, what="OLD acknowledged")
        time.sleep(1.5)
        put("YOUNG", "q")
        sink.wake()
        wait_until(lambda: pending(store) == 0, 10, what="YOUNG acknowledged")
    finally:
        sink.stop()
    put("QUEUED", "r")  # queued under the old config, published by the next run
    assert retained_states(broker.port) == {"OLD", "YOUNG"}

    # the config now says 1 s for r and 6 s for q
    started = time.monotonic()
    sink = MqttSink(store, settings, rule_expiry={"r": 1, "q": 6})
    sink.start()
    try:
        # OLD is older than 1 s: cleared at once; QUEUED goes out with 1 s, not its 3600
        wait_until(lambda: not {"OLD", "QUEUED"} & retained_states(broker.port), 10,
                   what="OLD cleared and QUEUED expired")
        assert pending(store) == 0
        # YOUNG (about 1 s old) is published again, unchanged, to expire 6 s after its
        # first publication instead of an hour
        wait_until(lambda: "YOUNG" not in retained_states(broker.port), 15,
                   what="YOUNG expired under the shortened expire_after")
        assert time.monotonic() - started < 12
    finally:
        sink.stop()


def test_over_mqtt311_modemd_clears_an_expired_retained_state_itself(
    store: Store, broker: Mosquitto
) -> None:
    sink = MqttSink(store, MqttSettings(host="127.0.0.1", port=broker.port, gateway_id="gw",
                                        protocol="3.1.1"))
    sink.start()
    try:
        put_reading(store, "DEAD", expire_after=3)  # 3 s: see the test above
        put_reading(store, "FOREVER", expire_after=None)
        sink.wake()
        wait_until(lambda: pending(store) == 0, 10, what="both rows acknowledged")
        acked = time.monotonic()
        assert retained_states(broker.port) == {"DEAD", "FOREVER"}
        time.sleep(max(0.0, acked + 4.5 - time.monotonic()))  # expiry, and the sink's pass
        assert retained_states(broker.port) == {"FOREVER"}
    finally:
        sink.stop()


class Mqtt311Front:
    """A TCP front for mosquitto that answers an MQTT 5 CONNECT as a 3.1.1 broker does."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.refused_v5 = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, name="mqtt311-front")
        self._accept.start()

    def _serve(self) -> None:
        self.server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(client,), name="mqtt311-conn")
            self.threads.append(thread)
            thread.start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(5)
        with client:
            first = client.recv(4096)
            # fixed header, remaining length (1 byte for a small CONNECT), "\0\4MQTT", level
            if len(first) > 9 and first[0] == 0x10 and first[8] == 5:
                self.refused_v5 += 1
                client.sendall(b"\x20\x02\x00\x01")  # CONNACK: unacceptable protocol version
                return
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                upstream.sendall(first)
                upstream.settimeout(0.1)
                client.settimeout(0.1)
                while not self._stop.is_set():
                    for source, target in ((client, upstream), (upstream, client)):
                        try:
                            data = source.recv(65536)
                        except TimeoutError:
                            continue
                        except OSError:
                            return
                        if not data:
                            return
                        target.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self.server.close()
        self._accept.join(5)
        for thread in self.threads:
            thread.join(5)


def test_a_broker_without_mqtt5_still_gets_every_row(store: Store, broker: Mosquitto) -> None:
    front = Mqtt311Front(broker.port)
    recorder = Recorder(broker.port, ["modemd/#"])
    sink = MqttSink(store, MqttSettings(host="127.0.0.1", port=front.port, gateway_id="gw"))
    sink.start()
    try:
        put_reading(store, "P1", expire_after=60)
        sink.wake()
        wait_until(lambda: pending(store) == 0, 20, what="the row delivered over MQTT 3.1.1")
        assert front.refused_v5 >= 1
        recorder.wait_count("modemd/gw/device/P1/state", 1)
        assert recorder.wait_count("modemd/gw/status", 1)[-1].payload == b"online"
    finally:
        sink.stop()
        recorder.close()
        front.close()


# --- modem health is visible (issue 14) -------------------------------------------------------


def test_an_unplugged_modem_shows_disconnected_and_claims_no_signal(
    tmp_path: Path, broker: Mosquitto
) -> None:
    from modemd.daemon import Daemon
    from modemd.simulator import SimulatedModem
    from tests.helpers import load, write_config

    sim = SimulatedModem(profile="quectel_ec25")
    sim.start()
    sim.set_signal(20, 0)  # -73 dBm
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}],
                       gateway={"health_interval": 1},
                       mqtt={"host": "127.0.0.1", "port": broker.port, "homeassistant": True})
    recorder = Recorder(broker.port, ["modemd/#", "homeassistant/#"])
    daemon = Daemon(load(cfg))
    daemon.start()
    try:
        recorder.wait_for(lambda msgs: any(
            m.topic == "modemd/gw1/modem/m1/state" and m.json()["signal"]["rssi"] == -73
            for m in msgs))
        configs = {m.topic: m.json() for m in recorder.wait_count(
            "homeassistant/+/gw1_modem_m1/+/config", 5)}
        online = configs["homeassistant/binary_sensor/gw1_modem_m1/online/config"]
        assert online["device_class"] == "connectivity"
        device = online["device"]
        assert device["manufacturer"] and device["model"] and device["sw_version"]
        assert "homeassistant/sensor/gw1_modem_m1/last_error/config" in configs

        sim.vanish()
        offline = recorder.wait_for(lambda msgs: any(
            m.topic == "modemd/gw1/modem/m1/state" and m.json()["online"] is False
            for m in msgs), timeout=30)
        doc = next(m.json() for m in offline if m.topic == "modemd/gw1/modem/m1/state"
               and m.json()["online"] is False)
        assert doc["registration"] is None and doc["operator"] is None
        assert doc["signal"] == {"rssi": None, "ber": None, "lte": None}
        assert doc["last_error"]
    finally:
        daemon.stop()
        recorder.close()
        sim.stop()

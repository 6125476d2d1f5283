"""MQTT acknowledgements are matched only to the publication that owns the packet id (issue 11).

The sink publishes things that are no outbox rows (the status, Home Assistant discovery,
removals). Their PUBACKs must not be remembered as "early acks" that a later row with the same
packet id (paho's ids wrap at 65535) takes as its own: that row would leave the outbox
without its PUBACK, and be lost if the broker never got it.
"""

from __future__ import annotations

import os
import signal
import time

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


def sms_row(store: Store, n: int) -> None:
    store.outbox.put(sink="mqtt", kind="sms", msg_id=f"id{n}", body={"id": f"id{n}", "n": n})


def test_a_packet_id_reused_after_a_status_publication_waits_for_its_own_puback(
    store: Store, broker: Mosquitto
) -> None:
    discovery = [(f"homeassistant/sensor/gw/x{i}/config", {"name": f"x{i}"}) for i in range(5)]
    settings = MqttSettings(host="127.0.0.1", port=broker.port, gateway_id="gw",
                            homeassistant=True, keepalive=30)
    sink = MqttSink(store, settings, discovery=discovery)
    recorder = Recorder(broker.port, ["modemd/#"])
    sink.start()
    try:
        # status + 5 discovery configs published and acknowledged
        recorder.wait_count("modemd/gw/status", 1)
        sms_row(store, 0)
        sink.wake()
        wait_until(lambda: pending(store) == 0, 10, what="the first row's PUBACK")
        time.sleep(0.2)  # every PUBACK of the non-row publications is in
        used = set(range(1, 8))  # the packet ids the publications so far took

        # The broker stops answering (a stalled connection). paho's packet ids wrap: the next
        # publication reuses an id a status/discovery message had (65 535 later, in the field).
        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)
        try:
            sink._client._last_mid = 4  # the next publish takes packet id 5 (a discovery one)
            sms_row(store, 1)
            sink.wake()
            time.sleep(1.0)
            # Not acknowledged by anybody: the row must still wait in the outbox.
            assert pending(store) == 1
            assert 5 in used
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        wait_until(lambda: pending(store) == 0, 10, what="the row's own PUBACK")
        assert [m.json()["n"] for m in recorder.wait_count("modemd/gw/sms", 2)] == [0, 1]
    finally:
        sink.stop()
        recorder.close()

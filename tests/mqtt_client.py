"""A subscriber that records what the broker delivers, for assertions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float
    correlation: bytes | None = None

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    def __init__(self, port: int, topics: list[str], *, host: str = "127.0.0.1",
                 tls_ca: str | None = None, v5: bool = False) -> None:
        self.port = port
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"recorder-{time.monotonic_ns()}",
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        self._topics = topics
        self._subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("recorder could not subscribe")

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        correlation = getattr(msg.properties, "CorrelationData", None) if msg.properties \
            else None
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain),
                                          time.monotonic(), correlation))
            self._cond.notify_all()

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if mqtt.topic_matches_sub(topic, m.topic)]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 15.0,
                 ) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out; got {len(self.messages)} message(s): "
                        f"{[(m.topic, m.payload[:80]) for m in self.messages[-10:]]}")
                self._cond.wait(left)
            return list(self.messages)

    def wait_count(self, topic: str, count: int, timeout: float = 15.0) -> list[Received]:
        self.wait_for(lambda msgs: len([m for m in msgs if mqtt.topic_matches_sub(
            topic, m.topic)]) >= count, timeout)
        return self.on(topic)

    def publish(self, topic: str, payload: Any, *, response_topic: str | None = None,
                correlation: bytes | None = None) -> None:
        """QoS 1, waited for; MQTT 5 request properties when given (needs ``v5=True``)."""
        properties = None
        if response_topic is not None or correlation is not None:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.PUBLISH)
            if response_topic is not None:
                properties.ResponseTopic = response_topic
            if correlation is not None:
                properties.CorrelationData = correlation
        data = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        self.client.publish(topic, data, qos=1, properties=properties).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- sending: requests and the statuses they get ---------------------------------------------

STATUS = "modemd/gw1/sms/status"
SEND = "modemd/gw1/sms/send"
TO = "+4915112345678"


def publish(broker: Any, payload: dict[str, Any] | str, *,
            properties: Properties | None = None, topic: str = SEND) -> None:
    """One QoS 1 MQTT 5 publish to the test broker (``broker.port``), waited for."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"req-{time.time_ns()}",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        body = payload if isinstance(payload, str) else json.dumps(payload)
        info = client.publish(topic, body, qos=1, properties=properties)
        info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def states_of(recorder: Recorder, request_id: str) -> list[str]:
    return [m.json()["state"] for m in recorder.on(STATUS) if m.json()["id"] == request_id]


def wait_state(recorder: Recorder, request_id: str, state: str,
               timeout: float = 20.0) -> dict[str, Any]:
    recorder.wait_for(lambda _: state in states_of(recorder, request_id), timeout)
    docs = [m.json() for m in recorder.on(STATUS) if m.json()["id"] == request_id]
    return next(d for d in docs if d["state"] == state)

"""The broker lock-down of docs/security.md (config/mosquitto-modemd.acl), on a real mosquitto:
the gateway publishes what it must, readers read, only the dispatcher may ask for a send."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from tests.helpers import REPO, load, unique_pdus, wait_until, write_config
from tests.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

ACL = REPO / "config" / "mosquitto-modemd.acl"
USERS = {"modemd-gw1": "gw-secret", "homeassistant": "ha-secret", "dispatcher": "d-secret",
         "intruder": "i-secret"}


class Client:
    """A logged-in MQTT client that records what it receives and whether it got in."""

    def __init__(self, port: int, user: str | None, subscribe: tuple[str, ...] = ()) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.refused: Any = None
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"{user}-{time.monotonic_ns()}")
        if user is not None:
            self.client.username_pw_set(user, USERS[user])
        self._subscribe = subscribe
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.refused = reason
            return
        self.connected.set()
        if self._subscribe:
            client.subscribe([(t, 1) for t in self._subscribe])
        else:
            self.subscribed.set()

    def ready(self) -> Client:
        wait_until(lambda: self.subscribed.is_set() or self.refused is not None,
                   what="connected")
        return self

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p in self.messages if mqtt.topic_matches_sub(topic, t)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                       capture_output=True)
    acl = tmp_path / "modemd.acl"
    acl.write_text(ACL.read_text().replace("pi-north", "gw1"))
    broker = Mosquitto(tmp_path / "broker")
    lines = broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false")
    broker.conf.write_text(lines + f"password_file {passwd}\nacl_file {acl}\n")
    with broker:
        yield broker


def test_the_documented_acl_lets_modemd_work_and_keeps_others_out(
        tmp_path: Path, sim: SimulatedModem, locked_broker: Mosquitto,
        monkeypatch: pytest.MonkeyPatch) -> None:
    port = locked_broker.port
    monkeypatch.setenv("MODEMD_MQTT_PASSWORD", USERS["modemd-gw1"])
    ha = Client(port, "homeassistant", ("modemd/#",)).ready()
    gateway_side = Client(port, "modemd-gw1", ("modemd/gw1/sms/send",)).ready()
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}],
                       mqtt={"host": "127.0.0.1", "port": port, "username": "modemd-gw1",
                             "keepalive": 5, "homeassistant": True})
    daemon = Daemon(load(cfg))
    daemon.start()
    clients = [ha, gateway_side]
    try:
        (pdu,) = unique_pdus(1, text="through the ACL")
        sim.deliver(pdu)
        wait_until(lambda: any(b"through the ACL" in p for p in ha.on("modemd/gw1/sms")),
                   timeout=30, what="the SMS at Home Assistant")
        wait_until(lambda: ha.on("modemd/gw1/status")[-1:] == [b"online"], what="online")
        wait_until(lambda: ha.on("modemd/gw1/modem/m1/state"), timeout=30,
                   what="modem state")
        # Only the dispatcher's send request reaches the gateway.
        intruder = Client(port, "intruder").ready()
        reader = Client(port, "homeassistant").ready()
        dispatcher = Client(port, "dispatcher").ready()
        clients += [intruder, reader, dispatcher]
        intruder.publish("modemd/gw1/sms/send", b'{"to": "+4915112345678", "text": "x"}')
        reader.publish("modemd/gw1/sms/send", b'{"to": "+4915112345678", "text": "y"}')
        intruder.publish("modemd/gw1/sms", b'{"text": "forged"}')
        dispatcher.publish("modemd/gw1/sms/send", b'{"to": "+4915112345678", "text": "ok"}')
        wait_until(lambda: gateway_side.on("modemd/gw1/sms/send"), what="the dispatcher's")
        time.sleep(0.5)
        assert gateway_side.on("modemd/gw1/sms/send") == [
            b'{"to": "+4915112345678", "text": "ok"}']
        assert not any(b"forged" in p for p in ha.on("modemd/gw1/sms"))
        # No way in without a password.
        anonymous = Client(port, None)
        clients.append(anonymous)
        wait_until(lambda: anonymous.refused is not None, what="anonymous refused")
    finally:
        daemon.stop()
        for client in clients:
            client.close()

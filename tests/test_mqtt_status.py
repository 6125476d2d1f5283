"""A broker that cannot be used is logged with the reason and shown in the gateway's state
(issue 13): refused (nothing listens), authentication failed, TLS failed, and a server that
accepts TCP but never answers CONNECT. ``modemd outbox`` shows the state the daemon's MQTT
sink wrote."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modemd.cli import app
from modemd.sinks.mqtt import MqttSettings, MqttSink
from modemd.sinks.status import read_status
from modemd.store import Store
from tests.helpers import write_config
from tests.mosquitto import Mosquitto, free_port, make_tls_files

pytestmark = pytest.mark.integration


def wait_for_state(store: Store, state: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = read_status(store.path.parent, "mqtt")
        if status is not None and status["state"] == state:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"state {state!r} never reached; last: {status}")
        time.sleep(0.05)


def run_sink(store: Store, **settings: Any) -> MqttSink:
    sink = MqttSink(store, MqttSettings(gateway_id="gw", **settings))
    sink.start()
    return sink


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "modemd.sinks.mqtt" and r.levelno >= logging.WARNING]


def test_nothing_listening_is_unreachable_with_the_reason_logged_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modemd")
    sink = run_sink(store, host="127.0.0.1", port=free_port())
    try:
        status = wait_for_state(store, "unreachable")
        assert "connection refused" in status["reason"]
        time.sleep(2.5)  # paho retries meanwhile
    finally:
        sink.stop()
    said = [m for m in warnings_of(caplog) if "connection refused" in m]
    assert len(said) == 1, warnings_of(caplog)


def test_a_wrong_password_is_auth_failed(tmp_path: Path, store: Store) -> None:
    broker = Mosquitto(tmp_path / "auth-broker")
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "modemd", "right"],
                   check=True, capture_output=True)
    text = broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false")
    broker.conf.write_text(text + f"password_file {passwords}\n")
    with broker:
        sink = run_sink(store, host="127.0.0.1", port=broker.port, username="modemd",
                        password="wrong")
        try:
            status = wait_for_state(store, "auth_failed")
        finally:
            sink.stop()
    assert "password_file" in status["reason"]
    assert "wrong" not in status["reason"]  # never the secret


def test_a_certificate_from_another_ca_is_a_tls_error(tmp_path: Path, store: Store) -> None:
    served = make_tls_files(tmp_path / "tls")
    other = make_tls_files(tmp_path / "other")
    with Mosquitto(tmp_path / "tls-broker", tls=served) as broker:
        sink = run_sink(store, host="localhost", port=broker.port, tls_ca=str(other.ca))
        try:
            status = wait_for_state(store, "tls_error")
        finally:
            sink.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in status["reason"] or "certificate" in status["reason"]


class SilentServer:
    """Accepts TCP connections and never says a word (not a broker, or a hung one)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.server.settimeout(0.1)
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="silent-server")
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.server.close()


def test_a_server_that_never_answers_connect_is_no_answer_and_shown_by_the_cli(
    tmp_path: Path, store: Store
) -> None:
    silent = SilentServer()
    cfg = write_config(tmp_path / "modemd.toml", state_dir=store.path.parent,
                       modems=[{"name": "m1", "port": "/dev/ttyUSB2"}],
                       mqtt={"host": "127.0.0.1", "port": silent.port})
    try:
        sink = run_sink(store, host="127.0.0.1", port=silent.port, keepalive=2)
        try:
            status = wait_for_state(store, "no_answer", timeout=15)
            assert "never answered CONNECT" in status["reason"]
            # what a person sees meanwhile
            result = CliRunner().invoke(app, ["outbox", "-c", str(cfg)])
            assert result.exit_code == 0, result.output
            assert "no_answer since" in result.output
            assert "never answered CONNECT" in result.output
            result = CliRunner().invoke(app, ["outbox", "-c", str(cfg), "--json"])
            (mqtt,) = [s for s in json.loads(result.output) if s["sink"] == "mqtt"]
            assert mqtt["connection"]["state"] == "no_answer"
        finally:
            sink.stop()
    finally:
        silent.close()
    result = CliRunner().invoke(app, ["outbox", "-c", str(cfg)])
    assert "stopped since" in result.output  # and after a clean stop


def test_a_good_broker_is_connected(store: Store, broker: Mosquitto) -> None:
    sink = run_sink(store, host="127.0.0.1", port=broker.port)
    try:
        status = wait_for_state(store, "connected")
    finally:
        sink.stop()
    assert str(broker.port) in status["reason"]

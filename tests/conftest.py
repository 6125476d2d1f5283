"""Shared fixtures: real servers on free ports, and a guard against leaked threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modemd.simulator import SimulatedModem
from modemd.store import Store
from tests.mosquitto import Mosquitto
from tests.mqtt_client import Recorder
from tests.notify import NotifySocket


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves threads of its own running (pymodbus' conftest idea)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mosquitto") as server:
        yield server


@pytest.fixture
def statuses(broker: Mosquitto) -> Iterator[Recorder]:
    """What the gateway ``gw1`` publishes on ``/sms/status`` and ``/sms``."""
    rec = Recorder(broker.port, ["modemd/gw1/sms/status", "modemd/gw1/sms"])
    yield rec
    rec.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh store in tmp_path/state, closed after the test."""
    opened = Store(tmp_path / "state")
    yield opened
    opened.close()


@pytest.fixture
def sim() -> Iterator[SimulatedModem]:
    """A simulated generic modem on a pty, with room for a few hundred messages."""
    modem = SimulatedModem(profile="generic", capacity=200)
    modem.start()
    yield modem
    modem.stop()


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    """A $NOTIFY_SOCKET for a daemon to report to, as systemd would bind it."""
    sock = NotifySocket()
    yield sock
    sock.close()

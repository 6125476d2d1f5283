"""Every simulator personality over the pty, through the real serial code: a burst of
messages while that family's vendor events, call events and chatter inside answers fire.

The identity must be right, every message journalled once and deleted, no storage-full
reported that is not true, and no reconnect loop. A slow line (paced at 9600 baud) completes a
long listing because a listing's timeout is "no progress", not a bound on the whole answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from modemd.at.answers import entries
from modemd.config import ModemConfig
from modemd.errors import CommandTimeout
from modemd.modem.driver import ModemDriver
from modemd.modem.session import ATSession
from modemd.simulator import PROFILES, SimulatedModem
from modemd.store import Store
from modemd.transport import LoopbackTransport
from tests.helpers import on_sim, unique_pdus, wait_until


@contextmanager
def driver_on(tmp_path: Path, sim: SimulatedModem, **settings: Any) -> Iterator[
        tuple[ModemDriver, Store]]:
    store = Store(tmp_path / "state")
    config = ModemConfig(name="m1", port=sim.port, **{"command_timeout": 3, **settings})
    driver = ModemDriver(config, journal=store.journal, sweep_interval=3600,
                         health_interval=3600)
    driver.start()
    try:
        yield driver, store
    finally:
        driver.stop()
        store.close()


def journalled(store: Store) -> list[bytes]:
    return [r.raw for r in store.journal.records(limit=10_000) if r.mode == "pdu"]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_a_burst_while_the_personality_chatters(tmp_path: Path, name: str) -> None:
    sim = SimulatedModem(profile=name, capacity=100, seed=sum(map(ord, name)),
                         quirks={"chatter": 0.6})
    sim.start()
    try:
        with driver_on(tmp_path, sim) as (driver, store):
            wait_until(driver.ready.is_set, what="ready")
            pdus = unique_pdus(24, text="burst {i} " + name)
            chatter = sim.profile.chatter_urcs
            for i in range(0, len(pdus), 6):
                sim.deliver_many(pdus[i : i + 6])
                for line in chatter:
                    sim.write_urc(line.format(rssi=20))
                if i == 6:
                    sim.ring()
            wait_until(lambda: len(journalled(store)) == len(pdus) and not on_sim(sim),
                       timeout=40, what="the burst journalled and deleted")
            assert sorted(journalled(store)) == sorted(pdus)
            ident = driver.state.identity
            assert ident.imei == sim.identity.imei
            assert ident.iccid == sim.identity.iccid
            assert ident.imsi == sim.identity.imsi
            assert driver.state.last_error in (None, "power: UNDER-VOLTAGE WARNNING")
            assert not any(k in driver.state.recoveries
                           for k in ("reopen", "reinit", "timeout", "reset", "restart"))
            assert driver.unknown_urcs == 0
            assert driver.events.get("storage_full", 0) == 0
    finally:
        sim.stop()


def test_a_slow_sim_read_on_a_simcom_a76xx_is_waited_for(tmp_path: Path) -> None:
    """A76xx firmware takes seconds to answer AT+CPIN?/AT+CIMI on a big SIM: the profile's
    per-command timeouts allow for it, beyond the configured command_timeout."""
    sim = SimulatedModem(profile="simcom_sim7600",
                         quirks={"slow_commands": {"+CPIN?": 2.5, "+CIMI": 2.5}})
    sim.start()
    try:
        with driver_on(tmp_path, sim, command_timeout=1) as (driver, _store):
            wait_until(driver.ready.is_set, timeout=30, what="ready despite the slow SIM")
            assert driver.state.identity.imsi == sim.identity.imsi
            assert "timeout" not in driver.state.recoveries
            assert "reopen" not in driver.state.recoveries
    finally:
        sim.stop()


def test_a_long_listing_over_a_slow_line_completes(tmp_path: Path) -> None:
    sim = SimulatedModem(capacity=60, quirks={"baud": 9600})
    long_text = "x" * 150 + " {i}"
    pdus = unique_pdus(16, text=long_text)
    for pdu in pdus:
        sim.store(pdu)
    sim.start()
    try:
        # 16 entries of ~330 bytes at 9600 baud: ~5.5 s, longer than the command timeout.
        with driver_on(tmp_path, sim, command_timeout=2) as (driver, store):
            wait_until(lambda: len(journalled(store)) == len(pdus) and not on_sim(sim),
                       timeout=60, what="the slow listing read whole")
            assert "timeout" not in driver.state.recoveries
    finally:
        sim.stop()


def test_a_listing_times_out_on_silence_not_on_its_length() -> None:
    """Session level: an answer trickling in for 3 s completes with a 1 s no-progress timeout;
    the same timeout as a bound on the whole answer gives up."""
    transport = LoopbackTransport()
    feeders: list[threading.Thread] = []

    def modem(data: bytes) -> None:
        if b"CMGL" not in data:
            return

        def trickle() -> None:
            for i in range(10):
                time.sleep(0.3)
                transport.deliver(f"\r\n+CMGL: {i},1,,2\r\n0000\r\n".encode())
            transport.deliver(b"\r\nOK\r\n")

        feeder = threading.Thread(target=trickle)
        feeders.append(feeder)
        feeder.start()

    transport.connect(modem)
    transport.open()
    session = ATSession(transport, on_urc=lambda urc: None)
    session.start()
    try:
        answer = session.execute("AT+CMGL=4", answer=entries("+CMGL", "pdu"), timeout=1.0,
                                 progress=True)
        assert len(answer.lines) == 20
        with pytest.raises(CommandTimeout):
            session.execute("AT+CMGL=4", answer=entries("+CMGL", "pdu"), timeout=1.0)
    finally:
        for feeder in feeders:
            feeder.join()
        session.close()

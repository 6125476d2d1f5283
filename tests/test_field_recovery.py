"""Several modems, each supervised on its own: a hung modem never delays another, the
recovery ladder brings it back, and a port that vanishes (USB unplug) and returns under
another name is found again by IMEI and swept."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from modemd.daemon import Daemon
from modemd.modem.discovery import find_port_by_identity
from modemd.simulator import SimulatedModem
from modemd.store.journal import raw_id_for
from tests.helpers import journal_rows, load, on_sim, unique_pdus, wait_until, write_config

pytestmark = pytest.mark.integration


def latency_of(sim: SimulatedModem, pdu: bytes, state_dir: Path) -> float:
    """Seconds from handing the PDU to the simulated modem to its journal commit."""
    wanted = raw_id_for("pdu", pdu)
    started = time.monotonic()
    sim.deliver(pdu)
    wait_until(lambda: any(r.raw_id == wanted for r in journal_rows(state_dir)), timeout=10,
               interval=0.005, what="journalled")
    return time.monotonic() - started


def test_a_hung_modem_never_delays_the_other_and_is_recovered(tmp_path: Path) -> None:
    healthy = SimulatedModem(imei="356938035643801")
    wedged = SimulatedModem(imei="356938035643802")
    healthy.start()
    wedged.start()
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "modemd.toml", state_dir=state,
                       gateway={"health_interval": 1, "sweep_interval": 30},
                       modems=[{"name": "healthy", "port": healthy.port, "command_timeout": 1},
                               {"name": "wedged", "port": wedged.port, "command_timeout": 1}])
    daemon = Daemon(load(cfg))
    daemon.start()
    try:
        wait_until(lambda: all(d.ready.is_set() for d in daemon.drivers), what="both up")
        pdus = unique_pdus(16, sender="+4915100000001")
        baseline = [latency_of(healthy, pdu, state) for pdu in pdus[:8]]
        wedged.set_quirk("hang", True)
        wedged_driver = daemon.drivers[1]
        wait_until(lambda: wedged_driver.state.recoveries.get("timeout"), timeout=10,
                   what="the hang noticed")
        during = [latency_of(healthy, pdu, state) for pdu in pdus[8:]]
        # Each wedged command takes a full second to time out; none of that shows here.
        assert max(during) < 0.9, (baseline, during)
        assert statistics.median(during) < statistics.median(baseline) + 0.1, (baseline, during)
        wait_until(lambda: not on_sim(healthy), what="deleted once durable")

        # Keep it wedged until the ladder has gone past ping and re-init to reopening.
        wait_until(lambda: not wedged_driver.state.online, timeout=30, what="ladder climbs")
        wedged.set_quirk("hang", False)
        wait_until(lambda: wedged_driver.state.online, timeout=40, what="ladder recovery")
        (late,) = unique_pdus(1, sender="+4915100000002", start=100)
        latency_of(wedged, late, state)
        steps = wedged_driver.state.recoveries
        assert steps.get("timeout", 0) >= 1, steps
        assert steps.get("reinit", 0) >= 1 and steps.get("reset", 0) >= 1, steps
        assert steps.get("reopen", 0) >= 1, steps
        wait_until(lambda: not on_sim(wedged), what="deleted once durable")
    finally:
        daemon.stop()
        healthy.stop()
        wedged.stop()


def test_a_vanished_port_is_found_again_by_imei_and_swept(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    links = tmp_path / "by-id"
    sim = SimulatedModem(imei="356938035640042", link_path=links / "usb-Quectel-if02")
    sim.start()
    old_name = tmp_path / "ttyUSB2"
    assert sim.slave_path is not None
    old_name.symlink_to(sim.slave_path)
    monkeypatch.setenv("MODEMD_EXTRA_PORT_GLOB", str(links / "*"))
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "modemd.toml", state_dir=state,
                       modems=[{"name": "m1", "port": str(old_name), "imei": sim.identity.imei}])
    daemon = Daemon(load(cfg), port_resolver=find_port_by_identity)
    daemon.start()
    try:
        driver = daemon.drivers[0]
        wait_until(driver.ready.is_set, what="modem up")
        before, *meanwhile = unique_pdus(4)
        sim.deliver(before)
        wait_until(lambda: len(journal_rows(state)) == 1, what="first message")

        sim.vanish()
        old_name.unlink()  # the kernel's name for it is gone with the device
        wait_until(lambda: not driver.state.online, what="port loss noticed")
        for pdu in meanwhile:
            sim.deliver(pdu)  # stored on the SIM while the host cannot see the modem
        sim.reappear(new_path=True)

        wait_until(lambda: len(journal_rows(state)) == 4 and not on_sim(sim), timeout=40,
                   what="swept after return")
        assert sorted(r.raw_id for r in journal_rows(state)) == sorted(
            raw_id_for("pdu", p) for p in [before, *meanwhile])
        assert driver.state.online
        assert driver.state.port == str(links / "usb-Quectel-if02")
        assert driver.state.recoveries.get("reopen", 0) >= 1
    finally:
        daemon.stop()
        sim.stop()


def test_a_port_holding_another_modem_is_refused_and_ours_found_by_iccid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    links = tmp_path / "by-id"
    ours = SimulatedModem(imei="356938035640001", iccid="8949011234567000015",
                          link_path=links / "usb-ours-if02")
    other = SimulatedModem(imei="356938035640002", iccid="8949011234567000023",
                           link_path=tmp_path / "ttyUSB2")
    ours.start()
    other.start()
    monkeypatch.setenv("MODEMD_EXTRA_PORT_GLOB", str(links / "*"))
    state = tmp_path / "state"
    # After a USB reset the configured name points at the other modem.
    cfg = write_config(tmp_path / "modemd.toml", state_dir=state,
                       modems=[{"name": "ours", "port": other.port, "iccid": ours.identity.iccid}])
    daemon = Daemon(load(cfg), port_resolver=find_port_by_identity)
    daemon.start()
    try:
        (theirs,) = unique_pdus(1, sender="+4915100000009")
        other.store(theirs)
        driver = daemon.drivers[0]
        wait_until(driver.ready.is_set, timeout=30, what="our modem found")
        assert driver.state.port == ours.port
        assert driver.state.identity.iccid == ours.identity.iccid
        assert driver.state.recoveries.get("rebind", 0) >= 1
        (mine,) = unique_pdus(1, sender="+4915100000001")
        ours.deliver(mine)
        wait_until(lambda: [r.raw_id for r in journal_rows(state)] == [raw_id_for("pdu", mine)],
                   what="our message journalled")
        assert on_sim(other) == [theirs]  # the other modem's message was never taken
    finally:
        daemon.stop()
        ours.stop()
        other.stop()


def test_messages_notified_during_a_short_hang_arrive_right_after_it(tmp_path: Path) -> None:
    sim = SimulatedModem()
    sim.start()
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "modemd.toml", state_dir=state,
                       gateway={"health_interval": 1, "sweep_interval": 300},
                       modems=[{"name": "m1", "port": sim.port, "command_timeout": 1}])
    daemon = Daemon(load(cfg))
    daemon.start()
    try:
        driver = daemon.drivers[0]
        wait_until(driver.ready.is_set, what="up")
        sim.set_quirk("hang", True)
        wait_until(lambda: driver.state.recoveries.get("timeout"), what="hang noticed")
        pdus = unique_pdus(3)
        for pdu in pdus:
            sim.deliver(pdu)  # stored; the +CMTI is swallowed by the hung modem
        sim.set_quirk("hang", False)
        released = time.monotonic()
        wait_until(lambda: len(journal_rows(state)) == 3 and not on_sim(sim), timeout=20,
                   what="swept after recovery")
        # Far sooner than the 300 s periodic sweep: the ladder sweeps once the modem answers.
        assert time.monotonic() - released < 15
    finally:
        daemon.stop()
        sim.stop()

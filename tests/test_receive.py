"""The receive spine over a pseudo-terminal: simulated modem → real serial code → journal.

Every test drives the daemon's own code path (pyserial opening the pty the simulator made)
and checks both ends: what the journal holds and what is left on the SIM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.store.journal import raw_id_for
from tests.helpers import (
    DaemonProcess,
    journal_rows,
    load,
    message_rows,
    on_sim,
    unique_pdus,
    wait_until,
    write_config,
)


def start_daemon(tmp_path: Path, port: str, **modem: object) -> Daemon:
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": port, **modem}])
    daemon = Daemon(load(cfg))
    daemon.start()
    wait_until(daemon.drivers[0].ready.is_set, what="modem ready")
    return daemon


def journalled_ids(tmp_path: Path) -> list[str]:
    return [row.raw_id for row in journal_rows(tmp_path / "state")]


def test_injected_message_is_journalled_then_deleted(tmp_path: Path, sim: SimulatedModem) -> None:
    daemon = start_daemon(tmp_path, sim.port)
    try:
        (pdu,) = unique_pdus(1)
        sim.deliver(pdu)
        wait_until(lambda: not on_sim(sim) and journalled_ids(tmp_path), what="journal")
        rows = journal_rows(tmp_path / "state")
        assert [r.raw for r in rows] == [pdu]
        assert rows[0].raw_id == raw_id_for("pdu", pdu)
        assert rows[0].modem == "m1" and rows[0].imei == sim.identity.imei
        # The delete came after the read of that index, never before.
        log = [c.upper() for c in sim.command_log]
        read_at = max(i for i, c in enumerate(log) if c.startswith("AT+CMGR="))
        delete_at = max(i for i, c in enumerate(log) if c.startswith("AT+CMGD="))
        assert read_at < delete_at
        wait_until(lambda: message_rows(tmp_path / "state"), what="message decoded")
        (message,) = message_rows(tmp_path / "state")
        assert message["message"]["text"] == "status 0"
        assert message["message"]["sender"] == "+491511234567"
    finally:
        daemon.stop()


def test_burst_of_50_all_journalled_none_left(tmp_path: Path, sim: SimulatedModem) -> None:
    daemon = start_daemon(tmp_path, sim.port)
    try:
        pdus = unique_pdus(50)
        sim.deliver_many(pdus)
        wait_until(lambda: len(journalled_ids(tmp_path)) == 50 and not on_sim(sim),
                   timeout=60, what="50 journalled")
        assert sorted(journalled_ids(tmp_path)) == sorted(raw_id_for("pdu", p) for p in pdus)
        assert on_sim(sim) == []
    finally:
        daemon.stop()


def test_messages_stored_while_stopped_are_swept_at_start(tmp_path: Path,
                                                          sim: SimulatedModem) -> None:
    pdus = unique_pdus(5)
    for pdu in pdus:
        sim.store(pdu)
    assert len(on_sim(sim)) == 5
    daemon = start_daemon(tmp_path, sim.port)
    try:
        wait_until(lambda: len(journalled_ids(tmp_path)) == 5 and not on_sim(sim),
                   what="sweep at start")
        assert sorted(journalled_ids(tmp_path)) == sorted(raw_id_for("pdu", p) for p in pdus)
    finally:
        daemon.stop()


def test_cmti_inside_a_csq_answer_is_not_lost(tmp_path: Path, sim: SimulatedModem) -> None:
    daemon = start_daemon(tmp_path, sim.port)
    try:
        sim.set_quirk("urc_inside_answer", True)
        # Make the driver send AT+CSQ while the URC is pending, so it lands inside the answer.
        (pdu,) = unique_pdus(1)
        sim.deliver(pdu)
        daemon.drivers[0]._next_health = 0.0
        wait_until(lambda: journalled_ids(tmp_path) and not on_sim(sim), what="journalled")
        assert journalled_ids(tmp_path) == [raw_id_for("pdu", pdu)]
        assert any(c.upper().startswith("AT+CSQ") for c in sim.command_log)
    finally:
        daemon.stop()


def test_garbage_on_the_line_does_not_stop_reception(tmp_path: Path,
                                                     sim: SimulatedModem) -> None:
    daemon = start_daemon(tmp_path, sim.port)
    try:
        first, second = unique_pdus(2)
        sim.garbage(b"\xff\x00\xfe\x81garbage\x1b[0m\r\n\xc3\x28")
        sim.deliver(first)
        sim.garbage(b"\xff\xff\r\n+CMTI: \"SM\",\x00\x00\r\nOK\r\n\x80")
        sim.deliver(second)
        wait_until(lambda: len(journalled_ids(tmp_path)) == 2 and not on_sim(sim),
                   what="both journalled")
        assert sorted(journalled_ids(tmp_path)) == sorted(
            raw_id_for("pdu", p) for p in (first, second))
        assert daemon.drivers[0].alive
    finally:
        daemon.stop()


def test_direct_delivery_is_acknowledged_after_commit(tmp_path: Path,
                                                      sim: SimulatedModem) -> None:
    daemon = start_daemon(tmp_path, sim.port, delivery="direct")
    try:
        (pdu,) = unique_pdus(1)
        sim.deliver(pdu)
        wait_until(lambda: journalled_ids(tmp_path), what="journalled")
        wait_until(lambda: any(c.upper().startswith("AT+CNMA") for c in sim.command_log),
                   what="CNMA")
        assert journalled_ids(tmp_path) == [raw_id_for("pdu", pdu)]
        assert on_sim(sim) == []  # acknowledged in time: never stored on the SIM
    finally:
        daemon.stop()


@pytest.mark.integration
def test_sigkill_between_commit_and_delete_stores_once(tmp_path: Path,
                                                       sim: SimulatedModem) -> None:
    """The delete fails (as if the daemon died before it), the daemon is SIGKILLed, restarts,
    reads the same message again from the SIM, and the journal still holds it once."""
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}])
    sim.set_quirk("cms_error", {"+CMGD": 321})
    (pdu,) = unique_pdus(1)
    daemon = DaemonProcess(cfg).start()
    try:
        sim.deliver(pdu)
        wait_until(lambda: journalled_ids(tmp_path), what="committed", timeout=20)
        assert len(on_sim(sim)) == 1  # committed, not deleted
        daemon.kill()
        sim.set_quirk("cms_error", {})
        daemon = DaemonProcess(cfg).start()
        wait_until(lambda: not on_sim(sim), what="deleted after restart", timeout=20)
        assert journalled_ids(tmp_path) == [raw_id_for("pdu", pdu)]
        wait_until(lambda: message_rows(tmp_path / "state"), what="processed")
        assert len(message_rows(tmp_path / "state")) == 1
    finally:
        daemon.stop()

"""The modem driver on the in-process loopback: no pty, real simulated-modem behaviour.

Each test gives the simulated modem one real-world behaviour (vendor lines inside answers,
SIM errors, odd AT+CPMS=? answers, swapped ICCIDs, corrupt listing entries, a restart) and
checks what the driver makes of it: identity, what is journalled, what is left on the modem,
and that it neither reconnects in a loop nor reports a storage-full that is not true.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr

from modemd.at.answers import prefixed
from modemd.config import ModemConfig
from modemd.errors import StoreError
from modemd.modem.driver import MAX_UNSYNCED, ModemDriver
from modemd.simulator import SimulatedModem
from modemd.simulator.profiles import IccidCommand, sim_profile
from modemd.store import Store
from modemd.store.journal import CommitResult, Journal, raw_id_for
from tests.helpers import on_sim, unique_pdus, wait_until

IMEI = "356938035643809"
W = TypeVar("W")
ICCID = "8949011234567890126"


@contextmanager
def running(tmp_path: Path, sim: SimulatedModem, *, wrap: Callable[[Journal], Any] | None = None,
            **settings: Any) -> Iterator[tuple[ModemDriver, Store]]:
    """A started driver on *sim*; ``wrap`` puts a stand-in between it and the store's journal
    (a failing or slow disk: :func:`journal_of` gives it back)."""
    store = Store(tmp_path / "state")
    config = ModemConfig(name="m1", port=sim.port, **{"command_timeout": 2, **settings})
    factory = sim.transport if sim.port.startswith("loopback:") else None  # else the pty
    journal = wrap(store.journal) if wrap is not None else store.journal
    driver = ModemDriver(config, journal=journal, sweep_interval=3600,
                         health_interval=3600, transport_factory=factory)
    driver.start()
    try:
        yield driver, store
    finally:
        driver.stop()
        store.close()


def journal_of(driver: ModemDriver, kind: type[W]) -> W:
    assert isinstance(driver.journal, kind)
    return driver.journal


def journalled(store: Store, mode: str = "pdu") -> list[bytes]:
    return [r.raw for r in store.journal.records(limit=10_000) if r.mode == mode]


def loopback(*, over: str = "loopback", **kwargs: Any) -> SimulatedModem:
    """A started simulated modem, in-process or (``over="pty"``) behind a real pty."""
    kwargs.setdefault("capacity", 60)
    return SimulatedModem(loopback=over == "loopback", seed=7, **kwargs).start()


# The regression tests of issue 11 run over both: the loopback and the real serial code.
BOTH = pytest.mark.parametrize("over", ["loopback", "pty"])


def no_reconnects(driver: ModemDriver) -> None:
    bad = {k: v for k, v in driver.state.recoveries.items()
           if k in ("reopen", "reinit", "timeout", "reset")}
    assert not bad, driver.state.recoveries


# --- an unknown URC inside every query the driver makes ------------------------------------

# (A bare line of free text inside an identity answer, "FIRMWARE 1.0", cannot be told from
# the answer by anyone; the 15-digit and prefixed answers refuse it: tests/test_at_framing.py.)
INSIDE = ["+XFOO: 1,2", "^XUNKNOWN: 7", "RING", '+CLIP: "+4915112345678",145',
          "NO CARRIER", "^NWTIME: 26/12/01,11:00:00+04,00", "RDY"]


@pytest.mark.parametrize("line", INSIDE)
def test_a_line_inside_every_answer_changes_nothing(tmp_path: Path, line: str) -> None:
    sim = loopback(quirks={"inside_answers": [line]})
    before = unique_pdus(3)
    for pdu in before:
        sim.store(pdu)
    try:
        with running(tmp_path, sim) as (driver, store):
            wait_until(driver.ready.is_set, what="ready")
            # (RDY restarts the initialisation, which reads the identity again: let it settle)
            wait_until(lambda: driver.state.identity.iccid is not None, what="identity read")
            ident = driver.state.identity
            assert (ident.imei, ident.imsi, ident.iccid) == (IMEI, sim.identity.imsi, ICCID)
            assert ident.manufacturer == "modemd" and ident.model == "Simulated GSM modem"
            (live,) = unique_pdus(1, start=10)
            sim.deliver(live)
            wait_until(lambda: len(journalled(store)) == 4 and not on_sim(sim),
                       what="all four journalled and deleted")
            assert sorted(journalled(store)) == sorted([*before, live])
            assert driver.state.storage_total == 60
            assert driver.state.last_error is None
            if line != "RDY":  # a boot banner inside answers is a restart: re-initialised
                no_reconnects(driver)
            assert driver.state.registration == "registered_home"
    finally:
        sim.stop()


def test_no_carrier_in_the_middle_of_a_listing(tmp_path: Path) -> None:
    sim = loopback()
    pdus = unique_pdus(4)
    for pdu in pdus:
        sim.store(pdu)
    sim.set_quirk("inside_answers", ["NO CARRIER", "BUSY"])
    try:
        with running(tmp_path, sim) as (driver, store):
            wait_until(lambda: len(journalled(store)) == 4 and not on_sim(sim), what="swept")
            # the lines inside the listing are counted as the worker gets to them
            wait_until(lambda: driver.events.get("call", 0) >= 2, what="call URCs counted")
            no_reconnects(driver)
    finally:
        sim.stop()


# --- SIM states -------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "meaning"), [(10, "no SIM inserted"), (13, "SIM failure"),
                                               (15, "wrong SIM")])
def test_cpin_errors_are_never_unlocked(tmp_path: Path, code: int, meaning: str) -> None:
    sim = loopback(quirks={"answers": {"+CPIN?": f"+CME ERROR: {code}"}})
    try:
        with running(tmp_path, sim) as (driver, _store):
            wait_until(lambda: driver.state.last_error and meaning in driver.state.last_error,
                       what="the SIM error reported")
            assert not driver.ready.is_set() and not driver.state.online
            assert driver.state.sim == meaning
            assert not any(c.startswith("AT+CMGL") for c in sim.command_log)
    finally:
        sim.stop()


def test_sim_busy_is_asked_again_until_ready(tmp_path: Path) -> None:
    sim = loopback(quirks={"answers": {"+CPIN?": "+CME ERROR: 14"}})
    try:
        with running(tmp_path, sim) as (driver, _store):
            wait_until(lambda: sim.command_log.count("AT+CPIN?") >= 2, what="asked again")
            assert not driver.ready.is_set()
            sim.set_quirk("answers", {})
            wait_until(driver.ready.is_set, what="ready once the SIM is")
            assert driver.state.sim == "READY"
    finally:
        sim.stop()


@pytest.mark.parametrize("state", ["SIM PIN2", "SIM PUK2"])
def test_pin2_states_do_not_block_receiving(tmp_path: Path, state: str) -> None:
    sim = loopback(quirks={"answers": {"+CPIN?": f"+CPIN: {state}\nOK"}})
    try:
        with running(tmp_path, sim) as (driver, store):
            wait_until(driver.ready.is_set, what="ready")
            sim.deliver(unique_pdus(1)[0])
            wait_until(lambda: journalled(store), what="received")
            assert not any(c.startswith("AT+CPIN=") for c in sim.command_log)
    finally:
        sim.stop()


def test_a_timed_out_pin_is_never_shown_and_never_entered_blindly(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim = loopback(pin="4711", quirks={"silent_commands": ["+CPIN="]})
    try:
        with running(tmp_path, sim, pin=SecretStr("4711")) as (driver, _store):
            wait_until(lambda: "timed out" in (driver.state.last_error or ""), timeout=30,
                       what="timeout")
            time.sleep(2.5)  # reconnect attempts
            entered = [c for c in sim.command_log if c.startswith("AT+CPIN=")]
            assert len(entered) == 1  # the attempts left cannot be read: not again
            document = json.dumps(driver.state.document())
            assert "4711" not in document
            assert "4711" not in caplog.text
            assert "cannot be read" in (driver.state.last_error or "")
    finally:
        sim.stop()


def test_the_pin_never_reaches_a_log_line_even_at_debug(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim = loopback(pin="4711", quirks={"inside_answers": ["+XFOO: 1"], "echo": True})
    try:
        with running(tmp_path, sim, pin=SecretStr("4711")) as (driver, _store):
            wait_until(driver.ready.is_set, what="unlocked")
            assert any(c == 'AT+CPIN="4711"' for c in sim.command_log)
            assert "during AT+CPIN" in caplog.text  # the unsolicited line was logged ...
            assert "4711" not in caplog.text  # ... without the PIN
    finally:
        sim.stop()


def test_fewer_than_two_attempts_left_stops_before_the_pin(tmp_path: Path) -> None:
    sim = loopback(pin="4711", quirks={"answers": {'+CPINR="SIM PIN"': "+CPINR: SIM PIN,1,3\nOK"}})
    try:
        with running(tmp_path, sim, pin=SecretStr("4711")) as (driver, _store):
            wait_until(lambda: "1 PIN attempt" in (driver.state.last_error or ""),
                       what="refusal to risk the last attempt")
            assert not any(c.startswith("AT+CPIN=") for c in sim.command_log)
    finally:
        sim.stop()


def test_a_pin_that_is_not_4_to_8_digits_is_not_sent(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="4 to 8 digits"):
        ModemConfig(name="m1", port="/dev/null", pin=SecretStr('1234"\rAT+CMGD=1,4'))
    sim = loopback(pin="1234")
    pin_file = tmp_path / "pin"
    pin_file.write_text('1234";+CMGD=1,4\n')
    try:
        with running(tmp_path, sim, pin_file=str(pin_file)) as (driver, _s):
            wait_until(lambda: "4-8 digits" in (driver.state.last_error or ""), what="refused")
            assert not any(c.startswith("AT+CPIN=") for c in sim.command_log)
            assert not any("CMGD" in c for c in sim.command_log)
    finally:
        sim.stop()


# --- storages ---------------------------------------------------------------------------------

CPMS_FORMS = [
    '+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")',
    '+CPMS: ("ME","MT","SM","SR"),("ME","MT","SM","SR"),("ME","MT","SM","SR")',
    '+CPMS: ("ME","SM"),("ME","SM"),"SM"',  # mixed bracketed and bare
    '+CPMS: (("SM","BM","SR"),("SM"),("SM"))',  # doubly parenthesised
    '+CPMS: ("SM","BM","SR"),("SM"),("SR","SM")',
    '+CPMS: "ME","ME","ME"',
]


@pytest.mark.parametrize("form", CPMS_FORMS)
def test_every_cpms_form_gives_a_message_storage_and_sweeps_it(tmp_path: Path,
                                                              form: str) -> None:
    profile = replace(sim_profile("generic"), cpms_test=form)
    sim = loopback(profile=profile)
    stored = {}
    for i, name in enumerate(n for n in ("SM", "ME", "MT") if n in profile.storages(0)):
        (pdu,) = unique_pdus(1, start=i)
        sim.store(pdu, storage_name=name)
        stored[name] = pdu
    try:
        with running(tmp_path, sim) as (driver, store):
            wait_until(driver.ready.is_set, what="ready")
            assert driver.state.storage not in ("BM", "SR")
            assert sim.state.cpms[2] not in ("BM", "SR")
            wait_until(lambda: len(journalled(store)) == len(stored), what="every storage")
    finally:
        sim.stop()


def test_new_messages_stored_in_sm_are_swept_when_me_was_chosen(tmp_path: Path) -> None:
    three = '("ME","MT","SM")'
    profile = replace(sim_profile("generic"), cpms_test=f"+CPMS: {three},{three},{three}")
    sim = loopback(profile=profile)
    try:
        with running(tmp_path, sim) as (driver, store):
            wait_until(driver.ready.is_set, what="ready")
            assert driver.state.storage == "ME"
            (pdu,) = unique_pdus(1)
            sim.store(pdu, storage_name="SM")  # the modem put it in SM whatever <mem3> says
            driver.sweep_interval = 0.2
            driver._next_sweep = 0.0
            wait_until(lambda: journalled(store) == [pdu] and not on_sim(sim), what="swept")
    finally:
        sim.stop()


# --- identity ---------------------------------------------------------------------------------

@pytest.mark.parametrize("iccid", [
    IccidCommand("+CCID", "+CCID: ", swapped=True),
    IccidCommand("+CCID", "+CCID: ", quoted=True),
    IccidCommand("+CCID", ""),
])
def test_iccid_swapped_quoted_or_bare_reads_true(tmp_path: Path, iccid: IccidCommand) -> None:
    profile = replace(sim_profile("generic"), iccid_commands=(iccid,))
    sim = loopback(profile=profile)
    try:
        with running(tmp_path, sim) as (driver, _store):
            wait_until(driver.ready.is_set, what="ready")
            assert driver.state.identity.iccid == ICCID
            assert driver.state.identity.iccid_problem is None
    finally:
        sim.stop()


def test_a_bad_iccid_is_told_apart_from_a_missing_one(tmp_path: Path) -> None:
    sim = loopback(iccid="8949011234567890123")  # check digit wrong
    try:
        with running(tmp_path, sim) as (driver, _store):
            wait_until(driver.ready.is_set, what="ready")
            assert driver.state.identity.iccid is None
            assert "check digit" in (driver.state.identity.iccid_problem or "")
    finally:
        sim.stop()


# --- one entry never stops a listing --------------------------------------------------------

@BOTH
def test_unreadable_entries_are_journalled_invalid_and_the_rest_taken(
        tmp_path: Path, over: str) -> None:
    sim = loopback(over=over)
    good = unique_pdus(3)
    sim.store(good[0])
    sim.store_corrupt("ZZ0791GG0000")  # not hex
    sim.store(good[1])
    sim.store_corrupt("0791ABC")  # odd length
    sim.store_corrupt("")  # an empty slot: "+CMGL: n,1,,0" and no PDU
    sim.store(good[2])
    try:
        with running(tmp_path, sim) as (driver, store):
            wait_until(lambda: len(journalled(store)) == 3, what="good ones journalled")
            wait_until(lambda: not on_sim(sim), what="all deleted")
            assert sorted(journalled(store)) == sorted(good)
            invalid = journalled(store, "invalid")
            assert len(invalid) == 3 and any(b"ZZ0791GG" in r for r in invalid)
            assert driver.invalid_entries == 3
            assert driver.state.document()["invalid_entries"] == 3
            no_reconnects(driver)
    finally:
        sim.stop()


# --- text mode framed by length ---------------------------------------------------------------

FORGED = [
    'hi\n+CMGL: 9,"REC READ","+4915199999999",,"26/11/25,10:00:00+00",145,5\nforge',
    "OK",
    "ERROR",
    "  spaced   out  ",
]


@BOTH
def test_text_mode_bodies_are_framed_by_length(tmp_path: Path, over: str) -> None:
    sim = loopback(over=over, quirks={"cms_error": {"+CMGF=0": 303}})
    try:
        with running(tmp_path, sim) as (driver, store):
            wait_until(driver.ready.is_set, what="ready")
            assert driver.state.mode == "text"
            for i, text in enumerate(FORGED):
                sim.store(unique_pdus(1, text=text, start=i)[0])
            driver._next_sweep = 0.0
            wait_until(lambda: len(journalled(store, "text")) == len(FORGED) and not on_sim(sim),
                       what="all read")
            bodies = sorted(r.split(b"\n", 1)[1].decode() for r in journalled(store, "text"))
            assert bodies == sorted(FORGED)
            no_reconnects(driver)
    finally:
        sim.stop()


# --- direct delivery really waits for the acknowledgement -----------------------------------

class FailingJournal:
    """The store's journal while the disk is full: every commit fails until ``healthy``."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.healthy = False

    def record_raw(self, **kwargs: Any) -> CommitResult:
        if not self.healthy:
            raise StoreError("database or disk is full")
        return self.journal.record_raw(**kwargs)

    def make_durable(self, result: CommitResult) -> None:
        self.journal.make_durable(result)


class SlowDisk:
    """The store's journal on a disk whose fsync takes until ``synced`` is set, and then
    fails while ``broken``; what the modem worker was told meanwhile is in ``told``."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.synced = threading.Event()
        self.broken = False
        self.syncing = 0
        self.told: list[str] = []

    def record_raw(self, **kwargs: Any) -> CommitResult:
        result = self.journal.record_raw(**kwargs)
        self.told.append(result.raw_id)
        return result

    def make_durable(self, result: CommitResult) -> None:
        self.syncing += 1
        self.synced.wait(30)
        if self.broken:
            raise StoreError("disk I/O error")
        self.journal.make_durable(result)


@BOTH
def test_direct_delivery_holds_messages_until_they_are_committed(tmp_path: Path, over: str) -> None:
    sim = loopback(over=over, cnma_timeout=0.3)
    try:
        with running(tmp_path, sim, wrap=FailingJournal, delivery="direct") as (driver, store):
            failing = journal_of(driver, FailingJournal)
            wait_until(driver.ready.is_set, what="ready")
            assert driver.state.delivery == "direct" and sim.state.csms == 1
            pdus = unique_pdus(5)
            sim.deliver_many(pdus)
            wait_until(lambda: len(on_sim(sim)) == 5, timeout=20,
                       what="the unacknowledged messages stored by the modem")
            assert sim.unheld == [] and sim.acknowledged == []
            failing.healthy = True
            wait_until(lambda: len(journalled(store)) == 5 and not on_sim(sim), timeout=30,
                       what="all five taken once the disk has room")
    finally:
        sim.stop()


@BOTH
def test_a_modem_refusing_csms_falls_back_to_store_mode(tmp_path: Path, over: str) -> None:
    sim = loopback(over=over, quirks={"refuse_csms": True})
    try:
        with running(tmp_path, sim, delivery="direct") as (driver, store):
            wait_until(driver.ready.is_set, what="ready")
            assert driver.state.delivery == "store"
            assert sim.state.cnmi[1] == 1
            assert "store mode" in (driver.state.last_error or "")
            sim.deliver(unique_pdus(1)[0])
            wait_until(lambda: journalled(store) and not on_sim(sim), what="via +CMTI")
            assert sim.unheld == []
    finally:
        sim.stop()


@BOTH
def test_stop_leaves_the_modem_storing(tmp_path: Path, over: str) -> None:
    sim = loopback(over=over)
    try:
        with running(tmp_path, sim, delivery="direct") as (driver, _store):
            wait_until(driver.ready.is_set, what="ready")
            assert sim.state.cnmi[1] == 2
        assert sim.state.cnmi[1] == 1
        sim.deliver(unique_pdus(1)[0])
        assert len(on_sim(sim)) == 1 and sim.unheld == []
    finally:
        sim.stop()


# --- vendor events ------------------------------------------------------------------------

def test_quectel_boot_qind_lines_are_not_storage_full(tmp_path: Path) -> None:
    sim = loopback(profile="quectel_ec25")
    try:
        with running(tmp_path, sim) as (driver, _store):
            wait_until(driver.ready.is_set, what="ready")
            sweeps = sum(c.startswith("AT+CMGL") for c in sim.command_log)
            for line in ("+QIND: SMS DONE", "+QIND: PB DONE", '+QIND: "csq",20,99',
                         '+QIND: "act","LTE"', "+QUSIM: 1"):
                sim.write_urc(line)
            wait_until(lambda: driver.events.get("info", 0) >= 5, what="all seen")
            assert driver.state.last_error is None
            assert sum(c.startswith("AT+CMGL") for c in sim.command_log) == sweeps
            sim.write_urc('+QIND: "smsfull","SM"')
            wait_until(lambda: sum(c.startswith("AT+CMGL") for c in sim.command_log) > sweeps,
                       what="a sweep on the real storage-full")
    finally:
        sim.stop()


def test_rdy_mid_operation_reinitialises_and_messages_keep_flowing(tmp_path: Path) -> None:
    sim = loopback(profile="quectel_ec25", reset_silence=0.2)
    try:
        with running(tmp_path, sim) as (driver, store):
            wait_until(driver.ready.is_set, what="ready")
            sim.restart()  # settings lost, then "RDY"
            wait_until(lambda: driver.state.recoveries.get("restart") == 1, what="restart seen")
            wait_until(lambda: sim.state.cnmi[1] == 1, what="CNMI set again")
            (pdu,) = unique_pdus(1)
            sim.deliver(pdu)
            wait_until(lambda: journalled(store) == [pdu], what="received after the restart")
    finally:
        sim.stop()


def test_sim800_power_warnings_are_reported(tmp_path: Path) -> None:
    sim = loopback(profile="sim800")
    try:
        with running(tmp_path, sim) as (driver, _store):
            wait_until(driver.ready.is_set, what="ready")
            sim.write_urc("UNDER-VOLTAGE WARNNING")
            wait_until(lambda: driver.events.get("power_warning") == 1, what="warning")
            assert "UNDER-VOLTAGE" in (driver.state.last_error or "")
            sim.ring()
            wait_until(lambda: driver.events.get("call", 0) >= 4, what="call events")
            assert driver.unknown_urcs == 0
            assert driver.state.document()["unsolicited"]["call"] >= 4
    finally:
        sim.stop()


def test_stalled_reports_a_worker_that_stopped_progressing(tmp_path: Path) -> None:
    sim = loopback()
    try:
        with running(tmp_path, sim) as (driver, _store):
            wait_until(driver.ready.is_set, what="ready")
            assert driver.stalled() is None
            reason = driver.stalled(time.monotonic() + 10_000)
            assert reason is not None and "m1" in reason
    finally:
        sim.stop()


def test_worker_hooks_run_on_the_worker_and_a_failing_one_stops_nothing(tmp_path: Path) -> None:
    sim = loopback()
    calls: list[str] = []

    def asks_signal(driver: ModemDriver) -> None:
        if not calls:
            calls.append(driver.command("AT+CSQ", answer=prefixed("+CSQ")).lines[0])

    def broken(driver: ModemDriver) -> None:
        raise RuntimeError("a bug in a hook")

    try:
        with running(tmp_path, sim) as (driver, store):
            driver.add_worker_hook(broken)
            driver.add_worker_hook(asks_signal)
            wait_until(driver.ready.is_set, what="ready")
            wait_until(lambda: calls, what="the hook ran")
            assert calls == ["+CSQ: 20,99"]
            sim.deliver(unique_pdus(1)[0])
            wait_until(lambda: journalled(store), what="still receiving")
            no_reconnects(driver)
    finally:
        sim.stop()


# --- the fsync comes after the hand-over and before the delete (issue 18) ------------------

@BOTH
def test_the_pipeline_has_a_message_while_its_fsync_runs_and_the_modem_keeps_it_until_then(
    tmp_path: Path, over: str
) -> None:
    sim = loopback(over=over)
    handed_over: list[int] = []
    pdu = unique_pdus(1)[0]
    try:
        with running(tmp_path, sim, wrap=SlowDisk) as (driver, store):
            disk = journal_of(driver, SlowDisk)
            driver.on_committed = lambda: handed_over.append(disk.syncing)
            wait_until(driver.ready.is_set, what="ready")
            sim.deliver(pdu)
            wait_until(lambda: disk.syncing == 1, what="the fsync under way")
            assert handed_over == [0]  # told before the fsync began
            assert journalled(store) == [pdu]  # committed: the pipeline can read it
            time.sleep(0.2)
            assert on_sim(sim) == [pdu]  # not deleted while the disk has not confirmed
            disk.synced.set()
            wait_until(lambda: not on_sim(sim), what="deleted once durable")
            no_reconnects(driver)
    finally:
        sim.stop()


@BOTH
def test_a_failing_fsync_leaves_the_message_on_the_modem(tmp_path: Path, over: str) -> None:
    sim = loopback(over=over)
    pdu = unique_pdus(1)[0]
    try:
        with running(tmp_path, sim, wrap=SlowDisk) as (driver, store):
            disk = journal_of(driver, SlowDisk)
            disk.broken = True
            disk.synced.set()
            wait_until(driver.ready.is_set, what="ready")
            sim.deliver(pdu)
            wait_until(lambda: "disk I/O error" in (driver.state.last_error or ""),
                       what="the store failure reported")
            assert on_sim(sim) == [pdu]
            disk.broken = False
            wait_until(lambda: not on_sim(sim), timeout=30, what="taken once the disk works")
            assert journalled(store) == [pdu]  # once: the second read was a duplicate
            assert len(disk.told) >= 2 and set(disk.told) == {disk.told[0]}
    finally:
        sim.stop()


@BOTH
def test_direct_delivery_is_acknowledged_only_after_the_fsync(tmp_path: Path, over: str) -> None:
    sim = loopback(over=over, cnma_timeout=5)
    try:
        with running(tmp_path, sim, wrap=SlowDisk, delivery="direct") as (driver, _s):
            disk = journal_of(driver, SlowDisk)
            wait_until(driver.ready.is_set, what="ready")
            sim.deliver(unique_pdus(1)[0])
            wait_until(lambda: disk.syncing == 1, what="the fsync under way")
            time.sleep(0.2)
            assert sim.acknowledged == []
            disk.synced.set()
            wait_until(lambda: len(sim.acknowledged) == 1, what="+CNMA after the fsync")
    finally:
        sim.stop()


@BOTH
def test_a_burst_shares_fsyncs_and_no_message_leaves_the_modem_before_its_own(
    tmp_path: Path, over: str
) -> None:
    sim = loopback(over=over)
    pdus = unique_pdus(12)
    by_id = {raw_id_for("pdu", pdu): pdu for pdu in pdus}
    deleted_early: list[str] = []
    synced: set[str] = set()

    class CheckedDisk(SlowDisk):
        def make_durable(self, result: CommitResult) -> None:
            # every message journalled so far and not yet synced must still be on the modem
            held = set(on_sim(sim))
            deleted_early.extend(r for r in self.told if r not in synced
                                 and by_id[r] not in held)
            super().make_durable(result)
            synced.update(self.told)

    try:
        with running(tmp_path, sim, wrap=CheckedDisk) as (driver, store):
            disk = journal_of(driver, CheckedDisk)
            wait_until(driver.ready.is_set, what="ready")
            sim.deliver(pdus[0])
            wait_until(lambda: disk.syncing == 1, what="the first fsync under way")
            sim.deliver_many(pdus[1:])  # their notices wait on the port while the disk is slow
            time.sleep(0.3)
            disk.synced.set()
            wait_until(lambda: not on_sim(sim) and len(journalled(store)) == 12, timeout=30,
                       what="all twelve taken")
            assert deleted_early == []
            assert sorted(journalled(store)) == sorted(pdus)
            assert disk.syncing < 12, disk.syncing  # shared: fewer fsyncs than messages
            no_reconnects(driver)
    finally:
        sim.stop()


# --- a graceful stop in the middle of a burst ---------------------------------------------

class StopsMidBurst:
    """The store's journal, asking the driver to stop as the ``stop_at``-th message is
    journalled (a stop that comes while a burst is read); with ``fails_at_stop`` every fsync
    after that fails. ``told`` holds the PDUs journalled."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.driver: ModemDriver | None = None  # set once the driver exists
        self.stop_at = 2
        self.fails_at_stop = False
        self.told: list[bytes] = []
        self.waiting_at_stop: int | None = None  # slots then journalled, not yet synced
        self.failed_syncs = 0

    def record_raw(self, **kwargs: Any) -> CommitResult:
        result = self.journal.record_raw(**kwargs)
        self.told.append(kwargs["raw"])
        driver = self.driver
        if len(self.told) == self.stop_at and driver is not None:
            self.waiting_at_stop = len(driver._to_delete)
            driver._stop.set()  # what stop() does first, at this moment
        return result

    def make_durable(self, result: CommitResult) -> None:
        driver = self.driver
        if self.fails_at_stop and driver is not None and driver._stop.is_set():
            self.failed_syncs += 1
            raise StoreError("disk I/O error")
        self.journal.make_durable(result)


@contextmanager
def burst_cut_short(tmp_path: Path, over: str, *, stop_at: int = 2,
                    fails_at_stop: bool = False,
                    ) -> Iterator[tuple[ModemDriver, Store, StopsMidBurst, list[bytes]]]:
    """Six messages delivered at once to a driver that is stopped as the ``stop_at``-th is
    journalled; yields after ``driver.stop()`` returned."""
    sim = loopback(over=over)
    pdus = unique_pdus(6)
    try:
        with running(tmp_path, sim, wrap=StopsMidBurst) as (driver, store):
            disk = journal_of(driver, StopsMidBurst)
            disk.driver = driver
            disk.stop_at = stop_at
            disk.fails_at_stop = fails_at_stop
            wait_until(driver.ready.is_set, what="ready")
            sim.deliver_many(pdus)
            wait_until(lambda: len(disk.told) == stop_at, what="the stop mid-burst")
            driver.stop()  # does not raise
            assert not driver.alive
            held = set(on_sim(sim))
            yield driver, store, disk, [p for p in pdus if p in held]
    finally:
        sim.stop()


# 2: the first message still waits for its fsync; MAX_UNSYNCED (4): the fsync is done and
# the stop comes before the deletes.
@BOTH
@pytest.mark.parametrize("stop_at", [2, MAX_UNSYNCED])
def test_a_stop_in_the_middle_of_a_burst_deletes_what_it_journalled(
    tmp_path: Path, over: str, stop_at: int
) -> None:
    with burst_cut_short(tmp_path, over, stop_at=stop_at) as (_, store, disk, left):
        assert disk.waiting_at_stop == stop_at - 1  # a burst: none synced alone
        assert sorted(journalled(store)) == sorted(disk.told)
        # what was journalled is deleted; what was not read yet is still on the modem
        assert sorted(left) == sorted(p for p in unique_pdus(6) if p not in disk.told)


@BOTH
def test_a_failing_fsync_at_stop_leaves_the_burst_on_the_modem(
    tmp_path: Path, over: str, caplog: pytest.LogCaptureFixture
) -> None:
    with burst_cut_short(tmp_path, over, fails_at_stop=True) as (_, store, disk, left):
        assert disk.failed_syncs == 1  # the stop tried to make them durable
        assert "disk I/O error" in caplog.text
        assert sorted(journalled(store)) == sorted(disk.told)
        assert sorted(left) == sorted(unique_pdus(6))  # none durable: none deleted

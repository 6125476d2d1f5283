"""Driver behaviour that protects the SIM and the data: PIN handling, storage, settings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modemd.config import config_from_dict
from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.store import Store
from tests.helpers import load, on_sim, unique_pdus, wait_until, write_config


def test_a_refused_pin_is_entered_once_never_again(tmp_path: Path) -> None:
    sim = SimulatedModem(pin="4321")
    sim.start()
    (tmp_path / "pin").write_text("0000\n")
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port, "pin_file": str(tmp_path / "pin")}])
    daemon = Daemon(load(cfg))
    daemon.start()
    try:
        driver = daemon.drivers[0]
        wait_until(lambda: driver.state.last_error and "PIN" in driver.state.last_error,
                   what="the refusal reported")
        time.sleep(4)  # several reconnect attempts' worth of time
        entered = [c for c in sim.command_log if c.upper().startswith("AT+CPIN=")]
        assert len(entered) == 1, entered
        assert "refused" in (driver.state.last_error or "")
        assert not driver.state.online
    finally:
        daemon.stop()
        sim.stop()


def test_the_right_pin_unlocks_and_messages_flow(tmp_path: Path) -> None:
    sim = SimulatedModem(pin="4321")
    sim.start()
    (tmp_path / "pin").write_text("4321\n")
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port, "pin_file": str(tmp_path / "pin")}])
    daemon = Daemon(load(cfg))
    daemon.start()
    try:
        wait_until(daemon.drivers[0].ready.is_set, what="unlocked and up")
        assert daemon.drivers[0].state.identity.imsi
    finally:
        daemon.stop()
        sim.stop()


def test_influx_measurement_is_the_default_for_rules_without_one() -> None:
    rule = {"match": {"text": "^ID="}, "format": "kv", "device_field": "ID",
            "fields": {"BAT": {"name": "battery", "type": "float"}}}
    cfg = config_from_dict({
        "influx": {"url": "http://127.0.0.1:8428", "bucket": "b", "measurement": "field"},
        "parser": [{"name": "plain", **rule}, {"name": "own", "measurement": "pumps", **rule}],
    })
    assert [r.measurement for r in cfg.parser_rules] == ["field", "pumps"]
    plain = config_from_dict({"parser": [{"name": "plain", **rule}]})
    assert [r.measurement for r in plain.parser_rules] == ["device_status"]


@contextmanager
def text_mode_daemon(tmp_path: Path, sim: SimulatedModem,
                     **gateway: object) -> Iterator[Store]:
    """A daemon on *sim* (which refuses PDU mode), up and reading in text mode; its store."""
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}], gateway=gateway)
    daemon = Daemon(load(cfg))
    daemon.start()
    try:
        driver = daemon.drivers[0]
        wait_until(driver.ready.is_set, what="up in text mode")
        assert driver.state.mode == "text"
        assert daemon.store is not None
        yield daemon.store
    finally:
        daemon.stop()


def test_a_text_mode_message_read_twice_is_journalled_once(tmp_path: Path) -> None:
    """+CMGR and +CMGL headers differ ("REC UNREAD" and +CSDH fields vs "REC READ"): a message
    that could not be deleted and is read again by the sweep must keep its id."""
    sim = SimulatedModem(quirks={"cms_error": {"+CMGF=0": 303, "+CMGD": 500}})
    sim.start()
    (live,) = unique_pdus(1, sender="+4915112345678", text="read twice")
    try:
        with text_mode_daemon(tmp_path, sim, sweep_interval=0.3) as store:
            sim.deliver(live)
            wait_until(lambda: store.db.counters().get("journal.duplicates", 0) >= 2,
                       what="the undeletable message read again by sweeps")
            assert len(store.journal.records()) == 1
            texts = [m["message"]["text"] for m in store.journal.recent_messages()]
            assert texts == ["read twice"]
            assert len(on_sim(sim)) == 1  # still there: +CMGD keeps failing
    finally:
        sim.stop()


def test_a_modem_without_pdu_mode_is_read_in_text_mode(tmp_path: Path) -> None:
    sim = SimulatedModem(quirks={"cms_error": {"+CMGF=0": 303}})
    sim.start()
    before, live = unique_pdus(2, sender="+4915112345678", text="text mode {i}")
    sim.store(before)
    try:
        with text_mode_daemon(tmp_path, sim) as store:
            sim.deliver(live)
            wait_until(lambda: len(store.journal.recent_messages()) == 2 and not on_sim(sim),
                       what="both read and deleted")
            rows = store.journal.records()
            assert {r.mode for r in rows} == {"text"}
            docs = sorted((m["message"] for m in store.journal.recent_messages()),
                          key=lambda d: d["text"])
            assert [d["text"] for d in docs] == ["text mode 0", "text mode 1"]
            assert all(d["sender"] == "+4915112345678" for d in docs)
            assert docs[0]["sent_at"] == "2026-11-25T10:00:00+00:00"
    finally:
        sim.stop()

"""Modems receiving at once share fsyncs (issue 18: four modems at once).

Messages that reach four modems in the same instant used to queue for four fsyncs one after
another. Each worker now commits without one, hands the row on, and then waits for the
disk (Journal.make_durable): the commits made while an fsync runs share the next one, and
the write lock is never held during an fsync. No committer thread sits on a modem's path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.store import Store
from modemd.store.database import StoreVanished
from modemd.store.journal import Journal, raw_id_for
from tests.helpers import load, unique_pdus, wait_until, write_config
from tests.mosquitto import Mosquitto
from tests.mqtt_client import Recorder


def counting_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make os.fsync note the file each call syncs (and still sync it)."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_records_committed_during_an_fsync_share_the_next_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = counting_fsyncs(monkeypatch)
    durable: list[str] = []
    lock = threading.Lock()

    def receive(modem: str) -> None:
        result = store.journal.record_raw(modem=modem, mode="pdu", raw=modem.encode() * 8)
        store.journal.make_durable(result)
        with lock:
            durable.append(result.raw_id)

    workers = [threading.Thread(target=receive, args=(f"m{i}",)) for i in range(4)]
    with store.db._sync_lock:  # an fsync under way: all four commit meanwhile
        for worker in workers:
            worker.start()
        wait_until(lambda: store.journal.count() == 4, what="four records committed")
        assert durable == []  # none is durable before an fsync after its commit
    for worker in workers:
        worker.join(10)
    assert len(durable) == 4
    assert len(synced) == 1 and synced[0] == f"{store.db.path}-wal"


def test_a_record_already_synced_costs_no_fsync(store: Store,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    first = store.journal.record_raw(modem="m1", mode="pdu", raw=b"\x00" * 12)
    second = store.journal.record_raw(modem="m2", mode="pdu", raw=b"\x01" * 12)
    synced = counting_fsyncs(monkeypatch)
    store.journal.make_durable(second)  # covers the first too
    store.journal.make_durable(first)
    assert len(synced) == 1


def test_a_store_deleted_before_the_fsync_is_reported_as_vanished(store: Store) -> None:
    result = store.journal.record_raw(modem="m1", mode="pdu", raw=b"\x00" * 12)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store.db.path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreVanished):
        store.journal.make_durable(result)


@pytest.fixture
def sims() -> Iterator[list[SimulatedModem]]:
    modems = [SimulatedModem(profile="generic", imei=f"35693803565{i:04d}", capacity=100)
              for i in range(4)]
    for modem in modems:
        modem.start()
    yield modems
    for modem in modems:
        modem.stop()


@pytest.mark.integration
def test_four_modems_receiving_at_once_deliver_every_message_once(
    tmp_path: Path, sims: list[SimulatedModem], broker: Mosquitto
) -> None:
    config = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                          modems=[{"name": f"m{i + 1}", "port": sim.port}
                                  for i, sim in enumerate(sims)],
                          mqtt={"host": "127.0.0.1", "port": broker.port, "keepalive": 5})
    recorder = Recorder(broker.port, ["modemd/gw1/sms"])
    daemon = Daemon(load(config))
    daemon.start()
    try:
        supplies = [unique_pdus(10, sender=f"+4915100000{i:02d}", text=f"modem {i} msg {{i}}")
                    for i in range(4)]
        for round_ in zip(*supplies, strict=True):
            for sim, pdu in zip(sims, round_, strict=True):
                sim.deliver(pdu)
        received = recorder.wait_count("modemd/gw1/sms", 40)
        ids = sorted(m.json()["id"] for m in received)
        assert ids == sorted(raw_id_for("pdu", p) for s in supplies for p in s)
        assert {m.json()["modem"] for m in received} == {"m1", "m2", "m3", "m4"}
        assert daemon.committer is None  # each worker commits; they share fsyncs
        wait_until(lambda: all(not sim.messages() for sim in sims), what="all deleted")
    finally:
        daemon.stop()
        recorder.close()


@pytest.mark.integration
def test_a_modem_commits_without_the_committer(tmp_path: Path, sim: SimulatedModem
                                                    ) -> None:
    config = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                          modems=[{"name": "m1", "port": sim.port}])
    daemon = Daemon(load(config))
    daemon.start()
    try:
        assert daemon.committer is None
        assert isinstance(daemon.drivers[0].journal, Journal)
    finally:
        daemon.stop()

"""Several modems journal through one group committer (issue 18: four modems at once).

Messages that reach four modems in the same instant used to queue for four fsyncs one after
another; through the committer, what coincides shares one durable commit. A lone modem
still commits itself (no thread hop on its path).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modemd.daemon import Daemon
from modemd.errors import StoreError
from modemd.simulator import SimulatedModem
from modemd.store import Store
from modemd.store.committer import GroupCommitter, GroupedJournal
from modemd.store.journal import CommitResult, Journal, raw_id_for
from tests.helpers import load, unique_pdus, wait_until, write_config
from tests.mosquitto import Mosquitto
from tests.mqtt_client import Recorder


def test_records_arriving_during_a_commit_share_the_next_one(store: Store) -> None:
    committer = GroupCommitter(store.journal)
    journal = GroupedJournal(committer)
    committer.start()
    results: list[CommitResult] = []
    lock = threading.Lock()

    def receive(modem: str) -> None:
        result = journal.commit_raw(modem=modem, mode="pdu", raw=modem.encode() * 8)
        with lock:
            results.append(result)

    workers = [threading.Thread(target=receive, args=(f"m{i}",)) for i in range(4)]
    try:
        with store.db._write_lock:  # a commit under way: the first batch waits for it
            workers[0].start()
            wait_until(lambda: committer._queue.qsize() == 0, what="the first record taken")
            for worker in workers[1:]:
                worker.start()
            wait_until(lambda: committer._queue.qsize() == 3, what="three records queued")
        for worker in workers:
            worker.join(10)
    finally:
        committer.stop()
    assert len(results) == 4 and all(r.inserted for r in results)
    assert (committer.batches, committer.records, committer.largest_batch) == (2, 4, 3)
    assert store.journal.count() == 4


def test_a_commit_that_never_comes_is_a_store_error(store: Store) -> None:
    journal = GroupedJournal(GroupCommitter(store.journal), timeout=0.2)  # never started
    with pytest.raises(StoreError, match="no commit within"):
        journal.commit_raw(modem="m1", mode="pdu", raw=b"\x00" * 12)


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
        assert daemon.committer is not None
        assert daemon.committer.records == 40  # every modem's record went through it
        wait_until(lambda: all(not sim.messages() for sim in sims), what="all deleted")
    finally:
        daemon.stop()
        recorder.close()


@pytest.mark.integration
def test_a_lone_modem_commits_without_the_committer(tmp_path: Path, sim: SimulatedModem
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

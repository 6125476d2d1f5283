"""The systemd watchdog follows real progress: a pipeline or modem worker that is stuck (alive
but going nowhere) stops WATCHDOG=1, and the reason is logged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modemd.config import load_config
from modemd.daemon import Daemon
from modemd.pipeline import Pipeline, Route
from modemd.simulator.modem import SimulatedModem
from modemd.store import Store
from modemd.systemd import Notifier
from tests.helpers import unique_pdus, wait_until, write_config
from tests.notify import NotifySocket


@pytest.fixture
def running(tmp_path: Path, sim: SimulatedModem,
            notify: NotifySocket) -> Iterator[tuple[Daemon, NotifySocket]]:
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}])
    notifier = Notifier({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"})
    daemon = Daemon(load_config(cfg), notifier=notifier)
    daemon.start()
    runner = threading.Thread(target=daemon.run_forever, name="test-run-forever")
    runner.start()
    try:
        notify.wait_for("READY=1", timeout=15)
        yield daemon, notify
    finally:
        daemon.request_stop()
        runner.join(5)
        daemon.stop()


def pings_after(notify: NotifySocket, seconds: float) -> int:
    notify.poll(0.6)  # a ping already on its way may still arrive
    silent_from = time.monotonic()
    notify.poll(seconds)
    return notify.count("WATCHDOG=1", after=silent_from)


def test_a_stuck_pipeline_stops_the_watchdog_until_it_moves_again(
        running: tuple[Daemon, NotifySocket], sim: SimulatedModem,
        caplog: pytest.LogCaptureFixture) -> None:
    daemon, notify = running
    assert daemon.pipeline is not None
    assert pings_after(notify, 1.5) >= 1
    release = threading.Event()
    daemon.pipeline.stall_after = 0.5
    daemon.pipeline.on_enqueued = lambda: release.wait(20)  # stuck, thread alive
    with caplog.at_level(logging.ERROR, logger="modemd.daemon"):
        sim.deliver(unique_pdus(1)[0])
        wait_until(lambda: not daemon.healthy(), timeout=10, what="stalled")
        assert daemon.pipeline.alive
        assert pings_after(notify, 1.5) == 0, notify.messages
    assert any("withholding the watchdog ping: the pipeline has not come round its loop"
               in r.getMessage() for r in caplog.records)
    daemon.pipeline.on_enqueued = lambda: None
    release.set()
    wait_until(daemon.healthy, timeout=10, what="healthy again")
    assert pings_after(notify, 1.5) >= 1


def test_a_stuck_modem_worker_stops_the_watchdog(
        running: tuple[Daemon, NotifySocket], sim: SimulatedModem) -> None:
    daemon, notify = running
    (driver,) = daemon.drivers
    release = threading.Event()
    driver.stall_after = 0.5
    driver.on_committed = lambda: release.wait(20)  # the worker hangs after a commit
    try:
        sim.deliver(unique_pdus(1)[0])
        wait_until(lambda: (daemon.stalled() or "").startswith("modem m1: worker stuck"),
                   timeout=10, what="worker stalled")
        assert driver.alive
        assert pings_after(notify, 1.5) == 0, notify.messages
    finally:
        release.set()


def test_stalled_names_the_row_a_pipeline_is_stuck_on(tmp_path: Path) -> None:
    store = Store(tmp_path)
    pipeline = Pipeline(store, routes=[Route("mqtt", frozenset({"sms"}))], stall_after=0.3)
    assert pipeline.stalled(time.monotonic()) == "the pipeline thread is not running"
    release = threading.Event()
    real_deliver = pipeline._deliver_sms

    def slow_deliver(*args: object, **kwargs: object) -> None:
        release.wait(20)
        real_deliver(*args, **kwargs)  # type: ignore[arg-type]

    pipeline._deliver_sms = slow_deliver  # type: ignore[method-assign]
    pipeline.start()
    try:
        assert pipeline.stalled(time.monotonic()) is None
        (pdu,) = unique_pdus(1)
        record = store.journal.commit_raw(modem="m1", mode="pdu", raw=pdu)
        pipeline.wake()
        reason = wait_until(lambda: pipeline.stalled(time.monotonic()), timeout=10,
                            what="stalled")
        assert reason.startswith(f"the pipeline has been on journal row {record.raw_id} for")
        release.set()
        wait_until(lambda: pipeline.stalled(time.monotonic()) is None, timeout=10,
                   what="moving again")
    finally:
        release.set()
        pipeline.stop()
        store.close()

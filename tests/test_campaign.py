"""The fault campaign: every fault the field throws at a gateway, and nothing lost.

Each test injects messages into a simulated modem while one fault is on, waits for them at a
real mosquitto subscriber (and, for the time-series fault, in a real VictoriaMetrics), and
writes its row (fault, trials, injected, journalled, published, lost, duplicated) to the
results file that ``scripts/campaign`` renders as docs/reliability.md. The invariant checked
everywhere: lost == 0, and every duplicate is a faithful copy under the same id.

``pytest -m campaign`` runs the campaign alone; MODEMD_CAMPAIGN_SEED repeats a run's random
choices (the seed is in every row).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.store import STORE_FILENAME, Store
from modemd.store.journal import raw_id_for
from tests.campaign import (
    SMS_TOPIC,
    Injected,
    PersistentBroker,
    SmsLog,
    campaign_rng,
    check,
    fill_filesystem,
    integrity,
    journal_ids,
    left_on_sim,
    noise,
    small_filesystem,
    tally,
    wait,
    wait_for_command,
)
from tests.helpers import DaemonProcess, load, on_sim, unique_pdus, write_config
from tests.victoriametrics import VictoriaMetrics

pytestmark = [pytest.mark.campaign, pytest.mark.integration]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PersistentBroker]:
    server = PersistentBroker(tmp_path / "mosquitto")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smslog(broker: PersistentBroker) -> Iterator[SmsLog]:
    log = SmsLog(broker.port)
    try:
        yield log
    finally:
        log.close()


@pytest.fixture
def sim() -> Iterator[SimulatedModem]:
    modem = SimulatedModem(profile="generic", capacity=100)
    modem.start()
    try:
        yield modem
    finally:
        modem.stop()


def config(tmp_path: Path, port: str, broker: PersistentBroker, *, state: Path | None = None,
           gateway: dict[str, Any] | None = None, modem: dict[str, Any] | None = None,
           influx: dict[str, Any] | None = None, extra: str = "", name: str = "modemd.toml",
           ) -> Path:
    return write_config(
        tmp_path / name, state_dir=state or tmp_path / "state",
        modems=[{"name": "m1", "port": port, **(modem or {})}],
        mqtt={"host": "127.0.0.1", "port": broker.port, "keepalive": 5},
        gateway=gateway, influx=influx, extra=extra)


def run_daemon(cfg: Path) -> Daemon:
    daemon = Daemon(load(cfg))
    daemon.start()
    return daemon


# --- the message side -------------------------------------------------------------------------


def test_broker_down_mid_stream(tmp_path: Path, sim: SimulatedModem, broker: PersistentBroker,
                                smslog: SmsLog) -> None:
    """The broker goes away twice while messages keep coming; the outbox rides it out."""
    started = time.monotonic()
    injected = Injected()
    daemon = run_daemon(config(tmp_path, sim.port, broker))
    try:
        pdus = unique_pdus(45, text="broker {i}")
        for i, pdu in enumerate(pdus):
            if i in (10, 30):
                broker.stop()
            if i in (20, 40):
                broker.start()
            sim.deliver(pdu)
            injected.add([pdu])
            time.sleep(0.1)
        smslog.wait_ids(injected.ids, timeout=40)
    finally:
        daemon.stop()
    outcome = tally("broker down mid-stream", trials=2, injected=injected, log=smslog,
                    state_dirs=[tmp_path / "state"], started=started,
                    notes="two outages of ~1 s each, 10 messages arriving during each")
    check(outcome)


READING_RULE = """
[[parser]]
name = "campaign-counter"
match = { text = "^ID=" }
format = "kv"
pair_separator = ";"
kv_separator = "="
device_field = "ID"
measurement = "campaign"
[parser.fields]
N = { name = "n", type = "int" }
"""


def test_time_series_server_down(tmp_path: Path, sim: SimulatedModem, broker: PersistentBroker,
                                 smslog: SmsLog) -> None:
    """VictoriaMetrics stops mid-stream: readings wait in the influx outbox and all arrive
    (dedup is switched off, so a point written twice would show as two samples)."""
    started = time.monotonic()
    injected = Injected()
    with VictoriaMetrics(tmp_path / "vm", extra_args=["-dedup.minScrapeInterval=0s"]) as vm:
        cfg = config(tmp_path, sim.port, broker, extra=READING_RULE,
                     influx={"url": vm.url, "org": "campaign", "bucket": "campaign"})
        daemon = run_daemon(cfg)
        try:
            pdus = unique_pdus(30, text="ID=DEV{i};N={i}")
            for i, pdu in enumerate(pdus):
                if i == 10:
                    vm.stop()
                if i == 25:
                    vm.start()
                sim.deliver(pdu)
                injected.add([pdu])
                time.sleep(0.1)
            smslog.wait_ids(injected.ids, timeout=30)
            samples = vm.wait_for('{__name__="campaign_n"}', len(pdus), timeout=40)
        finally:
            daemon.stop()
    series = Counter((s.labels.get("device"), s.timestamp_ms) for s in samples)
    values = {(s.labels.get("device"), int(s.value)) for s in samples}
    expected = {(f"DEV{i}", i) for i in range(len(pdus))}
    outcome = tally("time-series server down", trials=1, injected=injected, log=smslog,
                    state_dirs=[tmp_path / "state"], started=started,
                    notes="counted in VictoriaMetrics (published = points stored, duplicated ="
                          " points stored twice); MQTT copies checked too")
    # The row is about the time-series store: what VictoriaMetrics holds.
    outcome.published = len(values & expected)
    outcome.lost = len(expected - values)
    outcome.duplicated = sum(1 for n in series.values() if n > 1)
    outcome.copies = sum(n - 1 for n in series.values())
    from tests.campaign import record
    record(outcome)
    check(outcome)


# --- the daemon dies ----------------------------------------------------------------------------


def start_process(cfg: Path, sim: SimulatedModem, *, ready_timeout: float = 20.0,
                  ) -> DaemonProcess:
    """`modemd run` in a child; back once it has initialised the modem and swept it."""
    mark = len(sim.command_log)
    daemon = DaemonProcess(cfg).start()
    if not wait_for_command(sim, "AT+CSQ", after=mark, timeout=ready_timeout):
        daemon.kill()
        raise AssertionError(f"modemd did not bring the modem up:\n{daemon.output()[-3000:]}")
    return daemon


def kill_phase(burst: set[str], state_dir: Path, sim: SimulatedModem) -> str:
    """Where in the receive path a SIGKILL landed, judged from what it left behind."""
    journalled = burst & journal_ids(state_dir)
    still_on_sim = burst & left_on_sim(sim)
    if not journalled:
        return "before the first commit"
    if still_on_sim - journalled and journalled:
        return "mid-ingest"
    if still_on_sim:
        return "between commit and delete"
    return "after ingest"


def test_sigkill_at_random_points_during_a_burst(tmp_path: Path, sim: SimulatedModem,
                                                 broker: PersistentBroker,
                                                 smslog: SmsLog) -> None:
    """SIGKILL after a random 0-1 s into a burst of 10-20, restart, 20 times over; the SIM
    keeps what was not deleted, the journal and the outbox the rest."""
    started = time.monotonic()
    rng = campaign_rng("sigkill")
    injected = Injected()
    cfg = config(tmp_path, sim.port, broker)
    state = tmp_path / "state"
    trials = int(os.environ.get("MODEMD_CAMPAIGN_KILLS", "20"))
    phases: Counter[str] = Counter()
    daemon = start_process(cfg, sim)
    try:
        offset = 0
        for _ in range(trials):
            size = rng.randint(10, 20)
            pdus = unique_pdus(size, text="kill {i}", start=offset)
            offset += size
            sim.deliver_many(pdus)
            injected.add(pdus)
            time.sleep(rng.uniform(0.0, 1.0))
            daemon.kill()
            phases[kill_phase({raw_id_for("pdu", p) for p in pdus}, state, sim)] += 1
            daemon = start_process(cfg, sim)
            if not smslog.wait_ids(injected.ids, timeout=30):
                break
        smslog.wait_ids(injected.ids, timeout=10)
    finally:
        daemon.stop()
    outcome = tally("daemon SIGKILL during a burst", trials=trials, injected=injected,
                    log=smslog, state_dirs=[state], started=started,
                    notes="kills landed: " + ", ".join(f"{n} {p}" for p, n in
                                                       sorted(phases.items())))
    check(outcome)
    assert not on_sim(sim)

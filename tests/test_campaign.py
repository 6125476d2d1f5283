"""The fault campaign: every fault the field throws at a gateway, and nothing lost.

Each test injects messages into a simulated modem while one fault is on, waits for them at a
real mosquitto subscriber (and, for the time-series fault, in a real VictoriaMetrics), and
writes its row (fault, trials, injected, journalled, published, lost, duplicated) to the
results file that ``scripts/campaign`` renders as docs/reliability.md. The invariant checked
everywhere: lost == 0, and every duplicate is a faithful copy under the same id.

``pytest -m campaign`` runs the campaign alone; MODEMD_CAMPAIGN_SEED repeats a run's random
choices (the seed is in every row); MODEMD_CAMPAIGN_KILLS and MODEMD_CAMPAIGN_POWER_LOSSES
change the number of SIGKILL trials (20 and 16). The disk-full fault mounts a 4 MiB tmpfs on
its state directory, which needs root (the test machines run the suite as root).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.store import STORE_FILENAME, Store
from modemd.store.journal import raw_id_for
from tests.campaign import (  # fixtures: see the next import  # noqa: F401  (fixtures used by name)
    Injected,
    PersistentBroker,
    SmsLog,
    WriteWatch,
    broker,
    campaign_rng,
    conclude,
    fill_filesystem,
    integrity,
    journal_ids,
    left_on_sim,
    multipart_pdus,
    noise,
    sim,
    small_filesystem,
    smslog,
    tally,
    wait,
    wait_for_command,
)
from tests.helpers import DaemonProcess, load, on_sim, unique_pdus, write_config
from tests.victoriametrics import VictoriaMetrics

pytestmark = [pytest.mark.campaign, pytest.mark.integration]


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


# --- the message side ----------------------------------------------------------------------------


def pending(daemon: Daemon, sink: str) -> int:
    assert daemon.store is not None
    return sum(s.pending for s in daemon.store.outbox.stats([sink]) if s.sink == sink)


def test_broker_down_mid_stream(tmp_path: Path, sim: SimulatedModem, broker: PersistentBroker,
                                smslog: SmsLog) -> None:
    """The broker goes away twice for ~3 s while messages keep coming; the outbox rides it
    out and every message arrives once the broker is back."""
    started = time.monotonic()
    injected = Injected()
    daemon = run_daemon(config(tmp_path, sim.port, broker))
    waited: list[int] = []
    back_in: list[float] = []
    try:
        wait(daemon.drivers[0].ready.is_set, 10)
        pdus = iter(unique_pdus(60, text="broker {i}"))
        for _ in range(2):
            deliver_spaced(sim, injected, [next(pdus) for _ in range(10)], 0.05)
            broker.stop()
            deliver_spaced(sim, injected, [next(pdus) for _ in range(10)], 0.3)
            waited.append(pending(daemon, "mqtt"))
            broker.start()
            restarted = time.monotonic()
            deliver_spaced(sim, injected, [next(pdus) for _ in range(5)], 0.05)
            smslog.wait_ids(injected.ids, timeout=40)
            back_in.append(round(time.monotonic() - restarted, 1))
    finally:
        daemon.stop()
    outcome = tally("broker down mid-stream", trials=2, injected=injected, log=smslog,
                    sims=[sim], state_dirs=[tmp_path / "state"], started=started,
                    notes=f"two outages of 3 s, 10 messages arriving during each; outbox held "
                          f"{waited} rows at the end of each; all delivered {back_in} s after "
                          f"the broker was back")
    conclude(outcome, (all(n >= 10 for n in waited),
                       f"the outage did not hold messages back: {waited}"))


SCTS_BASE = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)  # unique_pdus' first SCTS
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
    """VictoriaMetrics stops for 3 s mid-stream: readings wait in the influx outbox and all
    arrive at their SMS time (dedup is off, so a point written twice shows as two samples)."""
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
                    waited = pending(daemon, "influx")
                    vm.start()
                sim.deliver(pdu)
                injected.add([pdu])
                time.sleep(0.2)
            smslog.wait_ids(injected.ids, timeout=30)
            samples = vm.wait_for('{__name__="campaign_n"}', len(pdus), timeout=40)
        finally:
            daemon.stop()
    # One point per message, at the message's service-centre time (design.md) plus the
    # sub-second offset derived from its id (docs/contracts.md), value = i.
    scts = {f"DEV{i}": int(SCTS_BASE.timestamp() * 1000) + i * 1000 for i in range(len(pdus))}
    per_device = Counter(s.labels.get("device") for s in samples)
    right = {s.labels.get("device") for s in samples
             if scts.get(str(s.labels.get("device"))) == s.timestamp_ms // 1000 * 1000
             and f"DEV{int(s.value)}" == s.labels.get("device")}
    wrong = [f"{s.labels.get('device')}={s.value}@{s.timestamp_ms}" for s in samples
             if s.labels.get("device") not in right]
    outcome = tally("time-series server down", trials=1, injected=injected, log=smslog,
                    sims=[sim], state_dirs=[tmp_path / "state"], started=started,
                    notes=f"a 3 s outage while 15 readings arrived ({waited} waiting in the "
                          "outbox); counted in VictoriaMetrics (published = points stored at the"
                          " SMS time, duplicated = points stored twice); MQTT copies checked too")
    # The row is about the time-series store: what VictoriaMetrics holds.
    outcome.published = len(right)
    outcome.lost = len(set(scts) - right)
    outcome.duplicated = sum(1 for n in per_device.values() if n > 1)
    outcome.copies = sum(n - 1 for n in per_device.values())
    if wrong:
        outcome.problems.append(f"points not at their SMS time or value: {wrong[:5]}")
    conclude(outcome, (waited >= 10, f"the outage did not hold readings back: {waited}"))


# --- the daemon dies -----------------------------------------------------------------------------


def start_process(cfg: Path, sim: SimulatedModem, *, ready_timeout: float = 20.0,
                  ) -> DaemonProcess:
    """`modemd run` in a child; back once it has initialised the modem and swept it."""
    mark = len(sim.command_log)
    daemon = DaemonProcess(cfg).start()
    # Not up in time: the trial goes on (the messages wait on the SIM) and the count tells.
    wait_for_command(sim, "AT+CSQ", after=mark, timeout=ready_timeout)
    return daemon


def daemon_pid(daemon: DaemonProcess) -> int:
    assert daemon.proc is not None
    return daemon.proc.pid


def kill_phase(burst: set[str], state_dir: Path, sim: SimulatedModem, log: SmsLog) -> str:
    """Where in the receive path a SIGKILL landed, judged from what it left behind."""
    journalled = burst & journal_ids(state_dir)
    still_on_sim = burst & left_on_sim(sim)
    if not journalled:
        return "before the first commit"
    if still_on_sim - journalled:
        return "mid-ingest"
    if still_on_sim:
        return "between a commit and its delete"
    if not burst <= set(log.ids()):
        return "after ingest, before every PUBACK"
    return "after delivery"


def test_sigkill_at_random_points_during_a_burst(tmp_path: Path, sim: SimulatedModem,
                                                 broker: PersistentBroker,
                                                 smslog: SmsLog) -> None:
    """SIGKILL after a random 0-1 s into a burst of 10-20, restart, 20 times over; the SIM
    keeps what was not deleted, the journal and the outbox the rest. Each burst also carries
    the first two parts of a 3-part message whose last part comes with the next burst, so
    multipart sets are reassembled across kills."""
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
        previous: list[bytes] = []  # the multipart message whose last part is still to come
        for trial in range(trials):
            size = rng.randint(10, 20)
            singles = unique_pdus(size, text="kill {i}", start=offset)
            offset += size
            long_parts = multipart_pdus(trial)
            burst = [*previous[2:], *singles]
            for part in long_parts[:2]:
                burst.insert(rng.randrange(len(burst) + 1), part)
            if previous:
                injected.add_multipart(previous)
            previous = long_parts
            if trial == trials - 1:
                burst += long_parts[2:]
                injected.add_multipart(long_parts)
            sim.deliver_many(burst)
            injected.add(singles)
            # 0-1 s, denser near 0 where the burst is read, committed and published.
            time.sleep(rng.uniform(0.0, 1.0) ** 3)
            daemon.kill()
            phases[kill_phase({raw_id_for("pdu", p) for p in burst}, state, sim, smslog)] += 1
            daemon = start_process(cfg, sim)
            if not smslog.wait_ids(injected.ids, timeout=30):
                break
        smslog.wait_ids(injected.ids, timeout=10)
    finally:
        daemon.stop()
    outcome = tally("daemon SIGKILL during a burst", trials=trials, injected=injected,
                    log=smslog, sims=[sim], state_dirs=[state], started=started,
                    notes=f"bursts of 10-20 single SMS plus parts of a 3-part SMS whose last "
                          f"part comes after the kill ({trials} multipart); kills landed: "
                          + ", ".join(f"{n} {p}" for p, n in sorted(phases.items())))
    conclude(outcome, (not on_sim(sim), "messages left on the SIM"))


def test_power_loss_style_kill_during_commit(tmp_path: Path, sim: SimulatedModem,
                                             broker: PersistentBroker, smslog: SmsLog) -> None:
    """SIGKILL within microseconds of a write to the store's WAL (inotify), so the kill lands
    inside a commit before its fsync, or a few milliseconds after a burst (18 single SMS and a
    3-part one, shuffled) arrives; after every kill the file as left behind passes
    `PRAGMA integrity_check`, and nothing is lost."""
    started = time.monotonic()
    rng = campaign_rng("power-loss")
    injected = Injected()
    cfg = config(tmp_path, sim.port, broker)
    state = tmp_path / "state"
    store_file = state / STORE_FILENAME
    trials = int(os.environ.get("MODEMD_CAMPAIGN_POWER_LOSSES", "16"))
    on_write = 0
    latencies: list[float] = []
    checks: list[str] = []
    daemon = start_process(cfg, sim)
    try:
        offset = 0
        for trial in range(trials):
            singles = unique_pdus(18, text="power {i}", start=offset)
            offset += len(singles)
            long_parts = multipart_pdus(100 + trial)
            pdus = list(singles)
            for part in long_parts:
                pdus.insert(rng.randrange(len(pdus) + 1), part)
            if trial % 2 == 0:
                watch = WriteWatch(store_file.with_name(STORE_FILENAME + "-wal"))
                try:
                    sim.deliver_many(pdus)
                    skip = rng.randint(0, 6)  # which of the burst's writes to cut short
                    for _ in range(skip + 1):
                        if not watch.wait(2.0):
                            break
                    seen = time.perf_counter()
                    os.kill(daemon_pid(daemon), signal.SIGKILL)
                    latencies.append(time.perf_counter() - seen)
                    on_write += 1
                finally:
                    watch.close()
            else:
                sim.deliver_many(pdus)
                time.sleep(rng.uniform(0.0, 0.03))
                os.kill(daemon_pid(daemon), signal.SIGKILL)
            injected.add(singles)
            injected.add_multipart(long_parts)
            daemon.kill()  # reaps it
            checks.append(integrity(store_file))
            daemon = start_process(cfg, sim)
        smslog.wait_ids(injected.ids, timeout=40)
    finally:
        daemon.stop()
    store = Store(state)  # opens, passes the quick_check, no corruption path taken
    try:
        final_check = store.db.connection().execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        store.close()
    moved_aside = sorted(p.name for p in state.iterdir() if ".corrupt-" in p.name)
    latencies.sort()
    outcome = tally(
        "power-loss style kill during commit", trials=trials, injected=injected, log=smslog,
        sims=[sim], state_dirs=[state], started=started,
        notes=f"{on_write} kills sent {latencies[len(latencies) // 2] * 1e6:.0f} µs (median) "
              f"after a write to the WAL, {trials - on_write} 0-30 ms after a burst; "
              f"integrity_check after every kill: "
              f"{sum(c == 'ok' for c in checks)}/{len(checks)} ok")
    conclude(outcome, (all(c == "ok" for c in checks), f"integrity checks: {checks}"),
             (final_check == "ok", f"final integrity check: {final_check}"),
             (not moved_aside, f"the store was taken for corrupt: {moved_aside}"))


# --- the modem side ------------------------------------------------------------------------------


def deliver_spaced(sim: SimulatedModem, injected: Injected, pdus: list[bytes],
                   gap: float) -> None:
    for pdu in pdus:
        sim.deliver(pdu)
        injected.add([pdu])
        time.sleep(gap)


def test_modem_hang(tmp_path: Path, sim: SimulatedModem, broker: PersistentBroker,
                    smslog: SmsLog) -> None:
    """The modem stops answering (and stops announcing) twice: briefly (a ping finds it
    again), then for 11 s, long enough for the recovery ladder to reopen the port. The messages that
    arrived meanwhile lost their +CMTI with the hang: the recovery must sweep them in, not
    leave them for the periodic sweep (30 s here, 60 s by default)."""
    started = time.monotonic()
    injected = Injected()
    daemon = run_daemon(config(tmp_path, sim.port, broker, gateway={"health_interval": 1},
                               modem={"command_timeout": 1}))
    driver = daemon.drivers[0]
    recovered_in: list[float] = []
    try:
        wait(driver.ready.is_set, 10)
        pdus = iter(unique_pdus(50, text="hang {i}"))
        for hang_for in (1.5, 11.0):
            deliver_spaced(sim, injected, [next(pdus) for _ in range(5)], 0.1)
            sim.set_quirk("hang", True)
            deliver_spaced(sim, injected, [next(pdus) for _ in range(10)], hang_for / 10)
            sim.set_quirk("hang", False)
            cleared = time.monotonic()
            smslog.wait_ids(injected.ids, timeout=40)
            recovered_in.append(round(time.monotonic() - cleared, 1))
        deliver_spaced(sim, injected, [next(pdus) for _ in range(5)], 0.1)
        smslog.wait_ids(injected.ids, timeout=10)
        steps = dict(driver.state.recoveries)
    finally:
        daemon.stop()
    outcome = tally("modem hang", trials=2, injected=injected, log=smslog,
                    sims=[sim], state_dirs=[tmp_path / "state"], started=started,
                    notes=f"hangs of 1.5 s and 11 s, 10 messages arriving during each (their "
                          f"+CMTI lost with the hang); all in {recovered_in} s after the hang "
                          f"ended; recovery steps: {steps}")
    conclude(outcome, (steps.get("ping", 0) >= 1 and steps.get("reopen", 0) >= 1,
                       f"the ladder did not go from ping to reopen: {steps}"),
             (bool(recovered_in) and max(recovered_in) < 10,
              f"messages waited {recovered_in} s after the hang ended (the recovery did not "
              f"sweep in what arrived during the hang)"))


def test_port_vanishing(tmp_path: Path, broker: PersistentBroker, smslog: SmsLog) -> None:
    """USB unplug and replug (a new pty behind the same by-id link), once while idle and
    once in the middle of reading a burst."""
    started = time.monotonic()
    rng = campaign_rng("vanish")
    injected = Injected()
    link = tmp_path / "by-id" / "usb-modem-if02"
    sim = SimulatedModem(profile="generic", capacity=100, link_path=link)
    sim.start()
    daemon = run_daemon(config(tmp_path, str(link), broker))
    driver = daemon.drivers[0]
    trials = 4
    try:
        wait(driver.ready.is_set, 10)
        pdus = iter(unique_pdus(200, text="unplug {i}"))
        for trial in range(trials):
            if trial % 2 == 0:  # idle: messages come while the host cannot see the modem
                deliver_spaced(sim, injected, [next(pdus) for _ in range(5)], 0.05)
                smslog.wait_ids(injected.ids, timeout=10)
                sim.vanish()
                wait(lambda: not driver.state.online, 10)
                deliver_spaced(sim, injected, [next(pdus) for _ in range(5)], 0.05)
            else:  # busy: unplugged while the daemon reads, commits and deletes a burst
                burst = [next(pdus) for _ in range(15)]
                sim.deliver_many(burst)
                injected.add(burst)
                time.sleep(rng.uniform(0.0, 0.05))
                sim.vanish()
            time.sleep(0.5)
            sim.reappear(new_path=True)
            deliver_spaced(sim, injected, [next(pdus) for _ in range(3)], 0.05)
            smslog.wait_ids(injected.ids, timeout=40)
        reopened = driver.state.recoveries.get("reopen", 0)
    finally:
        daemon.stop()
        sim.stop()
    outcome = tally("port vanishing (USB unplug)", trials=trials, injected=injected,
                    log=smslog, sims=[sim], state_dirs=[tmp_path / "state"], started=started,
                    notes=f"{trials // 2} unplugs while idle, {trials // 2} while reading a "
                          f"burst of 15; port reopened {reopened} times")
    conclude(outcome)


def test_sim_storage_full(tmp_path: Path, broker: PersistentBroker, smslog: SmsLog) -> None:
    """A 5-slot SIM and a burst of 40: the network stores what fits and retries the rest
    once the daemon has swept space free (a message counts when it reaches the SIM)."""
    started = time.monotonic()
    injected = Injected()
    sim = SimulatedModem(profile="quectel_ec25", capacity=5)
    sim.start()
    daemon = run_daemon(config(tmp_path, sim.port, broker))
    rounds = 0
    try:
        wait(daemon.drivers[0].ready.is_set, 10)
        pdus = unique_pdus(40, text="full {i}")
        results = sim.deliver_many(pdus)
        injected.add(p for p, index in zip(pdus, results, strict=True) if index is not None)
        first_rejected = len(sim.rejected)
        deadline = time.monotonic() + 60
        while sim.rejected and time.monotonic() < deadline:
            wait(lambda: len(on_sim(sim)) < 5, timeout=5)
            waiting = sim.rejected
            retried = sim.retry_rejected()
            injected.add(p for p, index in zip(waiting, retried, strict=True)
                         if index is not None)
            rounds += 1
        smslog.wait_ids(injected.ids, timeout=30)
        rejected_left = len(sim.rejected)
    finally:
        daemon.stop()
        sim.stop()
    outcome = tally("SIM storage full", trials=rounds, injected=injected, log=smslog,
                    sims=[sim], state_dirs=[tmp_path / "state"], started=started,
                    notes=f"capacity 5, burst of 40: {first_rejected} refused at first, "
                          f"retried by the network in {rounds} rounds")
    conclude(outcome, (first_rejected >= 30, f"only {first_rejected} refused at first"),
             (not rejected_left, f"{rejected_left} never reached the SIM"),
             (len(injected) == 40, f"{len(injected)} of 40 reached the SIM"))


def test_garbage_on_the_serial_line(tmp_path: Path, broker: PersistentBroker,
                                    smslog: SmsLog) -> None:
    """Junk before every 3rd answer (garbage_every) and bursts of line noise between the
    messages, from init onwards."""
    started = time.monotonic()
    rng = campaign_rng("garbage")
    injected = Injected()
    sim = SimulatedModem(profile="generic", capacity=100, quirks={"garbage_every": 3})
    sim.start()
    daemon = run_daemon(config(tmp_path, sim.port, broker))
    bursts = 0
    try:
        wait(daemon.drivers[0].ready.is_set, 15)
        for pdu in unique_pdus(60, text="noise {i}"):
            if rng.random() < 0.5:
                sim.garbage(noise(rng, rng.randint(1, 120)))
                bursts += 1
            sim.deliver(pdu)
            injected.add([pdu])
            time.sleep(rng.uniform(0.0, 0.06))
        smslog.wait_ids(injected.ids, timeout=30)
        garbage_lines = daemon.drivers[0].garbage_lines
        alive = daemon.healthy()
    finally:
        daemon.stop()
        sim.stop()
    outcome = tally("garbage on the serial line", trials=bursts, injected=injected,
                    log=smslog, sims=[sim], state_dirs=[tmp_path / "state"], started=started,
                    notes=f"garbage_every=3 plus {bursts} noise bursts of 1-120 bytes; "
                          f"{garbage_lines} garbage lines counted")
    conclude(outcome, (alive, "a daemon thread died"))


def test_modem_answers_late(tmp_path: Path, broker: PersistentBroker,
                            smslog: SmsLog) -> None:
    """The modem answers, but after the command timeout (slow quirk above the 1 s timeout):
    late answers must never be taken for the answer to the next command (a +CMGR answer
    taken for another index would delete a message that was never read)."""
    started = time.monotonic()
    injected = Injected()
    sim = SimulatedModem(profile="generic", capacity=100)
    sim.start()
    daemon = run_daemon(config(tmp_path, sim.port, broker, gateway={"health_interval": 1},
                               modem={"command_timeout": 1}))
    delays = (1.3, 0.9, 2.5)
    recovered_in: list[float] = []
    try:
        wait(daemon.drivers[0].ready.is_set, 10)
        pdus = iter(unique_pdus(100, text="late {i}"))
        for slow in delays:
            deliver_spaced(sim, injected, [next(pdus) for _ in range(5)], 0.05)
            sim.set_quirk("slow", slow)
            deliver_spaced(sim, injected, [next(pdus) for _ in range(10)], 0.3)
            sim.set_quirk("slow", 0.0)
            cleared = time.monotonic()
            deliver_spaced(sim, injected, [next(pdus) for _ in range(5)], 0.05)
            smslog.wait_ids(injected.ids, timeout=40)
            recovered_in.append(round(time.monotonic() - cleared, 1))
        steps = dict(daemon.drivers[0].state.recoveries)
    finally:
        daemon.stop()
        sim.stop()
    outcome = tally("modem answers after the timeout", trials=len(delays), injected=injected,
                    log=smslog, sims=[sim], state_dirs=[tmp_path / "state"], started=started,
                    notes=f"answers delayed {', '.join(map(str, delays))} s against a 1 s "
                          f"command timeout, 10 messages during each; all in {recovered_in} s "
                          f"after the answers were on time again; recovery steps: {steps}")
    conclude(outcome, (bool(recovered_in) and max(recovered_in) < 10,
                       f"messages waited {recovered_in} s after the modem was well again"))


def test_delete_refused_by_the_modem(tmp_path: Path, sim: SimulatedModem,
                                     broker: PersistentBroker, smslog: SmsLog) -> None:
    """AT+CMGD answers +CMS ERROR for a while: the messages are journalled and published once,
    stay on the SIM, are read again by the sweeps (journal duplicates, not new messages) and
    are deleted once the modem lets them go."""
    started = time.monotonic()
    injected = Injected()
    daemon = run_daemon(config(tmp_path, sim.port, broker, gateway={"sweep_interval": 1}))
    try:
        wait(daemon.drivers[0].ready.is_set, 10)
        pdus = iter(unique_pdus(60, text="undeletable {i}"))
        deliver_spaced(sim, injected, [next(pdus) for _ in range(5)], 0.05)
        smslog.wait_ids(injected.ids, timeout=10)
        wait(lambda: not on_sim(sim), 5)
        sim.set_quirk("cms_error", {"+CMGD": 321})
        during = [next(pdus) for _ in range(15)]
        deliver_spaced(sim, injected, during, 0.1)
        smslog.wait_ids(injected.ids, timeout=20)
        stuck = len({raw_id_for("pdu", p) for p in during} & left_on_sim(sim))
        time.sleep(2.5)  # a few sweeps read them again
        sim.set_quirk("cms_error", {})
        deliver_spaced(sim, injected, [next(pdus) for _ in range(5)], 0.05)
        smslog.wait_ids(injected.ids, timeout=20)
        emptied = wait(lambda: not on_sim(sim), 10)
        assert daemon.store is not None
        rereads = daemon.store.db.counters().get("journal.duplicates", 0)
    finally:
        daemon.stop()
    outcome = tally("modem refuses deletes (+CMS ERROR)", trials=1, injected=injected,
                    log=smslog, sims=[sim], state_dirs=[tmp_path / "state"], started=started,
                    notes=f"{stuck} messages stuck on the SIM while AT+CMGD failed; read again "
                          f"{rereads} times by sweeps, published once each")
    conclude(outcome, (stuck == 15, f"{stuck} of 15 stuck on the SIM (was CMGD refused?)"),
             (rereads > 0, "no sweep read them again"), (emptied, "the SIM was not emptied"),
             (outcome.duplicated == 0, "a re-read message was published again"))


# --- the state directory -------------------------------------------------------------------------


def test_disk_full_on_the_state_dir(tmp_path: Path, sim: SimulatedModem,
                                    broker: PersistentBroker, smslog: SmsLog) -> None:
    """The state dir is a 4 MiB tmpfs that fills up: commits fail, so the messages stay on the
    SIM (never deleted unjournalled); once space returns they all arrive."""
    started = time.monotonic()
    injected = Injected()
    state = tmp_path / "state"
    trials = 2
    kept: list[int] = []
    unjournalled: list[str] = []
    with small_filesystem(state, size="4m"):
        daemon = run_daemon(config(tmp_path, sim.port, broker, state=state))
        try:
            wait(daemon.drivers[0].ready.is_set, 10)
            pdus = iter(unique_pdus(100, text="disk {i}"))
            for _ in range(trials):
                deliver_spaced(sim, injected, [next(pdus) for _ in range(5)], 0.05)
                smslog.wait_ids(injected.ids, timeout=10)
                filler = fill_filesystem(state)
                during = [next(pdus) for _ in range(10)]
                deliver_spaced(sim, injected, during, 0.1)
                time.sleep(1.0)
                ids = {raw_id_for("pdu", p) for p in during}
                # The invariant while the disk is full: gone from the SIM only if journalled.
                gone = ids - left_on_sim(sim)
                unjournalled.extend(sorted(gone - journal_ids(state)))
                kept.append(len(ids & left_on_sim(sim)))
                filler.unlink()
                smslog.wait_ids(injected.ids, timeout=40)
            alive = daemon.healthy()
        finally:
            daemon.stop()
        outcome = tally("disk full on the state dir", trials=trials, injected=injected,
                        log=smslog, sims=[sim], state_dirs=[state], started=started,
                        notes=f"tmpfs of 4 MiB filled up while 10 messages arrived, twice; "
                              f"kept on the SIM while full: {kept} of 10",
                        problems=[f"deleted from the SIM without a commit: {i}"
                                  for i in unjournalled])
    conclude(outcome, (alive, "a daemon thread died on the full disk"),
             (bool(kept) and all(k > 0 for k in kept),
              f"the disk was not full enough to refuse a commit: kept {kept}"))


def corrupt_store(state: Path, how: str, rng: Any) -> None:
    """Leave a broken store file behind, as a failing SD card or a torn write could."""
    state.mkdir(parents=True, exist_ok=True)
    path = state / STORE_FILENAME
    if how == "random bytes":
        path.write_bytes(rng.randbytes(64 * 1024))
        return
    store = Store(state)  # a real store with a few pages of history
    for i in range(300):
        store.journal.commit_raw(modem="old", mode="pdu", raw=b"\x00" + rng.randbytes(120) +
                                 i.to_bytes(2, "big"))
    store.close()
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    if how == "pages overwritten":
        for start in range(page, len(data), page):  # every page but the header page
            data[start:start + page] = rng.randbytes(min(page, len(data) - start))
    elif how == "truncated":
        del data[len(data) // 3:]
    path.write_bytes(bytes(data))


def test_corrupted_store_at_start(tmp_path: Path, sim: SimulatedModem,
                                  broker: PersistentBroker, smslog: SmsLog) -> None:
    """The store file is corrupt when the daemon starts: it is moved aside, a new one made,
    and the messages still on the SIM arrive."""
    started = time.monotonic()
    rng = campaign_rng("corrupt")
    injected = Injected()
    kinds = ("random bytes", "pages overwritten", "truncated")
    state_dirs = []
    moved: dict[str, list[str]] = {}
    offset = 0
    for how in kinds:
        state = tmp_path / f"state-{how.replace(' ', '-')}"
        state_dirs.append(state)
        corrupt_store(state, how, rng)
        pdus = unique_pdus(5, text=f"{how} {{i}}", start=offset)
        offset += 5
        for pdu in pdus:
            sim.store(pdu)
        injected.add(pdus)
        daemon = run_daemon(config(tmp_path, sim.port, broker, state=state))
        try:
            smslog.wait_ids(injected.ids, timeout=20)
        finally:
            daemon.stop()
        moved[how] = sorted(p.name for p in state.glob(f"{STORE_FILENAME}.corrupt-*"))
    outcome = tally("corrupted SQLite file at start", trials=len(kinds), injected=injected,
                    log=smslog, sims=[sim], state_dirs=state_dirs, started=started,
                    notes="; ".join(f"{how}: moved aside {len(moved[how])} file(s)"
                                    for how in kinds))
    conclude(outcome, (all(moved.get(how) for how in kinds), f"not moved aside: {moved}"))

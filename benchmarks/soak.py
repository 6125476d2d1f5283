"""Soak: many messages through 2 simulated modems while faults come and go; does the daemon
keep its memory and file descriptors, and lose nothing?

The daemon runs as ``modemd run`` in a child process; the modems, a mosquitto with
persistence (restarted now and then) and a QoS 1 subscriber with a persistent session run
here. Messages arrive in bursts of 1-50 on a random modem with random pauses; meanwhile the
broker is restarted, one modem hangs for a few seconds and line noise is written between
bursts. RSS and open file descriptors of the daemon are sampled after warm-up, every tenth of
the run and at the end. At the end every message must have arrived (duplicates are counted;
at-least-once allows them) and the SIMs must be empty.

    .venv/bin/python benchmarks/soak.py [--messages 10000] [--seed 1] [--json soak.json]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Arrivals, Daemon, ProcSample, config_for, machine, print_json

from modemd.simulator import SimulatedModem
from modemd.store.journal import raw_id_for
from tests.campaign import PersistentBroker, noise
from tests.helpers import on_sim, unique_pdus


def show(label: str, s: ProcSample, delivered: int) -> dict[str, Any]:
    print(f"{label:>12}: {delivered:>6} delivered  RSS {s.rss_kib / 1024:6.1f} MiB  "
          f"peak {s.hwm_kib / 1024:6.1f} MiB  fds {s.fds:3d}  threads {s.threads:2d}  "
          f"CPU {s.cpu_s:7.2f} s", flush=True)
    return {"at": label, "delivered": delivered, "rss_mib": round(s.rss_kib / 1024, 1),
            "peak_rss_mib": round(s.hwm_kib / 1024, 1), "fds": s.fds, "threads": s.threads,
            "cpu_s": round(s.cpu_s, 2)}


def soak(workdir: Path, messages: int, rng: random.Random) -> dict[str, Any]:
    broker = PersistentBroker(workdir / "mosquitto").start()
    sims = [SimulatedModem(profile="generic", imei=f"3569380356{i:05d}", capacity=255)
            for i in range(2)]
    for sim in sims:
        sim.start()
    supply = [iter(unique_pdus(messages, sender=f"+49151777000{i}", text=f"soak m{i} {{i}}"))
              for i in range(2)]
    arrivals = Arrivals(broker.port)
    cfg = config_for(workdir / "modemd.toml", state_dir=workdir / "state", sims=sims,
                     broker_port=broker.port, command_timeout=2,
                     gateway={"sweep_interval": 10, "health_interval": 5})
    daemon = Daemon(cfg, workdir)
    injected: list[str] = []
    samples: list[dict[str, Any]] = []
    faults = {"broker restarts": 0, "modem hangs": 0, "noise bursts": 0}
    try:
        daemon.wait_ready()
        arrivals.wait_status(b"online", 30)
        warm = [next(supply[0]) for _ in range(20)]
        sims[0].deliver_many(warm)
        injected += [raw_id_for("pdu", p) for p in warm]
        arrivals.wait_ids(injected, 60)
        time.sleep(1.0)
        samples.append(show("start", daemon.sample(), len(arrivals.first)))
        started = time.perf_counter()
        broker_at = sorted(rng.sample(range(100, max(101, messages - 100)), 3))
        hang_at = rng.randrange(messages // 4, max(messages // 4 + 1, messages * 3 // 4))
        hung: tuple[SimulatedModem, float] | None = None
        next_sample = messages // 10
        sent = len(warm)
        while sent < messages:
            if broker_at and sent >= broker_at[0]:
                broker_at.pop(0)
                broker.stop()
                time.sleep(rng.uniform(0.5, 3.0))
                broker.start()
                faults["broker restarts"] += 1
            if hung is None and sent >= hang_at:
                hung = (rng.choice(sims), time.perf_counter() + rng.uniform(2.0, 6.0))
                hung[0].set_quirk("hang", True)
                faults["modem hangs"] += 1
            if hung is not None and hung[1] and time.perf_counter() >= hung[1]:
                hung[0].set_quirk("hang", False)
                hung = (hung[0], 0.0)
            index = rng.randrange(2)
            sim = sims[index]
            room = 255 - len(on_sim(sim))
            size = min(rng.randint(1, 50), messages - sent, room)
            if size <= 0:
                time.sleep(0.05)
                continue
            pdus = [next(supply[index]) for _ in range(size)]
            if rng.random() < 0.2:
                sim.garbage(noise(rng, rng.randint(1, 80)))
                faults["noise bursts"] += 1
            sim.deliver_many(pdus)
            injected += [raw_id_for("pdu", p) for p in pdus]
            sent += size
            time.sleep(rng.uniform(0.0, 0.15))
            if sent >= next_sample:
                next_sample += messages // 10
                samples.append(show(f"{sent} sent", daemon.sample(), len(arrivals.first)))
        if hung is not None and hung[1]:
            hung[0].set_quirk("hang", False)
        complete = arrivals.wait_ids(injected, 180)
        elapsed = time.perf_counter() - started
        time.sleep(1.0)
        samples.append(show("end", daemon.sample(), len(arrivals.first)))
        lost = len(set(injected) - arrivals.first.keys())
        result = {
            "messages": len(injected),
            "complete": complete,
            "lost": lost,
            "duplicated": arrivals.duplicates(injected),
            "left_on_sims": sum(len(on_sim(s)) for s in sims),
            "seconds": round(elapsed, 1),
            "faults": faults,
            "samples": samples,
            "rss_growth_mib": round(samples[-1]["rss_mib"] - samples[0]["rss_mib"], 1),
            "fd_growth": samples[-1]["fds"] - samples[0]["fds"],
        }
    finally:
        daemon.stop()
        arrivals.close()
        for sim in sims:
            sim.stop()
        broker.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000
    print(f"machine: {machine()}; seed {seed}", flush=True)
    with tempfile.TemporaryDirectory(prefix="modemd-soak-") as tmp:
        result = soak(Path(tmp), args.messages, random.Random(seed))
    result["seed"] = seed
    result["machine"] = machine()
    print(f"{result['messages']} messages in {result['seconds']} s with {result['faults']}: "
          f"lost {result['lost']}, duplicated {result['duplicated']}, left on the SIMs "
          f"{result['left_on_sims']}; RSS {result['rss_growth_mib']:+.1f} MiB, "
          f"fds {result['fd_growth']:+d} from start to end")
    print_json(args.json, result)
    return 0 if result["lost"] == 0 and result["left_on_sims"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""End to end: from the simulated modem to an MQTT subscriber, through the real daemon.

The daemon runs as ``modemd run`` in a child process (as systemd runs it, NOTIFY_SOCKET bound
by this script); the simulated modems (ptys the daemon opens like hardware), a private
mosquitto on a free port and a paho subscriber run here. Latency is from just before
``sim.deliver(pdu)`` to the subscriber's on_message for that message's id (one clock: both
ends are in this process). Figures, for 1 modem and then 4 modems at once:

* start to READY=1 (sd_notify) of the child process;
* latency p50/p95/max of messages spaced ``--gap`` apart (each modem gets one per gap);
* latency and drain time of bursts of 50 (``--bursts`` of them), and the drain of one burst
  of 200 (per modem);
* CPU seconds (utime + stime from /proc/<pid>/stat) and peak RSS (VmHWM) of the daemon per
  1,000 messages, idle CPU, and lost / duplicated counts.

Usage::

    .venv/bin/python benchmarks/bench_e2e.py [--spaced 200] [--gap 0.05] [--bursts 4]
        [--modems 1,4] [--json results.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    Arrivals,
    Daemon,
    config_for,
    machine,
    print_json,
    summary_ms,
)

from modemd.simulator import SimulatedModem
from modemd.store.journal import raw_id_for
from tests.helpers import unique_pdus
from tests.mosquitto import Mosquitto


class Messages:
    """Distinct PDUs per modem, made ahead of time (encoding is not what is measured)."""

    def __init__(self, modem: int, count: int) -> None:
        self._pdus: Iterator[bytes] = iter(unique_pdus(
            count, sender=f"+4915100000{modem:03d}", text="ID=BENCH" + f"{modem};N={{i}}"))

    def take(self, n: int) -> list[bytes]:
        return [next(self._pdus) for _ in range(n)]


def scenario(workdir: Path, broker: Mosquitto, modems: int, args: argparse.Namespace,
             ) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    per_modem = args.spaced + 50 * args.bursts + 200 + args.cpu_messages // modems + 100
    sims = [SimulatedModem(profile="generic", imei=f"35693803564{i:04d}", capacity=300)
            for i in range(modems)]
    for sim in sims:
        sim.start()
    supply = [Messages(i, per_modem) for i in range(modems)]
    arrivals = Arrivals(broker.port)
    cfg = config_for(workdir / "modemd.toml", state_dir=workdir / "state", sims=sims,
                     broker_port=broker.port)
    daemon = Daemon(cfg, workdir)
    injected: dict[str, float] = {}
    try:
        ready_s = daemon.wait_ready()
        if not arrivals.wait_status(b"online", 30):
            raise RuntimeError("the daemon did not connect to the broker")

        def inject(sim: SimulatedModem, pdus: list[bytes]) -> float:
            at = time.perf_counter()
            if len(pdus) == 1:
                sim.deliver(pdus[0])
            else:
                sim.deliver_many(pdus)
            for pdu in pdus:
                injected[raw_id_for("pdu", pdu)] = at
            return at

        def wait_all(ids: list[str], timeout: float = 120.0) -> None:
            if not arrivals.wait_ids(ids, timeout):
                missing = len(set(ids) - arrivals.first.keys())
                raise RuntimeError(f"{missing} message(s) did not arrive within {timeout} s")

        def latencies(ids: list[str]) -> list[float]:
            return [arrivals.first[i] - injected[i] for i in ids]

        # Warm-up: first use of every code path (imports, prepared statements, connections).
        warm: list[str] = []
        for i, sim in enumerate(sims):
            for pdu in supply[i].take(10):
                inject(sim, [pdu])
                warm.append(raw_id_for("pdu", pdu))
                time.sleep(0.02)
        wait_all(warm)
        time.sleep(1.0)
        idle_before = daemon.sample()
        time.sleep(5.0)
        idle_cpu = (daemon.sample().cpu_s - idle_before.cpu_s) / 5.0

        # Spaced: each modem gets one message every gap.
        spaced_ids: list[str] = []
        start = time.perf_counter()
        for k in range(args.spaced):
            for i, sim in enumerate(sims):
                (pdu,) = supply[i].take(1)
                inject(sim, [pdu])
                spaced_ids.append(raw_id_for("pdu", pdu))
            time.sleep(max(0.0, start + (k + 1) * args.gap - time.perf_counter()))
        wait_all(spaced_ids)
        spaced = summary_ms(latencies(spaced_ids))

        # Bursts of 50 per modem, all modems at once; the next after the previous drained.
        burst_ids: list[str] = []
        drains_50: list[float] = []
        for _ in range(args.bursts):
            ids: list[str] = []
            first_at = None
            for i, sim in enumerate(sims):
                pdus = supply[i].take(50)
                at = inject(sim, pdus)
                first_at = first_at if first_at is not None else at
                ids += [raw_id_for("pdu", p) for p in pdus]
            wait_all(ids)
            drains_50.append(max(arrivals.first[i] for i in ids) - first_at)
            burst_ids += ids
            time.sleep(0.3)
        bursts = summary_ms(latencies(burst_ids))

        # One burst of 200 per modem.
        ids = []
        first_at = None
        for i, sim in enumerate(sims):
            pdus = supply[i].take(200)
            at = inject(sim, pdus)
            first_at = first_at if first_at is not None else at
            ids += [raw_id_for("pdu", p) for p in pdus]
        wait_all(ids)
        drain_200 = max(arrivals.first[i] for i in ids) - first_at
        time.sleep(0.5)

        # CPU and memory per 1,000 messages: bursts of 50 per modem until cpu_messages.
        before = daemon.sample()
        sent = 0
        cpu_ids: list[str] = []
        while sent < args.cpu_messages:
            ids = []
            for i, sim in enumerate(sims):
                pdus = supply[i].take(50)
                inject(sim, pdus)
                ids += [raw_id_for("pdu", p) for p in pdus]
            sent += len(ids)
            wait_all(ids)
            cpu_ids += ids
        after = daemon.sample()
        per_1000 = (after.cpu_s - before.cpu_s) / (sent / 1000)

        all_ids = list(injected)
        lost = len(set(all_ids) - arrivals.first.keys())
        result = {
            "modems": modems,
            "ready_s": round(ready_s, 3),
            "spaced_gap_s": args.gap,
            "spaced": spaced,
            "burst_50": bursts,
            "burst_50_drain_s": [round(d, 3) for d in drains_50],
            "burst_200_drain_s": round(drain_200, 3),
            "burst_200_messages": 200 * modems,
            "cpu_s_per_1000": round(per_1000, 3),
            "cpu_messages": sent,
            "idle_cpu_percent": round(idle_cpu * 100, 2),
            "rss_mib_end": round(after.rss_kib / 1024, 1),
            "peak_rss_mib": round(after.hwm_kib / 1024, 1),
            "rss_mib_before_cpu_run": round(before.rss_kib / 1024, 1),
            "threads": after.threads,
            "fds": after.fds,
            "messages": len(all_ids),
            "lost": lost,
            "duplicated": arrivals.duplicates(all_ids),
        }
    finally:
        daemon.stop()
        arrivals.close()
        for sim in sims:
            sim.stop()
    return result


def report(r: dict[str, Any]) -> None:
    n = r["modems"]
    print(f"--- {n} modem(s) ---")
    print(f"start to READY=1:              {r['ready_s']:.3f} s")
    s = r["spaced"]
    print(f"spaced ({s['n']} msgs, every {r['spaced_gap_s'] * 1000:.0f} ms per modem): "
          f"p50 {s['p50_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms, max {s['max_ms']:.1f} ms")
    b = r["burst_50"]
    print(f"bursts of 50 per modem ({b['n']} msgs): p50 {b['p50_ms']:.1f} ms, "
          f"p95 {b['p95_ms']:.1f} ms, max {b['max_ms']:.1f} ms; drain "
          + ", ".join(f"{d:.3f}" for d in r["burst_50_drain_s"]) + " s")
    print(f"burst of 200 per modem ({r['burst_200_messages']} msgs) drained in "
          f"{r['burst_200_drain_s']:.3f} s")
    print(f"CPU per 1,000 messages:        {r['cpu_s_per_1000']:.3f} s "
          f"(over {r['cpu_messages']} messages); idle {r['idle_cpu_percent']:.2f} % of a core")
    print(f"RSS: {r['rss_mib_end']:.1f} MiB at the end, peak {r['peak_rss_mib']:.1f} MiB; "
          f"{r['threads']} threads, {r['fds']} fds")
    print(f"messages {r['messages']}, lost {r['lost']}, duplicated {r['duplicated']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaced", type=int, default=200, help="spaced messages per modem")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between them")
    parser.add_argument("--bursts", type=int, default=4, help="bursts of 50 per modem")
    parser.add_argument("--cpu-messages", type=int, default=2000,
                        help="messages for the CPU-per-1,000 figure")
    parser.add_argument("--modems", default="1,4", help="modem counts to run, e.g. 1,4")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"machine": machine(), "runs": []}
    print(f"machine: {results['machine']}")
    with tempfile.TemporaryDirectory(prefix="modemd-bench-") as tmp:
        work = Path(tmp)
        with Mosquitto(work / "mosquitto") as broker:
            for modems in (int(m) for m in args.modems.split(",")):
                run = scenario(work / f"run-{modems}", broker, modems, args)
                results["runs"].append(run)
                report(run)
    print_json(args.json, results)
    return 1 if any(r["lost"] for r in results["runs"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())

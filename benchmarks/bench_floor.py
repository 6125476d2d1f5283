"""modemd against the floor: the minimal bridge (floor_bridge.py) and modemd in one run.

Both read the same kind of simulated modem (a pty each opens like hardware) and publish to
the same private mosquitto; one subscriber here times every message from just before
``sim.deliver`` to its arrival. Printed for each, and as modemd / bridge ratios:

* latency p50 / p95 of ``--spaced`` messages ``--gap`` apart;
* CPU per message over those (utime + stime from /proc);
* idle CPU over ``--idle`` seconds with nothing arriving;
* RSS after the run (VmRSS) and at its peak (VmHWM), modemd loaded from its bytecode caches
  as installed (benchmarks/rss_steps.py breaks modemd's down by import);

then modemd with four modems receiving at once (p95 against one modem).

    .venv/bin/python benchmarks/bench_floor.py [--spaced 300] [--gap 0.05] [--idle 60]
        [--json results.json]

The issue's targets (issue 18): p50 within 1.5x and p95 within 2x of the bridge, CPU per
message within 1.2x, idle CPU at most 0.05 % of a core, RSS at most 30 MiB, four modems' p95
within 1.25x of one modem's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
    run_from_bytecode,
    sample,
    summary_ms,
)

from modemd.simulator import SimulatedModem
from modemd.store.journal import raw_id_for
from tests.helpers import unique_pdus
from tests.mosquitto import Mosquitto

HERE = Path(__file__).resolve().parent


class BridgeProcess:
    def __init__(self, port: str, mqtt_port: int, workdir: Path) -> None:
        self.log = workdir / "bridge.log"
        self.out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "floor_bridge.py"), "--port", port,
             "--mqtt-port", str(mqtt_port)], stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while b"ready" not in self.log.read_bytes():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"bridge did not start: {self.log.read_text()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.out.close()


def measure(name: str, sims: list[SimulatedModem], pid: int, arrivals: Arrivals,
            args: argparse.Namespace, offset: int) -> dict[str, Any]:
    injected: dict[str, float] = {}
    supplies = [iter(unique_pdus(args.spaced + 20, sender=f"+49151{offset + i:07d}",
                                 text=f"ID={name}{i};N={{i}}")) for i in range(len(sims))]

    def inject_round() -> list[str]:
        ids = []
        for sim, supply in zip(sims, supplies, strict=True):
            pdu = next(supply)
            injected[raw_id_for("pdu", pdu)] = time.perf_counter()
            sim.deliver(pdu)
            ids.append(raw_id_for("pdu", pdu))
        return ids

    def run(rounds: int) -> list[str]:
        ids: list[str] = []
        start = time.perf_counter()
        for k in range(rounds):
            ids += inject_round()
            time.sleep(max(0.0, start + (k + 1) * args.gap - time.perf_counter()))
        if not arrivals.wait_ids(ids, 120):
            raise RuntimeError(f"{name}: {len(set(ids) - arrivals.first.keys())} lost")
        return ids

    run(10)  # warm-up
    time.sleep(1.0)
    idle_from = sample(pid)
    time.sleep(args.idle)
    idle = (sample(pid).cpu_s - idle_from.cpu_s) / args.idle
    before = sample(pid)
    ids = run(args.spaced)
    time.sleep(0.5)
    after = sample(pid)
    latency = summary_ms([arrivals.first[i] - injected[i] for i in ids])
    return {
        "name": name, "modems": len(sims), **latency,
        "cpu_ms_per_msg": round((after.cpu_s - before.cpu_s) / len(ids) * 1000, 3),
        "system_ms_per_msg": round((after.system_s - before.system_s) / len(ids) * 1000, 3),
        "switches_per_msg": round((after.switches - before.switches) / len(ids), 1),
        "idle_cpu_percent": round(idle * 100, 3),
        "rss_mib": round(after.rss_kib / 1024, 1),
        "peak_rss_mib": round(after.hwm_kib / 1024, 1),
    }


def with_sims(count: int, body: Callable[[list[SimulatedModem]], dict[str, Any]],
              ) -> dict[str, Any]:
    sims = [SimulatedModem(profile="generic", imei=f"35693803565{i:04d}", capacity=300)
            for i in range(count)]
    for sim in sims:
        sim.start()
    try:
        return body(sims)
    finally:
        for sim in sims:
            sim.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaced", type=int, default=300)
    parser.add_argument("--gap", type=float, default=0.05)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    run_from_bytecode()
    results: dict[str, Any] = {"machine": machine()}
    print(f"machine: {results['machine']}")
    with tempfile.TemporaryDirectory(prefix="modemd-floor-") as tmp:
        work = Path(tmp)
        with Mosquitto(work / "mosquitto") as broker:
            arrivals = Arrivals(broker.port)
            try:
                def bridge_run(sims: list[SimulatedModem]) -> dict[str, Any]:
                    bridge = BridgeProcess(sims[0].port, broker.port, work)
                    try:
                        return measure("bridge", sims, bridge.pid, arrivals, args, 0)
                    finally:
                        bridge.stop()

                def modemd_run(sims: list[SimulatedModem]) -> dict[str, Any]:
                    run_dir = work / f"modemd-{len(sims)}"
                    run_dir.mkdir()
                    cfg = config_for(run_dir / "modemd.toml", state_dir=run_dir / "state",
                                     sims=sims, broker_port=broker.port,
                                     gateway={"sweep_interval": 3600, "health_interval": 3600})
                    daemon = Daemon(cfg, run_dir)
                    try:
                        daemon.wait_ready()
                        return measure(f"modemd{len(sims)}", sims, daemon.pid, arrivals, args,
                                       1000 * len(sims))
                    finally:
                        daemon.stop()

                bridge = with_sims(1, bridge_run)
                one = with_sims(1, modemd_run)
                four = with_sims(4, modemd_run)
            finally:
                arrivals.close()
    results.update(bridge=bridge, modemd=one, modemd_4=four)
    for r in (bridge, one, four):
        print(f"{r['name']:<8} ({r['modems']} modem(s)): p50 {r['p50_ms']:.2f} ms, "
              f"p95 {r['p95_ms']:.2f} ms, CPU {r['cpu_ms_per_msg']:.3f} ms/msg "
              f"({r['system_ms_per_msg']:.3f} system, {r['switches_per_msg']:.1f} context "
              f"switches), "
              f"idle {r['idle_cpu_percent']:.3f} % of a core, RSS {r['rss_mib']:.1f} MiB "
              f"(peak {r['peak_rss_mib']:.1f})")
    ratios = {
        "p50": round(one["p50_ms"] / bridge["p50_ms"], 2),
        "p95": round(one["p95_ms"] / bridge["p95_ms"], 2),
        "cpu_per_msg": round(one["cpu_ms_per_msg"] / bridge["cpu_ms_per_msg"], 2),
        "rss": round(one["rss_mib"] / bridge["rss_mib"], 2),
        "four_vs_one_p95": round(four["p95_ms"] / one["p95_ms"], 2),
    }
    results["ratios"] = ratios
    print("modemd / bridge: " + ", ".join(f"{k} {v}x" for k, v in ratios.items()))
    print_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

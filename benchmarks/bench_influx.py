"""Points per second from the outbox to a local VictoriaMetrics through InfluxSink.

Starts its own victoria-metrics on a free port (scripts/ensure-servers installs it), enqueues
N readings (3 fields each: a float, an int and a bool), runs the sink on this thread until
the outbox is empty, checks that every point is stored, and prints the rate.

    .venv/bin/python benchmarks/bench_influx.py [-n 20000] [--batch-size 500] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modemd.sinks.influx import InfluxSink
from modemd.store import Outbox, Store
from tests.victoriametrics import VictoriaMetrics

BASE = 1_790_000_000  # 2026-09-21: one reading per second from here on


def body(i: int) -> dict[str, object]:
    sent = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(BASE + i))
    return {
        "device": f"DEV{i % 50:03d}",
        "modem": f"modem{i % 2}",
        "measurement": "device_status",
        "fields": {"battery": 3.0 + (i % 100) / 100, "count": i, "running": i % 2 == 0},
        "tags": {},
        "units": {"battery": "V"},
        "sent_at": sent,
        "msg_id": f"bench-{i}",
        "rule": "bench",
    }


def run(n: int, batch_size: int, workdir: Path) -> dict[str, object]:
    store = Store(workdir / "state")
    with store.db.transaction() as conn:
        for i in range(n):
            Outbox.enqueue(conn, sink="influx", kind="reading", msg_id=f"bench-{i}", body=body(i))
    with VictoriaMetrics(workdir / "vm") as vm:
        sink = InfluxSink(store, url=vm.url, org="bench", bucket="bench", token=None,
                          gateway_id="bench", batch_size=batch_size)
        try:
            started = time.perf_counter()
            while sink.run_once() or store.outbox.stats(["influx"])[0].pending:
                pass
            elapsed = time.perf_counter() - started
        finally:
            sink.close()
        stored = len(vm.export('{__name__="device_status_count"}'))
    (stats,) = store.outbox.stats(["influx"])
    store.close()
    if stored != n or stats.delivered != n or stats.poisoned:
        raise SystemExit(f"incomplete: stored {stored}, delivered {stats.delivered}, "
                         f"poisoned {stats.poisoned} of {n}")
    return {
        "benchmark": "influx_sink_outbox_to_victoriametrics",
        "points": n,
        "fields_per_point": 3,
        "batch_size": batch_size,
        "requests": sink.requests,
        "seconds": round(elapsed, 3),
        "points_per_second": round(n / elapsed, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--points", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-influx-") as tmp:
        result = run(args.points, args.batch_size, Path(tmp))
    print(f"influx sink: {result['points_per_second']:,.0f} points/s "
          f"({result['points']} points x {result['fields_per_point']} fields, batch "
          f"{result['batch_size']}, {result['requests']} requests, {result['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

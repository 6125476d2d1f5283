"""Where one message's latency goes: each stage of the receive path stamped in one process.

    .venv/bin/python benchmarks/bench_stages.py [--messages 200] [--gap 0.03]

The daemon runs in this process (with the simulated modem, so both share one interpreter
and the figures are a little higher than bench_floor's, where the modem is in another
process). A few of the daemon's methods are wrapped to note when each message reaches them;
the script prints the median time from one stage to the next:

    injected -> +CMTI handled -> AT+CMGR answered -> journal commit returned
      -> pipeline processing -> MQTT publish -> fsync of the commit -> AT+CMGD
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modemd.daemon import Daemon  # noqa: E402
from modemd.modem.driver import ModemDriver  # noqa: E402
from modemd.pipeline import Pipeline  # noqa: E402
from modemd.simulator import SimulatedModem  # noqa: E402
from modemd.sinks.mqtt import MqttSink  # noqa: E402
from modemd.store.journal import Journal  # noqa: E402
from tests.helpers import load, unique_pdus, write_config  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402

STAGES: list[tuple[str, type, str]] = [
    ("+CMTI handled", ModemDriver, "_handle_urc"),
    ("AT+CMGR answered", ModemDriver, "_take_entry"),
    ("journal commit started", Journal, "record_raw"),
    ("journal commit returned", Pipeline, "process_now"),
    ("pipeline processing", Pipeline, "process"),
    ("MQTT publish", MqttSink, "_publish_row"),
    ("fsync started (after it)", Journal, "make_durable"),
    ("AT+CMGD sent", ModemDriver, "_delete"),
]


def stamp(stamps: dict[str, list[float]], name: str, owner: type, method: str) -> None:
    original: Callable[..., Any] = getattr(owner, method)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        stamps.setdefault(name, []).append(time.perf_counter())
        return original(*args, **kwargs)

    setattr(owner, method, wrapped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.03)
    args = parser.parse_args(argv)
    stamps: dict[str, list[float]] = {}
    for name, owner, method in STAGES:
        stamp(stamps, name, owner, method)
    injected: list[float] = []
    with tempfile.TemporaryDirectory(prefix="modemd-stages-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        with Mosquitto(work / "mosquitto") as broker:
            sim = SimulatedModem(profile="generic", capacity=300)
            sim.start()
            config = write_config(work / "modemd.toml", state_dir=work / "state",
                                  modems=[{"name": "m1", "port": sim.port}],
                                  mqtt={"host": "127.0.0.1", "port": broker.port},
                                  gateway={"sweep_interval": 3600, "health_interval": 3600})
            daemon = Daemon(load(config))
            daemon.start()
            try:
                time.sleep(1.5)  # start-up sweep and health queries done
                stamps.clear()
                for pdu in unique_pdus(args.messages, sender="+491510000001", text="m {i}"):
                    injected.append(time.perf_counter())
                    sim.deliver(pdu)
                    time.sleep(args.gap)
                time.sleep(0.5)
            finally:
                daemon.stop()
                sim.stop()
    counts = {name: len(stamps.get(name, [])) for name, _, _ in STAGES}
    if any(count < args.messages for count in counts.values()):
        print(f"not every stage saw every message: {counts}", file=sys.stderr)
        return 1
    previous, total = injected, 0.0
    print(f"{args.messages} messages, {args.gap * 1000:.0f} ms apart; median per stage:")
    for name, _, _ in STAGES:
        times = stamps[name][: args.messages]
        step = statistics.median((b - a) * 1000 for a, b in zip(previous, times, strict=True))
        total += step
        print(f"  {name:<26} +{step:6.3f} ms   ({total:6.3f} ms)")
        previous = times
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A burst on a slow disk: drain time when every fsync takes longer, as on an SD card.

    .venv/bin/python benchmarks/bench_burst_disk.py [--messages 100] [--delays 0,2,5]

The daemon runs in this process with one simulated modem and a private mosquitto; ``os.fsync``
is wrapped to sleep the given milliseconds after the real fsync (a stand-in for an SD card's
2-10 ms, not a measurement of one). For each delay the burst is delivered at once twice: with
one fsync per message (``MAX_UNSYNCED = 1``, what modemd did before) and with the messages of
a burst sharing fsyncs (the default). Printed: when the last message reached the subscriber
and when the SIM was empty.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import modemd.modem.driver as driver  # noqa: E402
from modemd.daemon import Daemon  # noqa: E402
from modemd.simulator import SimulatedModem  # noqa: E402
from tests.helpers import load, unique_pdus, write_config  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402
from tests.mqtt_client import Recorder  # noqa: E402

REAL_FSYNC = os.fsync


def burst(work: Path, broker: Mosquitto, messages: int, start: int) -> tuple[float, float]:
    sim = SimulatedModem(profile="generic", capacity=messages + 50)
    sim.start()
    config = write_config(work / "modemd.toml", state_dir=work / "state",
                          modems=[{"name": "m1", "port": sim.port}],
                          mqtt={"host": "127.0.0.1", "port": broker.port},
                          gateway={"sweep_interval": 3600, "health_interval": 3600})
    recorder = Recorder(broker.port, ["modemd/gw1/sms"])
    daemon = Daemon(load(config))
    daemon.start()
    try:
        time.sleep(1.5)  # start-up sweep and health queries done
        recorder.messages.clear()
        began = time.perf_counter()
        sim.deliver_many(unique_pdus(messages, start=start, text="burst {i}"))
        recorder.wait_count("modemd/gw1/sms", messages, timeout=120)
        published = time.perf_counter() - began
        while sim.messages():
            time.sleep(0.002)
        return published, time.perf_counter() - began
    finally:
        daemon.stop()
        recorder.close()
        sim.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--delays", default="0,2,5", help="extra ms per fsync, comma-separated")
    args = parser.parse_args(argv)
    default = driver.MAX_UNSYNCED
    print(f"a burst of {args.messages}, delivered at once; seconds until the last reached "
          "MQTT / the SIM was empty")
    with tempfile.TemporaryDirectory(prefix="modemd-burst-", dir="/var/tmp") as tmp, \
            Mosquitto(Path(tmp) / "mosquitto") as broker:
        run = 0
        for delay_ms in (float(d) for d in args.delays.split(",")):
            def fsync(fd: int, delay: float = delay_ms / 1000) -> None:
                REAL_FSYNC(fd)
                time.sleep(delay)

            os.fsync = fsync
            figures = []
            for unsynced in (1, default):
                driver.MAX_UNSYNCED = unsynced
                run += 1
                work = Path(tmp) / f"run-{run}"
                work.mkdir()
                figures.append(burst(work, broker, args.messages, start=run * 10_000))
            (one_pub, one_empty), (shared_pub, shared_empty) = figures
            print(f"fsync +{delay_ms:g} ms: one fsync per message {one_pub:.3f} / "
                  f"{one_empty:.3f} s; shared (up to {default}) {shared_pub:.3f} / "
                  f"{shared_empty:.3f} s")
    os.fsync = REAL_FSYNC
    driver.MAX_UNSYNCED = default
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Resident memory of a running `modemd run` with one simulated modem, as messages arrive.

    .venv/bin/python benchmarks/rss_running.py                        # one modem and MQTT
    .venv/bin/python benchmarks/rss_running.py --rules config/devices-pump.toml --homeassistant
    .venv/bin/python benchmarks/rss_running.py --stored 300000        # a store already full

Prints VmRSS (and its anonymous part) once the daemon is ready and after every 1,000
messages (20 ms apart), then 8 s after the last. ``--rules`` appends a rules file to the
config and sends what its first rule's example sender would (the pump's status line);
``--stored`` prefills the store as bench_store.py does. bench_floor.py gives the figure
against the bridge; this one shows what a config and a store add, and whether it grows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_store import prefill  # noqa: E402
from common import Daemon, config_for, run_from_bytecode  # noqa: E402

from modemd.simulator.modem import SimulatedModem  # noqa: E402
from tests.helpers import unique_pdus  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402


def memory(pid: int) -> str:
    fields = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return (f"RSS {int(fields['VmRSS'][0]) / 1024:5.1f} MiB (anonymous "
            f"{int(fields['RssAnon'][0]) / 1024:.1f}), {fields['Threads'][0]} threads")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rules", type=Path, help="a rules file to add to the config")
    parser.add_argument("--homeassistant", action="store_true")
    parser.add_argument("--stored", type=int, default=0, help="messages prefilled")
    args = parser.parse_args(argv)
    run_from_bytecode()
    with tempfile.TemporaryDirectory(prefix="modemd-rss-") as tmp:
        work = Path(tmp)
        if args.stored:
            prefill(work / "state", args.stored)
        with Mosquitto(work / "mosquitto") as broker:
            sim = SimulatedModem().start()
            try:
                path = config_for(work / "modemd.toml", state_dir=work / "state", sims=[sim],
                                  broker_port=broker.port,
                                  gateway={"sweep_interval": 3600, "health_interval": 3600})
                text = path.read_text(encoding="utf-8")
                if args.homeassistant:
                    text = text.replace("[mqtt]\n", "[mqtt]\nhomeassistant = true\n", 1)
                if args.rules:
                    text += "\n" + args.rules.read_text(encoding="utf-8")
                path.write_text(text, encoding="utf-8")
                pdus = (unique_pdus(args.messages, sender="+4915112345678",
                                    text="ID=PUMP01;BAT=3.{i};T=21.5;P=2.4;RUN=1")
                        if args.rules else unique_pdus(args.messages))
                daemon = Daemon(path, work)
                try:
                    daemon.wait_ready()
                    time.sleep(1)
                    print(f"ready             {memory(daemon.pid)}", flush=True)
                    for index, pdu in enumerate(pdus, 1):
                        sim.deliver(pdu)
                        time.sleep(0.02)
                        if index % 1000 == 0:
                            print(f"after {index:6d}      {memory(daemon.pid)}", flush=True)
                    time.sleep(8)
                    print(f"8 s after the last {memory(daemon.pid)}")
                finally:
                    daemon.stop()
            finally:
                sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

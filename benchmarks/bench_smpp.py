"""SMPP receive benchmark: sustained MO/s from one bind and deliver_sm -> deliver_sm_resp latency.

`modemd run` as a child process with one [[smpp]] receiver bind and MQTT; the SMSC is the npm
`smpp` package's server (tests/smsc/, run by node) and a private mosquitto; a paho
subscriber here counts the /sms documents.

1. Sustained: the SMSC sends --count deliver_sm as fast as its window (--window unanswered
   at a time) allows. Ingest rate = messages / (first deliver_sm sent .. last resp), every
   one durable in the journal (synchronous=FULL) before its resp; end-to-end rate = messages
   / (first sent .. last /sms document at the subscriber).
2. Latency: --latency-count deliver_sm at --rate per second; the SMSC measures each one from
   sending the deliver_sm to reading its deliver_sm_resp (node's hrtime), p50/p99/max.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402

from benchmarks.common import machine, percentile, wait  # noqa: E402
from tests.helpers import DaemonProcess, toml_value  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402
from tests.smsc import Smsc  # noqa: E402


class SmsCounter:
    def __init__(self, port: int) -> None:
        self.ids: set[str] = set()
        self.last_at = 0.0
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-smpp")
        self.client.on_connect = lambda c, *a: c.subscribe("modemd/gw1/sms", qos=1)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        doc = json.loads(msg.payload)
        with self.lock:
            self.ids.add(doc["id"])
            self.last_at = time.monotonic()

    def count(self) -> int:
        with self.lock:
            return len(self.ids)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_config(workdir: Path, broker: Mosquitto, smsc: Smsc, window: int) -> Path:
    (workdir / "pw").write_text("secret\n")
    smpp = {"name": "agg", "host": "127.0.0.1", "port": smsc.port, "system_id": "modemd",
            "password_file": str(workdir / "pw"), "window": window}
    lines = ["[gateway]", 'id = "gw1"', f"state_dir = {toml_value(str(workdir / 'state'))}",
             "", "[mqtt]", 'host = "127.0.0.1"', f"port = {broker.port}", "max_inflight = 100",
             "", "[[smpp]]"] + [f"{k} = {toml_value(v)}" for k, v in smpp.items()]
    path = workdir / "modemd.toml"
    path.write_text("\n".join(lines) + "\n")
    return path



def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-smpp-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(workdir / "mosquitto") as broker, Smsc(window=args.window) as smsc:
            config = write_config(workdir, broker, smsc, args.bind_window)
            counter = SmsCounter(broker.port)
            daemon = DaemonProcess(config).start()
            try:
                smsc.wait_event(lambda e: e["event"] == "bind", timeout=30)
                load_before = os.getloadavg()
                # 1. sustained
                mark = len(smsc.events)
                started = time.monotonic()
                smsc.command(cmd="burst", count=args.count, rate=0, prefix="s",
                             window=args.window)
                smsc.wait_event(lambda e: e["event"] == "burst_done", timeout=600, after=mark)
                answered = time.monotonic() - started
                wait(lambda: counter.count() >= args.count, 600, "all /sms documents")
                delivered = counter.last_at - started
                sustained = [e for e in smsc.events[mark:] if e["event"] == "resp"]
                # 2. latency at a fixed rate
                mark = len(smsc.events)
                smsc.command(cmd="burst", count=args.latency_count, rate=args.rate,
                             prefix="l", window=args.window)
                smsc.wait_event(lambda e: e["event"] == "burst_done", timeout=600, after=mark)
                paced = [e["latency_us"] / 1000 for e in smsc.events[mark:]
                         if e["event"] == "resp"]
                wait(lambda: counter.count() >= args.count + args.latency_count, 600,
                     "the paced /sms documents")
                load_after = os.getloadavg()
            finally:
                daemon.stop()
                counter.close()
            return {
                "machine": machine(),
                "loadavg_before": load_before, "loadavg_after": load_after,
                "count": args.count, "smsc_window": args.window,
                "bind_window": args.bind_window,
                "sustained_answered_s": round(answered, 3),
                "sustained_mo_per_s": round(args.count / answered, 1),
                "end_to_end_mqtt_s": round(delivered, 3),
                "end_to_end_mo_per_s": round(args.count / delivered, 1),
                "sustained_resp_p50_ms": round(percentile(
                    [e["latency_us"] / 1000 for e in sustained], 50), 2),
                "rejected": sum(1 for e in sustained if e["status"] != 0),
                "paced_rate": args.rate, "paced_count": len(paced),
                "paced_p50_ms": round(percentile(paced, 50), 2),
                "paced_p99_ms": round(percentile(paced, 99), 2),
                "paced_max_ms": round(max(paced), 2),
                "distinct_on_mqtt": counter.count(),
            }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="sustained phase messages")
    parser.add_argument("--window", type=int, default=256,
                        help="SMSC window: deliver_sm unanswered at a time")
    parser.add_argument("--bind-window", type=int, default=512, help="[[smpp]] window")
    parser.add_argument("--rate", type=int, default=500, help="paced phase, messages/s")
    parser.add_argument("--latency-count", type=int, default=10_000,
                        help="paced phase messages")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = run(args)
    for key, value in figures.items():
        print(f"{key:>24}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""SMPP send benchmark: requests on MQTT -> submit_sm at the SMSC -> "sent" statuses, per second.

`modemd run` as a child process with one [[smpp]] transceiver bind, [send] enabled and MQTT;
the SMSC is the npm `smpp` package's server (tests/smsc/), answering each submit_sm after
--delay ms (an aggregator's round trip; 0 on this machine's loopback); a private mosquitto.
--count single-part requests are published at once; the figures are submit_sm per second at
the SMSC (first publish .. last submit_sm) and requests per second that reached "sent" on
the broker, for each --windows value ([[smpp]] submit_window: parts in flight at once).

    .venv/bin/python benchmarks/bench_smpp_send.py [--count 300] [--delay 50] [--windows 1,10]
"""

from __future__ import annotations

import argparse
import json
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

from benchmarks.common import machine, wait  # noqa: E402
from tests.helpers import DaemonProcess, toml_value  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402
from tests.smsc import Smsc  # noqa: E402


class SentCounter:
    """Counts requests that reached ``sent`` on the broker; publishes the requests."""

    def __init__(self, port: int) -> None:
        self.sent: set[str] = set()
        self.last_at = 0.0
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-send")
        self.client.on_connect = lambda c, *a: c.subscribe("modemd/gw1/sms/status", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.subscribed.wait(10)

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        doc = json.loads(msg.payload)
        if doc.get("state") == "sent":
            with self.lock:
                self.sent.add(doc["id"])
                self.last_at = time.monotonic()

    def count(self) -> int:
        with self.lock:
            return len(self.sent)

    def request(self, request_id: str) -> None:
        body = {"id": request_id, "to": "+4915112345678", "text": f"bench {request_id}"}
        self.client.publish("modemd/gw1/sms/send", json.dumps(body), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_config(workdir: Path, broker: Mosquitto, smsc: Smsc, window: int, count: int) -> Path:
    (workdir / "pw").write_text("secret\n")
    smpp = {"name": "agg", "host": "127.0.0.1", "port": smsc.port, "system_id": "modemd",
            "password_file": str(workdir / "pw"), "bind": "transceiver",
            "submit_window": window}
    send = {"enabled": True, "allowed_destinations": ["+49151*"], "max_per_hour": count * 4,
            "status_reports": False, "modem": "agg"}
    lines = ["[gateway]", 'id = "gw1"', f"state_dir = {toml_value(str(workdir / 'state'))}",
             "", "[mqtt]", 'host = "127.0.0.1"', f"port = {broker.port}", "max_inflight = 100",
             "", "[[smpp]]", *[f"{k} = {toml_value(v)}" for k, v in smpp.items()],
             "", "[send]", *[f"{k} = {toml_value(v)}" for k, v in send.items()]]
    path = workdir / "modemd.toml"
    path.write_text("\n".join(lines) + "\n")
    return path



def run_one(window: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-smpp-send-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(workdir / "mosquitto") as broker, Smsc() as smsc:
            smsc.command(cmd="submit_delay", ms=args.delay)
            counter = SentCounter(broker.port)
            daemon = DaemonProcess(write_config(workdir, broker, smsc, window,
                                                args.count)).start()
            try:
                smsc.wait_event(lambda e: e["event"] == "bind", timeout=30)
                time.sleep(0.5)  # the daemon's MQTT subscription
                started = time.monotonic()
                for i in range(args.count):
                    counter.request(f"r{i}")
                wait(lambda: len(smsc.submits()) >= args.count, 600, "every submit_sm")
                submitted = time.monotonic() - started
                wait(lambda: counter.count() >= args.count, 600, "every sent status")
                reported = counter.last_at - started
                distinct = len({s["text"] for s in smsc.submits()})
            finally:
                daemon.stop()
                counter.close()
    return {"submit_window": window, "submit_sm": len(smsc.submits()), "distinct": distinct,
            "submit_sm_per_s": round(args.count / submitted, 1),
            "sent_per_s": round(args.count / reported, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="requests per run")
    parser.add_argument("--delay", type=int, default=50, help="SMSC answer delay, ms")
    parser.add_argument("--windows", default="1,10", help="submit_window values to run")
    args = parser.parse_args(argv)
    print(json.dumps({"machine": machine(), "count": args.count, "delay_ms": args.delay}))
    for window in (int(w) for w in args.windows.split(",")):
        print(json.dumps(run_one(window, args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

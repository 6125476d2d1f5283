"""The send path's own cost: SUBMIT encoding, and request → AT+CMGS through the real daemon.

1. Encoding (in this process): ``encode_submit_parts`` per message for a short GSM text, a
   300-character text (2 parts), an emoji text (UCS-2, 2 parts) and 200 bytes of 8-bit data.
2. End to end: ``modemd run`` as a child process (NOTIFY_SOCKET bound here), the simulated modem
   on a pty and a private mosquitto in this process. Requests are published on
   ``modemd/gw1/sms/send`` (QoS 1); latency is from just before the publish to the simulated
   modem taking the PDU after its ``> `` prompt (one clock: both ends are here), and to the
   ``sent`` status arriving at a subscriber. Spaced (one every ``--gap`` s) and a burst of 50.
   CPU is the daemon's user + system time per SMS (its delivery report included).

Usage::

    .venv/bin/python benchmarks/bench_send.py [--spaced 100] [--gap 0.05] [--json out.json]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from common import Daemon, config_for, machine, print_json, summary_ms

from modemd.simulator import SimulatedModem
from modemd.sms import decode_pdu
from modemd.sms.submit import encode_submit_parts
from tests.mosquitto import Mosquitto

TO = "+4915112345678"
STATUS = "modemd/gw1/sms/status"


def encoding_costs(rounds: int) -> dict[str, Any]:
    cases: dict[str, dict[str, Any]] = {
        "gsm7_short": {"text": "STATUS?"},
        "gsm7_300_chars": {"text": ("Pump 3 pressure low; " * 15)[:300]},
        "ucs2_emoji": {"text": "Alarm 🚨 tank 💧 low, call back 👍 " * 3},
        "8bit_200_bytes_port": {"data": bytes(range(200))},
    }
    out: dict[str, Any] = {}
    for name, kwargs in cases.items():
        parts = len(encode_submit_parts(recipient=TO, **kwargs))
        start = time.process_time()
        for i in range(rounds):
            encode_submit_parts(recipient=TO, reference=i % 256, status_report=True, **kwargs)
        per = (time.process_time() - start) / rounds
        out[name] = {"parts": parts, "us_per_message": round(per * 1e6, 1)}
    return out


class Statuses:
    def __init__(self, port: int) -> None:
        self.sent: dict[str, float] = {}
        self.final: dict[str, str] = {}
        self._cond = threading.Condition()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-status")
        self.client.on_connect = lambda c, *a: c.subscribe(STATUS, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("could not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        with self._cond:
            if doc["state"] == "sent":
                self.sent.setdefault(doc["id"], time.monotonic())
            if doc["state"] in ("delivered", "failed", "expired", "unknown"):
                self.final[doc["id"]] = doc["state"]
            self._cond.notify_all()

    def wait_final(self, ids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(i in self.final for i in ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def end_to_end(spaced: int, gap: float, burst: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "mosquitto") as broker, \
            SimulatedModem(profile="generic", capacity=200) as sim:
        work = Path(tmp)
        cfg = config_for(work / "modemd.toml", state_dir=work / "state", sims=[sim],
                         broker_port=broker.port)
        with cfg.open("a") as f:
            f.write('\n[send]\nenabled = true\nallowed_destinations = ["+49151*"]\n'
                    "max_per_hour = 1000000\n")
        daemon = Daemon(cfg, work, log_level="WARNING")
        statuses = Statuses(broker.port)
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub",
                                protocol=mqtt.MQTTv5)
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        try:
            daemon.wait_ready()
            time.sleep(1.0)  # MQTT connected and subscribed
            published: dict[str, float] = {}

            def send(request_id: str, text: str) -> None:
                published[request_id] = time.monotonic()
                publisher.publish("modemd/gw1/sms/send",
                                  json.dumps({"id": request_id, "to": TO, "text": text}), qos=1)

            before = daemon.sample()
            spaced_ids = [f"s{i}" for i in range(spaced)]
            for request_id in spaced_ids:
                send(request_id, f"STATUS? {request_id}")
                time.sleep(gap)
            ok_spaced = statuses.wait_final(spaced_ids, 60)
            burst_ids = [f"b{i}" for i in range(burst)]
            burst_start = time.monotonic()
            for request_id in burst_ids:
                send(request_id, f"CMD {request_id}")
            ok_burst = statuses.wait_final(burst_ids, 120)
            after = daemon.sample()
            at_modem = {}
            for message in sim.sending.sent:
                # the text carries the id: "STATUS? s12" / "CMD b3"
                pdu = message.pdu
                assert pdu is not None
                decoded = decode_pdu(pdu)
                text = getattr(decoded, "text", None) or ""
                at_modem[text.rsplit(" ", 1)[-1]] = message.at
            total = spaced + burst
            return {
                "spaced_requests": spaced,
                "gap_s": gap,
                "publish_to_cmgs": summary_ms([at_modem[i] - published[i] for i in spaced_ids
                                               if i in at_modem]),
                "publish_to_sent_status": summary_ms([
                    statuses.sent[i] - published[i] for i in spaced_ids if i in statuses.sent]),
                "burst": burst,
                "burst_drain_to_last_cmgs_s": round(
                    max(at_modem[i] for i in burst_ids) - burst_start, 3),
                "all_final": ok_spaced and ok_burst,
                "delivered": sum(v == "delivered" for v in statuses.final.values()),
                "pdus_at_modem": len(sim.sending.sent),
                "sent_twice": len(sim.sending.sent) - len(set(at_modem)),
                "daemon_cpu_ms_per_sms": round((after.cpu_s - before.cpu_s) / total * 1000, 2),
                "daemon_rss_mib": round(after.rss_kib / 1024, 1),
            }
        finally:
            publisher.disconnect()
            publisher.loop_stop()
            statuses.close()
            daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaced", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.05)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {
        "machine": machine(),
        "encoding": encoding_costs(args.rounds),
        "end_to_end": end_to_end(args.spaced, args.gap, args.burst),
    }
    print_json(args.json, results)


if __name__ == "__main__":
    main()

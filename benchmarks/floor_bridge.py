"""The reference floor: the least a modem-to-MQTT bridge can do, with no journal at all.

    python benchmarks/floor_bridge.py --port /dev/pts/N --mqtt-port 1883

pyserial reads the modem; on ``+CMTI`` it reads the message (``AT+CMGR``), publishes its PDU
at QoS 1 with paho (not waiting for the PUBACK) and deletes it (``AT+CMGD``). Nothing is
decoded and nothing is stored, so a crash or a broker outage loses messages: this is what
modemd is measured *against* (benchmarks/bench_floor.py), not something to run. The message
id is modemd's (sha256 of the TPDU), so one subscriber can time both.

It blocks in ``readline`` (no polling loop) and runs no timer, which makes its idle CPU the
floor for modemd's too.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re

import paho.mqtt.client as mqtt
import serial

CMTI = re.compile(rb'^\+CMTI:\s*"?(\w+)"?\s*,\s*(\d+)')


def message_id(pdu: bytes) -> str:
    smsc = pdu[0] if pdu else 0
    tpdu = pdu[1 + smsc:] if 1 + smsc <= len(pdu) else pdu
    return hashlib.sha256(b"pdu\0" + tpdu).hexdigest()[:32]


class Bridge:
    def __init__(self, port: str, mqtt_port: int, topic: str) -> None:
        self.serial = serial.Serial(port, 115200, timeout=None)
        self.topic = topic
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="floor-bridge",
                                  protocol=mqtt.MQTTv311)
        self.client.connect("127.0.0.1", mqtt_port, keepalive=60)
        self.client.loop_start()
        self.pending: list[int] = []

    def command(self, line: str) -> list[bytes]:
        """Send one command; the lines up to OK/ERROR (+CMTI seen meanwhile are queued)."""
        self.serial.write(line.encode("ascii") + b"\r")
        answer: list[bytes] = []
        while True:
            raw = self.serial.readline().strip()
            if not raw or raw == line.encode("ascii"):
                continue
            if raw in (b"OK", b"ERROR") or raw.startswith((b"+CMS ERROR", b"+CME ERROR")):
                return answer
            urc = CMTI.match(raw)
            if urc:
                self.pending.append(int(urc.group(2)))
                continue
            answer.append(raw)

    def run(self) -> None:
        for setup in ("ATE0", "AT+CMGF=0", 'AT+CPMS="SM","SM","SM"', "AT+CNMI=2,1,0,0,0"):
            self.command(setup)
        print("floor bridge ready", flush=True)
        while True:
            while self.pending:
                self.take(self.pending.pop(0))
            raw = self.serial.readline().strip()
            urc = CMTI.match(raw)
            if urc:
                self.pending.append(int(urc.group(2)))

    def take(self, index: int) -> None:
        answer = self.command(f"AT+CMGR={index}")
        pdu_lines = [line for line in answer if not line.startswith(b"+CMGR")]
        if pdu_lines:
            pdu = bytes.fromhex(pdu_lines[-1].decode("ascii"))
            body = json.dumps({"id": message_id(pdu), "pdu": pdu.hex().upper()})
            self.client.publish(self.topic, body, qos=1)
        self.command(f"AT+CMGD={index}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True)
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--topic", default="modemd/gw1/sms")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        Bridge(args.port, args.mqtt_port, args.topic).run()


if __name__ == "__main__":
    main()

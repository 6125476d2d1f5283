"""`modemd demo`: the whole pipeline on a simulated modem, with field devices sending status.

No hardware, no config file, no servers needed: the store goes to a temporary directory and
MQTT is used when a broker answers. Messages are shown as they arrive, with the time from
injection into the simulated modem to the parsed reading.
"""

from __future__ import annotations

import base64
import itertools
import random
import socket
import tempfile
import time
import tomllib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from modemd.config import config_from_dict
from modemd.daemon import Daemon
from modemd.errors import PayloadError
from modemd.payload.model import InboundMessage
from modemd.simulator import SimulatedModem
from modemd.sms.encode import encode_deliver, encode_deliver_parts
from modemd.sms.model import InformationElement


def _broker_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pump(rng: random.Random) -> tuple[str, str]:
    pump = rng.choice(["PUMP01", "PUMP02"])
    sender = "+4915112345678" if pump == "PUMP01" else "+4916098765432"
    return sender, (f"ID={pump};BAT={rng.uniform(3.4, 4.1):.2f};T={rng.uniform(8, 30):.1f};"
                    f"P={rng.uniform(1.0, 4.0):.1f};RUN={rng.choice([0, 1])}")


def _tracker(rng: random.Random) -> tuple[str, str]:
    return "+4917699887766", (f"TRK7,{52.52 + rng.uniform(-0.05, 0.05):.4f},"
                              f"{13.405 + rng.uniform(-0.05, 0.05):.4f},"
                              f"{rng.uniform(0, 90):.1f},{rng.randint(20, 100)},1")


def _meter_data(rng: random.Random, volume: int) -> bytes:
    temperature = int(rng.uniform(8, 25) * 100)
    return (volume.to_bytes(4, "little") + rng.randint(0, 400).to_bytes(2, "little")
            + temperature.to_bytes(2, "little", signed=True)
            + bytes([rng.randint(60, 100), 1 if rng.random() < 0.2 else 0]))  # now and then a leak


def _port_header(port: int) -> InformationElement:
    # 16-bit application port addressing: destination, then source port.
    return InformationElement(0x05, port.to_bytes(2, "big") + port.to_bytes(2, "big"))


class DemoDevices:
    """Field devices of three families, plus an alarm in UCS-2 and a long multipart notice."""

    def __init__(self, sim: SimulatedModem, seed: int = 7) -> None:
        self.sim = sim
        self.rng = random.Random(seed)
        self.volume = 12_345
        self.reference = itertools.count(1)
        self.step = 0

    def send_next(self) -> str:
        now = datetime.now(UTC).replace(microsecond=0)
        kind = self.step % 6
        self.step += 1
        if kind in (0, 3):
            sender, text = _pump(self.rng)
            self.sim.deliver(encode_deliver(sender=sender, text=text, scts=now))
            return f"pump {text}"
        if kind == 1:
            sender, text = _tracker(self.rng)
            self.sim.deliver(encode_deliver(sender=sender, text=text, scts=now))
            return f"tracker {text}"
        if kind == 2:
            self.volume += self.rng.randint(5, 80)
            data = _meter_data(self.rng, self.volume)
            self.sim.deliver(encode_deliver(sender="+4917012345678", data=data, scts=now,
                                            udh=[_port_header(4711)]))
            return f"water meter, 8-bit data to port 4711 ({data.hex()})"
        if kind == 4:
            text = "Störung: Pumpe 2 Trockenlauf ⚠️ bitte prüfen"
            self.sim.deliver(encode_deliver(sender="+4916098765432", text=text, scts=now))
            return "alarm in UCS-2 (emoji)"
        text = ("Wartungshinweis: Am Montag wird die Steuerung aller Pumpen zwischen 08:00 und "
                "12:00 aktualisiert. Während dieser Zeit können Statusmeldungen verzögert "
                "eintreffen. Es ist keine Aktion erforderlich. Danke!")
        parts = encode_deliver_parts(sender="+491711234567", text=text, scts=now,
                                     reference=next(self.reference) % 256)
        self.rng.shuffle(parts)
        self.sim.deliver_many(parts)
        return f"maintenance notice in {len(parts)} parts, shuffled"


def demo_config(state_dir: Path, port: str, mqtt: tuple[str, int] | None) -> dict[str, Any]:
    rules = tomllib.loads(
        resources.files("modemd").joinpath("examples/demo-rules.toml").read_text("utf-8"))
    data: dict[str, Any] = {
        "gateway": {"id": "demo", "state_dir": str(state_dir), "sweep_interval": 30,
                    "health_interval": 15, "multipart_timeout": 60},
        "modem": [{"name": "sim1", "port": port, "command_timeout": 5}],
        **rules,
    }
    if mqtt is not None:
        data["mqtt"] = {"host": mqtt[0], "port": mqtt[1], "homeassistant": True,
                        "client_id": f"modemd-demo-{int(time.time())}"}
    return data


def run_demo(*, mqtt_host: str, mqtt_port: int, state_dir: Path | None, duration: float,
             interval: float) -> int:
    console = Console(highlight=False)
    tmp = None
    if state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="modemd-demo-")
        state_dir = Path(tmp.name)
    mqtt = (mqtt_host, mqtt_port) if _broker_answers(mqtt_host, mqtt_port) else None
    sim = SimulatedModem(profile="quectel_ec25")
    sim.start()
    config = config_from_dict(demo_config(state_dir, sim.port, mqtt))
    daemon = Daemon(config)
    console.print(f"[bold]modemd demo[/]: simulated Quectel modem on {sim.port}, "
                  f"store in {state_dir}")
    console.print(f"MQTT: publishing to {mqtt_host}:{mqtt_port} under modemd/demo/#"
                  if mqtt else f"MQTT: no broker on {mqtt_host}:{mqtt_port}; local store only")
    daemon.start()
    devices = DemoDevices(sim)
    seen: set[str] = set()
    sent_at: list[float] = []
    shown = 0
    start = time.monotonic()
    next_send = start + 0.5
    try:
        if not daemon.drivers[0].ready.wait(30):
            console.print("[red]the simulated modem did not come up[/]")
            return 1
        while duration <= 0 or time.monotonic() - start < duration:
            now = time.monotonic()
            if now >= next_send:
                what = devices.send_next()
                sent_at.append(now)
                console.print(f"[dim]{time.strftime('%H:%M:%S')} → device sends {what}[/]")
                next_send = now + interval
            shown += _show_new(console, daemon, seen, sent_at)
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        time.sleep(0.3)
        shown += _show_new(console, daemon, seen, sent_at)
        daemon.stop()
        sim.stop()
        console.print(f"[bold]{shown} message(s) received, decoded and stored[/]"
                      + (" and published to MQTT" if mqtt else ""))
        if tmp is not None:
            tmp.cleanup()
    return 0 if shown else 1


def _show_new(console: Console, daemon: Daemon, seen: set[str], sent_at: list[float]) -> int:
    assert daemon.store is not None
    new = [m for m in reversed(daemon.store.journal.recent_messages(limit=20))
           if m["id"] not in seen]
    for row in new:
        seen.add(row["id"])
        msg = row["message"]
        body = msg.get("text") or (f"<8-bit data {msg['data_b64']}>" if "data_b64" in msg
                                   else msg.get("reason", ""))
        parts = f" [{msg.get('parts')} parts]" if msg.get("parts", 1) > 1 else ""
        colour = "red" if row["status"] == "deadletter" else "green"
        console.print(f"[{colour}]{time.strftime('%H:%M:%S')} ← {msg.get('sender', '?')}"
                      f"{parts} ({msg.get('encoding', '-')}): {body}[/]")
        reading = _reading_of(daemon, msg)
        if reading:
            console.print(f"[cyan]           {escape(reading)}[/]")
    return len(new)


def _reading_of(daemon: Daemon, msg: dict[str, Any]) -> str:
    """The reading the parser rules make of a message, as one line (for display only)."""
    engine = daemon.pipeline.engine if daemon.pipeline else None
    if engine is None or msg.get("type") != "deliver":
        return ""
    data = base64.b64decode(msg["data_b64"]) if "data_b64" in msg else None
    try:
        reading = engine.parse(InboundMessage(
            msg_id=msg["id"], modem=msg["modem"], sender=msg["sender"], text=msg.get("text"),
            data=data, port=msg.get("port"), sent_at=datetime.fromisoformat(msg["sent_at"])))
    except PayloadError as exc:
        return f"no reading ({exc}); published to the dead-letter topic"
    fields = ", ".join(f"{k}={v}{reading.units.get(k) or ''}" for k, v in reading.fields.items())
    return f"reading of {reading.device}: {fields}"

"""Readings parsed per second, per payload format, through PayloadEngine.parse.

    .venv/bin/python benchmarks/bench_payload.py [--json PATH] [-n 20000] [--repeat 5]

Each format parses ``-n`` messages (values vary from message to message) with the example
rules of ``config/devices-*.toml`` (kv, csv, binary) and equivalent json and regex rules. The
engine holds four decoy rules in front of the matching one, as a real config would. Also
timed: a rejected message (dead letter: range check fails) and a message no rule matches.
The best of ``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import struct
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modemd.errors import PayloadError
from modemd.payload import InboundMessage, ParserRule, PayloadEngine, load_payload_config

ROOT = Path(__file__).resolve().parents[1]

SENT = datetime(2024, 6, 1, tzinfo=UTC)
SENDER = "+4915112345678"

JSON_RULE = {
    "name": "json-sensor",
    "format": "json",
    "match": {"text": "^\\{"},
    "device_field": "id",
    "fields": {
        "bat": {"name": "battery", "type": "float", "unit": "V", "min": 0, "max": 5},
        "t": {"name": "temperature", "type": "float", "unit": "°C"},
        "gps.lat": {"name": "lat", "type": "float"},
        "gps.lon": {"name": "lon", "type": "float"},
        "on": {"name": "running", "type": "bool"},
    },
}
REGEX_RULE = {
    "name": "alarm-panel",
    "format": "regex",
    "match": {"text": "^ALARM "},
    "pattern": r"^ALARM (?P<id>\S+) zone (?P<zone>\d+) (?P<state>armed|disarmed|triggered)"
    r" bat (?P<bat>[\d.]+)",
    "device_field": "id",
    "fields": {
        "zone": {"name": "zone", "type": "int"},
        "state": {"name": "state", "type": "enum",
                  "values": {"armed": "armed", "disarmed": "disarmed", "triggered": "triggered"}},
        "bat": {"name": "battery", "type": "float"},
    },
}
DECOYS = [
    {"name": f"decoy-{i}", "format": "kv", "device_field": "ID",
     "match": {"sender": f"+99{i}*", "text": f"^DECOY{i}"},
     "fields": {"X": {"name": "x", "type": "int"}}}
    for i in range(4)
]


def example_rules() -> list[ParserRule]:
    rules: list[ParserRule] = []
    for name in ("devices-pump.toml", "devices-tracker.toml", "devices-watermeter.toml"):
        doc = tomllib.loads((ROOT / "config" / name).read_text(encoding="utf-8"))
        rules.extend(load_payload_config(doc).parser)
    return rules


def build_engine(rule: ParserRule | dict[str, Any]) -> PayloadEngine:
    target = rule if isinstance(rule, ParserRule) else ParserRule.model_validate(rule)
    decoys = [ParserRule.model_validate(d) for d in DECOYS]
    return PayloadEngine([*decoys, target], {}, default_country_code="49")


def message(i: int, *, text: str | None = None, data: bytes | None = None,
            port: int | None = None) -> InboundMessage:
    return InboundMessage(msg_id=f"m{i}", modem="modem1", sender=SENDER, sent_at=SENT,
                          text=text, data=data, port=port)


def cases(n: int) -> dict[str, tuple[PayloadEngine, list[InboundMessage], bool]]:
    pump, tracker, meter = example_rules()
    return {
        "kv": (build_engine(pump), [
            message(i, text=f"ID=PUMP{i % 50:02d};BAT=3.{i % 90 + 10};T={i % 40}.5;P=2.{i % 9};"
                            f"RUN={i % 2}")
            for i in range(n)], True),
        "json": (build_engine(JSON_RULE), [
            message(i, text=json.dumps({"id": f"S{i % 50}", "bat": 3.5 + (i % 10) / 100,
                                        "t": i % 40, "gps": {"lat": 52.52, "lon": 13.405},
                                        "on": bool(i % 2)}))
            for i in range(n)], True),
        "csv": (build_engine(tracker), [
            message(i, text=f"TRK{i % 50},52.{5200 + i % 100},13.{4050 + i % 100},"
                            f"{i % 120}.2,{i % 100},{i % 2}")
            for i in range(n)], True),
        "regex": (build_engine(REGEX_RULE), [
            message(i, text=f"ALARM house-{i % 50} zone {i % 8} "
                            f"{('armed', 'disarmed', 'triggered')[i % 3]} bat 3.{i % 10}")
            for i in range(n)], True),
        "binary": (build_engine(meter), [
            message(i, data=struct.pack("<IHhBB", i, i % 500, 2000 + i % 300, i % 100, i % 4),
                    port=4711)
            for i in range(n)], True),
        "kv_rejected": (build_engine(pump), [
            message(i, text=f"ID=PUMP{i % 50:02d};BAT=9.{i % 10};T=1;P=1;RUN=1")
            for i in range(n)], False),
        "no_match": (build_engine(pump), [
            message(i, text=f"HELLO {i}") for i in range(n)], False),
    }


def run_case(engine: PayloadEngine, messages: Sequence[InboundMessage], ok: bool) -> None:
    parse: Callable[[InboundMessage], object] = engine.parse
    if ok:
        for msg in messages:
            parse(msg)
        return
    for msg in messages:
        try:
            parse(msg)
        except PayloadError:
            pass
        else:
            raise AssertionError("expected a PayloadError")


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("-n", type=int, default=20_000, help="messages per format (20000)")
    args.add_argument("--repeat", type=int, default=5, help="runs per format, best kept (5)")
    args.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    opts = args.parse_args(argv)

    results: dict[str, dict[str, float]] = {}
    for name, (engine, messages, ok) in cases(opts.n).items():
        best = float("inf")
        for _ in range(opts.repeat):
            start = time.perf_counter()
            run_case(engine, messages, ok)
            best = min(best, time.perf_counter() - start)
        results[name] = {
            "readings_per_s" if ok else "messages_per_s": round(len(messages) / best),
            "us_per_message": round(best / len(messages) * 1e6, 2),
        }

    width = max(len(name) for name in results)
    for name, case in results.items():
        rate = case.get("readings_per_s", case.get("messages_per_s", 0))
        unit = "readings/s" if "readings_per_s" in case else "messages/s"
        print(f"{name:<{width}}  {rate:>10,.0f} {unit:<10}  {case['us_per_message']:>7.2f} µs")

    if opts.json:
        document = {
            "benchmark": "payload",
            "n": opts.n,
            "repeat": opts.repeat,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "results": results,
        }
        Path(opts.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

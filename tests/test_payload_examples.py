"""The example rule files in config/devices-*.toml load and parse their sample payloads."""

from __future__ import annotations

import base64
import struct
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modemd.errors import PayloadError
from modemd.payload import (
    InboundMessage,
    PayloadEngine,
    discovery_messages,
    load_payload_config,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
SENT = datetime(2024, 6, 1, 8, 30, tzinfo=UTC)


def load(name: str) -> PayloadEngine:
    path = CONFIG_DIR / name
    with path.open("rb") as fh:
        config = load_payload_config(tomllib.load(fh), source=str(path))
    return PayloadEngine.from_config(config, default_country_code="49")


def message(**kwargs: object) -> InboundMessage:
    return InboundMessage(msg_id="sample", modem="modem1", sent_at=SENT, **kwargs)  # type: ignore[arg-type]


def test_every_example_file_is_covered() -> None:
    names = sorted(p.name for p in CONFIG_DIR.glob("devices-*.toml"))
    assert names == ["devices-pump.toml", "devices-tracker.toml", "devices-watermeter.toml"]


def test_all_examples_combine_into_one_config() -> None:
    parsers: list[object] = []
    devices: dict[str, object] = {}
    for path in sorted(CONFIG_DIR.glob("devices-*.toml")):
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        parsers += doc.get("parser", [])
        devices.update(doc.get("devices", {}))
    config = load_payload_config({"parser": parsers, "devices": devices})
    assert len(config.parser) == 3


def test_pump_example() -> None:
    engine = load("devices-pump.toml")
    reading = engine.parse(
        message(sender="+4915112345678", text="ID=PUMP01;BAT=3.71;T=21.5;P=2.4;RUN=1")
    )
    assert reading.device == "PUMP01"
    assert reading.measurement == "pump_status"
    assert reading.fields == {
        "battery": 3.71, "temperature": 21.5, "pressure": 2.4, "running": True
    }
    assert reading.units == {"battery": "V", "temperature": "°C", "pressure": "bar"}
    assert reading.device_meta is not None and reading.device_meta.name == "Borehole pump 1"
    assert reading.state_document()["device"] == "PUMP01"
    # ',' separated firmware and the optional error code
    other = engine.parse(
        message(sender="0160 98765432", text="ID=PUMP02,BAT=3.6,T=9,P=0,RUN=0,ERR=1")
    )
    assert other.fields["error"] == "dry_run"
    assert other.fields["running"] is False
    with pytest.raises(PayloadError, match="no parser rule matched"):
        engine.parse(message(sender="+33612345678", text="ID=PUMP01;BAT=3.71"))
    with pytest.raises(PayloadError, match="above the maximum"):
        engine.parse(message(sender="+4915112345678", text="ID=PUMP01;BAT=9;T=1;P=1;RUN=1"))
    assert len(discovery_messages(reading, gateway_id="gw1")) == 5


def test_tracker_example() -> None:
    engine = load("devices-tracker.toml")
    reading = engine.parse(message(sender="+4917099999", text="TRK7,52.5200,13.4050,34.2,87,1"))
    assert reading.device == "TRK7"
    assert reading.measurement == "tracker"
    assert reading.fields == {
        "latitude": 52.52, "longitude": 13.405, "speed": 34.2, "battery": 87, "gps_fix": True
    }
    assert "latitude" not in reading.state_classes
    assert reading.device_meta is not None and reading.device_meta.name == "Delivery van 7"
    with pytest.raises(PayloadError, match="latitude"):
        engine.parse(message(sender="+4917099999", text="TRK7,95.0,13.4050,34.2,87,1"))


def test_water_meter_example() -> None:
    engine = load("devices-watermeter.toml")
    data = struct.pack("<IHhBB", 12345, 120, 2149, 90, 1)
    assert data.hex() == "39300000780065085a01"  # the sample in the file's comment
    reading = engine.parse(message(sender="0170 12345678", data=data, port=4711))
    assert reading.device == "WM-0042"
    assert reading.measurement == "water_meter"
    assert reading.fields == {
        "volume": 12345, "flow": 120, "temperature": 21.49, "battery": 90, "flags": 1,
        "leak": True, "tamper": False, "reverse_flow": False,
    }
    assert reading.state_classes["volume"] == "total_increasing"
    assert "flags" not in reading.state_classes
    assert reading.device_classes["leak"] == "moisture"
    assert "reverse_flow" not in reading.device_classes
    tampered = engine.parse(message(sender="0170 12345678", port=4711,
                                    data=struct.pack("<IHhBB", 12345, 120, 2149, 90, 0b110)))
    assert [tampered.fields[k] for k in ("leak", "tamper", "reverse_flow")] == [False, True, True]
    assert reading.expire_after == 90000
    unknown = engine.parse(message(sender="+4917000000001", data=data, port=4711))
    assert unknown.device == "4917000000001"
    with pytest.raises(PayloadError, match="needs 10"):
        engine.parse(message(sender="0170 12345678", data=data[:5], port=4711))
    with pytest.raises(PayloadError, match="no parser rule matched"):
        engine.parse(message(sender="0170 12345678", data=data, port=4712))
    with pytest.raises(PayloadError, match="8-bit data"):
        engine.parse(message(sender="0170 12345678", text=base64.b64encode(data).decode(),
                             port=4711))

"""`config check` knows Home Assistant's sensor tables (issue 14).

Home Assistant (the version in :data:`modemd.payload.ha_tables.HA_VERSION`) creates no entity
for a discovery config whose unit does not belong to its device class, and calls a state class
its device class cannot have "impossible". Such fields are configuration errors, with the
valid choices in the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modemd.cli import app
from modemd.errors import ConfigError
from modemd.payload.config import load_payload_config
from modemd.payload.ha_tables import (
    DEVICE_CLASS_STATE_CLASSES,
    DEVICE_CLASS_UNITS,
    HA_VERSION,
    device_class_problems,
)


def rule_with(**field: Any) -> dict[str, Any]:
    return {"parser": [{"name": "r", "format": "kv", "device": "D",
                        "fields": {"X": {"name": "x", **field}}}]}


def problems(**field: Any) -> list[tuple[str, str]]:
    try:
        load_payload_config(rule_with(**field))
    except ConfigError as exc:
        return list(exc.problems)
    return []


@pytest.mark.parametrize(("field", "path", "words"), [
    ({"type": "float", "device_class": "temperature", "unit": "C"}, "unit", ["'°C'", "'K'"]),
    ({"type": "float", "device_class": "voltage", "unit": "v"}, "unit", ["'V'", "'mV'"]),
    ({"type": "float", "device_class": "battery", "unit": "V"}, "unit", ["'%'"]),
    ({"type": "float", "device_class": "energy", "unit": "kWh"}, "state_class",
     ["'total'", "'total_increasing'"]),  # the default state class 'measurement' is impossible
    ({"type": "float", "device_class": "energy", "unit": "kWh", "state_class": "measurement"},
     "state_class", ["'total'"]),
    ({"type": "float", "device_class": "temprature", "unit": "°C"}, "device_class",
     ["temperature"]),
    ({"type": "bool", "device_class": "temperature"}, "device_class", ["running", "moisture"]),
    ({"type": "enum", "values": {"0": "ok"}, "unit": "V"}, "unit", ["no unit"]),
    ({"type": "int", "bits": {"leak": {"bit": 0, "device_class": "leak"}}}, "bits.leak",
     ["moisture"]),
    ({"type": "float", "state_class": "measurement_angle", "unit": "deg"}, "unit", ["'°'"]),
    # refused by a running Home Assistant 2025.4.4 (scripts/interop-ha), though later ones take it
    ({"type": "int", "device_class": "volume_flow_rate", "unit": "L/h"}, "unit",
     ["'L/min'", "'m³/h'"]),
])
def test_combinations_home_assistant_refuses_are_errors_with_the_choices(
    field: dict[str, Any], path: str, words: list[str]
) -> None:
    found = problems(**field)
    assert found, field
    (where, message), *_ = found
    assert where.endswith(path) or path in where, found
    assert HA_VERSION in message or "binary sensor" in message or "no unit" in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("field", [
    {"type": "float", "device_class": "temperature", "unit": "°C"},
    {"type": "float", "device_class": "energy", "unit": "kWh", "state_class": "total_increasing"},
    {"type": "float", "device_class": "water", "unit": "m³", "state_class": "total"},
    {"type": "float", "device_class": "voltage"},  # no unit: Home Assistant takes it
    {"type": "int", "device_class": "signal_strength", "unit": "dBm"},
    {"type": "float", "device_class": "duration", "unit": "μs"},
    {"type": "float", "unit": "l/h"},  # no device class: any unit
    {"type": "float", "device_class": "monetary", "unit": "EUR", "state_class": "total"},
    {"type": "bool", "device_class": "running"},
    {"type": "enum", "values": {"0": "ok"}},
    {"type": "int", "bits": {"leak": {"bit": 0, "device_class": "moisture"}}},
])
def test_valid_combinations_pass(field: dict[str, Any]) -> None:
    assert problems(**field) == []


def test_the_tables_cover_the_same_device_classes() -> None:
    units_only = set(DEVICE_CLASS_UNITS) - set(DEVICE_CLASS_STATE_CLASSES)
    assert units_only == set()
    # every unit set is non-empty, every entry a string or None
    for name, units in DEVICE_CLASS_UNITS.items():
        assert units and all(u is None or (isinstance(u, str) and u) for u in units), name
    assert device_class_problems(binary=False, device_class="temperature", unit="°C",
                                 state_class="measurement") == []


def test_config_check_reports_it_with_the_key_path(tmp_path: Path) -> None:
    cfg = tmp_path / "modemd.toml"
    cfg.write_text(
        '[[modem]]\nname = "m1"\nport = "/dev/ttyUSB2"\n\n[[parser]]\nname = "pump"\n'
        'format = "kv"\ndevice = "P1"\n[parser.fields]\n'
        'E = { name = "energy", type = "float", device_class = "energy", unit = "kWh" }\n',
        encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "check", str(cfg)])
    assert result.exit_code == 2, result.output
    assert "energy" in result.output and "total_increasing" in result.output
    assert "Traceback" not in result.output

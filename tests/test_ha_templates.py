"""The generated value templates, rendered with Jinja2 the way Home Assistant renders them.

Home Assistant renders ``value_template`` with ``value`` (the payload) and ``value_json`` (the
payload parsed as JSON, undefined when it is not JSON); a missing attribute is logged as a
template warning. What it then does with the rendered text is emulated from its MQTT sensor and
binary sensor (homeassistant/components/mqtt/sensor.py, binary_sensor.py, 2025.x):

* sensor: ``None`` → unknown; an empty text is ignored where a number is expected; a text that
  is not one of ``options`` is ignored with a warning; otherwise it is the state;
* binary sensor: an empty text is ignored; ``payload_on``/``payload_off`` → on/off;
  ``None`` → unknown; anything else is ignored with a warning.

Every template is rendered against readings with and without the optional fields.
"""

from __future__ import annotations

import contextlib
import json
import tomllib
from datetime import UTC, datetime
from typing import Any

import jinja2
import pytest

from modemd.errors import ConfigError
from modemd.payload.config import load_payload_config
from modemd.payload.discovery import discovery_messages, modem_discovery_messages
from modemd.payload.engine import PayloadEngine
from modemd.payload.model import InboundMessage, Reading

RULES = """
[[parser]]
name = "pump"
format = "kv"
device_field = "ID"
[parser.fields]
BAT = { name = "battery", type = "float", unit = "V", device_class = "voltage" }
T = { name = "temperature", type = "float", unit = "°C", required = false }
CNT = { name = "count", type = "int", required = false }
RUN = { name = "running", type = "bool", required = false }
ERR = { name = "error", type = "enum", values = { "0" = "ok", "3" = "overheat" }, required = false }
NOTE = { name = "note", type = "string", required = false }
ST = { name = "status", type = "int", required = false, bits = { leak = 0 } }
VAL = { name = "values", type = "int", required = false }
"""
UNKNOWN = object()  # Home Assistant's "unknown" state


class TemplateWarning(AssertionError):
    pass


class WarningUndefined(jinja2.Undefined):
    """Home Assistant logs every use of an undefined value; here it fails the test."""

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        raise TemplateWarning(f"template warning: {self._undefined_message}")

    __str__ = __iter__ = __bool__ = __len__ = __eq__ = __ne__ = __hash__ = (  # type: ignore
        _fail_with_undefined_error)
    __contains__ = _fail_with_undefined_error  # type: ignore[assignment]


ENV = jinja2.Environment(undefined=WarningUndefined)


def render(template: str, payload: str) -> str:
    variables: dict[str, Any] = {"value": payload}
    with contextlib.suppress(ValueError):  # not JSON: value_json stays undefined
        variables["value_json"] = json.loads(payload)
    return ENV.from_string(template).render(**variables)


def apply(config: dict[str, Any], payload: str, state: Any,
          component: str) -> tuple[Any, list[str]]:
    """(new state, warnings) after Home Assistant receives *payload* with *state* current."""
    rendered = render(config["value_template"], payload)
    warnings: list[str] = []
    if component == "binary_sensor":
        if not rendered.strip():
            return state, warnings
        if rendered == config["payload_on"]:
            return True, warnings
        if rendered == config["payload_off"]:
            return False, warnings
        if rendered == "None":
            return UNKNOWN, warnings
        return state, [f"No matching payload found: {rendered!r}"]
    if rendered == "None":
        return UNKNOWN, warnings
    numeric = bool(config.get("unit_of_measurement") or config.get("state_class")
                   or config.get("device_class") not in (None, "enum", "timestamp", "date"))
    if numeric:
        if rendered == "":
            return state, warnings
        float(rendered)  # Home Assistant raises on a non-numeric state of a numeric sensor
        return rendered, warnings
    options = config.get("options")
    if options and rendered not in options:
        return state, [f"Ignoring invalid option {rendered!r}"]
    return rendered, warnings


def reading(text: str) -> Reading:
    config = load_payload_config(tomllib.loads(RULES))
    engine = PayloadEngine(config.parser, config.devices)
    return engine.parse(InboundMessage(msg_id="m", modem="m1", sender="+491", text=text,
                                       sent_at=datetime(2026, 11, 25, tzinfo=UTC)))


def entities() -> dict[str, tuple[str, dict[str, Any]]]:
    full = reading("ID=P1;BAT=3.7;T=21.5;CNT=4;RUN=1;ERR=3;NOTE=hi;ST=1;VAL=9")
    found = {}
    for topic, config in discovery_messages(full, gateway_id="gw"):
        component = topic.split("/")[1]
        found[topic.split("/")[3]] = (component, config)
    return found


FULL = "ID=P1;BAT=3.7;T=21.5;CNT=4;RUN=1;ERR=3;NOTE=hi;ST=1;VAL=9"
BARE = "ID=P1;BAT=3.6"
EXPECTED_FULL = {"battery": "3.7", "temperature": "21.5", "count": "4", "running": True,
                 "error": "overheat", "note": "hi", "status": "1", "leak": True, "values": "9"}


def test_every_entity_takes_its_value_from_a_full_reading() -> None:
    payload = json.dumps(reading(FULL).state_document())
    got = {}
    for field, (component, config) in entities().items():
        state, warnings = apply(config, payload, UNKNOWN, component)
        assert warnings == [], field
        got[field] = state
    assert got == EXPECTED_FULL


@pytest.mark.parametrize("field", sorted(EXPECTED_FULL))
def test_a_reading_without_an_optional_field_leaves_its_entity_alone(field: str) -> None:
    component, config = entities()[field]
    first = json.dumps(reading(FULL).state_document())
    state, _ = apply(config, first, UNKNOWN, component)
    later = json.dumps(reading(BARE).state_document())
    # No template warning (WarningUndefined would raise), no warning from the entity.
    after, warnings = apply(config, later, state, component)
    assert warnings == []
    if field == "battery":
        assert after == "3.6"
    elif config.get("device_class") == "enum" or field == "note":
        # An enum or text sensor does not keep showing an old label as if just sent.
        assert after is UNKNOWN
    else:
        assert after == state  # numbers and flags: left alone (a flag is not flipped off)
        assert after is not False


def test_a_cleared_retained_state_warns_nowhere() -> None:
    """An empty payload (a removed device's retained state being cleared) is no JSON."""
    for field, (component, config) in entities().items():
        _, warnings = apply(config, "", "x", component)
        assert warnings == [], field


def test_modem_templates_render_an_offline_state_as_unknown() -> None:
    messages = modem_discovery_messages("gw", "m1", "356938035643809")
    online = {"online": True, "signal": {"rssi": -73, "ber": 0}, "registration":
              "registered_home", "storage": {"used": 3, "total": 30}, "last_error": None}
    offline = {"online": False, "signal": {"rssi": None, "ber": None}, "registration": None,
               "storage": {"used": None, "total": None}, "last_error": "port vanished"}
    for topic, config in messages:
        component = topic.split("/")[1]
        state, warnings = apply(config, json.dumps(online), UNKNOWN, component)
        assert warnings == []
        later, warnings = apply(config, json.dumps(offline), state, component)
        assert warnings == []
        key = topic.split("/")[3]
        if key in ("signal", "registration", "storage_used"):
            assert later is UNKNOWN, key  # never -73 dBm or "registered" for a gone modem
        if key == "online":
            assert (state, later) == (True, False)
        if key == "last_error":
            assert (state, later) == ("none", "port vanished")


TRACKER_RULES = """
[[parser]]
name = "gps"
format = "csv"
columns = ["id", "lat", "lon", "acc", "bat"]
device_field = "id"
device_tracker = { latitude = "lat", longitude = "lon", gps_accuracy = "acc", name = "Van" }
[parser.fields]
lat = { name = "lat", type = "float", min = -90, max = 90 }
lon = { name = "lon", type = "float", min = -180, max = 180 }
acc = { name = "acc", type = "int", unit = "m", required = false }
bat = { name = "battery", type = "int", unit = "%", device_class = "battery" }
"""


def tracker_config() -> dict[str, Any]:
    config = load_payload_config(tomllib.loads(TRACKER_RULES))
    (topic, payload), = [(t, p) for t, p in discovery_messages(config.parser[0], "TRK7",
                                                               gateway_id="gw")
                         if t.split("/")[1] == "device_tracker"]
    assert topic == "homeassistant/device_tracker/gw_TRK7/location/config"
    return payload


def tracker_reading(text: str) -> dict[str, Any]:
    config = load_payload_config(tomllib.loads(TRACKER_RULES))
    engine = PayloadEngine(config.parser, config.devices)
    reading = engine.parse(InboundMessage(msg_id="m", modem="m1", sender="+491", text=text,
                                          sent_at=datetime(2026, 11, 25, tzinfo=UTC)))
    return reading.state_document()


def test_a_tracker_gets_its_position_and_the_state_document_as_attributes() -> None:
    config = tracker_config()
    assert config["source_type"] == "gps"
    assert config["json_attributes_topic"] == "modemd/gw/device/TRK7/state"
    assert config["name"] == "Van"
    attributes = json.loads(render(config["json_attributes_template"],
                                   json.dumps(tracker_reading("TRK7,52.52,13.405,12,87"))))
    assert attributes["latitude"] == 52.52 and attributes["longitude"] == 13.405
    assert attributes["gps_accuracy"] == 12
    assert attributes["battery"] == 87 and attributes["device"] == "TRK7"


def test_a_tracker_without_accuracy_still_has_its_position() -> None:
    config = tracker_config()
    attributes = json.loads(render(config["json_attributes_template"],
                                   json.dumps(tracker_reading("TRK7,52.52,13.405,,87"))))
    assert (attributes["latitude"], attributes["longitude"]) == (52.52, 13.405)
    assert "gps_accuracy" not in attributes
    assert render(config["json_attributes_template"], "") == ""  # cleared state: nothing


def test_a_tracker_needs_numeric_required_position_fields() -> None:
    bad = TRACKER_RULES.replace('lat = { name = "lat", type = "float",',
                                'lat = { name = "lat", type = "float", required = false,')
    with pytest.raises(ConfigError) as caught:
        load_payload_config(tomllib.loads(bad))
    assert any("device_tracker.latitude" in path for path, _ in caught.value.problems)
    missing = TRACKER_RULES.replace('gps_accuracy = "acc"', 'gps_accuracy = "accuracy"')
    with pytest.raises(ConfigError) as caught:
        load_payload_config(tomllib.loads(missing))
    assert any("no field 'accuracy'" in text for _, text in caught.value.problems)

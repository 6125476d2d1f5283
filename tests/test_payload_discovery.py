"""Home Assistant MQTT discovery documents, checked against HA's documented format."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from modemd.payload import (
    DeviceSpec,
    InboundMessage,
    ParserRule,
    PayloadEngine,
    Reading,
    discovery_messages,
    gateway_discovery_messages,
    modem_discovery_messages,
)
from modemd.payload.discovery import (
    MODEM_SENSORS,
    binary_value_template,
    topic_id,
    value_template,
)

# homeassistant/components/mqtt/discovery.py: TOPIC_MATCHER, applied after the prefix
HA_TOPIC_MATCHER = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)"
    r"?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)


def ha_topic(topic: str, prefix: str = "homeassistant") -> re.Match[str] | None:
    assert topic.startswith(prefix + "/"), topic
    return HA_TOPIC_MATCHER.fullmatch(topic[len(prefix) + 1 :])
COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "device_class", "enabled_by_default", "encoding",
    "entity_category", "entity_picture", "expire_after", "force_update", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin",
    "payload_available", "payload_not_available", "platform", "qos", "state_topic",
    "unique_id", "value_template",
}
SENSOR_KEYS = COMMON_KEYS | {
    "last_reset_value_template", "options", "state_class", "suggested_display_precision",
    "unit_of_measurement",
}
BINARY_SENSOR_KEYS = COMMON_KEYS | {"off_delay", "payload_off", "payload_on"}
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
    "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device",
}
ENTITY_CATEGORIES = {"config", "diagnostic"}

RULE = ParserRule.model_validate(
    {
        "name": "pump",
        "format": "kv",
        "device_field": "ID",
        "expire_after": 7200,
        "fields": {
            "BAT": {"name": "battery", "type": "float", "unit": "V", "device_class": "voltage"},
            "T": {"name": "temperature", "type": "float", "unit": "°C",
                  "device_class": "temperature"},
            "N": {"name": "count", "type": "int", "state_class": "total_increasing"},
            "RUN": {"name": "running", "type": "bool", "device_class": "running"},
            "M": {"name": "mode", "type": "enum", "required": False,
                  "values": {"0": "off", "1": "auto", "2": "auto"}, "icon": "mdi:cog"},
            "S": {"name": "firmware", "type": "string", "required": False},
            "LAT": {"name": "lat", "type": "float", "state_class": "none", "required": False},
            "V": {"name": "values", "type": "int", "required": False},
        },
    }
)
META = DeviceSpec(name="Borehole pump 1", model="PC-200", manufacturer="Acme", area="Field")


def reading() -> Reading:
    engine = PayloadEngine([RULE], {"PUMP01": META})
    return engine.parse(
        InboundMessage(
            msg_id="m1", modem="modem1", sender="+4915112345678",
            sent_at=datetime(2024, 1, 1, tzinfo=UTC),
            text="ID=PUMP01;BAT=3.7;T=21;N=5;RUN=0",
        )
    )


def by_object(messages: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[str, dict[str, Any]]]:
    out = {}
    for topic, payload in messages:
        match = ha_topic(topic)
        assert match, topic
        out[match["object_id"]] = (topic, payload)
    return out


def assert_ha_shape(topic: str, payload: dict[str, Any]) -> None:
    match = ha_topic(topic)
    assert match is not None, topic
    component = match["component"]
    allowed = {"sensor": SENSOR_KEYS, "binary_sensor": BINARY_SENSOR_KEYS}[component]
    assert set(payload) <= allowed, set(payload) - allowed
    assert payload["unique_id"]
    assert payload["name"]
    assert payload["state_topic"].startswith("modemd/")
    assert "+" not in payload["state_topic"] and "#" not in payload["state_topic"]
    if "object_id" in payload:
        assert re.fullmatch(r"[a-z0-9_]+", payload["object_id"])
        assert payload["default_entity_id"] == f"{component}.{payload['object_id']}"
    device = payload["device"]
    assert set(device) <= DEVICE_KEYS
    assert device["identifiers"] and all(isinstance(i, str) for i in device["identifiers"])
    assert device["name"]
    assert payload["origin"]["name"] == "modemd"
    if "entity_category" in payload:
        assert payload["entity_category"] in ENTITY_CATEGORIES
    if component == "binary_sensor":
        assert "state_class" not in payload and "unit_of_measurement" not in payload
    if payload.get("device_class") == "enum":
        assert payload["options"] and "state_class" not in payload
        assert "unit_of_measurement" not in payload
    json.dumps(payload, allow_nan=False)


def test_field_discovery_from_reading() -> None:
    messages = discovery_messages(reading(), gateway_id="gw1")
    assert len(messages) == len(RULE.fields)  # every rule field, present or not
    for topic, payload in messages:
        assert_ha_shape(topic, payload)
        assert payload["availability"] == [
            {"topic": "modemd/gw1/status", "payload_available": "online",
             "payload_not_available": "offline"}
        ]
        assert payload["state_topic"] == "modemd/gw1/device/PUMP01/state"
        assert payload["expire_after"] == 7200
        assert payload["device"] == {
            "identifiers": ["modemd_gw1_PUMP01"],
            "name": "Borehole pump 1",
            "model": "PC-200",
            "manufacturer": "Acme",
            "suggested_area": "Field",
            "via_device": "modemd_gw1",
        }
    entities = by_object(messages)
    topic, battery = entities["battery"]
    assert topic == "homeassistant/sensor/gw1_PUMP01/battery/config"
    assert battery["unique_id"] == "modemd/gw1/PUMP01/battery"
    assert battery["object_id"] == "gw1_pump01_battery"
    assert battery["value_template"] == value_template("battery")
    assert battery["device_class"] == "voltage"
    assert battery["state_class"] == "measurement"
    assert battery["unit_of_measurement"] == "V"
    assert battery["name"] == "Battery"
    assert entities["count"][1]["state_class"] == "total_increasing"
    assert "state_class" not in entities["lat"][1]
    topic, running = entities["running"]
    assert topic == "homeassistant/binary_sensor/gw1_PUMP01/running/config"
    assert running["payload_on"] == "ON" and running["payload_off"] == "OFF"
    assert running["value_template"] == binary_value_template("running")
    assert running["device_class"] == "running"
    mode = entities["mode"][1]
    assert mode["device_class"] == "enum"
    assert mode["options"] == ["off", "auto"]
    assert mode["icon"] == "mdi:cog"
    firmware = entities["firmware"][1]
    assert "state_class" not in firmware and "device_class" not in firmware
    assert entities["values"][1]["value_template"] == value_template("values")


def test_unique_ids_unique_across_everything() -> None:
    messages = (
        discovery_messages(reading(), gateway_id="gw1")
        + discovery_messages(RULE, "PUMP02", gateway_id="gw1")
        + discovery_messages(RULE, "PUMP01", gateway_id="gw2")
        + modem_discovery_messages("gw1", "modem1", "356938035643809")
        + modem_discovery_messages("gw1", "modem2", None)
        + gateway_discovery_messages("gw1")
    )
    unique_ids = [payload["unique_id"] for _, payload in messages]
    topics = [topic for topic, _ in messages]
    assert len(set(unique_ids)) == len(unique_ids)
    assert len(set(topics)) == len(topics)


def test_discovery_from_rule_and_options() -> None:
    messages = discovery_messages(
        RULE, "PUMP02", gateway_id="gw1", device_meta=None, base_topic="site",
        discovery_prefix="ha", json_attributes=True, legacy_object_id=False,
    )
    for topic, payload in messages:
        assert ha_topic(topic, "ha")
        assert payload["state_topic"] == "site/gw1/device/PUMP02/state"
        assert payload["json_attributes_topic"] == "site/gw1/device/PUMP02/state"
        assert payload["availability"][0]["topic"] == "site/gw1/status"
        assert "object_id" not in payload
        assert payload["default_entity_id"].endswith("gw1_pump02_" + topic.split("/")[3])
        assert payload["device"] == {
            "identifiers": ["modemd_gw1_PUMP02"], "name": "PUMP02", "via_device": "modemd_gw1"
        }


def test_rule_without_fixed_device_needs_device() -> None:
    with pytest.raises(ValueError, match="pass device"):
        discovery_messages(RULE, gateway_id="gw1")
    fixed = RULE.model_copy(update={"device": "SITE", "device_field": None})
    assert discovery_messages(fixed, gateway_id="gw1")[0][1]["device"]["name"] == "SITE"


@pytest.mark.parametrize("bad", ["a/b", "a+b", "#", "", "a b"])
def test_unsafe_ids_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        discovery_messages(RULE, "PUMP01", gateway_id=bad)
    with pytest.raises(ValueError):
        discovery_messages(RULE, bad, gateway_id="gw1")
    with pytest.raises(ValueError):
        modem_discovery_messages("gw1", bad, "1")


def test_topic_ids_sanitised_and_distinct() -> None:
    a = by_object(discovery_messages(RULE, "PUMP.01", gateway_id="gw1"))["battery"]
    b = by_object(discovery_messages(RULE, "PUMP_01", gateway_id="gw1"))["battery"]
    c = by_object(discovery_messages(RULE, "Zähler:3", gateway_id="gw1"))["battery"]
    assert a[0] != b[0]
    assert a[1]["unique_id"] != b[1]["unique_id"]
    assert b[0] == "homeassistant/sensor/gw1_PUMP_01/battery/config"
    assert re.fullmatch(r"homeassistant/sensor/gw1_PUMP_01_[0-9a-f]{8}/battery/config", a[0])
    assert_ha_shape(*c)
    assert a[1]["state_topic"] == "modemd/gw1/device/PUMP.01/state"
    assert topic_id("ok-id_1") == "ok-id_1"
    assert topic_id("a.b") != topic_id("a_b")


def test_reading_without_specs_still_discovers() -> None:
    bare = Reading(
        device="D1", measurement="m", fields={"a": 1, "b": 2.5, "c": True, "d": "x"},
        units={"b": "V"}, device_classes={"b": "voltage"}, state_classes={"a": "measurement"},
        rule="r", sent_at=datetime(2024, 1, 1, tzinfo=UTC), msg_id="m1",
    )
    entities = by_object(discovery_messages(bare, gateway_id="gw1"))
    for topic, payload in entities.values():
        assert_ha_shape(topic, payload)
    assert entities["a"][1]["state_class"] == "measurement"
    assert "state_class" not in entities["b"][1]
    assert entities["b"][1]["unit_of_measurement"] == "V"
    assert entities["c"][0].startswith("homeassistant/binary_sensor/")
    assert "expire_after" not in entities["a"][1]


def test_modem_discovery() -> None:
    messages = modem_discovery_messages(
        "gw1", "modem1", "356938035643809", model="EC25", manufacturer="Quectel",
        firmware="EC25EFAR06A06M4G",
    )
    assert len(messages) == len(MODEM_SENSORS) + 1  # and the connectivity binary sensor
    entities = by_object(messages)
    assert set(entities) == {"signal", "registration", "last_error", "storage_used", "online"}
    for topic, payload in messages:
        assert_ha_shape(topic, payload)
        component = "binary_sensor" if topic.endswith("/online/config") else "sensor"
        assert topic.startswith(f"homeassistant/{component}/gw1_modem_modem1/")
        assert payload["state_topic"] == "modemd/gw1/modem/modem1/state"
        assert payload["entity_category"] == "diagnostic"
        assert payload["availability"][0]["topic"] == "modemd/gw1/status"
        assert payload["device"] == {
            "identifiers": ["modemd_modem_imei_356938035643809"],
            "name": "Modem modem1",
            "model": "EC25",
            "manufacturer": "Quectel",
            "sw_version": "EC25EFAR06A06M4G",
            "via_device": "modemd_gw1",
        }
    online = entities["online"][1]
    assert online["device_class"] == "connectivity"
    assert (online["payload_on"], online["payload_off"]) == ("ON", "OFF")
    signal = entities["signal"][1]
    assert signal["device_class"] == "signal_strength"
    assert signal["unit_of_measurement"] == "dBm"
    assert signal["state_class"] == "measurement"
    assert signal["value_template"] == "{{ value_json.signal.rssi }}"
    assert entities["storage_used"][1]["value_template"] == "{{ value_json.storage.used }}"
    assert entities["registration"][1]["value_template"] == "{{ value_json.registration }}"
    no_imei = modem_discovery_messages("gw1", "modem1", "  ")
    assert no_imei[0][1]["device"]["identifiers"] == ["modemd_modem_gw1_modem1"]


def test_gateway_discovery() -> None:
    ((topic, payload),) = gateway_discovery_messages("gw1")
    assert topic == "homeassistant/binary_sensor/gw1/status/config"
    assert_ha_shape(topic, payload)
    assert payload["state_topic"] == "modemd/gw1/status"
    assert payload["payload_on"] == "online"
    assert payload["payload_off"] == "offline"
    assert payload["device_class"] == "connectivity"
    assert "availability" not in payload
    # every other device hangs off this one
    assert payload["device"]["identifiers"] == ["modemd_gw1"]
    field_device = discovery_messages(reading(), gateway_id="gw1")[0][1]["device"]
    assert field_device["via_device"] in payload["device"]["identifiers"]


def test_flags_of_an_int_field_are_binary_sensors() -> None:
    rule = ParserRule.model_validate({
        "name": "meter", "format": "binary", "device": "WM1", "expire_after": 600,
        "fields": [{"name": "flags", "type": "int", "format": "B", "state_class": "none",
                    "bits": {"leak": {"bit": 0, "device_class": "moisture"}, "tamper": 1}}],
    })
    entities = by_object(discovery_messages(rule, gateway_id="gw1"))
    assert sorted(entities) == ["flags", "leak", "tamper"]
    topic, leak = entities["leak"]
    assert_ha_shape(topic, leak)
    assert topic == "homeassistant/binary_sensor/gw1_WM1/leak/config"
    assert leak["device_class"] == "moisture"
    assert leak["value_template"] == binary_value_template("leak")
    assert leak["expire_after"] == 600
    assert "device_class" not in entities["tamper"][1]
    assert entities["flags"][0] == "homeassistant/sensor/gw1_WM1/flags/config"


def test_unique_ids_of_device_field_pairs_cannot_collide() -> None:
    """Issue 13: device TANK_max + field level was the same id as device TANK + max_level."""
    rule = ParserRule.model_validate({
        "name": "tank", "format": "kv", "device_field": "ID",
        "fields": {"L": {"name": "level", "type": "float"},
                   "M": {"name": "max_level", "type": "float"}}})
    ids = [payload["unique_id"]
           for device in ("TANK_max", "TANK")
           for _, payload in discovery_messages(rule, device, gateway_id="gw1")]
    assert len(ids) == len(set(ids)) == 4
    assert "modemd/gw1/TANK_max/level" in ids and "modemd/gw1/TANK/max_level" in ids

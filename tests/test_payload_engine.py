"""PayloadEngine: matching, conversion, device ids, the Reading and its documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from modemd.errors import ConfigError, PayloadError
from modemd.payload import (
    DeviceSpec,
    FieldSpec,
    InboundMessage,
    ParserRule,
    PayloadConfig,
    PayloadEngine,
    Reading,
)
from modemd.payload.convert import ConversionError, convert

SENT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))


def rule(name: str, **overrides: Any) -> ParserRule:
    data: dict[str, Any] = {
        "name": name,
        "format": "kv",
        "device_field": "ID",
        "fields": {"V": {"name": "value", "type": "int"}},
    }
    data.update(overrides)
    return ParserRule.model_validate(data)


def msg(
    text: str | None = "ID=D1;V=1",
    *,
    sender: str = "+4915112345678",
    port: int | None = None,
    modem: str = "modem1",
    data: bytes | None = None,
) -> InboundMessage:
    return InboundMessage(
        msg_id="abc123", modem=modem, sender=sender, sent_at=SENT, text=text, data=data, port=port
    )


# ----------------------------------------------------------------------------- matching


def test_first_match_wins() -> None:
    engine = PayloadEngine(
        [
            rule("specific", match={"sender": "+49151*", "text": "^ID=D1;"}),
            rule("broad", match={"sender": "+49*"}),
            rule("catch-all"),
        ],
        {},
    )
    assert engine.match(msg()).name == "specific"  # type: ignore[union-attr]
    assert engine.parse(msg()).rule == "specific"
    assert engine.parse(msg("ID=D2;V=1")).rule == "broad"
    assert engine.parse(msg("ID=D2;V=1", sender="+33612345678")).rule == "catch-all"


def test_no_rule_matched() -> None:
    engine = PayloadEngine([rule("a", match={"sender": "+49151*"})], {})
    assert engine.match(msg(sender="+33612345678")) is None
    with pytest.raises(PayloadError, match="no parser rule matched") as info:
        engine.parse(msg(sender="+33612345678", port=9))
    assert info.value.rule is None
    assert "port 9" in str(info.value)
    with pytest.raises(PayloadError, match="no parser rule"):
        PayloadEngine([], {}).parse(msg())


def test_match_by_port_text_and_modem() -> None:
    engine = PayloadEngine(
        [
            rule("port", match={"port": 4711}),
            rule("modem2", match={"modem": "modem2"}),
            rule("text", match={"text": "V=9"}),
        ],
        {},
    )
    assert engine.parse(msg(port=4711)).rule == "port"
    assert engine.match(msg(port=4712)) is None
    assert engine.parse(msg(modem="modem2")).rule == "modem2"
    assert engine.parse(msg("ID=D1;V=9")).rule == "text"
    assert engine.match(msg(None, data=b"\x01")) is None  # text regex never matches 8-bit data


def test_sender_normalisation_with_country_code() -> None:
    engine = PayloadEngine(
        [rule("a", match={"sender": "0151*"})], {}, default_country_code="49"
    )
    for sender in ("+4915112345678", "004915112345678", "015112345678", "+49 151 1234 5678"):
        assert engine.parse(msg(sender=sender)).sender == "+4915112345678"
    assert engine.match(msg(sender="+4916012345678")) is None


def test_alphanumeric_sender_pattern() -> None:
    engine = PayloadEngine([rule("a", match={"sender": ["ACME*", "+49*"]})], {})
    assert engine.parse(msg(sender="ACME Alarm")).rule == "a"
    assert engine.match(msg(sender="Other")) is None


def test_text_match_is_searched_not_anchored() -> None:
    engine = PayloadEngine([rule("a", match={"text": "V=1$"})], {})
    assert engine.parse(msg("ID=D1;V=1")).rule == "a"


# ----------------------------------------------------------------------------- device ids


DEVICES = {
    "PUMP01": DeviceSpec(numbers=("+4915112345678",), name="Pump 1", area="Field"),
    "WM-1": DeviceSpec(numbers=("0170 1234567",)),
}


def test_device_from_payload_with_meta() -> None:
    engine = PayloadEngine([rule("a")], DEVICES)
    reading = engine.parse(msg("ID=PUMP01;V=1"))
    assert reading.device == "PUMP01"
    assert reading.device_meta is DEVICES["PUMP01"]
    assert engine.parse(msg("ID=OTHER;V=1")).device_meta is None


def test_device_from_sender() -> None:
    engine = PayloadEngine(
        [rule("a", device_field=None, device_from="sender")], DEVICES, default_country_code="49"
    )
    assert engine.parse(msg("V=1")).device == "PUMP01"
    assert engine.parse(msg("V=1", sender="01701234567")).device == "WM-1"
    unknown = engine.parse(msg("V=1", sender="+33612345678"))
    assert unknown.device == "33612345678"  # '+' is an MQTT wildcard
    assert unknown.device_meta is None
    assert engine.parse(msg("V=1", sender="ACME")).device == "ACME"
    with pytest.raises(PayloadError, match="whitespace") as info:
        engine.parse(msg("V=1", sender="ACME Corp"))
    assert info.value.field == "sender"
    assert engine.device_for_sender("0151 12345678") == "PUMP01"
    assert engine.device_for_sender("+33612345678") is None


def test_fixed_device() -> None:
    engine = PayloadEngine([rule("a", device_field=None, device="SITE-9")], DEVICES)
    reading = engine.parse(msg("V=1"))
    assert reading.device == "SITE-9"
    assert reading.device_meta is None


@pytest.mark.parametrize(
    "device",
    ["a/b", "a+b", "#", "x" * 65, "a\x00b", "a\x1bb", "a\u2028b", "a b", "+4915112345678"],
)
def test_unsafe_device_ids_rejected(device: str) -> None:
    engine = PayloadEngine([rule("a", pair_separator="|")], {})
    with pytest.raises(PayloadError) as info:
        engine.parse(msg(f"ID={device}|V=1"))
    assert info.value.rule == "a"
    assert info.value.field == "ID"


def test_engine_rejects_bad_registry() -> None:
    with pytest.raises(ConfigError) as info:
        PayloadEngine(
            [rule("a"), rule("a")],
            {
                "A": DeviceSpec(numbers=("015112345678",)),
                "B": DeviceSpec(numbers=("+4915112345678",)),
                "C/D": DeviceSpec(),
            },
            default_country_code="49",
        )
    paths = {path for path, _ in info.value.problems}
    assert paths == {"devices.B.numbers", "devices.C/D", "parser[1].name"}
    with pytest.raises(ConfigError, match="default_country_code"):
        PayloadEngine([], {}, default_country_code="abc")


# ----------------------------------------------------------------------------- conversion


@pytest.mark.parametrize(
    ("spec", "raw", "expected"),
    [
        ({"type": "int"}, "42", 42),
        ({"type": "int"}, " -7 ", -7),
        ({"type": "int"}, "+7", 7),
        ({"type": "int", "scale": 10, "offset": -3}, "4", 37),
        ({"type": "int"}, str(2**63 - 1), 2**63 - 1),
        ({"type": "float"}, "3.71", 3.71),
        ({"type": "float"}, ".5", 0.5),
        ({"type": "float"}, "5.", 5.0),
        ({"type": "float"}, "1e3", 1000.0),
        ({"type": "float"}, "-2.5E-2", -0.025),
        ({"type": "float", "scale": 0.01}, "2149", 21.49),
        ({"type": "float", "scale": 0.1, "offset": -40}, "612", 21.2),
        ({"type": "float", "offset": 273.15}, "-273.15", 0.0),
        ({"type": "float", "min": 0, "max": 5}, "5", 5.0),
        ({"type": "float", "min": 0, "max": 5}, "0", 0.0),
        ({"type": "float"}, 7, 7.0),
        ({"type": "int"}, 7.0, 7),
        ({"type": "bool"}, "1", True),
        ({"type": "bool"}, "true", True),
        ({"type": "bool"}, "TRUE", True),
        ({"type": "bool"}, "On", True),
        ({"type": "bool"}, "yes", True),
        ({"type": "bool"}, "0", False),
        ({"type": "bool"}, "false", False),
        ({"type": "bool"}, "off", False),
        ({"type": "bool"}, "No", False),
        ({"type": "bool"}, 1, True),
        ({"type": "bool"}, False, False),
        ({"type": "string"}, "  hello world ", "hello world"),
        ({"type": "string"}, "Zähler", "Zähler"),
        ({"type": "enum", "values": {"0": "off", "1": "on", "E": "error"}}, "E", "error"),
        ({"type": "enum", "values": {"0": "off", "1": "on"}}, 1, "on"),
        ({"type": "enum", "values": {"0": "off", "1": "on"}}, " 0 ", "off"),
    ],
)
def test_convert(spec: dict[str, Any], raw: object, expected: object) -> None:
    value = convert(raw, FieldSpec.model_validate({"name": "x", **spec}))
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("spec", "raw", "reason"),
    [
        ({"type": "int"}, "4.2", "not an integer"),
        ({"type": "int"}, "", "not an integer"),
        ({"type": "int"}, "1" * 20, "not an integer"),
        ({"type": "int"}, str(2**63), "64-bit"),
        ({"type": "int"}, True, "boolean"),
        ({"type": "int"}, None, "null"),
        ({"type": "int", "scale": 1000}, str(2**62), "after scaling"),
        ({"type": "int", "min": 0}, "-1", "below the minimum"),
        ({"type": "float", "max": 5}, "5.01", "above the maximum"),
        ({"type": "float", "scale": 0.1, "max": 10}, "101", "above the maximum"),
        ({"type": "float", "scale": 1e300}, "1e300", "after scaling"),
        ({"type": "float"}, float("nan"), "finite"),
        ({"type": "float"}, "- 1", "not a number"),
        ({"type": "bool"}, "2", "not a boolean"),
        ({"type": "bool"}, "y", "not a boolean"),
        ({"type": "bool"}, 2, "not a boolean"),
        ({"type": "bool"}, 1.0, "not a boolean"),
        ({"type": "string"}, "a\x00b", "control"),
        ({"type": "string"}, "a\tb", "control"),
        ({"type": "string"}, 1.5, "expected a string"),
        ({"type": "enum", "values": {"0": "off"}}, "2", "not one of 0"),
        ({"type": "enum", "values": {"0": "off"}}, [0], "an array"),
    ],
)
def test_convert_rejects(spec: dict[str, Any], raw: object, reason: str) -> None:
    with pytest.raises(ConversionError, match=reason):
        convert(raw, FieldSpec.model_validate({"name": "x", **spec}))


def test_optional_field_absent() -> None:
    engine = PayloadEngine(
        [rule("a", fields={"V": {"name": "value", "type": "int"},
                           "W": {"name": "w", "type": "float", "required": False, "unit": "W"}})],
        {},
    )
    reading = engine.parse(msg("ID=D1;V=1"))
    assert reading.fields == {"value": 1}
    assert "w" not in reading.units
    assert engine.parse(msg("ID=D1;V=1;W=")).fields == {"value": 1}
    assert engine.parse(msg("ID=D1;V=1;W=2")).units == {"w": "W"}


def test_named_bits_become_bool_fields_after_their_field() -> None:
    engine = PayloadEngine(
        [rule("a", fields={
            "F": {"name": "flags", "type": "int", "required": False, "max": 255,
                  "bits": {"leak": {"bit": 0, "device_class": "moisture"}, "high": 7}},
            "V": {"name": "value", "type": "int"}})],
        {},
    )
    reading = engine.parse(msg("ID=D1;F=129;V=5"))
    assert list(reading.fields.items()) == [
        ("flags", 129), ("leak", True), ("high", True), ("value", 5)]
    assert reading.device_classes == {"leak": "moisture"}
    assert set(reading.field_specs) == {"flags", "leak", "high", "value"}
    assert engine.parse(msg("ID=D1;F=2;V=5")).fields == {
        "flags": 2, "leak": False, "high": False, "value": 5}
    # an absent optional field gives no flags rather than made-up False values
    assert engine.parse(msg("ID=D1;V=5")).fields == {"value": 5}
    with pytest.raises(PayloadError, match="flags"):
        engine.parse(msg("ID=D1;F=256;V=5"))
    with pytest.raises(PayloadError, match="flags"):
        engine.parse(msg("ID=D1;F=0x01;V=5"))


def test_out_of_range_error_names_rule_and_field() -> None:
    engine = PayloadEngine(
        [rule("pump", fields={"BAT": {"name": "battery", "type": "float", "max": 5}})], {}
    )
    with pytest.raises(PayloadError) as info:
        engine.parse(msg("ID=D1;BAT=12"))
    assert info.value.rule == "pump"
    assert info.value.field == "battery"
    assert "above the maximum" in str(info.value)


# ------------------------------------------------------------------------------- Reading


def test_reading_documents() -> None:
    engine = PayloadEngine(
        [rule("pump", measurement="pump_status", expire_after=600,
              fields={"BAT": {"name": "battery", "type": "float", "unit": "V",
                              "device_class": "voltage"},
                      "RUN": {"name": "running", "type": "bool"}})],
        DEVICES,
    )
    reading = engine.parse(msg("ID=PUMP01;BAT=3.71;RUN=1"))
    assert isinstance(reading, Reading)
    assert reading.measurement == "pump_status"
    assert reading.expire_after == 600
    assert reading.msg_id == "abc123"
    assert reading.sent_at == SENT
    assert reading.modem == "modem1"
    assert set(reading.field_specs) == {"battery", "running"}
    doc = reading.state_document()
    assert doc == {
        "device": "PUMP01",
        "battery": 3.71,
        "running": True,
        "sent_at": "2024-05-01T12:00:00+02:00",
        "msg_id": "abc123",
    }
    assert list(doc) == ["device", "battery", "running", "sent_at", "msg_id"]
    json.dumps(doc, allow_nan=False)
    body = reading.outbox_body("gw1")
    assert body == {
        "device": "PUMP01",
        "measurement": "pump_status",
        "fields": {"battery": 3.71, "running": True},
        "tags": {"gateway": "gw1", "modem": "modem1", "device": "PUMP01"},
        "units": {"battery": "V"},
        "sent_at": "2024-05-01T12:00:00+02:00",
        "msg_id": "abc123",
        "rule": "pump",
    }
    with pytest.raises(AttributeError):
        reading.device = "x"  # type: ignore[misc]


def test_inbound_message_requires_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        InboundMessage(msg_id="a", modem="m", sender="s", sent_at=datetime(2024, 1, 1))
    assert InboundMessage(msg_id="a", modem="m", sender="s", sent_at=datetime.now(UTC)).text is None


def test_unexpected_internal_errors_become_payload_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = PayloadEngine([rule("a")], {})

    def boom(*_args: object) -> object:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr("modemd.payload.engine.convert", boom)
    with pytest.raises(PayloadError, match="internal error while parsing: ZeroDivisionError"):
        engine.parse(msg())


def test_engine_queries() -> None:
    rules = [rule("a"), rule("b")]
    engine = PayloadEngine.from_config(
        PayloadConfig(parser=tuple(rules), devices=DEVICES), default_country_code="49"
    )
    assert [r.name for r in engine.rules] == ["a", "b"]
    assert engine.rule("b") is rules[1]
    assert engine.rule("zzz") is None
    assert set(engine.devices) == {"PUMP01", "WM-1"}
    assert engine.normalise("0151 1") == "+491511"

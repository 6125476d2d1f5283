"""Each payload format with valid, malformed and hostile input (through the engine)."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime
from typing import Any

import pytest

from modemd.errors import PayloadError
from modemd.payload import InboundMessage, ParserRule, PayloadEngine, Reading
from modemd.payload.formats import MAX_TEXT_CHARS, TEXT_PARSERS, parse_kv

SENT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def engine(rule: dict[str, Any], **kwargs: Any) -> PayloadEngine:
    return PayloadEngine([ParserRule.model_validate(rule)], kwargs.pop("devices", {}), **kwargs)


def msg(
    text: str | None = None,
    *,
    data: bytes | None = None,
    sender: str = "+4915112345678",
    port: int | None = None,
) -> InboundMessage:
    return InboundMessage(
        msg_id="m1", modem="modem1", sender=sender, sent_at=SENT, text=text, data=data, port=port
    )


def parse(rule: dict[str, Any], text: str | None = None, **kwargs: Any) -> Reading:
    return engine(rule).parse(msg(text, **kwargs))


def fails(rule: dict[str, Any], text: str | None = None, **kwargs: Any) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        parse(rule, text, **kwargs)
    assert not str(info.value).startswith("internal error"), info.value
    return info.value


def test_format_table() -> None:
    assert set(TEXT_PARSERS) == {"kv", "json", "csv", "regex"}
    assert TEXT_PARSERS["kv"] is parse_kv


# ---------------------------------------------------------------------------------------- kv

KV = {
    "name": "pump",
    "format": "kv",
    "device_field": "ID",
    "fields": {
        "BAT": {"name": "battery", "type": "float", "unit": "V", "device_class": "voltage"},
        "T": {"name": "temperature", "type": "float"},
        "RUN": {"name": "running", "type": "bool", "required": False},
    },
}


def test_kv_valid() -> None:
    reading = parse(KV, "ID=PUMP01;BAT=3.71;T=21.5;RUN=1")
    assert reading.device == "PUMP01"
    assert reading.fields == {"battery": 3.71, "temperature": 21.5, "running": True}
    assert reading.units == {"battery": "V"}
    assert reading.device_classes == {"battery": "voltage"}
    assert reading.state_classes == {"battery": "measurement", "temperature": "measurement"}


@pytest.mark.parametrize(
    "text",
    [
        "ID=PUMP01;BAT=3.71;T=21.5",
        " ID = PUMP01 ; BAT = 3.71 ; T = 21.5 ; ",
        "ID=PUMP01;;BAT=3.71;T=21.5\r\n",
        "T=21.5;BAT=3.71;ID=PUMP01",
        "ID=PUMP01;BAT=3.71;T=21.5;NEW=7",  # unknown keys are dropped by default
    ],
)
def test_kv_tolerant_layout(text: str) -> None:
    reading = parse(KV, text)
    assert reading.device == "PUMP01"
    assert reading.fields == {"battery": 3.71, "temperature": 21.5}


def test_kv_separator_set() -> None:
    rule = {**KV, "pair_separator": [";", ",", " "], "kv_separator": ":"}
    reading = parse(rule, "ID:PUMP01, BAT:3.71  T:21.5;RUN:on")
    assert reading.fields == {"battery": 3.71, "temperature": 21.5, "running": True}


def test_kv_value_may_contain_separator() -> None:
    rule = {**KV, "fields": {"MSG": {"name": "msg", "type": "string"}}}
    assert parse(rule, "ID=P1;MSG=a=b").fields == {"msg": "a=b"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ID=PUMP01;BAT;T=21.5", "malformed"),
        ("ID=PUMP01;=3;T=21.5", "malformed"),
        ("ID=PUMP01;BAT=3.71;BAT=3.72;T=1", "duplicate"),
        ("", "no key"),
        (";;;", "no key"),
        ("ID=PUMP01;T=21.5", "required field 'battery'"),
        ("ID=PUMP01;BAT=;T=21.5", "required field 'battery'"),
        ("ID=PUMP01;BAT=abc;T=21.5", "not a number"),
        ("ID=PUMP01;BAT=3,71;T=21.5", "not a number"),
        ("BAT=3.71;T=21.5", "device id field 'ID' is missing"),
        ("ID=;BAT=3.71;T=21.5", "device id field 'ID' is missing"),
        ("ID=PU/MP;BAT=3.71;T=21.5", "contains '/'"),
        ("ID=PUMP01;BAT=3.71;T=21.5;RUN=maybe", "not a boolean"),
    ],
)
def test_kv_malformed(text: str, reason: str) -> None:
    error = fails(KV, text)
    assert reason in str(error)
    assert error.rule == "pump"


def test_kv_error_names_field() -> None:
    error = fails(KV, "ID=PUMP01;BAT=abc;T=21.5")
    assert error.field == "battery"
    assert "'BAT'" in str(error)


def test_kv_strict_unknown_keys() -> None:
    rule = {**KV, "ignore_unknown": False}
    assert parse(rule, "ID=P1;BAT=3.7;T=1").device == "P1"
    error = fails(rule, "ID=P1;BAT=3.7;T=1;a/b=1;__proto__=1;+=2")
    assert "unknown key" in str(error)
    assert "'+'" in str(error)


@pytest.mark.parametrize(
    "text",
    [
        "ID=PUMP01;BAT=3.71;T=21.5;a/b=1;+=1;#=2;__proto__=3;constructor=4",
        "ID=PUMP01;BAT=3.71;T=21.5;" + "X=1;" * 1000,
    ],
)
def test_kv_injection_keys_never_become_fields(text: str) -> None:
    reading = parse(KV, text.replace("X=1;" * 1000, "".join(f"X{i}=1;" for i in range(1000))))
    assert set(reading.fields) == {"battery", "temperature"}
    assert set(reading.state_document()) == {
        "device", "battery", "temperature", "sent_at", "msg_id"
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("nan", "not a number"),
        ("NaN", "not a number"),
        ("inf", "not a number"),
        ("-Infinity", "not a number"),
        ("1e999", "not a finite number"),
        ("9" * 5000, "not a number"),
        ("1_000", "not a number"),
        ("١٢", "not a number"),
        ("0x10", "not a number"),
        ("3.7\x00", "not a number"),
    ],
)
def test_kv_hostile_floats(value: str, reason: str) -> None:
    assert reason in str(fails(KV, f"ID=P;BAT={value};T=1"))


def test_kv_nul_and_binary_junk() -> None:
    fails(KV, "\x00\x01\x02\xff\ufffd")
    fails(KV, "ID=P\x00;BAT=1;T=2")
    fails(KV, "ID=P;BAT=1;T=2\x00")


def test_huge_text_is_capped() -> None:
    error = fails(KV, "ID=P;BAT=1;T=2;" + "A" * (MAX_TEXT_CHARS + 1))
    assert "exceeds" in str(error)
    error = fails(KV, "x" * 1_000_000)
    assert "exceeds" in str(error)


# -------------------------------------------------------------------------------------- json

JSON = {
    "name": "j",
    "format": "json",
    "device_field": "id",
    "fields": {
        "bat": {"name": "battery", "type": "float"},
        "gps.lat": {"name": "lat", "type": "float", "required": False},
        "mode": {"name": "mode", "type": "enum", "values": {"0": "off", "1": "auto"},
                 "required": False},
        "on": {"name": "on", "type": "bool", "required": False},
        "n": {"name": "n", "type": "int", "required": False},
        "s": {"name": "s", "type": "string", "required": False},
    },
}


def test_json_valid() -> None:
    reading = parse(
        JSON,
        '{"id": "J1", "bat": 3.7, "gps": {"lat": 52.5}, "mode": 1, "on": true, "n": 3.0,'
        ' "s": "hello", "extra": [1, 2]}',
    )
    assert reading.device == "J1"
    assert reading.fields == {
        "battery": 3.7, "lat": 52.5, "mode": "auto", "on": True, "n": 3, "s": "hello"
    }


def test_json_numbers_as_strings_and_int_ids() -> None:
    reading = parse(JSON, '{"id": 42, "bat": "3.7", "n": "5", "on": "yes", "mode": "0"}')
    assert reading.device == "42"
    assert reading.fields == {"battery": 3.7, "n": 5, "on": True, "mode": "off"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "malformed JSON"),
        ("[1, 2]", "not an object"),
        ('"x"', "not an object"),
        ("null", "not an object"),
        ('{"id": "J", "bat": NaN}', "NaN is not allowed"),
        ('{"id": "J", "bat": Infinity}', "Infinity is not allowed"),
        ('{"id": "J", "bat": -Infinity}', "-Infinity is not allowed"),
        ('{"id": "J", "bat": 1e999}', "not a finite number"),
        ('{"id": "J", "bat": true}', "boolean"),
        ('{"id": "J", "bat": [1]}', "an array"),
        ('{"id": "J", "bat": {"v": 1}}', "an object"),
        ('{"id": "J", "bat": null}', "required field"),
        ('{"id": "J", "bat": 1, "n": 1.5}', "not an integer"),
        ('{"id": "J", "bat": 1, "n": 1e30}', "64-bit"),
        ('{"id": "J", "bat": 1, "n": ' + "9" * 30 + "}", "64-bit"),
        ('{"id": "J", "bat": ' + "9" * 400 + "}", "out of range"),
        ('{"id": "J", "bat": ' + "9" * 5000 + "}", "malformed JSON"),
        ('{"id": "J", "bat": 1, "on": 2}', "not a boolean"),
        ('{"id": "J", "bat": 1, "mode": 7}', "not one of"),
        ('{"id": "J", "bat": 1, "s": "a\\u0000b"}', "control characters"),
        ('{"id": "J", "bat": 1, "s": "' + "x" * 300 + '"}', "longer than"),
        ('{"id": ["J"], "bat": 1}', "not a string"),
        ('{"id": true, "bat": 1}', "not a string"),
        ('{"id": "a/b", "bat": 1}', "contains '/'"),
        ('{"id": "a#", "bat": 1}', "contains '#'"),
        ('{"id": "' + "x" * 65 + '", "bat": 1}', "longer than 64"),
        ('{"id": "a\\nb", "bat": 1}', "control"),
    ],
)
def test_json_malformed_and_hostile(text: str, reason: str) -> None:
    assert reason in str(fails(JSON, text))


def test_json_deep_nesting() -> None:
    fails(JSON, "[" * 30000 + "]" * 30000)
    fails(JSON, '{"a":' * 30000 + "1" + "}" * 30000)


def test_json_strict_unknown_keys() -> None:
    rule = {**JSON, "ignore_unknown": False}
    assert parse(rule, '{"id": "J", "bat": 1, "gps": {"lat": 1, "lon": 2}}').device == "J"
    assert "unknown key" in str(fails(rule, '{"id": "J", "bat": 1, "zzz": 1}'))


# --------------------------------------------------------------------------------------- csv

CSV = {
    "name": "trk",
    "format": "csv",
    "columns": ["id", "lat", "lon", "speed", "battery", "fix"],
    "device_field": "id",
    "fields": {
        "lat": {"name": "latitude", "type": "float", "min": -90, "max": 90},
        "lon": {"name": "longitude", "type": "float", "min": -180, "max": 180},
        "speed": {"name": "speed", "type": "float", "required": False},
        "battery": {"name": "battery", "type": "int", "min": 0, "max": 100},
        "fix": {"name": "fix", "type": "bool"},
    },
}


def test_csv_valid() -> None:
    reading = parse(CSV, "TRK7,52.5200,13.4050,34.2,87,1")
    assert reading.device == "TRK7"
    assert reading.fields == {
        "latitude": 52.52, "longitude": 13.405, "speed": 34.2, "battery": 87, "fix": True
    }


def test_csv_optional_empty_cell_and_quotes() -> None:
    reading = parse(CSV, '"TRK7", 52.52 ,13.405,,87,"0"')
    assert reading.fields == {"latitude": 52.52, "longitude": 13.405, "battery": 87, "fix": False}


def test_csv_without_columns_uses_field_order() -> None:
    rule = {
        "name": "c", "format": "csv", "device_field": "a",
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "int"}],
    }
    reading = parse(rule, "X1,7")
    assert reading.device == "X1"
    assert reading.fields == {"a": "X1", "b": 7}
    rule_sc = {**rule, "delimiter": ";"}
    assert parse(rule_sc, "X1;7").fields == {"a": "X1", "b": 7}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("TRK7,52.52,13.405,34.2,87", "required field 'fix'"),
        ("TRK7,52.52,13.405,34.2,87,1,extra", "7 columns"),
        ("TRK7,91,13.405,34.2,87,1", "above the maximum"),
        ("TRK7,52.52,-181,34.2,87,1", "below the minimum"),
        ("TRK7,52.52,13.405,34.2,87.5,1", "not an integer"),
        ("TRK7,52.52,13.405,34.2,101,1", "above the maximum"),
        ('TRK7,"52.52,13.405,34.2,87,1', "malformed CSV"),
        ("TRK7,52.52\n13.405,34.2,87,1", "more than one line"),
        (",52.52,13.405,34.2,87,1", "device id field"),
        ("TR K7,52.52,13.405,34.2,87,1", "whitespace"),
    ],
)
def test_csv_malformed(text: str, reason: str) -> None:
    assert reason in str(fails(CSV, text))


def test_csv_extra_columns_allowed_when_ignoring_unknown() -> None:
    rule = {**CSV, "ignore_unknown": True}
    assert parse(rule, "TRK7,52.52,13.405,34.2,87,1,extra").device == "TRK7"


# ------------------------------------------------------------------------------------- regex

REGEX = {
    "name": "alarm",
    "format": "regex",
    "pattern": r"^ALARM (?P<id>\S+) zone (?P<zone>\d+) (?P<state>armed|disarmed|triggered)"
    r"(?: bat (?P<bat>[\d.]+))?",
    "device_field": "id",
    "fields": {
        "zone": {"name": "zone", "type": "int"},
        "state": {"name": "state", "type": "enum",
                  "values": {"armed": "armed", "disarmed": "disarmed", "triggered": "triggered"}},
        "bat": {"name": "battery", "type": "float", "required": False},
    },
}


def test_regex_valid() -> None:
    reading = parse(REGEX, "ALARM house-1 zone 3 triggered bat 3.1")
    assert reading.device == "house-1"
    assert reading.fields == {"zone": 3, "state": "triggered", "battery": 3.1}
    assert parse(REGEX, "ALARM house-1 zone 3 armed").fields == {"zone": 3, "state": "armed"}


@pytest.mark.parametrize(
    "text", ["", "alarm house zone 1 armed", "ALARM h zone x armed", "\x00" * 100, "ALARM " * 5000]
)
def test_regex_no_match(text: str) -> None:
    assert "does not match" in str(fails(REGEX, text))


def test_regex_device_id_checked() -> None:
    assert "contains '+'" in str(fails(REGEX, "ALARM a+b zone 1 armed"))


# ------------------------------------------------------------------------------------ binary

METER = {
    "name": "meter",
    "format": "binary",
    "match": {"port": 4711},
    "byte_order": "<",
    "device_from": "sender",
    "fields": [
        {"name": "volume", "type": "int", "format": "I", "state_class": "total_increasing"},
        {"name": "flow", "type": "int", "format": "H"},
        {"name": "temperature", "type": "float", "format": "h", "scale": 0.01},
        {"name": "battery", "type": "int", "format": "B", "max": 100},
        {"name": "leak", "type": "bool", "format": "B"},
    ],
}
SAMPLE = struct.pack("<IHhBB", 12345, 120, -549, 90, 1)


def test_binary_raw() -> None:
    reading = parse(METER, data=SAMPLE, port=4711)
    assert reading.device == "4915112345678"
    assert reading.fields == {
        "volume": 12345, "flow": 120, "temperature": -5.49, "battery": 90, "leak": True
    }
    assert reading.state_classes["volume"] == "total_increasing"


def test_binary_big_endian_and_offset() -> None:
    rule = {**METER, "byte_order": ">", "offset": 2}
    data = b"\xaa\x01" + struct.pack(">IHhBB", 1, 2, 2149, 3, 0)
    assert parse(rule, data=data, port=4711).fields == {
        "volume": 1, "flow": 2, "temperature": 21.49, "battery": 3, "leak": False
    }


def test_binary_hex_and_base64() -> None:
    hex_rule = {**METER, "encoding_in": "hex"}
    assert parse(hex_rule, SAMPLE.hex().upper(), port=4711).fields["volume"] == 12345
    assert parse(hex_rule, " ".join(f"{b:02x}" for b in SAMPLE), port=4711).fields["flow"] == 120
    b64_rule = {**METER, "encoding_in": "base64"}
    text = base64.b64encode(SAMPLE).decode()
    assert parse(b64_rule, text, port=4711).fields["battery"] == 90


def test_binary_float_codes() -> None:
    rule = {
        "name": "f", "format": "binary", "device": "F1", "byte_order": ">",
        "fields": [{"name": "a", "type": "float", "format": "f"},
                   {"name": "b", "type": "float", "format": "d"},
                   {"name": "c", "type": "float", "format": "e"}],
    }
    reading = parse(rule, data=struct.pack(">fde", 1.5, -2.25, 0.5))
    assert reading.fields == {"a": 1.5, "b": -2.25, "c": 0.5}
    for bad in (float("nan"), float("inf"), float("-inf")):
        assert "finite" in str(fails(rule, data=struct.pack(">fde", bad, 1, 1)))
        assert "finite" in str(fails(rule, data=struct.pack(">fde", 1, 1, bad)))


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"data": SAMPLE[:-1]}, "needs 10"),
        ({"data": b""}, "needs 10"),
        ({"data": SAMPLE + b"\x00"}, "trailing"),
        ({"data": struct.pack("<IHhBB", 1, 1, 1, 101, 0)}, "above the maximum"),
        ({"data": struct.pack("<IHhBB", 1, 1, 1, 1, 2)}, "not a boolean"),
        ({"text": "hello"}, "8-bit data"),
    ],
)
def test_binary_malformed(kwargs: dict[str, Any], reason: str) -> None:
    assert reason in str(fails(METER, port=4711, **kwargs))


@pytest.mark.parametrize("text", ["zz", "123", "12 3", "é1", "\x00"])
def test_binary_bad_hex(text: str) -> None:
    assert "malformed hex" in str(fails({**METER, "encoding_in": "hex"}, text, port=4711))


@pytest.mark.parametrize("text", ["***", "abc", "é"])
def test_binary_bad_base64(text: str) -> None:
    assert "malformed base64" in str(fails({**METER, "encoding_in": "base64"}, text, port=4711))


def test_binary_hex_rule_with_data_message() -> None:
    assert "8-bit data" in str(fails({**METER, "encoding_in": "hex"}, data=SAMPLE, port=4711))


def test_binary_device_field() -> None:
    rule = {**METER, "device_from": None, "device_field": "flow"}
    assert parse(rule, data=SAMPLE, port=4711).device == "120"


def test_binary_huge_data_capped() -> None:
    assert "exceeds" in str(fails(METER, data=b"\x00" * 1_000_000, port=4711))


def test_text_rule_with_binary_message() -> None:
    assert "needs a text message" in str(fails(KV, data=b"ID=P;BAT=1;T=2"))

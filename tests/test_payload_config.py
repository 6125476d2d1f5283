"""Config models of modemd.payload: validation, defaults and key paths of errors."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from pydantic import ValidationError

from modemd.errors import ConfigError
from modemd.payload.config import (
    DeviceSpec,
    FieldSpec,
    MatchSpec,
    ParserRule,
    PayloadConfig,
    device_id_problem,
    load_payload_config,
    validation_problems,
)


def kv_rule(**overrides: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": "pump",
        "format": "kv",
        "device_field": "ID",
        "fields": {"BAT": {"name": "battery", "type": "float"}},
    }
    rule.update(overrides)
    return rule


def problems_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_payload_config(data, source="test.toml")
    assert str(info.value).startswith("test.toml: ")
    return dict(info.value.problems)


def rule_problems(**overrides: Any) -> dict[str, str]:
    return problems_of({"parser": [kv_rule(**overrides)]})


# ------------------------------------------------------------------------------- FieldSpec


def test_field_defaults() -> None:
    spec = FieldSpec(name="battery", type="float")
    assert spec.required is True
    assert spec.effective_state_class == "measurement"
    assert spec.effective_device_class is None
    assert FieldSpec(name="x", type="int").effective_state_class == "measurement"
    assert FieldSpec(name="x", type="bool").effective_state_class is None
    assert FieldSpec(name="x", type="string").effective_state_class is None
    assert FieldSpec(name="x", type="float", state_class="none").effective_state_class is None
    assert (
        FieldSpec(name="x", type="int", state_class="total_increasing").effective_state_class
        == "total_increasing"
    )
    enum = FieldSpec(name="mode", type="enum", values={"0": "off", "1": "on"})
    assert enum.effective_device_class == "enum"
    assert enum.effective_state_class is None


def test_field_is_frozen() -> None:
    spec = FieldSpec(name="battery", type="float")
    with pytest.raises(ValidationError):
        setattr(spec, "name", "other")  # noqa: B010 - the point is the runtime check


@pytest.mark.parametrize(
    "name",
    ["a/b", "+", "#", "", "1abc", "a-b", "a b", "x" * 65, "device", "sent_at", "msg_id",
     "__proto__", "__class__", "prototype", "constructor", "é"],
)
def test_field_name_must_be_safe(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        FieldSpec(name=name, type="float")
    assert validation_problems(info.value)[0][0] == "name"


@pytest.mark.parametrize("name", ["a", "_a", "battery_2", "T", "x" * 64, "_proto_"])
def test_field_name_accepts_identifiers(name: str) -> None:
    assert FieldSpec(name=name, type="int").name == name


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"type": "floaty"}, "type"),
        ({"type": "enum"}, "values"),
        ({"type": "int", "values": {"1": "on"}}, "values"),
        ({"type": "bool", "scale": 2}, "scale"),
        ({"type": "string", "min": 1}, "min"),
        ({"type": "float", "scale": 0}, "scale"),
        ({"type": "int", "scale": 0.5}, "scale"),
        ({"type": "int", "offset": 0.5}, "offset"),
        ({"type": "float", "min": 2, "max": 1}, "min"),
        ({"type": "float", "state_class": "sometimes"}, "state_class"),
        ({"type": "bool", "state_class": "measurement"}, "state_class"),
        ({"type": "float", "device_class": "Temperature"}, "device_class"),
        ({"type": "float", "icon": "water pump"}, "icon"),
        ({"type": "float", "unit": "\x00"}, "unit"),
        ({"type": "int", "format": "Z"}, "format"),
        ({"type": "int", "format": "f"}, "type"),
        ({"type": "string", "format": "B"}, "type"),
        ({"type": "float", "scale": float("nan")}, "scale"),
        ({"type": "float", "max": float("inf")}, "max"),
        ({"type": "float", "colour": "red"}, "colour"),
        ({"type": "float", "bits": {"leak": 0}}, "bits"),
        ({"type": "int", "scale": 2, "bits": {"leak": 0}}, "bits"),
        ({"type": "int", "bits": {}}, "bits"),
        ({"type": "int", "bits": {"x": 0}}, "bits.x"),
        ({"type": "int", "bits": {"leak": 0, "tamper": 0}}, "bits.tamper"),
        ({"type": "int", "bits": {"leak": 64}}, "bits.leak.bit"),
        ({"type": "int", "bits": {"leak": -1}}, "bits.leak.bit"),
        ({"type": "int", "bits": {"msg_id": 1}}, "bits.msg_id"),
        ({"type": "int", "bits": {"__proto__": 1}}, "bits.__proto__"),
        ({"type": "int", "bits": {"leak": {"bit": 1, "device_class": "Wet"}}},
         "bits.leak.device_class"),
    ],
)
def test_field_problems_have_paths(spec: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationError) as info:
        FieldSpec.model_validate({"name": "x", **spec})
    assert path in [p for p, _ in validation_problems(info.value)]


def test_bits_shorthand_and_flag_specs() -> None:
    spec = FieldSpec.model_validate({"name": "flags", "type": "int", "required": False, "bits": {
        "leak": {"bit": 0, "device_class": "moisture"}, "reverse_flow": 2}})
    assert [(bit, flag.name, flag.type, flag.device_class, flag.required)
            for bit, flag in spec.flag_specs] == [
        (0, "leak", "bool", "moisture", False), (2, "reverse_flow", "bool", None, False)]


def test_flag_names_unique_across_the_rule() -> None:
    problems = rule_problems(fields={
        "BAT": {"name": "battery", "type": "float"},
        "F": {"name": "flags", "type": "int", "bits": {"battery": 0, "leak": 1}},
    })
    assert "parser[0].fields.F.bits.battery" in problems
    rule = ParserRule.model_validate(kv_rule(fields={
        "F": {"name": "flags", "type": "int", "bits": {"leak": 0, "tamper": 1}},
        "BAT": {"name": "battery", "type": "float"},
    }))
    assert [s.name for s in rule.output_specs] == ["flags", "leak", "tamper", "battery"]


def test_int_field_accepts_integral_scale() -> None:
    spec = FieldSpec(name="x", type="int", scale=10, offset=-5)
    assert spec.scale == 10


# ------------------------------------------------------------------------------- MatchSpec


def test_match_sender_one_or_many() -> None:
    assert MatchSpec.model_validate({"sender": "+49*"}).sender == ("+49*",)
    assert MatchSpec.model_validate({"sender": ["+49*", "ACME"]}).sender == ("+49*", "ACME")
    assert MatchSpec().sender == ()


def test_match_problems() -> None:
    with pytest.raises(ValidationError) as info:
        MatchSpec.model_validate({"sender": ["", "+49*"], "text": "(", "port": 70000})
    paths = {p for p, _ in validation_problems(info.value)}
    assert paths == {"sender[0]", "text", "port"}


# ------------------------------------------------------------------------------ ParserRule


def test_rule_defaults() -> None:
    rule = ParserRule.model_validate(kv_rule())
    assert rule.measurement == "device_status"
    assert rule.pair_separator == (";",)
    assert rule.kv_separator == "="
    assert rule.ignores_unknown is True
    assert rule.match == MatchSpec()
    assert rule.expire_after is None


def test_ignore_unknown_defaults_by_format() -> None:
    csv = ParserRule.model_validate(
        {"name": "c", "format": "csv", "device_from": "sender",
         "fields": {"a": {"name": "a", "type": "int"}}}
    )
    assert csv.ignores_unknown is False
    assert ParserRule.model_validate(kv_rule(ignore_unknown=False)).ignores_unknown is False


def test_pair_separator_string_or_set() -> None:
    assert ParserRule.model_validate(kv_rule(pair_separator=",")).pair_separator == (",",)
    rule = ParserRule.model_validate(kv_rule(pair_separator=[";", ",", " "]))
    assert rule.pair_separator == (";", ",", " ")


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"device_field": None}, "parser[0].device_field"),
        ({"device_from": "sender"}, "parser[0].device_field"),
        ({"device": "PUMP"}, "parser[0].device_field"),
        ({"device_field": None, "device": "a/b"}, "parser[0].device"),
        ({"device_field": None, "device_from": "number"}, "parser[0].device_from"),
        ({"name": "has space"}, "parser[0].name"),
        ({"measurement": "1x"}, "parser[0].measurement"),
        ({"format": "xml"}, "parser[0].format"),
        ({"fields": {}}, "parser[0].fields"),
        ({"expire_after": 0}, "parser[0].expire_after"),
        ({"delimiter": ";"}, "parser[0].delimiter"),
        ({"pattern": "x"}, "parser[0].pattern"),
        ({"byte_order": "<"}, "parser[0].byte_order"),
        ({"offset": 2}, "parser[0].offset"),
        ({"kv_separator": ""}, "parser[0].kv_separator"),
        ({"kv_separator": ";"}, "parser[0].pair_separator"),
        ({"fields": [{"name": "a", "type": "int"}]}, "parser[0].fields"),
        ({"fields": {"A": {"name": "a", "type": "int", "format": "B"}}},
         "parser[0].fields.A.format"),
        ({"fields": {"A": {"name": "a", "type": "int"}, "B": {"name": "a", "type": "int"}}},
         "parser[0].fields.B.name"),
        ({"fields": {"A": {"name": "a", "type": "int", "nmae": "x"}}}, "parser[0].fields.A.nmae"),
        ({"fields": {"": {"name": "a", "type": "int"}}}, "parser[0].fields."),
        ({"match": {"sender": "+49*", "txt": "x"}}, "parser[0].match.txt"),
        ({"typo": 1}, "parser[0].typo"),
    ],
)
def test_rule_problems_have_key_paths(overrides: dict[str, Any], path: str) -> None:
    assert path in rule_problems(**overrides)


def test_unknown_key_message() -> None:
    problems = rule_problems(fields={"A": {"name": "a", "type": "int", "unti": "V"}})
    assert problems["parser[0].fields.A.unti"] == "unknown key (typo?)"


def test_every_problem_reported_at_once() -> None:
    problems = problems_of(
        {
            "parser": [
                kv_rule(name="bad name", fields={"A": {"name": "a/b", "type": "int"}}),
                kv_rule(name="ok", match={"text": "("}),
            ],
            "devices": {"A/B": {"numbers": ["+49*"]}, "C": {"colour": "red"}},
        }
    )
    assert set(problems) >= {
        "parser[0].name",
        "parser[0].fields.A.name",
        "parser[1].match.text",
        "devices.A/B",
        "devices.A/B.numbers[0]",
        "devices.C.colour",
    }


def test_csv_rule_validation() -> None:
    base = {"name": "t", "format": "csv", "device_field": "id"}
    problems = rule_problems(
        **base, columns=["id", "lat", "lat"], fields={"lon": {"name": "lon", "type": "float"}}
    )
    assert "parser[0].columns" in problems
    assert "parser[0].fields.lon" in problems
    problems = rule_problems(**base, fields={"lat": {"name": "lat", "type": "float"}})
    assert "parser[0].device_field" in problems
    assert "parser[0].delimiter" in rule_problems(
        **base, delimiter='"', columns=["id", "a"], fields={"a": {"name": "a", "type": "int"}}
    )


def test_csv_fields_as_array_keep_order() -> None:
    rule = ParserRule.model_validate(
        {"name": "t", "format": "csv", "device_from": "sender",
         "fields": [{"name": "b", "type": "int"}, {"name": "a", "type": "int"}]}
    )
    assert [s.name for s in rule.fields.values()] == ["b", "a"]


def test_regex_rule_validation() -> None:
    base = {"name": "r", "format": "regex", "device_field": "id"}
    assert "parser[0].pattern" in rule_problems(**base)
    assert "parser[0].pattern" in rule_problems(**base, pattern="(?P<id>")
    problems = rule_problems(
        **base, pattern=r"(?P<x>\d+)", fields={"t": {"name": "t", "type": "int"}}
    )
    assert "parser[0].fields.t" in problems
    assert "parser[0].device_field" in problems
    ok = ParserRule.model_validate(
        {**base, "pattern": r"(?P<id>\w+) (?P<t>\d+)",
         "fields": {"t": {"name": "t", "type": "int"}}}
    )
    assert ok.pattern is not None


def test_binary_rule_validation() -> None:
    base = {"name": "b", "format": "binary", "device_from": "sender"}
    problems = rule_problems(**base, fields=[{"name": "a", "type": "int"}])
    assert "parser[0].fields[0].format" in problems
    problems = rule_problems(
        **{**base, "device_from": None, "device_field": "nope"},
        fields=[{"name": "a", "type": "int", "format": "B"}],
    )
    assert "parser[0].device_field" in problems
    rule = ParserRule.model_validate(
        {**base, "byte_order": "<", "fields": [
            {"name": "v", "type": "int", "format": "I"},
            {"name": "t", "type": "float", "format": "h", "scale": 0.01},
        ]}
    )
    assert rule.struct_format == "<Ih"
    assert rule.field_by_name("t") == ("1", rule.fields["1"])
    assert rule.ignores_unknown is False


def test_json_dotted_path_validation() -> None:
    problems = rule_problems(format="json", fields={"gps..lat": {"name": "lat", "type": "float"}})
    assert "parser[0].fields.gps..lat" in problems


def test_duplicate_rule_names() -> None:
    problems = problems_of({"parser": [kv_rule(), kv_rule()]})
    assert "parser[1].name" in problems


# ------------------------------------------------------------------------------ devices


def test_device_spec() -> None:
    spec = DeviceSpec.model_validate({"numbers": "+4915112345678", "name": "Pump"})
    assert spec.numbers == ("+4915112345678",)
    with pytest.raises(ValidationError):
        DeviceSpec.model_validate({"numbers": ["+49*"]})
    with pytest.raises(ValidationError):
        DeviceSpec.model_validate({"name": "a\nb"})


def test_device_numbers_unique_across_devices() -> None:
    problems = problems_of(
        {"devices": {"A": {"numbers": ["+491511"]}, "B": {"numbers": ["00491511"]}}}
    )
    assert "devices.B.numbers" in problems


@pytest.mark.parametrize(
    "device", ["", "a/b", "a+b", "a#b", "a b", "a\x00b", "a\tb", "x" * 65, "a\u2028b", "\x85"]
)
def test_device_id_problem_rejects(device: str) -> None:
    assert device_id_problem(device) is not None


@pytest.mark.parametrize(
    "device", ["PUMP01", "WM-0042", "trk.7", "x" * 64, "Zähler_3", "4915112345678"]
)
def test_device_id_problem_accepts(device: str) -> None:
    assert device_id_problem(device) is None


def test_load_ignores_other_sections() -> None:
    doc = tomllib.loads(
        """
        [gateway]
        id = "gw1"
        [[parser]]
        name = "pump"
        format = "kv"
        device_field = "ID"
        [parser.fields]
        BAT = { name = "battery", type = "float", unit = "V" }
        [devices.PUMP01]
        numbers = ["+4915112345678"]
        """
    )
    config = load_payload_config(doc)
    assert isinstance(config, PayloadConfig)
    assert config.parser[0].fields["BAT"].unit == "V"
    assert config.devices["PUMP01"].numbers == ("+4915112345678",)


def test_validation_problems_prefix() -> None:
    with pytest.raises(ValidationError) as info:
        PayloadConfig.model_validate({"parser": [kv_rule(name="bad name")]})
    assert validation_problems(info.value, prefix=("payload",))[0][0] == "payload.parser[0].name"

"""Property tests: parse() raises only PayloadError, whatever arrives; kv round-trips."""

from __future__ import annotations

import json
import math
import struct
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from modemd.errors import PayloadError
from modemd.payload import InboundMessage, ParserRule, PayloadEngine, Reading
from modemd.payload.config import device_id_problem
from modemd.payload.convert import FALSE_WORDS, TRUE_WORDS

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SENT = datetime(2024, 1, 1, tzinfo=UTC)

ALL_TYPES: dict[str, dict[str, Any]] = {
    "I": {"name": "i", "type": "int", "required": False, "min": -1000, "max": 1000},
    "F": {"name": "f", "type": "float", "required": False, "scale": 0.5, "offset": 1},
    "B": {"name": "b", "type": "bool", "required": False},
    "S": {"name": "s", "type": "string", "required": False},
    "E": {"name": "e", "type": "enum", "required": False, "values": {"0": "off", "1": "on"}},
}

RULES: dict[str, dict[str, Any]] = {
    "kv": {"format": "kv", "device_field": "ID", "pair_separator": [";", ",", " "],
           "fields": ALL_TYPES},
    "kv-strict": {"format": "kv", "device_field": "ID", "ignore_unknown": False,
                  "fields": ALL_TYPES},
    "json": {"format": "json", "device_field": "id",
             "fields": {**ALL_TYPES, "a.b": {"name": "nested", "type": "float",
                                             "required": False}}},
    "csv": {"format": "csv", "columns": ["ID", "I", "F", "B", "S", "E"], "device_field": "ID",
            "fields": ALL_TYPES},
    "regex": {"format": "regex", "device_field": "ID",
              "pattern": r"(?P<ID>\S+) (?P<I>\S+) (?P<F>\S*) ?(?P<B>\w*) ?(?P<S>.*?)(?P<E>\d?)$",
              "fields": ALL_TYPES},
    "binary-raw": {"format": "binary", "device_from": "sender", "byte_order": "<",
                   "fields": [{"name": "i", "type": "int", "format": "i"},
                              {"name": "f", "type": "float", "format": "e"},
                              {"name": "b", "type": "bool", "format": "B"},
                              {"name": "e", "type": "enum", "format": "b",
                               "values": {"0": "off", "1": "on"}}]},
    "binary-hex": {"format": "binary", "device_field": "id", "encoding_in": "hex",
                   "ignore_unknown": True,
                   "fields": [{"name": "id", "type": "int", "format": "H"},
                              {"name": "d", "type": "float", "format": "d"}]},
    "binary-b64": {"format": "binary", "device": "FIX", "encoding_in": "base64", "offset": 1,
                   "fields": [{"name": "q", "type": "int", "format": "Q", "scale": 2}]},
}
ENGINES = {
    name: PayloadEngine(
        [ParserRule.model_validate({"name": name, **rule})], {}, default_country_code="49"
    )
    for name, rule in RULES.items()
}

senders = st.one_of(
    st.from_regex(r"\+?[0-9 ]{0,16}", fullmatch=True),
    st.text(max_size=20),
)
hostile_text = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.text(alphabet="ID=;,. 01-+/#eE\x00nafitruyso", max_size=200),
)


def check_outcome(engine: PayloadEngine, msg: InboundMessage) -> Reading | None:
    try:
        reading = engine.parse(msg)
    except PayloadError as exc:
        assert not str(exc).startswith("internal error"), exc
        assert len(str(exc)) < 400
        return None
    assert device_id_problem(reading.device) is None
    doc = reading.state_document()
    json.dumps(doc, allow_nan=False)
    for name, value in reading.fields.items():
        assert name in reading.field_specs
        if isinstance(value, float):
            assert math.isfinite(value)
    return reading


@SETTINGS
@given(
    fmt=st.sampled_from(sorted(RULES)),
    text=st.one_of(st.none(), hostile_text),
    data=st.one_of(st.none(), st.binary(max_size=64)),
    sender=senders,
    port=st.one_of(st.none(), st.integers(0, 65535)),
)
def test_parse_only_raises_payload_error(
    fmt: str, text: str | None, data: bytes | None, sender: str, port: int | None
) -> None:
    msg = InboundMessage(
        msg_id="m", modem="m1", sender=sender, sent_at=SENT, text=text, data=data, port=port
    )
    check_outcome(ENGINES[fmt], msg)


kv_pairs = st.lists(
    st.tuples(
        st.sampled_from(["I", "F", "B", "S", "E", "X", "ID", "a/b", "+", "#", "__proto__", ""]),
        st.one_of(
            st.sampled_from(["1", "0", "-3", "1e999", "nan", "inf", "on", "NO", "P1", "", "x/y"]),
            st.text(max_size=12),
            st.integers().map(str),
            st.floats().map(repr),
        ),
    ),
    max_size=8,
)


@SETTINGS
@given(fmt=st.sampled_from(["kv", "kv-strict", "csv", "regex"]), pairs=kv_pairs,
       with_id=st.booleans())
def test_structured_text_only_raises_payload_error(
    fmt: str, pairs: list[tuple[str, str]], with_id: bool
) -> None:
    if with_id:
        pairs = [("ID", "P1"), *pairs]
    if fmt.startswith("kv"):
        text = ";".join(f"{k}={v}" for k, v in pairs)
    elif fmt == "csv":
        text = ",".join(v for _, v in pairs)
    else:
        text = " ".join(v for _, v in pairs)
    msg = InboundMessage(msg_id="m", modem="m1", sender="+491", sent_at=SENT, text=text)
    check_outcome(ENGINES[fmt], msg)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(
    doc=st.dictionaries(
        st.sampled_from(["id", "I", "F", "B", "S", "E", "a", "zz"]) | st.text(max_size=5),
        json_values,
        max_size=8,
    ),
    with_id=st.booleans(),
)
def test_json_documents_only_raise_payload_error(doc: dict[str, Any], with_id: bool) -> None:
    if with_id:
        doc["id"] = "J1"
    text = json.dumps(doc)  # may contain NaN/Infinity: must be rejected, not crash
    msg = InboundMessage(msg_id="m", modem="m1", sender="+491", sent_at=SENT, text=text)
    check_outcome(ENGINES["json"], msg)


@SETTINGS
@given(
    fmt=st.sampled_from(["binary-raw", "binary-hex", "binary-b64"]),
    payload=st.binary(min_size=0, max_size=24),
)
def test_binary_payloads_only_raise_payload_error(fmt: str, payload: bytes) -> None:
    import base64

    text = payload.hex() if fmt == "binary-hex" else base64.b64encode(payload).decode()
    msg = InboundMessage(
        msg_id="m", modem="m1", sender="+4915112345678", sent_at=SENT, text=text, data=payload
    )
    check_outcome(ENGINES[fmt], msg)


@SETTINGS
@given(i=st.integers(-(2**31), 2**31 - 1), b=st.integers(0, 1), e=st.integers(0, 1))
def test_binary_decodes_what_was_packed(i: int, b: int, e: int) -> None:
    data = struct.pack("<ieBb", i, 1.5, b, e)
    msg = InboundMessage(msg_id="m", modem="m1", sender="+491", sent_at=SENT, data=data)
    reading = ENGINES["binary-raw"].parse(msg)
    assert reading.fields == {"i": i, "f": 1.5, "b": bool(b), "e": "on" if e else "off"}
    assert reading.device == "491"


# --------------------------------------------------------------------------- kv round trip

ROUND_TRIP_RULE = ParserRule.model_validate(
    {
        "name": "rt",
        "format": "kv",
        "device_field": "ID",
        "fields": {
            "I": {"name": "i", "type": "int", "required": False},
            "F": {"name": "f", "type": "float", "required": False},
            "B": {"name": "b", "type": "bool", "required": False},
            "S": {"name": "s", "type": "string", "required": False},
            "E": {"name": "e", "type": "enum", "required": False,
                  "values": {"0": "off", "1": "on", "2": "fault"}},
        },
    }
)
ROUND_TRIP = PayloadEngine([ROUND_TRIP_RULE], {})
safe_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs", "Cf", "Co", "Cn"),
        blacklist_characters=";=",
    ),
    min_size=1,
    max_size=40,
)
device_ids = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs", "Cf", "Co", "Cn"),
        blacklist_characters=";=/+#",
    ),
    min_size=1,
    max_size=64,
)


@st.composite
def readings(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    device = draw(device_ids)
    assume(device_id_problem(device) is None)
    values: dict[str, Any] = {}
    if draw(st.booleans()):
        values["i"] = draw(st.integers(-(2**63), 2**63 - 1))
    if draw(st.booleans()):
        values["f"] = draw(st.floats(allow_nan=False, allow_infinity=False))
    if draw(st.booleans()):
        values["b"] = draw(st.booleans())
    if draw(st.booleans()):
        values["s"] = draw(safe_text.filter(lambda s: s == s.strip() and s.isprintable()))
    if draw(st.booleans()):
        values["e"] = draw(st.sampled_from(["off", "on", "fault"]))
    return device, values


def render_kv(device: str, values: dict[str, Any]) -> str:
    keys = {"i": "I", "f": "F", "b": "B", "s": "S", "e": "E"}
    enum_raw = {"off": "0", "on": "1", "fault": "2"}
    parts = [f"ID={device}"]
    for name, value in values.items():
        if isinstance(value, bool):
            text = "on" if value else "off"
        elif name == "e":
            text = enum_raw[value]
        else:
            text = repr(value) if isinstance(value, float) else str(value)
        parts.append(f"{keys[name]}={text}")
    return ";".join(parts)


@SETTINGS
@given(readings(), st.randoms(use_true_random=False))
def test_kv_round_trip(generated: tuple[str, dict[str, Any]], rnd: Any) -> None:
    device, values = generated
    parts = render_kv(device, values).split(";")
    rnd.shuffle(parts)  # pair order does not matter
    msg = InboundMessage(msg_id="m", modem="m1", sender="+491", sent_at=SENT, text=";".join(parts))
    reading = ROUND_TRIP.parse(msg)
    assert reading.device == device
    assert reading.fields == values
    for name, value in reading.fields.items():
        assert type(value) is type(values[name])


@given(word=st.sampled_from(sorted(TRUE_WORDS | FALSE_WORDS)), upper=st.booleans())
def test_bool_words_any_case(word: str, upper: bool) -> None:
    text = f"ID=D;B={word.upper() if upper else word}"
    msg = InboundMessage(msg_id="m", modem="m1", sender="+491", sent_at=SENT, text=text)
    assert ROUND_TRIP.parse(msg).fields == {"b": word in TRUE_WORDS}

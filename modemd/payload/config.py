"""Configuration models for payload parser rules and the device registry (pydantic v2).

Every model is frozen and forbids unknown keys, so a typo in the TOML is an error with its key
path. Cross-field checks collect *all* problems of a model and report each with its own sub-path
(see :func:`validation_problems`).

TOML shape (one rule, see ``config/devices-*.toml`` for complete examples)::

    [[parser]]
    name = "pump-controller"
    match = { sender = "+49151*", text = "^ID=" }     # sender: glob or list of globs; port: int
    format = "kv"                                     # kv | json | csv | regex | binary
    device_field = "ID"                               # or device_from = "sender", or device = "X"
    measurement = "device_status"
    expire_after = 7200
    [parser.fields]
    BAT = { name = "battery", type = "float", unit = "V", device_class = "voltage" }

Binary rules list their fields in struct order as an array of tables (``[[parser.fields]]``),
each with a struct ``format`` code.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationError,
    model_validator,
)

from modemd.errors import ConfigError
from modemd.payload.ha_tables import device_class_problems
from modemd.payload.regexes import PatternError, compile_pattern
from modemd.payload.senders import (
    AllowList,
    SenderPatterns,
    normalise_country_code,
    normalise_e164,
    pattern_problem,
)
from modemd.payload.spec import MAX_DEVICE_ID_LEN, device_id_problem

if TYPE_CHECKING:
    from modemd.payload.regexes import Pattern

__all__ = [
    "FORMATS",
    "MAX_DEVICE_ID_LEN",
    "RESERVED_FIELD_NAMES",
    "STRUCT_CODES",
    "AllowList",
    "BitSpec",
    "DeviceSpec",
    "FieldSpec",
    "FieldType",
    "FormatName",
    "MatchSpec",
    "ParserRule",
    "PayloadConfig",
    "SenderPatterns",
    "TrackerSpec",
    "device_id_problem",
    "load_payload_config",
    "normalise_country_code",
    "normalise_e164",
    "validation_problems",
]

FieldType = Literal["int", "float", "bool", "string", "enum"]
FormatName = Literal["kv", "json", "csv", "regex", "binary"]
FORMATS: tuple[str, ...] = ("kv", "json", "csv", "regex", "binary")
NUMERIC_TYPES = frozenset({"int", "float"})

SAFE_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
RULE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MEASUREMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
DEVICE_CLASS_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
ICON_RE = re.compile(r"[a-z][a-z0-9]*:[a-z0-9][a-z0-9-]{0,99}")

#: Keys of the device state document that a field may not shadow.
RESERVED_FIELD_NAMES = frozenset({"device", "sent_at", "msg_id"})
#: Names that are safe identifiers but dangerous in JavaScript consumers (Node-RED).
_POISON_NAMES = frozenset({"__proto__", "constructor", "prototype"})
STATE_CLASSES = frozenset({"measurement", "total", "total_increasing", "measurement_angle"})
#: struct codes a binary field may use (endianness comes from the rule's ``byte_order``).
STRUCT_CODES = frozenset("bBhHiIqQefd")
FLOAT_STRUCT_CODES = frozenset("efd")
MAX_LABEL_LEN = 128
MAX_REGEX_LEN = 2000

_KV_OPTIONS = ("pair_separator", "kv_separator")
_CSV_OPTIONS = ("delimiter", "columns")
_REGEX_OPTIONS = ("pattern",)
_BINARY_OPTIONS = ("byte_order", "encoding_in", "offset")
_FORMAT_OPTIONS: dict[str, tuple[str, ...]] = {
    "kv": _KV_OPTIONS,
    "csv": _CSV_OPTIONS,
    "regex": _REGEX_OPTIONS,
    "binary": _BINARY_OPTIONS,
}


def _label_problem(value: str, what: str) -> str | None:
    if not value.strip():
        return f"{what} must not be empty"
    if len(value) > MAX_LABEL_LEN:
        return f"{what} longer than {MAX_LABEL_LEN} characters"
    if not value.isprintable():
        return f"{what} contains control characters"
    return None


def _regex_problem(pattern: str) -> tuple[Pattern | None, str | None]:
    if len(pattern) > MAX_REGEX_LEN:
        return None, f"regular expression longer than {MAX_REGEX_LEN} characters"
    try:  # with the engine that runs it (modemd.payload.regexes)
        return compile_pattern(pattern), None
    except PatternError as exc:
        return None, f"invalid regular expression: {exc}"


def _raise_problems(problems: list[tuple[str, str]]) -> None:
    """Raise one ValueError carrying every problem as an ``@sub.path: message`` line."""
    if problems:
        raise ValueError("\n".join(f"@{path}: {message}" for path, message in problems))


def _checked(check: Any) -> AfterValidator:
    """An AfterValidator from a ``value -> problem | None`` function."""

    def validate(value: Any) -> Any:
        problem = check(value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(validate)


def _field_name_problem(name: str) -> str | None:
    if not SAFE_IDENT_RE.fullmatch(name):
        return f"{name!r} is not a safe identifier ([A-Za-z_][A-Za-z0-9_]{{0,63}})"
    if name in RESERVED_FIELD_NAMES:
        return f"{name!r} is reserved in the state document"
    if name in _POISON_NAMES or (name.startswith("__") and name.endswith("__")):
        return f"{name!r} is not allowed as a field name"
    return None


def _source_key_problem(key: str) -> str | None:
    if not key or len(key) > 64 or not key.isprintable():
        return "source keys are 1-64 printable characters"
    return None


def _pattern_regex_problem(pattern: str) -> str | None:
    return _regex_problem(pattern)[1]


def _state_class_problem(value: str) -> str | None:
    if value != "none" and value not in STATE_CLASSES:
        return f"must be one of {', '.join(sorted(STATE_CLASSES | {'none'}))}"
    return None


def _struct_code_problem(code: str) -> str | None:
    if code not in STRUCT_CODES:
        return f"{code!r} is not a struct code ({' '.join(sorted(STRUCT_CODES))})"
    return None


def _unit_problem(unit: str) -> str | None:
    return _label_problem(unit, "unit") or ("longer than 32 characters" if len(unit) > 32 else None)


def _number_problem(number: str) -> str | None:
    problem = pattern_problem(number)
    if problem is None and any(ch in number for ch in "*?[]"):
        problem = "device numbers are exact senders, not patterns"
    return problem.replace("sender pattern", "number") if problem else None


FieldName = Annotated[str, _checked(_field_name_problem)]
SourceKey = Annotated[str, _checked(_source_key_problem)]
DeviceId = Annotated[str, _checked(device_id_problem)]
Label = Annotated[str, _checked(lambda v: _label_problem(v, "value"))]
Unit = Annotated[str, _checked(_unit_problem)]
Regex = Annotated[str, _checked(_pattern_regex_problem)]
SenderPattern = Annotated[str, _checked(pattern_problem)]
DeviceNumber = Annotated[str, _checked(_number_problem)]
StateClass = Annotated[str, _checked(_state_class_problem)]
StructCode = Annotated[str, _checked(_struct_code_problem)]
DeviceClass = Annotated[
    str,
    _checked(
        lambda v: None
        if DEVICE_CLASS_RE.fullmatch(v)
        else "must be a lower-case Home Assistant device class"
    ),
]
Icon = Annotated[
    str, _checked(lambda v: None if ICON_RE.fullmatch(v) else "must look like 'mdi:water-pump'")
]
RuleName = Annotated[
    str,
    _checked(
        lambda v: None
        if RULE_NAME_RE.fullmatch(v)
        else "1-64 characters: letters, digits, '_', '.', '-' (not first)"
    ),
]
Measurement = Annotated[
    str,
    _checked(
        lambda v: None
        if MEASUREMENT_RE.fullmatch(v)
        else "1-64 characters: letters, digits, '_', '.', '-'; not starting with a digit"
    ),
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _bit_shorthand(value: object) -> object:
    """TOML convenience: ``bits = { leak = 0 }`` for ``bits = { leak = { bit = 0 } }``."""
    if isinstance(value, Mapping):
        return {
            name: {"bit": spec} if isinstance(spec, int) and not isinstance(spec, bool) else spec
            for name, spec in value.items()
        }
    return value


class BitSpec(_Frozen):
    """One flag of an integer field, published as a bool field of its own (HA binary_sensor)."""

    bit: int = Field(ge=0, le=63)
    device_class: DeviceClass | None = None
    icon: Icon | None = None


class FieldSpec(_Frozen):
    """One output field: how to convert, check and describe a payload value."""

    name: FieldName
    type: FieldType
    unit: Unit | None = None
    device_class: DeviceClass | None = None
    #: ``measurement`` by default for int/float; ``"none"`` switches the default off.
    state_class: StateClass | None = None
    scale: FiniteFloat | None = None
    offset: FiniteFloat | None = None
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None
    required: bool = True
    #: enum map: raw value → label (``values = {"0" = "off", "1" = "on"}``)
    values: dict[SourceKey, Label] | None = None
    #: binary rules: struct code (one of ``b B h H i I q Q e f d``)
    format: StructCode | None = None
    icon: Icon | None = None
    #: int fields: named flags, each a bool output field (``bits = { leak = 0, tamper = 1 }``)
    bits: Annotated[dict[FieldName, BitSpec] | None, BeforeValidator(_bit_shorthand)] = None

    @cached_property
    def flag_specs(self) -> tuple[tuple[int, FieldSpec], ...]:
        """``(bit, bool field spec)`` of each named flag, in the order given (built once: the
        engine reads it for every message)."""
        return tuple(
            (flag.bit, FieldSpec(name=name, type="bool", device_class=flag.device_class,
                                 icon=flag.icon, required=self.required))
            for name, flag in (self.bits or {}).items()
        )

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    @cached_property
    def enum_codes(self) -> dict[str, int]:
        """label → the number written for it to the time-series store (enum fields).

        When every raw value of ``values`` is a whole number (``"0" = "ok", "3" = "overheat"``)
        a label's code is its (first) raw value, the number the device itself sent; otherwise
        it is the label's position in the Home Assistant ``options`` list, from 0.
        """
        if not self.values:
            return {}
        labels = list(dict.fromkeys(self.values.values()))
        try:
            raw = {key: int(key, 10) for key in self.values}
        except ValueError:
            return {label: index for index, label in enumerate(labels)}
        codes: dict[str, int] = {}
        for key, label in self.values.items():
            codes.setdefault(label, raw[key])
        return codes

    @property
    def effective_state_class(self) -> str | None:
        """The HA/time-series state class: explicit, else ``measurement`` for numbers."""
        if self.state_class == "none":
            return None
        if self.state_class is not None:
            return self.state_class
        return "measurement" if self.is_numeric else None

    @property
    def effective_device_class(self) -> str | None:
        if self.device_class is None and self.type == "enum":
            return "enum"
        return self.device_class

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        problems: list[tuple[str, str]] = []
        numeric = self.is_numeric
        if self.type == "enum":
            if not self.values:
                problems.append(("values", "type enum needs a non-empty values map"))
        elif self.values is not None:
            problems.append(("values", "only applies to type enum"))
        for key in ("scale", "offset", "min", "max"):
            if getattr(self, key) is not None and not numeric:
                problems.append((key, f"only applies to type int or float, not {self.type}"))
        if self.scale == 0:
            problems.append(("scale", "must not be 0"))
        if self.type == "int":
            for key in ("scale", "offset"):
                number = getattr(self, key)
                if number is not None and not float(number).is_integer():
                    problems.append((key, "must be a whole number for type int (use float)"))
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append(("min", f"min {self.min} is greater than max {self.max}"))
        if self.state_class not in (None, "none") and not numeric:
            problems.append(("state_class", "only applies to type int or float"))
        if self.bits is not None:
            if self.type != "int":
                problems.append(("bits", f"only applies to type int, not {self.type}"))
            elif self.scale is not None or self.offset is not None:
                problems.append(("bits", "flags are read from the raw value: drop scale/offset"))
            if not self.bits:
                problems.append(("bits", "give at least one flag"))
            if self.name in self.bits:
                problems.append((f"bits.{self.name}", "a flag cannot share its field's name"))
            places: dict[int, str] = {}
            for flag_name, flag in self.bits.items():
                if flag.bit in places:
                    problems.append((f"bits.{flag_name}",
                                     f"bit {flag.bit} is also {places[flag.bit]!r}"))
                places.setdefault(flag.bit, flag_name)
        if not problems:  # Home Assistant's own tables, once the field itself is sound
            problems += device_class_problems(
                binary=self.type == "bool", device_class=self.effective_device_class,
                unit=self.unit, state_class=self.effective_state_class)
            for flag_name, flag in (self.bits or {}).items():
                problems += [(f"bits.{flag_name}.{key}", text) for key, text in
                             device_class_problems(binary=True, device_class=flag.device_class,
                                                   unit=None, state_class=None)]
        if self.format is not None:
            if self.format in FLOAT_STRUCT_CODES and self.type != "float":
                problems.append(("type", f"struct code {self.format!r} needs type float"))
            elif self.type == "string":
                problems.append(("type", "binary fields cannot be type string"))
        _raise_problems(problems)
        return self


def _one_or_many(value: object) -> object:
    """TOML convenience: a single string where a list is expected."""
    return (value,) if isinstance(value, str) else value


class MatchSpec(_Frozen):
    """Which messages a rule applies to. Every given criterion must hold; none given: all."""

    #: glob pattern(s) on the E.164-normalised sender
    sender: Annotated[tuple[SenderPattern, ...], BeforeValidator(_one_or_many)] = ()
    #: regular expression, searched in the message text
    text: Regex | None = None
    #: application port (TP-UDH port addressing)
    port: int | None = Field(default=None, ge=0, le=65535)
    #: name of the modem the message arrived on
    modem: str | None = None


class TrackerSpec(_Frozen):
    """``device_tracker = { ... }``: the rule's position fields, for a Home Assistant
    device_tracker on the map (``device_tracker = {}`` takes the default field names)."""

    latitude: FieldName = "latitude"
    longitude: FieldName = "longitude"
    #: the field holding the accuracy radius in metres, if the device sends one
    gps_accuracy: FieldName | None = None
    name: Label | None = None


class DeviceSpec(_Frozen):
    """``[devices.<id>]``: a known device, its sender numbers and descriptive metadata."""

    numbers: Annotated[tuple[DeviceNumber, ...], BeforeValidator(_one_or_many)] = ()
    name: Label | None = None
    model: Label | None = None
    manufacturer: Label | None = None
    area: Label | None = None
    #: named SMS commands (issue 15): Home Assistant buttons that send them to the device
    commands: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
                   Annotated[str, Field(min_length=1, max_length=1600)]] = Field(
        default_factory=dict)


class ParserRule(_Frozen):
    """One ``[[parser]]`` rule: match criteria, payload format, fields and device id source."""

    name: RuleName
    match: MatchSpec = Field(default_factory=MatchSpec)
    format: FormatName
    #: source key → field. csv: key order = column order unless ``columns`` is given.
    #: binary: struct order (an array of tables in TOML; keys are then "0", "1", ...).
    fields: dict[SourceKey, FieldSpec]
    device_field: SourceKey | None = None
    device_from: Literal["sender"] | None = None
    device: DeviceId | None = None
    measurement: Measurement = "device_status"
    expire_after: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)
    #: unknown keys/columns/bytes: drop (True) or dead-letter (False).
    #: Default True for kv/json, False for csv/binary (not used by regex).
    ignore_unknown: bool | None = None
    # kv options
    pair_separator: Annotated[tuple[str, ...], BeforeValidator(_one_or_many)] = (";",)
    kv_separator: str = "="
    # csv options
    delimiter: str = ","
    columns: tuple[SourceKey, ...] | None = None
    # regex options
    pattern: Regex | None = None
    # binary options
    byte_order: Literal["<", ">"] = ">"
    encoding_in: Literal["raw", "hex", "base64"] = "raw"
    offset: int = Field(default=0, ge=0, le=4096)
    #: Home Assistant: a device_tracker from the rule's latitude/longitude fields
    device_tracker: TrackerSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _ordered_fields(cls, data: Any) -> Any:
        """Accept ``fields`` as an array of tables for the positional formats."""
        if isinstance(data, Mapping) and isinstance(data.get("fields"), list):
            if data.get("format") not in ("binary", "csv"):
                raise ValueError(
                    "@fields: must be a table of source key = field for format "
                    f"{data.get('format')}; an array of tables is for binary and csv"
                )
            data = dict(data)
            data["fields"] = {str(i): spec for i, spec in enumerate(data["fields"])}
        return data

    @property
    def ignores_unknown(self) -> bool:
        if self.ignore_unknown is not None:
            return self.ignore_unknown
        return self.format in ("kv", "json")

    @property
    def struct_format(self) -> str:
        """The struct format string of a binary rule (byte order + one code per field)."""
        return self.byte_order + "".join(spec.format or "" for spec in self.fields.values())

    @property
    def device_key(self) -> str | None:
        """The source key holding the device id. For binary rules and csv rules without
        ``columns``, ``device_field`` may also name a field by its output name."""
        field = self.device_field
        if field is None or field in self.fields or self.format not in ("binary", "csv"):
            return field
        if self.columns is not None:
            return field
        found = self.field_by_name(field)
        return found[0] if found is not None else field

    @property
    def output_specs(self) -> tuple[FieldSpec, ...]:
        """Every field the rule outputs: its fields, each followed by its named flags."""
        specs: list[FieldSpec] = []
        for spec in self.fields.values():
            specs.append(spec)
            specs.extend(flag for _, flag in spec.flag_specs)
        return tuple(specs)

    def field_by_name(self, name: str) -> tuple[str, FieldSpec] | None:
        """``(source key, spec)`` of the field whose output name is *name*."""
        for key, spec in self.fields.items():
            if spec.name == name:
                return key, spec
        return None

    @model_validator(mode="after")
    def _check(self) -> ParserRule:
        problems: list[tuple[str, str]] = []
        self._check_fields(problems)
        self._check_device_source(problems)
        self._check_tracker(problems)
        for fmt, options in _FORMAT_OPTIONS.items():
            if fmt == self.format:
                continue
            for option in options:
                if option in self.model_fields_set:
                    problems.append((option, f"only applies to format {fmt}"))
        check = getattr(self, f"_check_{self.format}", None)
        if check is not None:
            check(problems)
        _raise_problems(problems)
        return self

    def _check_fields(self, problems: list[tuple[str, str]]) -> None:
        if not self.fields:
            problems.append(("fields", "a rule needs at least one field"))
        seen: dict[str, str] = {}
        for key, spec in self.fields.items():
            if spec.name in seen:
                problems.append(
                    (f"fields.{key}.name", f"{spec.name!r} is also the name of {seen[spec.name]!r}")
                )
            seen.setdefault(spec.name, key)
            for flag in spec.bits or {}:
                if flag in seen:
                    problems.append((f"fields.{key}.bits.{flag}",
                                     f"{flag!r} is also the name of {seen[flag]!r}"))
                seen.setdefault(flag, f"{key}.bits.{flag}")
            if self.format != "binary" and spec.format is not None:
                problems.append((f"fields.{key}.format", "struct codes only apply to binary"))

    def _check_device_source(self, problems: list[tuple[str, str]]) -> None:
        given = [
            key
            for key in ("device_field", "device_from", "device")
            if getattr(self, key) is not None
        ]
        if len(given) != 1:
            what = "none given" if not given else " and ".join(given) + " given"
            problems.append(
                ("device_field", f"give exactly one of device_field, device_from, device ({what})")
            )

    def _check_tracker(self, problems: list[tuple[str, str]]) -> None:
        tracker = self.device_tracker
        if tracker is None:
            return
        specs = {spec.name: spec for spec in self.output_specs}
        for key in ("latitude", "longitude", "gps_accuracy"):
            name = getattr(tracker, key)
            if name is None:
                continue
            spec = specs.get(name)
            if spec is None:
                problems.append((f"device_tracker.{key}", f"the rule has no field {name!r}"))
            elif not spec.is_numeric:
                problems.append((f"device_tracker.{key}",
                                 f"field {name!r} is {spec.type}, not a number"))
            elif key != "gps_accuracy" and not spec.required:
                problems.append((f"device_tracker.{key}", f"field {name!r} must be required: "
                                 "a position without it is no position"))

    def _check_kv(self, problems: list[tuple[str, str]]) -> None:
        if not self.pair_separator:
            problems.append(("pair_separator", "give at least one separator"))
        for sep in self.pair_separator:
            if not sep or len(sep) > 4:
                problems.append(("pair_separator", "separators are 1-4 characters"))
            elif self.kv_separator and self.kv_separator in sep:
                problems.append(("pair_separator", "must differ from kv_separator"))
        if not self.kv_separator or len(self.kv_separator) > 4 or self.kv_separator.isspace():
            problems.append(("kv_separator", "must be 1-4 non-blank characters"))

    def _check_json(self, problems: list[tuple[str, str]]) -> None:
        for key in self.fields:
            if any(not part for part in key.split(".")):
                problems.append((f"fields.{key}", "empty segment in a dotted JSON path"))

    def _check_csv(self, problems: list[tuple[str, str]]) -> None:
        if len(self.delimiter) != 1 or self.delimiter in "\"\r\n":
            problems.append(("delimiter", "must be one character, not a quote or newline"))
        if self.columns is not None:
            if len(set(self.columns)) != len(self.columns):
                problems.append(("columns", "column names must be unique"))
            for key in self.fields:
                if key not in self.columns:
                    problems.append((f"fields.{key}", "is not one of columns"))
            if self.device_field is not None and self.device_field not in self.columns:
                problems.append(("device_field", "is not one of columns"))
        elif self.device_key is not None and self.device_key not in self.fields:
            problems.append(("device_field", "must name a field (or a column of columns)"))

    def _check_regex(self, problems: list[tuple[str, str]]) -> None:
        if self.pattern is None:
            problems.append(("pattern", "format regex needs a pattern with named groups"))
            return
        groups = compile_pattern(self.pattern).groupindex
        for key in self.fields:
            if key not in groups:
                problems.append((f"fields.{key}", f"pattern has no group (?P<{key}>...)"))
        if self.device_field is not None and self.device_field not in groups:
            problems.append(("device_field", f"pattern has no group (?P<{self.device_field}>...)"))

    def _check_binary(self, problems: list[tuple[str, str]]) -> None:
        for key, spec in self.fields.items():
            if spec.format is None:
                problems.append((f"fields.{key}.format", "binary fields need a struct code"))
        try:
            struct.calcsize(self.struct_format)
        except struct.error as exc:
            problems.append(("fields", f"invalid struct layout: {exc}"))
        if self.device_key is not None and self.device_key not in self.fields:
            problems.append(("device_field", "must name one of the binary fields"))


class PayloadConfig(_Frozen):
    """The ``[[parser]]`` rules and ``[devices]`` table of the config file."""

    parser: tuple[ParserRule, ...] = ()
    devices: dict[DeviceId, DeviceSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PayloadConfig:
        problems: list[tuple[str, str]] = []
        names: dict[str, int] = {}
        for i, rule in enumerate(self.parser):
            if rule.name in names:
                problems.append(
                    (f"parser.{i}.name", f"{rule.name!r} is also rule {names[rule.name]}")
                )
            names.setdefault(rule.name, i)
        owners: dict[str, str] = {}
        for device_id, spec in self.devices.items():
            for number in spec.numbers:
                normal = normalise_e164(number)
                owner = owners.setdefault(normal, device_id)
                if owner != device_id:
                    problems.append(
                        (f"devices.{device_id}.numbers", f"{number!r} also belongs to {owner!r}")
                    )
        _raise_problems(problems)
        return self


def _loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    previous: int | str = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for an invalid dict key: the key is the path
            continue
        if isinstance(part, int) or (part.isdigit() and previous == "fields"):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
        previous = part
    return out


def validation_problems(
    exc: ValidationError, *, prefix: tuple[int | str, ...] = ()
) -> list[tuple[str, str]]:
    """``(key_path, message)`` pairs for every error in *exc*, e.g.
    ``("parser[0].fields.BAT.type", "Input should be 'int', 'float', ...")``.

    *prefix* is prepended to every location (when the payload config is part of a larger file).
    """
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        loc = tuple(prefix) + tuple(error["loc"])
        message = str(error["msg"])
        kind = error["type"]
        if kind == "extra_forbidden":
            problems.append((_loc_path(loc), "unknown key (typo?)"))
            continue
        if kind == "value_error":
            message = message.removeprefix("Value error, ")
        for line in message.split("\n"):
            if line.startswith("@") and ": " in line:
                sub, _, text = line[1:].partition(": ")
                parts = sub.split(".")
                sub_loc: tuple[int | str, ...] = tuple(
                    int(part) if part.isdigit() and i and parts[i - 1] in _LIST_KEYS else part
                    for i, part in enumerate(parts)
                )
                problems.append((_loc_path(loc + sub_loc), text))
            else:
                problems.append((_loc_path(loc), line))
    return problems


#: keys whose sub-keys are list indices (rendered as ``[i]``)
_LIST_KEYS = frozenset({"parser", "sender", "numbers"})


def load_payload_config(data: Mapping[str, Any], *, source: str = "") -> PayloadConfig:
    """Validate the ``parser``/``devices`` part of a parsed TOML document.

    Raises :class:`modemd.errors.ConfigError` listing every problem with its key path.
    Other top-level keys of *data* are ignored (they belong to other sections).
    """
    subset = {key: data[key] for key in ("parser", "devices") if key in data}
    try:
        return PayloadConfig.model_validate(subset)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc), source=source) from None

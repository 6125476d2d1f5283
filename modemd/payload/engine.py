"""The payload engine: pick the first matching rule, parse, convert, identify the device.

::

    engine = PayloadEngine(config.parser, config.devices, default_country_code="49")
    reading = engine.parse(msg)          # Reading, or raises PayloadError (and nothing else)

:meth:`PayloadEngine.parse` never raises anything but :class:`modemd.errors.PayloadError`,
whatever the message holds: its ``rule`` and ``field`` attributes say where it failed, its
message says why (without echoing more than a few characters of the input).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modemd.errors import ConfigError, PayloadError
from modemd.payload.convert import ConversionError, convert
from modemd.payload.formats import (
    MAX_DATA_BYTES,
    MAX_TEXT_CHARS,
    TEXT_PARSERS,
    RawValues,
    binary_payload,
    parse_binary,
    show,
)
from modemd.payload.model import FieldValue, InboundMessage, Reading
from modemd.payload.regexes import compile_pattern, search
from modemd.payload.senders import (
    SenderPatterns,
    normalise_country_code,
    normalise_e164,
    sender_type,
)
from modemd.payload.spec import device_id_problem

if TYPE_CHECKING:
    from modemd.payload.config import DeviceSpec, FieldSpec, ParserRule, PayloadConfig
    from modemd.payload.regexes import Pattern

__all__ = ["PayloadEngine"]


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: ParserRule
    senders: SenderPatterns | None
    text: Pattern | None
    specs_by_name: Mapping[str, FieldSpec]


class PayloadEngine:
    """Parser rules plus the device registry; thread-safe (immutable after construction)."""

    def __init__(
        self,
        rules: Sequence[ParserRule],
        devices: Mapping[str, DeviceSpec],
        *,
        default_country_code: str | None = None,
    ) -> None:
        problems: list[tuple[str, str]] = []
        try:
            self._cc = normalise_country_code(default_country_code)
        except ValueError as exc:
            raise ConfigError([("default_country_code", str(exc))]) from None
        self._devices: dict[str, DeviceSpec] = dict(devices)
        self._by_number: dict[str, str] = {}
        for device_id, spec in self._devices.items():
            problem = device_id_problem(device_id)
            if problem:
                problems.append((f"devices.{device_id}", problem))
            for number in spec.numbers:
                normal = normalise_e164(number, self._cc)
                owner = self._by_number.setdefault(normal, device_id)
                if owner != device_id:
                    problems.append(
                        (f"devices.{device_id}.numbers", f"{number!r} also belongs to {owner!r}")
                    )
        names: set[str] = set()
        for i, rule in enumerate(rules):
            if rule.name in names:
                problems.append((f"parser[{i}].name", f"duplicate rule name {rule.name!r}"))
            names.add(rule.name)
        if problems:
            raise ConfigError(problems)
        self._rules: tuple[_Compiled, ...] = tuple(self._compile(rule) for rule in rules)

    @classmethod
    def from_config(
        cls, config: PayloadConfig, *, default_country_code: str | None = None
    ) -> PayloadEngine:
        return cls(config.parser, config.devices, default_country_code=default_country_code)

    def _compile(self, rule: ParserRule) -> _Compiled:
        senders = (
            SenderPatterns(rule.match.sender, default_country_code=self._cc)
            if rule.match.sender
            else None
        )
        text = compile_pattern(rule.match.text) if rule.match.text is not None else None
        specs = {spec.name: spec for spec in rule.output_specs}
        return _Compiled(rule, senders, text, specs)

    # ------------------------------------------------------------------------------- queries

    @property
    def rules(self) -> tuple[ParserRule, ...]:
        return tuple(c.rule for c in self._rules)

    @property
    def devices(self) -> Mapping[str, DeviceSpec]:
        return dict(self._devices)

    def rule(self, name: str) -> ParserRule | None:
        """The rule called *name*."""
        for compiled in self._rules:
            if compiled.rule.name == name:
                return compiled.rule
        return None

    def normalise(self, sender: str) -> str:
        """*sender* in E.164 form, using the engine's default country code."""
        return normalise_e164(sender, self._cc)

    def device_for_sender(self, sender: str, *, kind: str | None = None) -> str | None:
        """The id of the ``[devices]`` entry that lists *sender*, if any (never for an
        alphanumeric sender: [devices] lists numbers)."""
        if sender_type(sender, kind) == "alphanumeric":
            return None
        return self._by_number.get(self.normalise(sender))

    def _sender_of(self, msg: InboundMessage) -> tuple[str, bool]:
        """The normalised sender of *msg*, and whether it is alphanumeric."""
        kind = msg.sender_type if msg.sender_type in ("alphanumeric", "international") else None
        alphanumeric = sender_type(msg.sender, kind) == "alphanumeric"
        return normalise_e164(msg.sender, self._cc, kind=kind), alphanumeric

    # ------------------------------------------------------------------------------ matching

    def _match(self, msg: InboundMessage, sender: str, alphanumeric: bool = False,
               ) -> _Compiled | None:
        text = msg.text[:MAX_TEXT_CHARS] if msg.text is not None else None
        for compiled in self._rules:
            spec = compiled.rule.match
            if spec.port is not None and msg.port != spec.port:
                continue
            if spec.modem is not None and msg.modem != spec.modem:
                continue
            if compiled.senders is not None and not compiled.senders.matches_normalised(
                    sender, alphanumeric=alphanumeric):
                continue
            if compiled.text is not None and (
                text is None
                or not search(compiled.text, text, rule=compiled.rule.name, what="match.text")
            ):
                continue
            return compiled
        return None

    def match(self, msg: InboundMessage) -> ParserRule | None:
        """The first rule whose criteria all hold for *msg* (rules are tried in order)."""
        compiled = self._match(msg, *self._sender_of(msg))
        return compiled.rule if compiled is not None else None

    # ------------------------------------------------------------------------------- parsing

    def parse(self, msg: InboundMessage) -> Reading:
        """Parse *msg* into a :class:`Reading`; raises :class:`PayloadError` only."""
        try:
            return self._parse(msg)
        except PayloadError:
            raise
        except Exception as exc:
            raise PayloadError(
                f"internal error while parsing: {type(exc).__name__}: {show(str(exc), 80)}"
            ) from exc

    def _parse(self, msg: InboundMessage) -> Reading:
        if msg.text is not None and len(msg.text) > MAX_TEXT_CHARS:
            raise PayloadError(f"text of {len(msg.text)} characters exceeds {MAX_TEXT_CHARS}")
        if msg.data is not None and len(msg.data) > MAX_DATA_BYTES:
            raise PayloadError(f"data of {len(msg.data)} bytes exceeds {MAX_DATA_BYTES}")
        sender, alphanumeric = self._sender_of(msg)
        compiled = self._match(msg, sender, alphanumeric)
        if compiled is None:
            port = f", port {msg.port}" if msg.port is not None else ""
            raise PayloadError(f"no parser rule matched (sender {show(sender)}{port})")
        rule = compiled.rule
        raw = self._extract(msg, rule)
        fields: dict[str, FieldValue] = {}
        units: dict[str, str] = {}
        device_classes: dict[str, str] = {}
        state_classes: dict[str, str] = {}
        for key, spec in rule.fields.items():
            value = raw.get(key)
            if value is None or value == "":
                if spec.required:
                    raise PayloadError(
                        f"required field {spec.name!r} (key {show(key)}) is missing",
                        rule=rule.name,
                        field=spec.name,
                    )
                continue
            try:
                fields[spec.name] = convert(value, spec)
            except ConversionError as exc:
                raise PayloadError(
                    f"field {spec.name!r} (key {show(key)}): {exc}", rule=rule.name, field=spec.name
                ) from None
            number = fields[spec.name]
            if spec.bits and isinstance(number, int):
                # flags follow their field, so the state document keeps the rule's order
                for bit, flag in spec.flag_specs:
                    fields[flag.name] = bool((number >> bit) & 1)
                    if flag.device_class is not None:
                        device_classes[flag.name] = flag.device_class
            if spec.unit is not None:
                units[spec.name] = spec.unit
            device_class = spec.effective_device_class
            if device_class is not None:
                device_classes[spec.name] = device_class
            state_class = spec.effective_state_class
            if state_class is not None:
                state_classes[spec.name] = state_class
        device = self._device_id(rule, raw, sender, alphanumeric)
        return Reading(
            device=device,
            measurement=rule.measurement,
            fields=fields,
            units=units,
            device_classes=device_classes,
            state_classes=state_classes,
            rule=rule.name,
            sent_at=msg.sent_at,
            msg_id=msg.msg_id,
            modem=msg.modem,
            sender=sender,
            device_meta=self._devices.get(device),
            expire_after=rule.expire_after,
            field_specs=compiled.specs_by_name,
        )

    def _extract(self, msg: InboundMessage, rule: ParserRule) -> RawValues:
        if rule.format == "binary":
            return parse_binary(binary_payload(msg.text, msg.data, rule), rule)
        if msg.text is None:
            raise PayloadError(f"format {rule.format} needs a text message", rule=rule.name)
        return TEXT_PARSERS[rule.format](msg.text.strip(), rule)

    def _device_id(self, rule: ParserRule, raw: RawValues, sender: str,
                   alphanumeric: bool = False) -> str:
        if rule.device is not None:
            return rule.device
        if rule.device_from == "sender":
            device = None if alphanumeric else self._by_number.get(sender)
            if device is None:
                # '+' is an MQTT wildcard: a bare E.164 number becomes its digits.
                device = sender[1:] if sender.startswith("+") else sender
                if device in self._devices:  # an alphanumeric "TANK1" is not device TANK1
                    raise PayloadError(
                        f"sender {show(sender)} is not one of the numbers of device "
                        f"{show(device)}", rule=rule.name, field="sender")
            field = "sender"
        else:
            field = rule.device_field or ""
            value: object = raw.get(rule.device_key or "")
            if value is None or value == "":
                raise PayloadError(
                    f"device id field {show(field)} is missing", rule=rule.name, field=field
                )
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise PayloadError(
                    f"device id field {show(field)} is not a string", rule=rule.name, field=field
                )
            device = value.strip() if isinstance(value, str) else str(value)
        problem = device_id_problem(device)
        if problem:
            raise PayloadError(f"{problem}: {show(device)}", rule=rule.name, field=field)
        return device

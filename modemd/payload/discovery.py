"""Home Assistant MQTT discovery documents for device fields, modems and the gateway.

Pure functions: they return ``(topic, payload)`` pairs; the MQTT sink publishes each payload as
JSON, retained, and re-sends them when ``homeassistant/status`` says ``online``.

Shapes follow HA's documented discovery format:

* topic ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``; HA only accepts
  ``[a-zA-Z0-9_-]`` in ``node_id`` and ``object_id``, so ids with other characters are
  sanitised and given a short hash suffix to stay unique (:func:`topic_id`);
* one ``sensor`` per field (``binary_sensor`` for bool fields, with ``payload_on``/
  ``payload_off``; enum fields become ``device_class: enum`` sensors with ``options``);
* ``unique_id`` ``modemd_<gw>_<device>_<field>``; ``object_id`` (the entity id suggestion HA
  used until 2025.9) and ``default_entity_id`` (``<component>.<object_id>``, its 2025.10
  replacement) are both sent unless ``legacy_object_id=False``;
* ``device`` block (identifiers, name, model, manufacturer, suggested_area, via_device = the
  gateway's device), ``origin`` block, and ``availability`` on ``<base>/<gw>/status`` with
  ``online``/``offline``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modemd import __version__
from modemd.payload.model import Reading
from modemd.payload.senders import SenderPatterns
from modemd.payload.spec import device_id_problem

if TYPE_CHECKING:
    from modemd.payload.config import DeviceSpec, FieldSpec, FieldType, ParserRule, TrackerSpec

__all__ = [
    "MODEM_SENSORS",
    "DiscoveryMessage",
    "ModemSensor",
    "binary_value_template",
    "configured_devices",
    "configured_discovery",
    "discovery_messages",
    "field_unique_id",
    "gateway_discovery_messages",
    "modem_discovery_messages",
    "owner_key",
    "smpp_discovery_messages",
    "topic_id",
    "tracker_attributes_template",
    "value_template",
]

DiscoveryMessage = tuple[str, dict[str, Any]]

_TOPIC_ID_RE = re.compile(r"[A-Za-z0-9_-]+")
_NOT_TOPIC_ID = re.compile(r"[^A-Za-z0-9_-]")
_NOT_SLUG = re.compile(r"[^a-z0-9_]+")
_NON_NUMERIC_CLASSES = frozenset({"enum", "timestamp", "date"})


@dataclass(frozen=True, slots=True)
class ModemSensor:
    """One modem health sensor read from the ``<base>/<gw>/modem/<modem>/state`` document."""

    key: str
    name: str
    template: str
    device_class: str | None = None
    unit: str | None = None
    state_class: str | None = None
    icon: str | None = None


#: The modem health sensors. Templates assume the modem state document of design.md as
#: ``{"signal": {"rssi": -71, "ber": 99}, "registration": "home", "storage": {"used": 3,
#: "total": 30}, ...}``.
_LAST_ERROR = ModemSensor(
    key="last_error",
    name="Last error",
    template="{{ (value_json.last_error or 'none') if value_json is mapping else '' }}",
    icon="mdi:alert-circle-outline",
)

MODEM_SENSORS: tuple[ModemSensor, ...] = (
    ModemSensor(
        key="signal",
        name="Signal",
        template="{{ value_json.signal.rssi }}",
        device_class="signal_strength",
        unit="dBm",
        state_class="measurement",
    ),
    ModemSensor(
        key="registration",
        name="Registration",
        template="{{ value_json.registration }}",
        icon="mdi:antenna",
    ),
    _LAST_ERROR,
    ModemSensor(
        key="storage_used",
        name="SMS storage used",
        template="{{ value_json.storage.used }}",
        state_class="measurement",
        icon="mdi:sim",
    ),
)


def topic_id(text: str) -> str:
    """*text* as a discovery topic level (``[A-Za-z0-9_-]+``), unique per input.

    Text that is already valid is returned as is; otherwise invalid characters become ``_``
    and 8 hex digits of its SHA-256 are appended, so ``"PUMP.01"`` and ``"PUMP_01"`` differ.
    """
    if _TOPIC_ID_RE.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{_NOT_TOPIC_ID.sub('_', text)}_{digest}"


def _slug(text: str) -> str:
    return _NOT_SLUG.sub("_", text.lower()).strip("_") or "x"


#: what a value template renders for a field absent from the state document: Home Assistant
#: ignores an empty state for numeric sensors and binary sensors (the entity is left alone),
#: and takes ``None`` as "unknown" (an enum or text sensor must not keep showing an old label
#: as if the device had just sent it; an empty state is no valid option).
KEEP_STATE = ""
UNKNOWN_STATE = "None"


def _present(field: str) -> str:
    return f"value_json is mapping and '{field}' in value_json"


def value_template(field: str, *, absent: str = KEEP_STATE) -> str:
    """The value of *field* in the state document, or *absent* when the reading lacks it.

    Subscript form (``value_json['items']`` is the key, not the dict method), and the key is
    looked up only when present: no "dict object has no attribute" template warning.
    """
    return f"{{{{ value_json['{field}'] if {_present(field)} else '{absent}' }}}}"


def binary_value_template(field: str) -> str:
    """``ON``/``OFF`` from a bool field; empty (the entity keeps its state) when absent."""
    return (f"{{{{ ('ON' if value_json['{field}'] else 'OFF') if {_present(field)} "
            f"else '{KEEP_STATE}' }}}}")


def field_unique_id(gateway_id: str, device: str, field: str) -> str:
    """``modemd/<gw>/<device>/<field>``: ``/`` is in no gateway id, device id or field name,
    so two device/field pairs never share an id (``TANK_max`` + ``level`` is not ``TANK`` +
    ``max_level``, as ``modemd_<gw>_<device>_<field>`` made them)."""
    return f"modemd/{gateway_id}/{device}/{field}"


def _check_id(value: str, what: str) -> None:
    problem = device_id_problem(value)
    if problem:
        raise ValueError(f"{what} {value!r}: {problem.replace('device id', what)}")


def _availability(base_topic: str, gateway_id: str) -> list[dict[str, str]]:
    return [
        {
            "topic": f"{base_topic}/{gateway_id}/status",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    ]


def _origin() -> dict[str, str]:
    return {"name": "modemd", "sw_version": __version__}


def _gateway_identifier(gateway_id: str) -> str:
    return f"modemd_{gateway_id}"


def _device_block(gateway_id: str, device: str, meta: DeviceSpec | None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "identifiers": [f"modemd_{gateway_id}_{device}"],
        "name": (meta.name if meta is not None and meta.name else device),
    }
    if meta is not None:
        if meta.model:
            block["model"] = meta.model
        if meta.manufacturer:
            block["manufacturer"] = meta.manufacturer
        if meta.area:
            block["suggested_area"] = meta.area
    block["via_device"] = _gateway_identifier(gateway_id)
    return block


def _ids(
    payload: dict[str, Any], component: str, unique_id: str, object_id: str, legacy: bool
) -> None:
    payload["unique_id"] = unique_id
    if legacy:
        payload["object_id"] = object_id
    payload["default_entity_id"] = f"{component}.{object_id}"


def _field_entity(
    spec: FieldSpec,
    *,
    gateway_id: str,
    device: str,
    device_block: dict[str, Any],
    state_topic: str,
    availability: list[dict[str, str]],
    expire_after: int | None,
    json_attributes: bool,
    legacy_object_id: bool,
    discovery_prefix: str,
) -> DiscoveryMessage:
    field = spec.name
    component = "binary_sensor" if spec.type == "bool" else "sensor"
    payload: dict[str, Any] = {"name": field.replace("_", " ").capitalize()}
    _ids(
        payload,
        component,
        field_unique_id(gateway_id, device, field),
        _slug(f"{gateway_id}_{device}_{field}"),
        legacy_object_id,
    )
    payload["state_topic"] = state_topic
    if component == "binary_sensor":
        payload["value_template"] = binary_value_template(field)
        payload["payload_on"] = "ON"
        payload["payload_off"] = "OFF"
    else:
        # Home Assistant ignores an empty state only where it expects a number
        numeric = spec.type in ("int", "float") and (
            spec.unit is not None or spec.effective_state_class is not None
            or (spec.effective_device_class or "enum") not in _NON_NUMERIC_CLASSES)
        payload["value_template"] = value_template(
            field, absent=KEEP_STATE if numeric else UNKNOWN_STATE)
    device_class = spec.effective_device_class
    if device_class is not None:
        payload["device_class"] = device_class
    if component == "sensor":
        state_class = spec.effective_state_class
        if state_class is not None:
            payload["state_class"] = state_class
        if spec.unit is not None:
            payload["unit_of_measurement"] = spec.unit
        if spec.type == "enum" and spec.values:
            payload["options"] = list(dict.fromkeys(spec.values.values()))
    if spec.icon is not None:
        payload["icon"] = spec.icon
    if expire_after is not None:
        payload["expire_after"] = expire_after
    if json_attributes:
        payload["json_attributes_topic"] = state_topic
    payload["availability"] = availability
    payload["device"] = device_block
    payload["origin"] = _origin()
    node = topic_id(f"{gateway_id}_{device}")
    return f"{discovery_prefix}/{component}/{node}/{field}/config", payload


def _specs_of_reading(reading: Reading) -> Iterable[FieldSpec]:
    if reading.field_specs:
        return reading.field_specs.values()
    from modemd.payload.config import FieldSpec  # a reading made without a rule: not the daemon's

    specs = []
    for name, value in reading.fields.items():
        kind: FieldType = (
            "bool"
            if isinstance(value, bool)
            else "int"
            if isinstance(value, int)
            else "float"
            if isinstance(value, float)
            else "string"
        )
        specs.append(
            FieldSpec(
                name=name,
                type=kind,
                unit=reading.units.get(name),
                device_class=reading.device_classes.get(name),
                state_class=reading.state_classes.get(name, "none")
                if kind in ("int", "float")
                else None,
            )
        )
    return specs


def discovery_messages(
    source: Reading | ParserRule,
    device: str | None = None,
    *,
    gateway_id: str,
    device_meta: DeviceSpec | None = None,
    base_topic: str = "modemd",
    discovery_prefix: str = "homeassistant",
    json_attributes: bool = False,
    legacy_object_id: bool = True,
    tracker: TrackerSpec | None = None,
) -> list[DiscoveryMessage]:
    """One discovery config per field of a device, and its device_tracker when the rule has
    one (*tracker*; taken from a :class:`ParserRule` source itself).

    *source* is a :class:`Reading` (device, metadata, fields and ``expire_after`` come from it;
    every field of its rule is announced, not only those present) or a :class:`ParserRule` with
    the *device* id (optional for a rule with a fixed ``device``) and its *device_meta*.
    Raises :class:`ValueError` for an unsafe gateway or device id.
    """
    if isinstance(source, Reading):
        device = device or source.device
        meta = device_meta if device_meta is not None else source.device_meta
        specs = list(_specs_of_reading(source))
        expire_after = source.expire_after
    else:
        device = device or source.device
        if device is None:
            raise ValueError(f"rule {source.name!r} has no fixed device: pass device=")
        meta = device_meta
        specs = list(source.output_specs)
        expire_after = source.expire_after
        tracker = tracker or source.device_tracker
    _check_id(gateway_id, "gateway id")
    _check_id(device, "device id")
    state_topic = f"{base_topic}/{gateway_id}/device/{device}/state"
    availability = _availability(base_topic, gateway_id)
    block = _device_block(gateway_id, device, meta)
    messages = [
        _field_entity(
            spec,
            gateway_id=gateway_id,
            device=device,
            device_block=block,
            state_topic=state_topic,
            availability=availability,
            expire_after=expire_after,
            json_attributes=json_attributes,
            legacy_object_id=legacy_object_id,
            discovery_prefix=discovery_prefix,
        )
        for spec in specs
    ]
    if tracker is not None:
        messages.append(_tracker_entity(
            tracker, gateway_id=gateway_id, device=device, device_block=block,
            state_topic=state_topic, availability=availability,
            legacy_object_id=legacy_object_id, discovery_prefix=discovery_prefix))
    return messages


def tracker_attributes_template(tracker: TrackerSpec) -> str:
    """The state document as attributes, with ``latitude``/``longitude``/``gps_accuracy``
    (the keys Home Assistant places a tracker by) taken from the rule's position fields;
    nothing at all when the document holds no position."""
    lat, lon, acc = tracker.latitude, tracker.longitude, tracker.gps_accuracy
    position = f"latitude=value_json['{lat}'], longitude=value_json['{lon}']"
    document = f"dict(value_json, {position})"
    if acc is not None:
        document = (f"(dict(value_json, {position}, gps_accuracy=value_json['{acc}']) "
                    f"if '{acc}' in value_json else {document})")
    return (f"{{% if value_json is mapping and '{lat}' in value_json and '{lon}' in value_json "
            f"%}}{{{{ {document} | tojson }}}}{{% endif %}}")


def _tracker_entity(
    tracker: TrackerSpec,
    *,
    gateway_id: str,
    device: str,
    device_block: dict[str, Any],
    state_topic: str,
    availability: list[dict[str, str]],
    legacy_object_id: bool,
    discovery_prefix: str,
) -> DiscoveryMessage:
    payload: dict[str, Any] = {"name": tracker.name or "Location"}
    # '#' is in no device id or field name: this id cannot be a field's
    _ids(payload, "device_tracker", f"modemd/{gateway_id}/{device}#device_tracker",
         _slug(f"{gateway_id}_{device}_location"), legacy_object_id)
    payload["json_attributes_topic"] = state_topic
    payload["json_attributes_template"] = tracker_attributes_template(tracker)
    payload["source_type"] = "gps"
    payload["availability"] = availability
    payload["device"] = device_block
    payload["origin"] = _origin()
    node = topic_id(f"{gateway_id}_{device}")
    return f"{discovery_prefix}/device_tracker/{node}/location/config", payload


def modem_discovery_messages(
    gateway_id: str,
    modem_name: str,
    imei: str | None,
    *,
    base_topic: str = "modemd",
    discovery_prefix: str = "homeassistant",
    model: str | None = None,
    manufacturer: str | None = None,
    firmware: str | None = None,
    legacy_object_id: bool = True,
) -> list[DiscoveryMessage]:
    """Health sensors (:data:`MODEM_SENSORS`) of one modem, from its retained state document,
    and its connectivity binary sensor (off while the modem is offline or unplugged).

    The modem is its own HA device (identified by IMEI when known, so it keeps its history
    when renamed or moved to another USB port), connected via the gateway.
    """
    _check_id(gateway_id, "gateway id")
    _check_id(modem_name, "modem name")
    ident = imei.strip() if imei and imei.strip() else None
    if ident is not None:
        _check_id(ident, "IMEI")
    key = f"imei_{ident}" if ident is not None else f"{gateway_id}_{modem_name}"
    block: dict[str, Any] = {
        "identifiers": [f"modemd_modem_{key}"],
        "name": f"Modem {modem_name}",
    }
    if model:
        block["model"] = model
    if manufacturer:
        block["manufacturer"] = manufacturer
    if firmware:
        block["sw_version"] = firmware
    block["via_device"] = _gateway_identifier(gateway_id)
    return _health_entities(
        MODEM_SENSORS, block=block, unique_prefix=f"modemd_modem_{key}", gateway_id=gateway_id,
        source=("modem", modem_name), base_topic=base_topic, discovery_prefix=discovery_prefix,
        legacy_object_id=legacy_object_id)


#: an SMPP bind's health, from its retained ``<base>/<gw>/smpp/<bind>/state`` document
SMPP_SENSORS: tuple[ModemSensor, ...] = (
    _LAST_ERROR,
    ModemSensor(
        key="reconnects",
        name="Reconnects",
        template="{{ value_json.reconnects }}",
        state_class="total_increasing",
        icon="mdi:connection",
    ),
)


def smpp_discovery_messages(
    gateway_id: str,
    bind_name: str,
    *,
    bind_type: str = "receiver",
    base_topic: str = "modemd",
    discovery_prefix: str = "homeassistant",
    legacy_object_id: bool = True,
) -> list[DiscoveryMessage]:
    """An ``[[smpp]]`` bind as its own HA device (via the gateway): connectivity (on while
    bound), its last error and how often its session was lost."""
    _check_id(gateway_id, "gateway id")
    _check_id(bind_name, "smpp bind name")
    block: dict[str, Any] = {
        "identifiers": [f"modemd_smpp_{gateway_id}_{bind_name}"],
        "name": f"SMPP {bind_name}",
        "model": f"SMPP {bind_type} bind",
        "via_device": _gateway_identifier(gateway_id),
    }
    return _health_entities(
        SMPP_SENSORS, block=block, unique_prefix=f"modemd_smpp_{gateway_id}_{bind_name}",
        gateway_id=gateway_id, source=("smpp", bind_name), base_topic=base_topic,
        discovery_prefix=discovery_prefix, legacy_object_id=legacy_object_id)


def _health_entities(
    sensors: Sequence[ModemSensor],
    *,
    block: dict[str, Any],
    unique_prefix: str,
    gateway_id: str,
    source: tuple[str, str],
    base_topic: str,
    discovery_prefix: str,
    legacy_object_id: bool,
) -> list[DiscoveryMessage]:
    """Diagnostic sensors read from the retained ``<base>/<gw>/<kind>/<name>/state`` document
    of a source (*source* is ``(kind, name)``: a modem or an SMPP bind), and its ``online``
    flag as a connectivity binary sensor."""
    kind, name = source
    slug_prefix = f"{gateway_id}_{kind}_{name}"
    node = topic_id(slug_prefix)
    state_topic = f"{base_topic}/{gateway_id}/{kind}/{name}/state"
    availability = _availability(base_topic, gateway_id)
    messages: list[DiscoveryMessage] = []
    for sensor in sensors:
        payload: dict[str, Any] = {"name": sensor.name}
        _ids(payload, "sensor", f"{unique_prefix}_{sensor.key}",
             _slug(f"{slug_prefix}_{sensor.key}"), legacy_object_id)
        payload["state_topic"] = state_topic
        payload["value_template"] = sensor.template
        if sensor.device_class:
            payload["device_class"] = sensor.device_class
        if sensor.state_class:
            payload["state_class"] = sensor.state_class
        if sensor.unit:
            payload["unit_of_measurement"] = sensor.unit
        if sensor.icon:
            payload["icon"] = sensor.icon
        payload["entity_category"] = "diagnostic"
        payload["availability"] = availability
        payload["device"] = block
        payload["origin"] = _origin()
        messages.append((f"{discovery_prefix}/sensor/{node}/{sensor.key}/config", payload))
    online: dict[str, Any] = {"name": "Connected"}
    _ids(online, "binary_sensor", f"{unique_prefix}_online", _slug(f"{slug_prefix}_online"),
         legacy_object_id)
    online.update({
        "state_topic": state_topic,
        "value_template": "{{ 'ON' if value_json is mapping and value_json.get('online') "
                          "else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "availability": availability,
        "device": block,
        "origin": _origin(),
    })
    messages.append((f"{discovery_prefix}/binary_sensor/{node}/online/config", online))
    return messages


def gateway_discovery_messages(
    gateway_id: str,
    *,
    base_topic: str = "modemd",
    discovery_prefix: str = "homeassistant",
    legacy_object_id: bool = True,
) -> list[DiscoveryMessage]:
    """The gateway's own device (the ``via_device`` of every other one) and its connectivity
    binary sensor, fed by the retained ``<base>/<gw>/status`` (``online``/``offline``, LWT)."""
    _check_id(gateway_id, "gateway id")
    payload: dict[str, Any] = {"name": "Status"}
    _ids(
        payload,
        "binary_sensor",
        f"modemd_{gateway_id}_status",
        _slug(f"{gateway_id}_status"),
        legacy_object_id,
    )
    payload.update(
        {
            "state_topic": f"{base_topic}/{gateway_id}/status",
            "payload_on": "online",
            "payload_off": "offline",
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "device": {
                "identifiers": [_gateway_identifier(gateway_id)],
                "name": f"modemd {gateway_id}",
                "manufacturer": "modemd",
                "model": "SMS gateway",
                "sw_version": __version__,
            },
            "origin": _origin(),
        }
    )
    node = topic_id(gateway_id)
    return [(f"{discovery_prefix}/binary_sensor/{node}/status/config", payload)]


def owner_key(rule: str, device: str) -> str:
    """The owner of a device's discovery topics, as the MQTT sink and the store record it."""
    return f"rule:{rule}/device:{device}"


def _owner_parts(owner: str) -> tuple[str, str] | None:
    kind, _, rest = owner.partition(":")
    rule, found, device = rest.partition("/device:")
    if kind != "rule" or not found or not device:
        return None
    return rule, device


def configured_devices(
    rules: Sequence[ParserRule],
    devices: Mapping[str, DeviceSpec],
    *,
    default_country_code: str | None = None,
) -> list[tuple[ParserRule, str]]:
    """The (rule, device) pairs the config itself names, known before any message arrives.

    A rule with a fixed ``device``; and each ``[devices]`` entry whose numbers the rule's
    ``match.sender`` accepts. A rule without sender patterns could take any device: its
    devices are only known once they reported (see :func:`configured_discovery`).
    """
    pairs: list[tuple[ParserRule, str]] = []
    for rule in rules:
        if rule.device is not None:
            pairs.append((rule, rule.device))
            continue
        if not rule.match.sender:
            continue
        senders = SenderPatterns(rule.match.sender, default_country_code=default_country_code)
        for device_id, spec in devices.items():
            if any(senders.matches(number) for number in spec.numbers):
                pairs.append((rule, device_id))
    return pairs


def configured_discovery(
    rules: Sequence[ParserRule],
    devices: Mapping[str, DeviceSpec],
    known_owners: Iterable[str],
    *,
    gateway_id: str,
    base_topic: str = "modemd",
    discovery_prefix: str = "homeassistant",
    default_country_code: str | None = None,
    allowed_devices: Collection[str] | None = None,
) -> list[tuple[str, list[DiscoveryMessage]]]:
    """(owner, discovery configs) of every device the config names, plus every (rule, device)
    announced before whose rule is still configured (``known_owners``, from the store): what
    the MQTT sink announces at each connection and when Home Assistant comes back, so no
    entity waits for its device's next SMS. ``allowed_devices`` (``ha_only_configured``):
    the only devices announced; the sink removes the entities of the others."""
    by_name = {rule.name: rule for rule in rules}
    wanted: dict[str, tuple[ParserRule, str]] = {
        owner_key(rule.name, device): (rule, device)
        for rule, device in configured_devices(rules, devices,
                                               default_country_code=default_country_code)
    }
    for owner in known_owners:
        parts = _owner_parts(owner)
        if parts is None or parts[0] not in by_name:
            continue
        if allowed_devices is not None and parts[1] not in allowed_devices:
            continue
        wanted.setdefault(owner, (by_name[parts[0]], parts[1]))
    announced: list[tuple[str, list[DiscoveryMessage]]] = []
    for owner, (rule, device) in wanted.items():
        try:
            messages = discovery_messages(rule, device, gateway_id=gateway_id,
                                          device_meta=devices.get(device),
                                          base_topic=base_topic,
                                          discovery_prefix=discovery_prefix)
        except ValueError:
            continue  # an id that cannot be a topic: never announced
        announced.append((owner, messages))
    return announced

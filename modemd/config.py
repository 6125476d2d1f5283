"""The configuration file (TOML), as typed, validated models.

Every model forbids unknown keys, so a typo is an error with its key path instead of a
setting silently ignored. All problems in a file are reported at once. Secrets are read from
files (systemd ``LoadCredential=`` puts them in ``$CREDENTIALS_DIRECTORY``) or the environment
and never appear in ``repr`` or ``config show``.
"""

from __future__ import annotations

import re
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from modemd.errors import ConfigError
from modemd.payload.config import DeviceSpec, ParserRule
from modemd.payload.senders import country_code_problem, pattern_problem
from modemd.settings import (  # re-exported: the CLI and the tests know them from here
    DEFAULT_CONFIG_PATH,
    SAFE_ID,
    ConfigMethods,
    InfluxMethods,
    ModemMethods,
    MqttMethods,
    Secret,
    SmppMethods,
    VerifyMethods,
    parse_duration,
    read_secret,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "SAFE_ID",
    "Config",
    "GatewayConfig",
    "InfluxConfig",
    "MQTTConfig",
    "ModemConfig",
    "OutboxConfig",
    "Secret",
    "SendConfig",
    "SmppConfig",
    "StoreConfig",
    "TLSConfig",
    "VerifyConfig",
    "config_from_dict",
    "load_config",
    "parse_duration",
    "read_secret",
    "redact_url",
]

Duration = Annotated[float, Field(ge=0)]


def number_patterns(patterns: list[str]) -> list[str]:
    """Sender and destination patterns (allowed_senders, allowed_destinations), each checked
    the same way, with the same message."""
    for pattern in patterns:
        problem = pattern_problem(pattern)
        if problem is not None:
            raise ValueError(f"{pattern!r}: {problem}")
    return patterns


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _safe_id(value: str, what: str) -> str:
    if not SAFE_ID.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 letters, digits, '-' or '_' "
            "(it becomes an MQTT topic level and a tag)"
        )
    return value


class GatewayConfig(_Model):
    id: str = "gateway"
    state_dir: Path = Path("/var/lib/modemd")
    sweep_interval: Duration = 60.0
    health_interval: Duration = 60.0
    multipart_timeout: Duration = 24 * 3600.0
    default_country_code: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _safe_id(value, "gateway id")

    @field_validator("sweep_interval", "health_interval", "multipart_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("default_country_code")
    @classmethod
    def _cc(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{1,3}", value.lstrip("+")):
            raise ValueError("a country calling code is 1-3 digits, e.g. '49'")
        problem = country_code_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value.lstrip("+") if value else value


class ModemConfig(ModemMethods, _Model):
    name: str
    port: str = Field(description="device path, /dev/serial/by-id/... or a pyserial URL")
    baudrate: int = 115200
    rtscts: bool = False
    pin: SecretStr | None = None
    pin_file: str | None = None
    storage: Literal["auto", "SM", "ME", "MT"] = "auto"
    delivery: Literal["store", "direct"] = "store"
    allowed_senders: list[str] = Field(default_factory=list)
    profile: str = "auto"
    imei: str | None = None
    iccid: str | None = None
    command_timeout: Duration = 10.0

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _safe_id(value, "modem name")

    @field_validator("baudrate")
    @classmethod
    def _baud(cls, value: int) -> int:
        if value not in {9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600}:
            raise ValueError(f"{value} is not a standard modem baud rate (e.g. 115200)")
        return value

    @field_validator("allowed_senders")
    @classmethod
    def _senders(cls, value: list[str]) -> list[str]:
        return number_patterns(value)

    @field_validator("pin")
    @classmethod
    def _pin_digits(cls, value: SecretStr | None) -> SecretStr | None:
        # 4-8 digits (3GPP TS 31.102): anything else could carry AT commands into AT+CPIN.
        if value is not None and not re.fullmatch(r"\d{4,8}", value.get_secret_value()):
            raise ValueError("a SIM PIN is 4 to 8 digits")
        return value

    @model_validator(mode="after")
    def _one_pin(self) -> ModemConfig:
        if self.pin is not None and self.pin_file is not None:
            raise ValueError("give pin or pin_file, not both")
        return self

    @field_validator("imei", "iccid")
    @classmethod
    def _identity(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{14,22}", value):
            raise ValueError(f"{value!r} is not an IMEI (15 digits) or ICCID (18-22 digits)")
        return value

class TLSConfig(_Model):
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TLSConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs both cert and key")
        return self


class MQTTConfig(MqttMethods, _Model):
    enabled: bool = True
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    tls: TLSConfig | None = None
    username: str | None = None
    password_file: str | None = None
    base_topic: str = "modemd"
    qos: Literal[0, 1, 2] = 1
    homeassistant: bool = False
    discovery_prefix: str = "homeassistant"
    client_id: str | None = None
    keepalive: int = Field(default=30, ge=5, le=3600)
    max_inflight: int = Field(default=32, ge=1, le=1000)
    #: "auto" (MQTT 5, or 3.1.1 when the broker refuses 5), "5" or "3.1.1"
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    #: Home Assistant entities only for devices in [devices] (or a rule's fixed device)
    ha_only_configured: bool = False
    #: at most this many devices get Home Assistant entities
    ha_max_devices: int | None = Field(default=None, ge=1, le=100_000)

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not value or any(c in value for c in "+#\0") or value.startswith("/"):
            raise ValueError(f"{value!r} is not a valid topic prefix")
        if value.startswith("$"):  # $SYS/...: the broker's own topics, not for clients
            raise ValueError(f"{value!r}: topics starting with '$' belong to the broker")
        return value.rstrip("/")

class InfluxConfig(InfluxMethods, _Model):
    enabled: bool = True
    url: str
    org: str = ""
    bucket: str
    token_file: str | None = None
    measurement: str = "device_status"
    verify_ssl: bool = True
    ca: Path | None = None
    timeout: Duration = 10.0
    batch_size: int = Field(default=500, ge=1, le=50_000)
    #: tag readings with the modem they arrived on (off: one series per device, wherever from)
    modem_tag: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        try:
            urlsplit(value).port  # noqa: B018 - raises on a port out of range
        except ValueError:
            raise ValueError(f"{redact_url(value)!r}: the port is not 1-65535") from None
        return value.rstrip("/")

class SmppConfig(SmppMethods, _Model):
    """One ``[[smpp]]`` bind to an aggregator's SMSC (see modemd/sources/smpp/)."""

    name: str
    host: str
    port: int = Field(default=2775, ge=1, le=65535)
    system_id: str = Field(min_length=1, max_length=15)
    password_file: str | None = None
    system_type: str = Field(default="", max_length=12)
    address_range: str = Field(default="", max_length=40)
    bind: Literal["receiver", "transceiver"] = "receiver"
    tls: bool = False
    tls_ca: Path | None = None
    tls_insecure: bool = False
    enquire_link: Duration = 30.0
    response_timeout: Duration = 10.0
    reconnect_min: Duration = 1.0
    reconnect_max: Duration = 60.0
    window: int = Field(default=256, ge=1, le=10_000)
    submit_window: int = Field(default=10, ge=1, le=1000)
    # the sender address of what a transceiver sends: "" lets the SMSC put the account's own;
    # "+<digits>" international, other digits as given, else alphanumeric (at most 11)
    source_addr: str = Field(default="", max_length=20)
    default_alphabet: Literal["gsm7", "latin1", "ascii"] = "gsm7"
    ia5_alphabet: Literal["auto", "ascii", "gsm7"] = "auto"
    allowed_senders: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _safe_id(value, "smpp bind name")

    @field_validator("enquire_link", "response_timeout", "reconnect_min", "reconnect_max",
                     mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("allowed_senders")
    @classmethod
    def _senders(cls, value: list[str]) -> list[str]:
        return number_patterns(value)

    @field_validator("source_addr")
    @classmethod
    def _source(cls, value: str) -> str:
        digits = value[1:] if value.startswith("+") else value
        if digits.isdigit() or not value:
            return value
        if len(value) > 11 or not value.isascii() or not value.isprintable():
            raise ValueError("an alphanumeric source_addr is at most 11 printable ASCII "
                             "characters (GSM 03.40 TP-OA)")
        return value

    @model_validator(mode="after")
    def _backoff(self) -> SmppConfig:
        if self.reconnect_min <= 0 or self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_min must be > 0 and reconnect_max >= reconnect_min")
        if self.enquire_link <= 0 or self.response_timeout <= 0:
            raise ValueError("enquire_link and response_timeout must be > 0")
        return self

class OutboxConfig(_Model):
    max_rows: int = Field(default=200_000, ge=100)
    max_age: Duration = 30 * 86400.0

    @field_validator("max_age", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class VerifyConfig(VerifyMethods, _Model):
    """``[verify]``: modemd as the verifier of codes users send from their phones."""

    enabled: bool = False
    secret_file: str | None = None  # default: <state_dir>/verify.key, made at first start
    ttl: Duration = 300.0
    max_ttl: Duration = 3600.0
    max_attempts: int = Field(default=3, ge=1, le=20)
    match: Literal["token", "exact", "keyword"] = "token"
    keyword: str = ""
    code_length: int = Field(default=6, ge=4, le=12)
    answers: Literal["withhold", "masked"] = "withhold"
    max_per_number: int = Field(default=5, ge=1)
    max_pending: int = Field(default=100_000, ge=1)
    scts_tolerance: Duration = 0.0
    keep_ended: Duration = 7 * 86400.0
    # the SMS of a "prompt": true request (needs [send]); it never holds the code
    prompt_text: str = Field(
        default="To confirm, reply to this message with the code you were shown.",
        min_length=1, max_length=400)

    @field_validator("ttl", "max_ttl", "scts_tolerance", "keep_ended", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _consistent(self) -> VerifyConfig:
        if self.match == "keyword" and not self.keyword.strip():
            raise ValueError("match = \"keyword\" needs a keyword")
        if not 0 < self.ttl <= self.max_ttl:
            raise ValueError("ttl must be more than 0 and at most max_ttl")
        return self

class StoreConfig(_Model):
    """[store]: how long delivered messages are kept, how often the file is checked."""

    retention: Duration = 30 * 86400.0
    check_interval: Duration = 86400.0  # 0: no scheduled check (`modemd store check` still)

    @field_validator("retention", "check_interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("retention")
    @classmethod
    def _at_least_an_hour(cls, value: float) -> float:
        if value < 3600:
            raise ValueError("retention must be at least 1h (delivery and look-back need it)")
        return value


class SendConfig(_Model):
    """``[send]`` (issue 15): nothing is ever sent unless a person turns this on."""

    enabled: bool = False
    allowed_destinations: list[str] = Field(default_factory=list)  # globs; empty = refuse all
    max_per_hour: int = Field(default=60, ge=0)
    modem: str = "auto"
    status_reports: bool = True
    reply_window: Duration = 600.0
    allow_short_codes: bool = False
    allow_premium: bool = False
    max_parts: int = Field(default=10, ge=1, le=255)
    concat_reference_bits: Literal[8, 16] = 8
    retry_attempts: int = Field(default=10, ge=1, le=100)
    retry_backoff: Duration = 10.0
    queue_timeout: Duration = 86400.0
    report_timeout: Duration = 3 * 86400.0
    notify_to: str | None = None  # the number Home Assistant's notify entity sends to

    @field_validator("reply_window", "retry_backoff", "queue_timeout", "report_timeout",
                     mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("notify_to")
    @classmethod
    def _number(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\+\d{7,15}", value):
            raise ValueError("an E.164 number such as '+4915112345678'")
        return value

    @field_validator("allowed_destinations")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return number_patterns(value)


class Config(ConfigMethods, _Model):
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    modem: list[ModemConfig] = Field(default_factory=list)
    mqtt: MQTTConfig | None = None
    influx: InfluxConfig | None = None
    parser: list[ParserRule] = Field(default_factory=list)
    devices: dict[str, DeviceSpec] = Field(default_factory=dict)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    smpp: list[SmppConfig] = Field(default_factory=list)
    send: SendConfig = Field(default_factory=SendConfig)

    @model_validator(mode="after")
    def _unique(self) -> Config:
        for what, names in (
            ("modem", [m.name for m in self.modem]),
            ("parser", [p.name for p in self.parser]),
            # a bind's name is the source of its messages, as a modem's is: one namespace
            ("modem]] and [[smpp", [m.name for m in self.modem] + [b.name for b in self.smpp]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"two [[{what}]] entries are named {name!r}")
                seen.add(name)
        if self.verify.enabled and (self.mqtt is None or not self.mqtt.enabled):
            raise ValueError("[verify] takes its requests over MQTT: it needs [mqtt]")
        return self

    @model_validator(mode="after")
    def _send_modem(self) -> Config:
        wanted = self.send.modem
        if wanted == "auto" or wanted in self.senders():
            return self
        if wanted in {b.name for b in self.smpp}:
            raise ValueError(f"[send] modem {wanted!r} is an [[smpp]] bind as a receiver; "
                             'set bind = "transceiver" there to send through it')
        raise ValueError(f"[send] modem {wanted!r} is neither a [[modem]] name nor an "
                         "[[smpp]] transceiver bind")

    @cached_property
    def parser_rules(self) -> tuple[ParserRule, ...]:
        """The rules as they run: [influx] measurement is the measurement of every rule that
        does not name its own."""
        influx = self.influx
        if influx is None or "measurement" not in influx.model_fields_set:
            return tuple(self.parser)
        return tuple(rule if "measurement" in rule.model_fields_set
                     else rule.model_copy(update={"measurement": influx.measurement})
                     for rule in self.parser)

    def redacted(self) -> dict[str, Any]:
        """The effective config as plain data, secrets shown as '***'."""
        data = self.model_dump(mode="json")  # SecretStr dumps as '**********'
        return _redact_urls(data)  # type: ignore[no-any-return]


_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")
_URL_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:token|password|passwd|pass|pwd|secret|key|apikey|api_key|access_token|"
    r"auth|u|p)=)[^&;#\s]*", re.IGNORECASE)


def redact_url(text: str) -> str:
    """``https://user:pass@host/?token=x`` -> ``https://***@host/?token=***``."""
    if "://" not in text:
        return text
    text = _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    return _URL_SECRET_PARAM.sub(lambda m: m.group("key") + "***", text)


def _redact_urls(node: Any) -> Any:
    if isinstance(node, str):
        return redact_url(node)
    if isinstance(node, dict):
        return {key: _redact_urls(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_redact_urls(value) for value in node]
    return node


def _location(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """Render a pydantic error location as a key path, naming list items by their name."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and item < len(node):
            entry = node[item]
            label = entry.get("name") if isinstance(entry, dict) else None
            parts[-1] = f"{parts[-1]}[{label!r}]" if label else f"{parts[-1]}[{item}]"
            node = entry
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top)"


def config_from_dict(data: dict[str, Any], *, source: str = "") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(x for x in err["loc"] if not str(x).startswith("function-"))
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key (a typo?)"
            problems.append((_location(loc, data), message))
        raise ConfigError(problems, source=source) from None


def load_config(path: Path) -> Config:
    """Read and validate a config file; ConfigError lists every problem with its key path."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("(file)", f"cannot read: {exc.strerror}")], source=str(path)) from exc
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError([("(file)", f"not UTF-8 text: byte 0x{exc.object[exc.start]:02X} on "
                            f"line {line} (save the file as UTF-8)")],
                          source=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(syntax)", str(exc))], source=str(path)) from exc
    return config_from_dict(data, source=str(path))

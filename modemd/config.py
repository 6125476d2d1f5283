"""The configuration file (TOML), as typed, validated models.

Every model forbids unknown keys, so a typo is an error with its key path instead of a
setting silently ignored. All problems in a file are reported at once. Secrets are read from
files (systemd ``LoadCredential=`` puts them in ``$CREDENTIALS_DIRECTORY``) or the environment
and never appear in ``repr`` or ``config show``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

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
from modemd.payload.senders import pattern_problem

DEFAULT_CONFIG_PATH = Path("/etc/modemd/modemd.toml")
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like ``"90s"``, ``"15m"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '90s', '15m' or '7d'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 30, '90s', '15m' or '7d'")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _safe_id(value: str, what: str) -> str:
    if not SAFE_ID.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 letters, digits, '-' or '_' "
            "(it becomes an MQTT topic level and a tag)"
        )
    return value


def read_secret(*, file: str | None, env: str, what: str) -> SecretStr | None:
    """A secret from a file (relative names look in $CREDENTIALS_DIRECTORY) or from ``env``."""
    if file:
        path = Path(file)
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if not path.is_absolute() and creds:
            path = Path(creds) / path
        try:
            return SecretStr(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError([(what, f"cannot read secret file {path}: {exc.strerror}")]) from exc
    value = os.environ.get(env)
    return SecretStr(value) if value else None


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
        return value.lstrip("+") if value else value


class ModemConfig(_Model):
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
        for pattern in value:
            problem = pattern_problem(pattern)
            if problem is not None:
                raise ValueError(f"{pattern!r}: {problem}")
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

    def matches(self, *, imei: str | None, iccid: str | None) -> bool:
        """Whether a modem with this identity is the one configured (True if none is named)."""
        if self.imei and imei != self.imei:
            return False
        return not (self.iccid and iccid != self.iccid)

    def resolved_pin(self) -> str | None:
        if self.pin is not None:
            return self.pin.get_secret_value()
        secret = read_secret(file=self.pin_file, env="MODEMD_PIN_" + self.name.upper(),
                             what=f"modem.{self.name}.pin_file")
        return secret.get_secret_value() if secret else None


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


class MQTTConfig(_Model):
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
        return value.rstrip("/")

    def password(self) -> SecretStr | None:
        return read_secret(file=self.password_file, env="MODEMD_MQTT_PASSWORD",
                           what="mqtt.password_file")


class InfluxConfig(_Model):
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
        return value.rstrip("/")

    def token(self) -> SecretStr | None:
        return read_secret(file=self.token_file, env="MODEMD_INFLUX_TOKEN",
                           what="influx.token_file")


class OutboxConfig(_Model):
    max_rows: int = Field(default=200_000, ge=100)
    max_age: Duration = 30 * 86400.0

    @field_validator("max_age", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class Config(_Model):
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    modem: list[ModemConfig] = Field(default_factory=list)
    mqtt: MQTTConfig | None = None
    influx: InfluxConfig | None = None
    parser: list[ParserRule] = Field(default_factory=list)
    devices: dict[str, DeviceSpec] = Field(default_factory=dict)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)

    @model_validator(mode="after")
    def _unique(self) -> Config:
        for what, names in (
            ("modem", [m.name for m in self.modem]),
            ("parser", [p.name for p in self.parser]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"two [[{what}]] entries are named {name!r}")
                seen.add(name)
        return self

    def file_problems(self, *, skip_credentials: bool = False) -> list[tuple[str, str]]:
        """The secret and certificate files this config names that cannot be read, all at once.

        Secrets are read for real (as the daemon will). With *skip_credentials*, a relative
        secret name is left out when $CREDENTIALS_DIRECTORY is unset: it names a systemd
        credential that only exists inside the service (``config check`` from a shell).
        """
        readers: list[tuple[str | None, Callable[[], object]]] = [
            (m.pin_file, m.resolved_pin) for m in self.modem if m.pin is None
        ]
        certs: list[tuple[str, Path | None]] = []
        if self.mqtt is not None and self.mqtt.enabled:
            readers.append((self.mqtt.password_file, self.mqtt.password))
            tls = self.mqtt.tls
            if tls is not None:
                certs += [("mqtt.tls.ca", tls.ca), ("mqtt.tls.cert", tls.cert),
                          ("mqtt.tls.key", tls.key)]
        if self.influx is not None and self.influx.enabled:
            readers.append((self.influx.token_file, self.influx.token))
            certs.append(("influx.ca", self.influx.ca))
        problems: list[tuple[str, str]] = []
        outside_systemd = not os.environ.get("CREDENTIALS_DIRECTORY")
        for file, read in readers:
            if skip_credentials and outside_systemd and file and not Path(file).is_absolute():
                continue
            try:
                read()
            except ConfigError as exc:
                problems += exc.problems
        for key, path in certs:
            if path is None:
                continue
            try:
                with path.open("rb"):
                    pass
            except OSError as exc:
                problems.append((key, f"cannot read {path}: {exc.strerror}"))
        return problems

    def redacted(self) -> dict[str, Any]:
        """The effective config as plain data, secrets shown as '***'."""
        return self.model_dump(mode="json")  # SecretStr dumps as '**********'


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
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(syntax)", str(exc))], source=str(path)) from exc
    return config_from_dict(data, source=str(path))

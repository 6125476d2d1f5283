"""What the running daemon needs of its config, without the validation library.

The config file is validated by the pydantic models of :mod:`modemd.config`, in a child
process (:mod:`modemd.config_view`); the resident daemon runs on plain views of them and
never loads pydantic (about 14 MiB). So the config's *methods*, which the daemon calls, live
here as mixins: each model of :mod:`modemd.config` inherits one, and so does its view. The
attributes each mixin reads are the model's fields, declared again for the type checker only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modemd.errors import ConfigError

if TYPE_CHECKING:  # what the mixins read of their models, for the type checker only
    from collections.abc import Callable, Sequence
    from typing import Protocol

    class _HasSecret(Protocol):
        """A PIN as given in the config file: pydantic's SecretStr in a model, a Secret in a
        view; both answer get_secret_value."""

        def get_secret_value(self) -> str: ...

    # What file_problems reads of each section (read-only, so the models' own types fit).
    class _Tls(Protocol):
        @property
        def ca(self) -> Path | None: ...
        @property
        def cert(self) -> Path | None: ...
        @property
        def key(self) -> Path | None: ...

    class _Mqtt(Protocol):
        @property
        def enabled(self) -> bool: ...
        @property
        def password_file(self) -> str | None: ...
        @property
        def tls(self) -> _Tls | None: ...
        def password(self) -> Secret | None: ...

    class _Influx(Protocol):
        @property
        def enabled(self) -> bool: ...
        @property
        def token_file(self) -> str | None: ...
        @property
        def ca(self) -> Path | None: ...
        def token(self) -> Secret | None: ...

    class _Smpp(Protocol):
        @property
        def name(self) -> str: ...
        @property
        def bind(self) -> str: ...
        @property
        def password_file(self) -> str | None: ...
        @property
        def tls_ca(self) -> Path | None: ...
        def password(self) -> Secret | None: ...

    class _Verify(Protocol):
        @property
        def enabled(self) -> bool: ...
        @property
        def secret_file(self) -> str | None: ...
        def secret(self, state_dir: Path) -> bytes: ...

    class _Gateway(Protocol):
        @property
        def state_dir(self) -> Path: ...


__all__ = [
    "DEFAULT_CONFIG_PATH",
    "SAFE_ID",
    "ConfigMethods",
    "InfluxMethods",
    "ModemMethods",
    "MqttMethods",
    "Secret",
    "SmppMethods",
    "VerifyMethods",
    "parse_duration",
    "read_secret",
]

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


class Secret:
    """A password, token or PIN: its text only through :meth:`get_secret_value`, never in a
    ``repr`` or a log line (as pydantic's SecretStr, which the views carry as this)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __len__(self) -> int:  # an empty one is false: systemd's default credential is "\n"
        return len(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return Secret, (self._value,)


def read_secret(*, file: str | None, env: str, what: str) -> Secret | None:
    """A secret from a file (relative names look in $CREDENTIALS_DIRECTORY) or from ``env``."""
    if file:
        path = Path(file)
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if not path.is_absolute() and creds:
            path = Path(creds) / path
        try:
            return Secret(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError([(what, f"cannot read secret file {path}: {exc.strerror}")]) from exc
    value = os.environ.get(env)
    return Secret(value) if value else None


class ModemMethods:
    """``[[modem]]``: which modem is meant, and its SIM PIN."""

    if TYPE_CHECKING:
        name: str
        pin: _HasSecret | None
        pin_file: str | None
        imei: str | None
        iccid: str | None

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


class MqttMethods:
    if TYPE_CHECKING:
        password_file: str | None

    def password(self) -> Secret | None:
        return read_secret(file=self.password_file, env="MODEMD_MQTT_PASSWORD",
                           what="mqtt.password_file")


class InfluxMethods:
    if TYPE_CHECKING:
        token_file: str | None

    def token(self) -> Secret | None:
        return read_secret(file=self.token_file, env="MODEMD_INFLUX_TOKEN",
                           what="influx.token_file")


class SmppMethods:
    if TYPE_CHECKING:
        name: str
        password_file: str | None

    def password(self) -> Secret | None:
        what = f"smpp.{self.name}.password_file"
        secret = read_secret(file=self.password_file, env="MODEMD_SMPP_PASSWORD_" +
                             self.name.upper().replace("-", "_"), what=what)
        if secret is not None and len(secret.get_secret_value().encode()) > 8:
            # SMPP 3.4 section 4.1: 9 octets with the NUL; a longer one would be cut short
            raise ConfigError([(what, "an SMPP password is at most 8 characters")])
        return secret


class VerifyMethods:
    if TYPE_CHECKING:
        secret_file: str | None

    def secret(self, state_dir: Path) -> bytes:
        """The per-gateway key of the code hashes: from a file, the environment, or made once."""
        given = read_secret(file=self.secret_file, env="MODEMD_VERIFY_SECRET",
                            what="verify.secret_file")
        if given is not None:
            value = given.get_secret_value().encode("utf-8")
            if len(value) < 16:
                raise ConfigError([("verify.secret_file", "the secret must be at least 16 "
                                    "characters")])
            return value
        path = state_dir / "verify.key"
        try:
            return path.read_bytes().strip()
        except FileNotFoundError:
            import secrets

            state_dir.mkdir(parents=True, exist_ok=True)
            key = secrets.token_hex(32).encode("ascii")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key + b"\n")
            return key
        except OSError as exc:
            raise ConfigError([("verify.secret_file", f"cannot read {path}: "
                                f"{exc.strerror}")]) from exc


class ConfigMethods:
    if TYPE_CHECKING:
        gateway: _Gateway
        modem: Sequence[ModemMethods]
        mqtt: _Mqtt | None
        influx: _Influx | None
        smpp: Sequence[_Smpp]
        verify: _Verify

    def senders(self) -> list[str]:
        """What [send] can send through: every modem, and the SMPP binds bound as
        transceivers."""
        return [m.name for m in self.modem] + [b.name for b in self.smpp
                                               if b.bind == "transceiver"]

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
        readers += [(b.password_file, b.password) for b in self.smpp]
        certs += [(f"smpp.{b.name}.tls_ca", b.tls_ca) for b in self.smpp]
        if self.influx is not None and self.influx.enabled:
            readers.append((self.influx.token_file, self.influx.token))
            certs.append(("influx.ca", self.influx.ca))
        if self.verify.enabled and self.verify.secret_file:
            readers.append((self.verify.secret_file,
                            lambda: self.verify.secret(self.gateway.state_dir)))
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

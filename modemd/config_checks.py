"""What `modemd config check` finds beyond the schema: a config that loads but cannot work,
and settings that work but leak (a password in clear over the network).

``problems(config)`` are errors (check exits 2); ``warnings(config)`` are printed and the
check still passes. Both are ``(key path, message)`` pairs, like :class:`ConfigError`.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from modemd.config import Config

Problem = tuple[str, str]

#: the time-series type each field type is written as (modemd/sinks/influx.py)
_WRITTEN_AS = {"int": "integer", "float": "float", "bool": "boolean", "string": "string",
               "enum": "string"}


#: what modemd writes to measurement ``modem`` itself (docs/contracts.md, time series)
_HEALTH_FIELDS = {"rssi_dbm": "float", "ber": "float", "storage_used": "float",
                  "storage_total": "float", "registration": "string", "operator": "string"}


def problems(config: Config) -> list[Problem]:
    """Settings that load but cannot work."""
    found: list[Problem] = []
    if not config.modem and not config.smpp:
        found.append(("modem", "no [[modem]] nor [[smpp]] bind configured: modemd would "
                      "receive nothing"))
    for key in ("sweep_interval", "health_interval", "multipart_timeout"):
        if getattr(config.gateway, key) <= 0:
            found.append((f"gateway.{key}", "must be more than 0"))
    for modem in config.modem:
        if modem.command_timeout <= 0:
            found.append((f"modem[{modem.name!r}].command_timeout",
                          "must be more than 0 (seconds to wait for an answer)"))
    for modem in config.modem:
        if not modem.port.strip():
            found.append((f"modem[{modem.name!r}].port", "must not be empty"))
    found += _shared_ports(config)
    if config.mqtt is not None and config.mqtt.enabled and not config.mqtt.host.strip():
        found.append(("mqtt.host", "must not be empty"))
    influx = config.influx
    if influx is not None and influx.enabled:
        if not influx.bucket.strip():
            found.append(("influx.bucket", "must not be empty"))
        if influx.timeout <= 0:
            found.append(("influx.timeout", "must be more than 0"))
    found += _field_type_clashes(config)
    return found


def _port_key(port: str) -> str:
    if "://" in port:
        return port
    try:
        return os.path.realpath(port)  # /dev/serial/by-id/... and /dev/ttyUSB2 are one port
    except (OSError, ValueError):
        return port


def _shared_ports(config: Config) -> list[Problem]:
    found: list[Problem] = []
    owner: dict[str, str] = {}
    for modem in config.modem:
        key = _port_key(modem.port)
        if key in owner:
            found.append((f"modem[{modem.name!r}].port",
                          f"{modem.port} is also the port of modem {owner[key]!r}: one port "
                          "serves one modem (bind by imei/iccid if the names move)"))
        owner.setdefault(key, modem.name)
    return found


def _field_type_clashes(config: Config) -> list[Problem]:
    """A time-series field keeps its type per measurement: two rules that write the same
    field of one measurement as different types lose the second type's points."""
    default = config.influx.measurement if config.influx is not None else None
    # (measurement, field) -> (type, rule); the health points of every modem come first
    seen: dict[tuple[str, str], tuple[str, str]] = {
        ("modem", name): (kind, "modem health") for name, kind in _HEALTH_FIELDS.items()}
    found: list[Problem] = []
    for rule in config.parser:
        measurement = rule.measurement
        if default is not None and "measurement" not in rule.model_fields_set:
            measurement = default
        for spec in rule.fields.values():
            written = [(spec.name, _WRITTEN_AS.get(spec.type, spec.type))]
            written += [(flag.name, "boolean") for _, flag in spec.flag_specs]
            for name, kind in written:
                earlier = seen.setdefault((measurement, name), (kind, rule.name))
                if earlier[0] != kind:
                    found.append((
                        f"parser[{rule.name!r}].fields.{name}",
                        f"written as {kind} to measurement {measurement!r}, where rule "
                        f"{earlier[1]!r} writes it as {earlier[0]}: a time-series field has "
                        "one type (rename the field or use another measurement)"))
    return found


# --- warnings -----------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost.localdomain") or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def warnings(config: Config) -> list[Problem]:
    """Settings that work but send a secret in clear over the network."""
    found: list[Problem] = []
    mqtt = config.mqtt
    if mqtt is not None and mqtt.enabled and mqtt.tls is None and not is_loopback(mqtt.host):
        has_password = bool(mqtt.password_file) or bool(os.environ.get("MODEMD_MQTT_PASSWORD"))
        if has_password:
            found.append(("mqtt.tls", f"the MQTT password travels in clear to {mqtt.host}: "
                          "add a [mqtt.tls] table (the system CA store is used without ca)"))
        else:
            found.append(("mqtt.tls", f"messages travel in clear to {mqtt.host}: consider "
                          "[mqtt.tls]"))
    if mqtt is not None and mqtt.enabled and mqtt.tls is not None and mqtt.tls.insecure:
        found.append(("mqtt.tls.insecure", "the broker's certificate name is not checked: "
                      "anyone on the path can pose as the broker and read the password"))
    influx = config.influx
    if influx is not None and influx.enabled:
        url = urlsplit(influx.url)
        has_token = bool(influx.token_file) or bool(os.environ.get("MODEMD_INFLUX_TOKEN"))
        has_token = has_token or bool(url.password)
        if url.scheme == "http" and has_token and not is_loopback(url.hostname or ""):
            found.append(("influx.url", f"the time-series token travels in clear to "
                          f"{url.hostname}: use https://"))
        if url.scheme == "https" and not influx.verify_ssl:
            found.append(("influx.verify_ssl", "the server's certificate is not checked: "
                          "anyone on the path can read the token"))
    return found


__all__ = ["is_loopback", "problems", "warnings"]

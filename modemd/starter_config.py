"""`modemd config init`: a commented starting configuration for this machine.

The text is TOML that ``modemd config check`` accepts as written: one ``[[modem]]`` per AT
port found (or a placeholder to edit), MQTT on localhost, the time-series store commented
out, one example parser rule and the outbox bounds. ``config/modemd.example.toml`` is the
reference with every key.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Sequence

PLACEHOLDER_PORT = "/dev/ttyUSB2"


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON string escaping is valid TOML for these values)."""
    return json.dumps(value, ensure_ascii=False)


def default_gateway_id() -> str:
    """The host name as a gateway id (letters, digits, '-', '_'; at most 64)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname().split(".")[0]).strip("-")
    return name[:64] or "gateway"


def _modem_sections(ports: Sequence[str]) -> list[str]:
    if not ports:
        return [
            "# No modem port was found when this file was written. Plug the modem in, run",
            "# `modemd ports` and `modemd probe <port>`, and put its port here.",
            "[[modem]]",
            'name = "modem1"',
            f"port = {_toml_string(PLACEHOLDER_PORT)}   # EDIT: the modem's AT port",
            *_MODEM_OPTIONS,
        ]
    lines: list[str] = []
    for number, port in enumerate(dict.fromkeys(ports), start=1):
        if lines:
            lines.append("")
        lines += [
            "[[modem]]",
            f'name = "modem{number}"                 # a short name: MQTT topic level and tag',
            f"port = {_toml_string(port)}",
            *_MODEM_OPTIONS,
        ]
    return lines


_MODEM_OPTIONS = (
    "# baudrate = 115200                 # USB modems ignore it; UART modems (SIM800) need it",
    '# pin_file = "sim-pin"              # only if the SIM has a PIN lock (see the top)',
    '# storage = "auto"                  # or "SM" (SIM) / "ME" (modem memory)',
    '# allowed_senders = ["+49151*"]     # accept only these senders (glob patterns)',
    '# imei = "356938035643809"          # re-find the modem by IMEI if its port changes',
)


def starter_config(ports: Sequence[str], *, gateway_id: str | None = None) -> str:
    """A commented TOML configuration with one ``[[modem]]`` per port (or a placeholder)."""
    gw = gateway_id or default_gateway_id()
    lines = [
        "# modemd configuration, written by `modemd config init`.",
        "#",
        "# Check it with `modemd config check <this file>`; every key is explained in",
        "# config/modemd.example.toml. Secrets (SIM PIN, MQTT password, InfluxDB token) live in",
        "# files, never here: a relative file name is looked up in $CREDENTIALS_DIRECTORY, where",
        "# systemd's LoadCredential= puts /etc/modemd/sim-pin, /etc/modemd/mqtt-password and",
        "# /etc/modemd/influx-token (see systemd/modemd.service). Durations: 30, \"90s\", \"15m\",",
        "# \"7d\".",
        "",
        "[gateway]",
        f"id = {_toml_string(gw)}            # MQTT topics: modemd/<id>/...; a time-series tag",
        'state_dir = "/var/lib/modemd"      # the journal and outbox (SQLite); systemd creates it',
        "# sweep_interval = \"60s\"           # how often the modem storage is read anyway",
        "# health_interval = \"60s\"          # signal / registration / storage poll",
        "# default_country_code = \"49\"      # to match national sender numbers (0151...)",
        "",
        *_modem_sections(ports),
        "",
        "[mqtt]",
        'host = "localhost"',
        "port = 1883",
        '# username = "modemd"',
        '# password_file = "mqtt-password"  # under systemd: /etc/modemd/mqtt-password',
        'base_topic = "modemd"',
        "qos = 1",
        "homeassistant = false             # true: Home Assistant MQTT discovery",
        "# [mqtt.tls]                       # TLS (the system CA store unless ca is given)",
        '# ca = "/etc/ssl/certs/ca-certificates.crt"',
        "",
        "# A time-series store that speaks the InfluxDB v2 write API (InfluxDB 1.8+/2.x/3.x,",
        "# VictoriaMetrics, QuestDB). Remove the '#' to enable it.",
        "# [influx]",
        '# url = "http://localhost:8086"',
        '# org = "home"',
        '# bucket = "modemd"',
        '# token_file = "influx-token"      # under systemd: /etc/modemd/influx-token',
        "",
        "# One parser rule per kind of device: which messages it takes and how their text",
        "# becomes a reading (published to modemd/<id>/device/<device>/state and written as a",
        "# point). Test a rule with: modemd parse 'ID=PUMP01;BAT=3.71;T=21.5' --sender",
        "# +4915112345678 -c <this file>. Messages no rule takes are still published on",
        "# modemd/<id>/sms (and as dead letters with the reason). More examples:",
        "# config/devices-*.toml.",
        "[[parser]]",
        'name = "pump-controller"',
        'match = { sender = "+49151*", text = "^ID=" }   # EDIT: your devices\' numbers',
        'format = "kv"                     # ID=PUMP01;BAT=3.71;T=21.5',
        'device_field = "ID"',
        'measurement = "device_status"',
        "[parser.fields]",
        'BAT = { name = "battery", type = "float", unit = "V", device_class = "voltage" }',
        'T = { name = "temperature", type = "float", unit = "°C", device_class = "temperature" }',
        "",
        "[outbox]",
        "max_rows = 200000                 # per sink, while MQTT / the store is unreachable",
        'max_age = "30d"                   # older undelivered rows are dropped (and counted)',
        "",
        "# Sending SMS (modemd/<gw>/sms/send, `modemd sms send`): off until you enable it.",
        "[send]",
        "enabled = false",
        'allowed_destinations = []         # EDIT: e.g. ["+49151*"]; empty refuses all',
        "max_per_hour = 60",
        "",
    ]
    return "\n".join(lines)


__all__ = ["PLACEHOLDER_PORT", "default_gateway_id", "starter_config"]

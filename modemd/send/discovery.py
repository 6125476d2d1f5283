"""Home Assistant discovery for sending: a ``notify`` entity per gateway, a ``button`` per
configured device command (``[devices.X] commands = { request_status = "STATUS?" }``).

Both publish an ordinary send request on ``<base>/<gw>/sms/send``, so everything a request
goes through (allow-list, rate limit, status topic) applies to them as well.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modemd.payload.discovery import (
    _availability,
    _device_block,
    _gateway_identifier,
    _ids,
    _origin,
    _slug,
    topic_id,
)

if TYPE_CHECKING:
    from modemd.config import SendConfig
    from modemd.payload.config import DeviceSpec

DiscoveryMessage = tuple[str, dict[str, Any]]


def send_topic(base_topic: str, gateway_id: str) -> str:
    return f"{base_topic}/{gateway_id}/sms/send"


def notify_template(notify_to: str | None) -> str:
    """The notify entity's message → request. Without ``notify_to`` the message must itself be a
    request document (``{"to": ..., "text": ...}``)."""
    if notify_to is None:
        return "{{ value }}"
    return '{"to": ' + json.dumps(notify_to) + ', "text": {{ value | tojson }}}'


def send_discovery_messages(
    send: SendConfig,
    devices: Mapping[str, DeviceSpec],
    *,
    gateway_id: str,
    base_topic: str = "modemd",
    discovery_prefix: str = "homeassistant",
) -> list[DiscoveryMessage]:
    command_topic = send_topic(base_topic, gateway_id)
    availability = _availability(base_topic, gateway_id)
    node = topic_id(gateway_id)
    notify: dict[str, Any] = {"name": "SMS"}
    _ids(notify, "notify", f"modemd_{gateway_id}_sms", _slug(f"{gateway_id}_sms"), True)
    notify.update({
        "command_topic": command_topic,
        "command_template": notify_template(send.notify_to),
        "qos": 1,
        "retain": False,
        "icon": "mdi:message-text",
        "availability": availability,
        "device": {"identifiers": [_gateway_identifier(gateway_id)]},
        "origin": _origin(),
    })
    messages: list[DiscoveryMessage] = [(f"{discovery_prefix}/notify/{node}/sms/config", notify)]
    for device, spec in sorted(devices.items()):
        if not spec.commands or not spec.numbers:
            continue
        number = str(spec.numbers[0])
        for name, text in sorted(spec.commands.items()):
            button: dict[str, Any] = {"name": name.replace("_", " ").capitalize()}
            _ids(button, "button", f"modemd_{gateway_id}_{device}_{name}",
                 _slug(f"{gateway_id}_{device}_{name}"), True)
            button.update({
                "command_topic": command_topic,
                "payload_press": json.dumps({"to": number, "text": text},
                                            ensure_ascii=False),
                "qos": 1,
                "retain": False,
                "availability": availability,
                "device": _device_block(gateway_id, device, spec),
                "origin": _origin(),
            })
            messages.append(
                (f"{discovery_prefix}/button/{topic_id(f'{gateway_id}_{device}')}/"
                 f"{topic_id(name)}/config", button))
    return messages

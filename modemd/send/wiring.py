"""How the daemon and the CLI build the send service from the config (kept out of daemon.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from modemd.config import Config
from modemd.send.discovery import send_discovery_messages
from modemd.send.service import SendService
from modemd.sinks.base import Sink
from modemd.store import Store


def mqtt_enabled(config: Config) -> bool:
    return config.mqtt is not None and config.mqtt.enabled


def send_service(config: Config, store: Store, *,
                 on_published: Callable[[], None] = lambda: None) -> SendService:
    """A service over ``store``; status documents go to the MQTT outbox when MQTT is on."""
    sinks = ("mqtt",) if mqtt_enabled(config) else ()
    return SendService(store, config.send, modems=[m.name for m in config.modem],
                       status_sinks=sinks, response_sinks=sinks,
                       default_country_code=config.gateway.default_country_code,
                       on_published=on_published)


def build_send_service(config: Config, store: Store, sinks: Sequence[Sink], *,
                       on_published: Callable[[], None]) -> SendService:
    """The daemon's service: interrupted sends settled as ``unknown``, MQTT requests wired."""
    service = send_service(config, store, on_published=on_published)
    service.recover_interrupted()
    for sink in sinks:
        if hasattr(sink, "on_send_request"):
            def accept(payload: bytes, response_topic: str | None,
                       correlation: bytes | None) -> None:
                service.accept(payload, origin="mqtt", response_topic=response_topic,
                               correlation=correlation)

            sink.on_send_request = accept
    return service


def send_announcements(config: Config) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant's notify entity and command buttons, when sending is on."""
    mq = config.mqtt
    if not config.send.enabled or mq is None or not mq.homeassistant:
        return []
    return send_discovery_messages(config.send, config.devices, gateway_id=config.gateway.id,
                                   base_topic=mq.base_topic, discovery_prefix=mq.discovery_prefix)

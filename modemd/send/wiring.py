"""How the daemon and the CLI build the send service from the config (kept out of daemon.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modemd.send.service import SendService
from modemd.sinks.mqtt import Renderer, Request, RequestRoute, Topics
from modemd.store import Store

if TYPE_CHECKING:
    from modemd.config import Config


def mqtt_enabled(config: Config) -> bool:
    return config.mqtt is not None and config.mqtt.enabled


def send_service(config: Config, store: Store, *,
                 on_published: Callable[[], None] = lambda: None) -> SendService:
    """A service over ``store``; status documents go to the MQTT outbox when MQTT is on."""
    sinks = ("mqtt",) if mqtt_enabled(config) else ()
    return SendService(store, config.send, modems=config.senders(),
                       status_sinks=sinks, response_sinks=sinks,
                       default_country_code=config.gateway.default_country_code,
                       on_published=on_published)


def build_send_service(config: Config, store: Store, *,
                       on_published: Callable[[], None]) -> SendService:
    """The daemon's service, with interrupted sends settled as ``unknown``."""
    service = send_service(config, store, on_published=on_published)
    service.recover_interrupted()
    return service


def mqtt_routes(service: SendService, topics: Topics,
                ) -> tuple[dict[str, RequestRoute], dict[str, Renderer]]:
    """The request topic and the outbox kinds the MQTT sink takes for sending."""

    def accept(request: Request) -> None:
        service.accept(request.payload, origin="mqtt", response_topic=request.response_topic,
                       correlation=request.correlation)

    def refuse(request: Request, exc: Exception) -> tuple[str, Any]:
        # the asker must not take silence for "queued": say so at once (not via the outbox)
        try:
            request_id = json.loads(request.payload).get("id")
        except (ValueError, AttributeError):
            request_id = None
        return topics.sms_status, {"id": request_id, "state": "failed", "parts": 0, "mr": [],
                                   "error": f"not queued: {exc}", "at": None}

    def status(body: dict[str, Any]) -> tuple[str, Any, bytes | None]:
        return topics.sms_status, body, None

    def response(body: dict[str, Any]) -> tuple[str, Any, bytes | None]:
        correlation = body.get("correlation_b64")
        return (str(body["topic"]), body["status"],
                base64.b64decode(correlation) if correlation else None)

    return ({topics.sms_send: RequestRoute(accept, refuse)},
            {"send_status": status, "send_response": response})


def send_announcements(config: Config) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant's notify entity and command buttons, when sending is on."""
    mq = config.mqtt
    if not config.send.enabled or mq is None or not mq.homeassistant:
        return []
    from modemd.send.discovery import send_discovery_messages  # Home Assistant's, when on

    return send_discovery_messages(config.send, config.devices, gateway_id=config.gateway.id,
                                   base_topic=mq.base_topic, discovery_prefix=mq.discovery_prefix)

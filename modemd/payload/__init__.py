"""Payload parsers: a decoded status SMS in, a typed reading of a known device out.

Pure code, no I/O. See :class:`PayloadEngine` for the entry point, :mod:`.config` for the
``[[parser]]``/``[devices]`` models and :mod:`.discovery` for Home Assistant discovery.
"""

from typing import TYPE_CHECKING

from modemd.payload.config import (
    DeviceSpec,
    FieldSpec,
    MatchSpec,
    ParserRule,
    PayloadConfig,
    device_id_problem,
    load_payload_config,
    validation_problems,
)
from modemd.payload.engine import PayloadEngine
from modemd.payload.model import FieldValue, InboundMessage, Reading
from modemd.payload.senders import AllowList, SenderPatterns, normalise_e164

if TYPE_CHECKING:
    from modemd.payload.discovery import (
        discovery_messages,
        gateway_discovery_messages,
        modem_discovery_messages,
    )

_DISCOVERY = frozenset({"discovery_messages", "gateway_discovery_messages",
                        "modem_discovery_messages"})


def __getattr__(name: str) -> object:
    # Home Assistant discovery loads on first use: a daemon without it need not keep it
    if name in _DISCOVERY:
        from modemd.payload import discovery

        return getattr(discovery, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AllowList",
    "DeviceSpec",
    "FieldSpec",
    "FieldValue",
    "InboundMessage",
    "MatchSpec",
    "ParserRule",
    "PayloadConfig",
    "PayloadEngine",
    "Reading",
    "SenderPatterns",
    "device_id_problem",
    "discovery_messages",
    "gateway_discovery_messages",
    "load_payload_config",
    "modem_discovery_messages",
    "normalise_e164",
    "validation_problems",
]

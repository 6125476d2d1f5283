"""Payload parsers: a decoded status SMS in, a typed reading of a known device out.

Pure code, no I/O. See :class:`PayloadEngine` for the entry point, :mod:`.config` for the
``[[parser]]``/``[devices]`` models and :mod:`.discovery` for Home Assistant discovery.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from modemd.payload.engine import PayloadEngine
from modemd.payload.model import FieldValue, InboundMessage, Reading
from modemd.payload.senders import AllowList, SenderPatterns, normalise_e164
from modemd.payload.spec import device_id_problem

if TYPE_CHECKING:
    from modemd.payload.config import (
        DeviceSpec,
        FieldSpec,
        MatchSpec,
        ParserRule,
        PayloadConfig,
        load_payload_config,
        validation_problems,
    )
    from modemd.payload.discovery import (
        discovery_messages,
        gateway_discovery_messages,
        modem_discovery_messages,
    )

# Loaded on first use: the running daemon needs neither the config models (it runs on views
# of them, see modemd.config_view) nor, without Home Assistant, discovery.
_LAZY = {
    **dict.fromkeys(("DeviceSpec", "FieldSpec", "MatchSpec", "ParserRule", "PayloadConfig",
                     "load_payload_config", "validation_problems"), "modemd.payload.config"),
    **dict.fromkeys(("discovery_messages", "gateway_discovery_messages",
                     "modem_discovery_messages"), "modemd.payload.discovery"),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)

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

"""Start Home Assistant (``hass``) with its mDNS socket kept on 127.0.0.1.

Run by scripts/interop_ha.py with the Home Assistant venv's Python. Home Assistant's HTTP
client helper always creates a zeroconf instance (to resolve ``.local`` names), which binds
UDP 5353 on every interface; the interoperability run may only listen on 127.0.0.1. The
zeroconf instance Home Assistant makes (``HaZeroconf``) is given ``interfaces=["127.0.0.1"]``
``unicast=True`` and IPv4 only: no multicast listener, one loopback socket. MQTT is unaffected.
"""

from __future__ import annotations

import sys
from typing import Any


def _loopback_only() -> None:
    from homeassistant.components.zeroconf import models
    from zeroconf import IPVersion

    original = models.HaZeroconf.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["interfaces"] = ["127.0.0.1"]
        kwargs["unicast"] = True
        kwargs["ip_version"] = IPVersion.V4Only
        original(self, *args, **kwargs)

    models.HaZeroconf.__init__ = init  # type: ignore[method-assign]


if __name__ == "__main__":
    _loopback_only()
    from homeassistant.__main__ import main

    sys.argv[0] = "hass"
    sys.exit(main())

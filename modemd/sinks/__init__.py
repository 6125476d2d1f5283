"""The sinks: where processed rows go (MQTT, the time-series store), each from the outbox."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

__all__: list[str] = []

_loading = threading.Lock()


def _defer_import(name: str) -> None:
    """Let *name* be imported without running it: a placeholder stands in for the module
    until the first attribute is read from it, which imports the module itself and hands on."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    placeholder = types.ModuleType(name, f"{name}, imported on its first use")
    placeholder.__spec__ = spec

    def first_use(attribute: str) -> object:
        with _loading:
            if sys.modules.get(name) is placeholder:
                del sys.modules[name]
            module = importlib.import_module(name)  # sets the parent's attribute too
        return getattr(module, attribute)

    placeholder.__getattr__ = first_use  # type: ignore[method-assign]
    sys.modules[name] = placeholder
    parent, _, child = name.rpartition(".")
    setattr(importlib.import_module(parent), child, placeholder)


# paho-mqtt imports urllib.request (and with it http.client, email and more: about 1 MiB of a
# running daemon) but reads it only for proxy settings, and only when PySocks is installed.
_defer_import("urllib.request")

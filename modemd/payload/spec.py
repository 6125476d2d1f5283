"""What the payload rules mean at run time, without the validation library.

The engine and Home Assistant discovery run in the resident daemon, which works on plain
views of the validated models (:mod:`modemd.config_view`), so the limits and checks they
share with the models of :mod:`modemd.payload.config` live here.
"""

from __future__ import annotations

__all__ = ["INT64_MAX", "INT64_MIN", "MAX_DEVICE_ID_LEN", "device_id_problem"]

MAX_DEVICE_ID_LEN = 64
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def device_id_problem(value: object) -> str | None:
    """Why *value* cannot be a device id (an MQTT topic level and a tag), or ``None``.

    A device id is 1-64 printable characters without whitespace and without ``/``, ``+``, ``#``.
    """
    if not isinstance(value, str):
        return "device id must be a string"
    if not value:
        return "device id is empty"
    if len(value) > MAX_DEVICE_ID_LEN:
        return f"device id longer than {MAX_DEVICE_ID_LEN} characters"
    for ch in value:
        if ch in "/+#":
            return f"device id contains {ch!r}"
        if not ch.isprintable() or ch.isspace():
            return "device id contains whitespace or control characters"
    return None

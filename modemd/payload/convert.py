"""Convert a raw payload value to its field's type, then scale, offset and range-check it.

Text is parsed strictly (ASCII digits only: no ``1_000``, no non-ASCII digits, no ``nan``/
``inf``); integers must fit a signed 64-bit field (what the time-series store takes), floats
must be finite. :func:`convert` raises :class:`ConversionError` (a ``ValueError``) with a short
reason; the engine wraps it into a :class:`~modemd.errors.PayloadError` naming rule and field.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from modemd.payload.formats import show
from modemd.payload.model import FieldValue
from modemd.payload.spec import INT64_MAX, INT64_MIN

if TYPE_CHECKING:
    from modemd.payload.config import FieldSpec

__all__ = ["FALSE_WORDS", "MAX_STRING_CHARS", "TRUE_WORDS", "ConversionError", "convert"]

TRUE_WORDS = frozenset({"1", "true", "on", "yes"})
FALSE_WORDS = frozenset({"0", "false", "off", "no"})
MAX_STRING_CHARS = 256

_INT_RE = re.compile(r"[+-]?[0-9]{1,19}")
_FLOAT_RE = re.compile(
    r"[+-]?(?:[0-9]{1,64}(?:\.[0-9]{0,64})?|\.[0-9]{1,64})(?:[eE][+-]?[0-9]{1,4})?"
)


class ConversionError(ValueError):
    """A raw value does not convert to its field's type or fails its checks."""


def _kind(raw: object) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "a boolean"
    if isinstance(raw, dict):
        return "an object"
    if isinstance(raw, list):
        return "an array"
    return type(raw).__name__


def _to_int(raw: object) -> int:
    if isinstance(raw, bool):
        raise ConversionError("expected an integer, got a boolean")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if not math.isfinite(raw) or not raw.is_integer():
            raise ConversionError(f"{show(raw)} is not an integer")
        if not INT64_MIN <= raw <= INT64_MAX:
            raise ConversionError(f"{show(raw)} does not fit a 64-bit integer")
        value = int(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if not _INT_RE.fullmatch(text):
            raise ConversionError(f"{show(raw)} is not an integer")
        value = int(text)
    else:
        raise ConversionError(f"expected an integer, got {_kind(raw)}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ConversionError(f"{show(value)} does not fit a 64-bit integer")
    return value


def _to_float(raw: object) -> float:
    if isinstance(raw, bool):
        raise ConversionError("expected a number, got a boolean")
    if isinstance(raw, int):
        try:
            value = float(raw)
        except OverflowError:
            raise ConversionError(f"{show(raw)} is out of range") from None
    elif isinstance(raw, float):
        value = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if not _FLOAT_RE.fullmatch(text):
            raise ConversionError(f"{show(raw)} is not a number")
        value = float(text)
    else:
        raise ConversionError(f"expected a number, got {_kind(raw)}")
    if not math.isfinite(value):
        raise ConversionError(f"{show(raw)} is not a finite number")
    return value


def _to_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return raw == 1
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ConversionError(f"{show(raw)} is not a boolean (1/0, true/false, on/off, yes/no)")


def _to_string(raw: object) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ConversionError(f"expected a string, got {_kind(raw)}")
    text = raw.strip() if isinstance(raw, str) else str(raw)
    if len(text) > MAX_STRING_CHARS:
        raise ConversionError(f"string longer than {MAX_STRING_CHARS} characters")
    if not text.isprintable():
        raise ConversionError(f"{show(text)} contains control characters")
    return text


def _to_enum(raw: object, spec: FieldSpec) -> str:
    if isinstance(raw, bool):
        key = "true" if raw else "false"
    elif isinstance(raw, str):
        key = raw.strip()
    elif isinstance(raw, int):
        key = str(raw)
    else:
        raise ConversionError(f"expected an enum value, got {_kind(raw)}")
    values = spec.values or {}
    if key not in values:
        allowed = ", ".join(sorted(values)[:10])
        raise ConversionError(f"{show(key)} is not one of {allowed}")
    return values[key]


def _check_range(value: float, spec: FieldSpec) -> None:
    if spec.min is not None and value < spec.min:
        raise ConversionError(f"{value} is below the minimum {spec.min}")
    if spec.max is not None and value > spec.max:
        raise ConversionError(f"{value} is above the maximum {spec.max}")


def convert(raw: object, spec: FieldSpec) -> FieldValue:
    """Convert *raw* for *spec*: type, then ``value * scale + offset``, then ``min``/``max``."""
    kind = spec.type
    if kind == "int":
        number = _to_int(raw)
        if spec.scale is not None:
            number *= int(spec.scale)
        if spec.offset is not None:
            number += int(spec.offset)
        if not INT64_MIN <= number <= INT64_MAX:
            raise ConversionError(f"{show(number)} does not fit a 64-bit integer after scaling")
        _check_range(number, spec)
        return number
    if kind == "float":
        real = _to_float(raw)
        if spec.scale is not None or spec.offset is not None:
            real = real * (spec.scale if spec.scale is not None else 1.0) + (spec.offset or 0.0)
            if not math.isfinite(real):
                raise ConversionError("value is out of range after scaling")
            # 2149 * 0.01 is 21.490000000000002; keep the 15 significant digits a double holds.
            real = float(f"{real:.15g}")
        _check_range(real, spec)
        return real
    if kind == "bool":
        return _to_bool(raw)
    if kind == "string":
        return _to_string(raw)
    return _to_enum(raw, spec)

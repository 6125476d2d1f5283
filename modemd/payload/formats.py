"""Payload formats: text (or bytes) in, raw values keyed by source key out.

One small function per format; :data:`TEXT_PARSERS` maps a format name to its text parser.
Every function raises :class:`modemd.errors.PayloadError` (and nothing else) on bad input and
returns only the keys the rule knows (its field keys and its ``device_field``); keys it does not
know are dropped or, when the rule says ``ignore_unknown = false``, rejected.

Raw values are strings (kv, csv, regex), JSON values (json) or numbers (binary); converting
them to the field types is :mod:`modemd.payload.convert`'s job.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from modemd.errors import PayloadError
from modemd.payload.regexes import compile_pattern, search

if TYPE_CHECKING:
    from modemd.payload.config import ParserRule

__all__ = [
    "MAX_DATA_BYTES",
    "MAX_TEXT_CHARS",
    "TEXT_PARSERS",
    "RawValues",
    "TextParser",
    "binary_payload",
    "parse_binary",
    "parse_csv",
    "parse_json",
    "parse_kv",
    "parse_regex",
    "show",
]

#: Longest text accepted: 255 concatenated GSM-7 parts of 153 characters is 39,015.
MAX_TEXT_CHARS = 40_000
#: Longest binary payload accepted (255 parts of 134 octets is 34,170).
MAX_DATA_BYTES = 40_000

RawValues = dict[str, object]
TextParser = Callable[[str, "ParserRule"], RawValues]


def show(value: object, limit: int = 40) -> str:
    """A short, safe rendering of untrusted input for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def known_keys(rule: ParserRule) -> frozenset[str]:
    """The source keys a rule consumes: its field keys and its ``device_field``."""
    return _known_keys(rule.fields.keys(), rule.device_key)


def _known_keys(fields: Iterable[str], device_field: str | None) -> frozenset[str]:
    keys = set(fields)
    if device_field is not None:
        keys.add(device_field)
    return frozenset(keys)


def _reject_unknown(keys: Iterable[str], known: frozenset[str], rule: ParserRule) -> None:
    if rule.ignores_unknown:
        return
    unknown = sorted(k for k in keys if k not in known)
    if unknown:
        listed = ", ".join(show(k, 24) for k in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise PayloadError(f"unknown key(s) {listed}{more}", rule=rule.name)


# ----------------------------------------------------------------------------------------- kv


@lru_cache(maxsize=256)
def _pair_splitter(separators: tuple[str, ...]) -> re.Pattern[str]:
    parts = [r"\s+" if sep.isspace() else re.escape(sep) for sep in separators]
    return re.compile("|".join(parts))


def parse_kv(text: str, rule: ParserRule) -> RawValues:
    """``ID=PUMP01;BAT=3.71`` → ``{"ID": "PUMP01", "BAT": "3.71"}``.

    Pairs are split on any of ``pair_separator`` (a blank separator means any run of
    whitespace), key and value on the first ``kv_separator``; both are stripped. Empty segments
    are skipped; a segment without separator, an empty key or a repeated key is malformed.
    """
    known = known_keys(rule)
    out: RawValues = {}
    seen: set[str] = set()
    kv_sep = rule.kv_separator
    for piece in _pair_splitter(rule.pair_separator).split(text):
        segment = piece.strip()
        if not segment:
            continue
        key, sep, value = segment.partition(kv_sep)
        key = key.strip()
        if not sep or not key:
            raise PayloadError(f"malformed key{kv_sep}value pair {show(segment)}", rule=rule.name)
        if key in seen:
            raise PayloadError(f"duplicate key {show(key)}", rule=rule.name)
        seen.add(key)
        if key in known:
            out[key] = value.strip()
    if not seen:
        raise PayloadError(f"no key{kv_sep}value pairs in the text", rule=rule.name)
    _reject_unknown(seen, known, rule)
    return out


# --------------------------------------------------------------------------------------- json


class _ForbiddenConstant(ValueError):
    pass


def _reject_constant(name: str) -> object:
    raise _ForbiddenConstant(name)


def _json_lookup(doc: dict[str, object], key: str) -> tuple[bool, object]:
    if key in doc:
        return True, doc[key]
    node: object = doc
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def parse_json(text: str, rule: ParserRule) -> RawValues:
    """A JSON object; field keys are top-level keys or dotted paths (``"gps.lat"``).

    NaN/Infinity literals, non-objects and nesting deeper than the interpreter can decode
    are rejected.
    """
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except _ForbiddenConstant as exc:
        raise PayloadError(f"JSON constant {exc} is not allowed", rule=rule.name) from None
    except RecursionError:
        raise PayloadError("JSON nested too deeply", rule=rule.name) from None
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        raise PayloadError(f"malformed JSON: {show(str(exc), 80)}", rule=rule.name) from None
    if not isinstance(doc, dict):
        raise PayloadError(f"JSON payload is a {type(doc).__name__}, not an object", rule=rule.name)
    known = known_keys(rule)
    out: RawValues = {}
    for key in known:
        found, value = _json_lookup(doc, key)
        if found:
            out[key] = value
    top_level = frozenset(k.split(".", 1)[0] for k in known) | known
    _reject_unknown(doc.keys(), top_level, rule)
    return out


# ---------------------------------------------------------------------------------------- csv


def parse_csv(text: str, rule: ParserRule) -> RawValues:
    """One line of delimiter-separated values (``"`` quoting allowed), cells stripped.

    Columns are named by ``columns`` or, without it, by the field keys in order. Missing
    trailing cells are missing values; extra cells are dropped or rejected (``ignore_unknown``).
    """
    if "\n" in text or "\r" in text:
        raise PayloadError("CSV payload has more than one line", rule=rule.name)
    import csv  # here: a daemon without csv rules does not carry it

    try:
        rows = list(csv.reader([text], delimiter=rule.delimiter, strict=True))
    except csv.Error as exc:
        raise PayloadError(f"malformed CSV: {exc}", rule=rule.name) from None
    if len(rows) != 1 or not rows[0]:
        raise PayloadError("CSV payload has no values", rule=rule.name)
    cells = rows[0]
    names = rule.columns if rule.columns is not None else tuple(rule.fields)
    if len(cells) > len(names) and not rule.ignores_unknown:
        raise PayloadError(
            f"{len(cells)} columns, the rule expects at most {len(names)}", rule=rule.name
        )
    known = known_keys(rule)
    return {
        name: cell.strip()
        for name, cell in zip(names, cells, strict=False)
        if name in known
    }


# -------------------------------------------------------------------------------------- regex


def parse_regex(text: str, rule: ParserRule) -> RawValues:
    """The named groups of the first match of ``pattern`` (``re.search``)."""
    if rule.pattern is None:  # prevented by config validation
        raise PayloadError("regex rule without pattern", rule=rule.name)
    match = search(compile_pattern(rule.pattern), text, rule=rule.name, what="pattern")
    if match is None:
        raise PayloadError("text does not match the rule's pattern", rule=rule.name)
    known = known_keys(rule)
    return {k: v for k, v in match.groupdict().items() if v is not None and k in known}


TEXT_PARSERS: dict[str, TextParser] = {
    "kv": parse_kv,
    "json": parse_json,
    "csv": parse_csv,
    "regex": parse_regex,
}


# ------------------------------------------------------------------------------------- binary


@lru_cache(maxsize=256)
def _struct(fmt: str) -> struct.Struct:
    return struct.Struct(fmt)


def binary_payload(text: str | None, data: bytes | None, rule: ParserRule) -> bytes:
    """The bytes a binary rule parses: the 8-bit data (``raw``) or the decoded hex/base64 text."""
    if rule.encoding_in == "raw":
        if data is None:
            raise PayloadError("rule expects 8-bit data, the message is text", rule=rule.name)
        return data
    if text is None:
        raise PayloadError(
            f"rule expects {rule.encoding_in} text, the message is 8-bit data", rule=rule.name
        )
    compact = "".join(text.split())
    try:
        if rule.encoding_in == "hex":
            return bytes.fromhex(compact)
        return base64.b64decode(compact, validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise PayloadError(
            f"malformed {rule.encoding_in}: {show(str(exc), 80)}", rule=rule.name
        ) from None


def parse_binary(data: bytes, rule: ParserRule) -> RawValues:
    """Unpack ``data[offset:]`` with the rule's struct layout; raw values keyed by source key."""
    layout = _struct(rule.struct_format)
    need = rule.offset + layout.size
    if len(data) < need:
        raise PayloadError(
            f"payload is {len(data)} bytes, the rule needs {need}", rule=rule.name
        )
    if len(data) > need and not rule.ignores_unknown:
        raise PayloadError(
            f"{len(data) - need} unexpected trailing byte(s) after {need}", rule=rule.name
        )
    values = layout.unpack_from(data, rule.offset)
    return dict(zip(rule.fields, values, strict=True))

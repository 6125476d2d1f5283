"""A send request, as a caller writes it (MQTT JSON or the CLI), checked field by field.

``{"id": "cmd-17", "to": "+4915112345678", "text": "STATUS?"}``; instead of ``text``,
``data_b64`` (+ optional ``port``) for 8-bit data; optional ``modem``, ``flash``,
``valid_for`` ("1d"). Anything else is refused with a reason a person can act on.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from modemd.errors import ModemdError
from modemd.payload.senders import normalise_e164
from modemd.settings import parse_duration

MAX_ID_LENGTH = 64
MAX_TEXT_LENGTH = 10_000
MAX_PAYLOAD = 64 * 1024  # octets of JSON; more is refused before it is parsed
MIN_VALIDITY = 300.0
MAX_VALIDITY = 63 * 7 * 86400.0
_KEYS = frozenset({"id", "to", "text", "data_b64", "port", "modem", "flash", "valid_for"})
_MODEM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RequestRefused(ModemdError):
    """A request that will not be sent; ``reason`` says why (published as the status error)."""

    def __init__(self, reason: str, *, request_id: str | None = None,
                 to: str | None = None) -> None:
        self.reason = reason
        self.request_id = request_id
        self.to = to
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class SendRequest:
    id: str
    to: str  # E.164 ("+4915...") or the digits of a short code
    text: str | None = None
    data: bytes | None = None
    port: int | None = None
    modem: str | None = None
    flash: bool = False
    valid_for: float | None = None  # seconds

    def stored(self) -> dict[str, Any]:
        """What the queue keeps of the request (JSON)."""
        doc: dict[str, Any] = {"to": self.to, "flash": self.flash, "valid_for": self.valid_for}
        if self.data is not None:
            doc["data_b64"] = base64.b64encode(self.data).decode("ascii")
            doc["port"] = self.port
        else:
            doc["text"] = self.text
        if self.modem:
            doc["modem"] = self.modem
        return doc


def new_request_id() -> str:
    return "sms-" + uuid.uuid4().hex[:16]


def _request_id(value: Any) -> str:
    if value is None:
        return new_request_id()
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH \
            or not value.isprintable():
        raise RequestRefused(f"id must be a printable string of 1-{MAX_ID_LENGTH} characters")
    return value


def normalise_destination(value: Any, default_country_code: str | None) -> str:
    """``+<digits>`` for a phone number, bare digits for a short code; refused otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise RequestRefused("to: a destination number is required")
    number = normalise_e164(value, default_country_code)
    body = number.removeprefix("+")
    if not body.isascii() or not body.isdigit():
        raise RequestRefused(f"to: {value!r} is not a phone number")
    if number.startswith("+") and not 7 <= len(body) <= 15:
        raise RequestRefused(f"to: {value!r} is not an E.164 number (7-15 digits)")
    if not number.startswith("+") and len(body) > 15:
        raise RequestRefused(f"to: {value!r} has more than 15 digits")
    return number


def parse_request(payload: bytes | str | dict[str, Any], *,
                  default_country_code: str | None = None) -> SendRequest:
    """The request in ``payload``; RequestRefused (with the id when it is known) otherwise."""
    if isinstance(payload, bytes | str):
        if len(payload) > MAX_PAYLOAD:
            raise RequestRefused(f"the request is larger than {MAX_PAYLOAD} bytes")
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestRefused(f"not a JSON document: {exc}") from None
    else:
        doc = payload
    if not isinstance(doc, dict):
        raise RequestRefused("the request must be a JSON object")
    request_id = _request_id(doc.get("id"))
    to_raw = doc.get("to")
    try:
        unknown = sorted(set(doc) - _KEYS)
        if unknown:
            raise RequestRefused(f"unknown key(s): {', '.join(map(str, unknown))}")
        to = normalise_destination(to_raw, default_country_code)
        text, data, port = _content(doc)
        modem = doc.get("modem")
        if modem is not None and (not isinstance(modem, str) or not _MODEM_NAME.match(modem)):
            raise RequestRefused("modem: not a modem name")
        flash = doc.get("flash", False)
        if not isinstance(flash, bool):
            raise RequestRefused("flash: true or false")
        valid_for = _validity(doc.get("valid_for"))
    except RequestRefused as exc:
        raise RequestRefused(exc.reason, request_id=request_id,
                             to=to_raw if isinstance(to_raw, str) else None) from None
    return SendRequest(id=request_id, to=to, text=text, data=data, port=port,
                       modem=modem if modem not in (None, "auto") else None, flash=flash,
                       valid_for=valid_for)


def _content(doc: dict[str, Any]) -> tuple[str | None, bytes | None, int | None]:
    text, data_b64, port = doc.get("text"), doc.get("data_b64"), doc.get("port")
    if (text is None) == (data_b64 is None):
        raise RequestRefused("give either text or data_b64")
    if text is not None:
        if not isinstance(text, str) or not text:
            raise RequestRefused("text: a non-empty string")
        if len(text) > MAX_TEXT_LENGTH:
            raise RequestRefused(f"text: longer than {MAX_TEXT_LENGTH} characters")
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
            raise RequestRefused("text: contains a lone surrogate (not valid Unicode text)")
        if port is not None:
            raise RequestRefused("port: only with data_b64")
        return text, None, None
    if not isinstance(data_b64, str):
        raise RequestRefused("data_b64: a base64 string")
    try:
        data = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError):
        raise RequestRefused("data_b64: not valid base64") from None
    if not data:
        raise RequestRefused("data_b64: empty")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 <= port <= 0xFFFF):
        raise RequestRefused("port: an application port 0-65535")
    return None, data, port


def _validity(value: Any) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise RequestRefused(f"valid_for: {exc}") from None
    if not MIN_VALIDITY <= seconds <= MAX_VALIDITY:
        raise RequestRefused("valid_for: between 5m and 63 weeks (441d)")
    return seconds

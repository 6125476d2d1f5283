"""The payload layer's input (:class:`InboundMessage`) and output (:class:`Reading`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modemd.payload.config import DeviceSpec, FieldSpec


__all__ = ["FieldValue", "InboundMessage", "Reading"]

FieldValue = int | float | bool | str


@dataclass(frozen=True, kw_only=True, slots=True)
class InboundMessage:
    """A decoded (and, if multipart, reassembled) SMS as the pipeline hands it over.

    ``text`` is set for GSM-7/UCS-2 messages, ``data`` for 8-bit messages; ``port`` is the
    destination application port when the message is port-addressed. ``sent_at`` is the
    service-centre timestamp and must be timezone-aware.
    """

    msg_id: str
    modem: str
    sender: str
    sent_at: datetime
    text: str | None = None
    data: bytes | None = None
    port: int | None = None
    #: ``international``, ``national``, ``alphanumeric``, ``short_code`` (the /sms
    #: document's ``sender_type``); None: read from ``sender`` alone
    sender_type: str | None = None

    def __post_init__(self) -> None:
        if self.sent_at.tzinfo is None or self.sent_at.utcoffset() is None:
            raise ValueError("InboundMessage.sent_at must be timezone-aware")


@dataclass(frozen=True, kw_only=True)
class Reading:
    """A typed status reading of one device, produced by :class:`~modemd.payload.PayloadEngine`.

    ``fields`` keeps the rule's field order and holds only the fields present in the payload;
    ``units``, ``device_classes`` and ``state_classes`` have entries only where known.
    """

    device: str
    measurement: str
    fields: dict[str, FieldValue]
    units: dict[str, str]
    device_classes: dict[str, str]
    state_classes: dict[str, str]
    rule: str
    sent_at: datetime
    msg_id: str
    modem: str = ""
    sender: str = ""
    device_meta: DeviceSpec | None = None
    expire_after: int | None = None
    #: output field name → spec of every field of the rule (for HA discovery)
    field_specs: Mapping[str, FieldSpec] = field(default_factory=dict, repr=False, compare=False)

    def state_document(self) -> dict[str, Any]:
        """The retained ``modemd/<gw>/device/<device>/state`` JSON document (design.md)."""
        doc: dict[str, Any] = {"device": self.device}
        doc.update(self.fields)
        doc["sent_at"] = self.sent_at.isoformat()
        doc["msg_id"] = self.msg_id
        return doc

    def enum_codes(self) -> dict[str, int]:
        """field → numeric code of each enum label in ``fields`` (for the time-series store)."""
        codes: dict[str, int] = {}
        for name, value in self.fields.items():
            spec = self.field_specs.get(name)
            if spec is not None and spec.type == "enum" and isinstance(value, str):
                code = spec.enum_codes.get(value)
                if code is not None:
                    codes[name] = code
        return codes

    def outbox_body(self, gateway_id: str) -> dict[str, Any]:
        """The ``reading`` outbox body of docs/architecture.md."""
        return {
            "device": self.device,
            "measurement": self.measurement,
            "fields": dict(self.fields),
            "tags": {"gateway": gateway_id, "modem": self.modem, "device": self.device},
            "units": dict(self.units),
            "sent_at": self.sent_at.isoformat(),
            "msg_id": self.msg_id,
            "rule": self.rule,
        }

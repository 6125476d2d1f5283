"""Decoded SMS values (3GPP TS 23.040 / 23.038): frozen, comparable, free of parsing logic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Alphabet = Literal["gsm7", "8bit", "ucs2"]
AddressKind = Literal[
    "international", "national", "network", "subscriber", "alphanumeric", "abbreviated", "unknown"
]
ADDRESS_KINDS: tuple[AddressKind, ...] = (  # by type of number, TS 23.040 9.1.2.5
    "unknown",
    "international",
    "national",
    "network",
    "subscriber",
    "alphanumeric",
    "abbreviated",
    "unknown",  # 111 is reserved
)

IEI_CONCAT_8BIT = 0x00
IEI_PORTS_8BIT = 0x04
IEI_PORTS_16BIT = 0x05
IEI_CONCAT_16BIT = 0x08
IEI_NATIONAL_SINGLE_SHIFT = 0x24
IEI_NATIONAL_LOCKING_SHIFT = 0x25


@dataclass(frozen=True, slots=True)
class Address:
    """A TP-OA/DA/RA or SMSC address.

    ``number`` is ``+<digits>`` for international numbers, the digits otherwise (semi-octets
    0xA-0xE appear as ``* # a b c``, TS 23.040 9.1.2.5), and the decoded text for alphanumeric
    addresses. ``ton``/``npi`` are the raw type-of-number and numbering-plan fields.
    """

    number: str
    ton: int
    npi: int
    kind: AddressKind

    def __str__(self) -> str:
        return self.number


@dataclass(frozen=True, slots=True)
class MessageWaiting:
    """Message waiting indication carried in DCS groups 1100-1110 (TS 23.038 section 4)."""

    active: bool
    indication: Literal["voicemail", "fax", "email", "other"]
    store: bool  # False for the "discard message" group 1100


@dataclass(frozen=True, slots=True)
class DataCoding:
    """TP-DCS read per TS 23.038 section 4.

    ``group`` names the coding group: ``general`` (00xx), ``automatic_deletion`` (01xx),
    ``reserved`` (1000-1011, read as GSM 7 bit as the spec asks), ``message_waiting_discard``
    (1100), ``message_waiting_store`` (1101), ``message_waiting_store_ucs2`` (1110) and
    ``data_coding_class`` (1111).
    """

    raw: int
    group: str
    alphabet: Alphabet
    message_class: int | None
    compressed: bool
    waiting: MessageWaiting | None


@dataclass(frozen=True, slots=True)
class Concat:
    """Concatenated short message IE (TS 23.040 9.2.3.24.1 / 9.2.3.24.8)."""

    reference: int
    total: int
    sequence: int
    ref_bits: int  # 8 (IEI 0x00) or 16 (IEI 0x08)


@dataclass(frozen=True, slots=True)
class Ports:
    """Application port addressing IE (TS 23.040 9.2.3.24.3 / 9.2.3.24.4)."""

    destination: int
    source: int
    bits: int  # 8 (IEI 0x04) or 16 (IEI 0x05)


@dataclass(frozen=True, slots=True)
class InformationElement:
    """One UDH information element, kept as found (unknown IEIs included)."""

    iei: int
    data: bytes


@dataclass(frozen=True, slots=True)
class UserDataHeader:
    """The TP-UDH. Where an IE appears more than once the last valid one counts (TS 23.040
    9.2.3.24); an IE with the wrong length or reserved values is ignored by the properties."""

    elements: tuple[InformationElement, ...]

    @property
    def concat(self) -> Concat | None:
        found: Concat | None = None
        for element in self.elements:
            candidate = concat_from_element(element)
            if candidate is not None:
                found = candidate
        return found

    @property
    def ports(self) -> Ports | None:
        found: Ports | None = None
        for element in self.elements:
            data = element.data
            if element.iei == IEI_PORTS_8BIT and len(data) == 2:
                found = Ports(destination=data[0], source=data[1], bits=8)
            elif element.iei == IEI_PORTS_16BIT and len(data) == 4:
                found = Ports(
                    destination=int.from_bytes(data[0:2], "big"),
                    source=int.from_bytes(data[2:4], "big"),
                    bits=16,
                )
        return found

    @property
    def national_single_shift(self) -> int | None:
        return self._language(IEI_NATIONAL_SINGLE_SHIFT)

    @property
    def national_locking_shift(self) -> int | None:
        return self._language(IEI_NATIONAL_LOCKING_SHIFT)

    def _language(self, iei: int) -> int | None:
        found: int | None = None
        for element in self.elements:
            if element.iei == iei and len(element.data) == 1:
                found = element.data[0]
        return found


def concat_from_element(element: InformationElement) -> Concat | None:
    """The Concat an IE carries, or None if it is not a valid concatenation IE.

    TS 23.040 9.2.3.24.1: a total of 0, or a sequence of 0 or above the total, makes the
    receiver ignore the whole IE.
    """
    data = element.data
    if element.iei == IEI_CONCAT_8BIT and len(data) == 3:
        reference, total, sequence, bits = data[0], data[1], data[2], 8
    elif element.iei == IEI_CONCAT_16BIT and len(data) == 4:
        reference, total, sequence, bits = int.from_bytes(data[0:2], "big"), data[2], data[3], 16
    else:
        return None
    if total == 0 or sequence == 0 or sequence > total:
        return None
    return Concat(reference=reference, total=total, sequence=sequence, ref_bits=bits)


class _CodedUserData:
    """What SMS-DELIVER and SMS-SUBMIT both derive from their coding scheme and header."""

    __slots__ = ()
    dcs: DataCoding
    udh: UserDataHeader | None

    @property
    def encoding(self) -> Alphabet:
        return self.dcs.alphabet

    @property
    def concat(self) -> Concat | None:
        return self.udh.concat if self.udh is not None else None

    @property
    def ports(self) -> Ports | None:
        return self.udh.ports if self.udh is not None else None

    @property
    def message_class(self) -> int | None:
        return self.dcs.message_class


@dataclass(frozen=True, slots=True)
class SmsDeliver(_CodedUserData):
    """An SMS-DELIVER (or a text-mode record read as one).

    ``tpdu`` is the TPDU without the SMSC field (for a text-mode record: a canonical UTF-8
    rendering of sender, time stamp and body), so hashing it gives a stable message id.
    ``warnings`` lists what lenient decoding recovered from, and notes such as "compressed".
    """

    smsc: Address | None
    sender: Address
    pid: int
    dcs: DataCoding
    scts: datetime
    udh: UserDataHeader | None
    text: str | None
    data: bytes | None
    tpdu: bytes
    more_messages: bool
    reply_path: bool
    status_report_indication: bool
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SmsSubmit(_CodedUserData):
    """An SMS-SUBMIT, as found in SIM storage lists (decode only).

    ``validity`` is a timedelta (relative or enhanced relative format), an aware datetime
    (absolute format) or None (no validity period, or one we cannot read).
    """

    smsc: Address | None
    message_reference: int
    recipient: Address
    pid: int
    dcs: DataCoding
    validity: timedelta | datetime | None
    udh: UserDataHeader | None
    text: str | None
    data: bytes | None
    tpdu: bytes
    warnings: tuple[str, ...]


_STATUS_TEXTS: dict[int, str] = {
    0x00: "delivered: short message received by the SME",
    0x01: "delivered: forwarded by the SC to the SME, delivery not confirmed",
    0x02: "delivered: short message replaced by the SC",
    0x20: "pending: congestion",
    0x21: "pending: SME busy",
    0x22: "pending: no response from SME",
    0x23: "pending: service rejected",
    0x24: "pending: quality of service not available",
    0x25: "pending: error in SME",
    0x40: "failed: remote procedure error",
    0x41: "failed: incompatible destination",
    0x42: "failed: connection rejected by SME",
    0x43: "failed: not obtainable",
    0x44: "failed: quality of service not available",
    0x45: "failed: no interworking available",
    0x46: "failed: SM validity period expired",
    0x47: "failed: SM deleted by originating SME",
    0x48: "failed: SM deleted by SC administration",
    0x49: "failed: SM does not exist",
    0x60: "failed: congestion (SC gave up)",
    0x61: "failed: SME busy (SC gave up)",
    0x62: "failed: no response from SME (SC gave up)",
    0x63: "failed: service rejected (SC gave up)",
    0x64: "failed: quality of service not available (SC gave up)",
    0x65: "failed: error in SME (SC gave up)",
}


def status_text(status: int) -> str:
    """Words for a TP-ST value (TS 23.040 9.2.3.15), including its reserved/SC-specific ranges."""
    known = _STATUS_TEXTS.get(status)
    if known is not None:
        return known
    outcome = {0: "delivered", 1: "pending", 2: "failed", 3: "failed"}.get(status >> 5, "unknown")
    if outcome == "unknown":
        return f"unknown: reserved status 0x{status:02X}"
    specific = (status & 0x1F) >= 0x10
    kind = "SC-specific" if specific else "reserved"
    return f"{outcome}: {kind} status 0x{status:02X}"


@dataclass(frozen=True, slots=True)
class SmsStatusReport:
    """An SMS-STATUS-REPORT: the fate of a message we sent (TS 23.040 9.2.2.3)."""

    smsc: Address | None
    message_reference: int
    recipient: Address
    scts: datetime
    discharge_time: datetime
    status: int
    tpdu: bytes
    warnings: tuple[str, ...]

    @property
    def status_text(self) -> str:
        return status_text(self.status)

    @property
    def delivered(self) -> bool:
        return self.status < 0x20

"""SMPP deliver_sm records: a journalled deliver_sm PDU read as an SmsDeliver or a receipt.

The journal keeps the deliver_sm PDU exactly as the SMSC sent it (mode ``smpp``); this module
turns it into the same :class:`~modemd.sms.model.SmsDeliver` a modem's PDU gives, so the
pipeline joins, filters and parses both alike. PDU parsing is smpplib's (an established SMPP
library); what is read here is what SMPP 3.4 leaves to the receiver: ``data_coding``
(section 5.2.19), the UDH flag and ``sar_*`` TLVs of long messages (5.2.12, 5.3.2.22-24) and
delivery receipts (``esm_class`` message type, ``receipted_message_id``/``message_state``
TLVs, or the text form of Appendix B). No I/O.
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from modemd.errors import DecodeError
from modemd.sms.dcs import parse_dcs
from modemd.sms.decode import _parse_udh
from modemd.sms.gsm7 import decode_gsm7
from modemd.sms.model import (
    ADDRESS_KINDS,
    IEI_CONCAT_16BIT,
    Address,
    DataCoding,
    InformationElement,
    SmsDeliver,
    UserDataHeader,
)

# smpplib warns once per unknown (vendor) TLV; they are common and harmless here.
logging.getLogger("smpplib.command").setLevel(logging.ERROR)

DefaultAlphabet = Literal["gsm7", "latin1", "ascii"]
DEFAULT_ALPHABETS: tuple[DefaultAlphabet, ...] = ("gsm7", "latin1", "ascii")
#: what data_coding 1 ("IA5/ASCII") means: SMPP says ASCII, but some SMSCs (npm's smpp
#: among them) send GSM 7-bit septets under it. "auto": GSM 7-bit when the octets cannot be
#: ASCII text (an ESC, or a control character other than CR/LF), ASCII otherwise.
Ia5Alphabet = Literal["auto", "ascii", "gsm7"]
IA5_ALPHABETS: tuple[Ia5Alphabet, ...] = ("auto", "ascii", "gsm7")
_TEXT_CONTROLS = frozenset(b"\n\r")

HEADER_OCTETS = 16
ESM_UDHI = 0x40
ESM_TYPE_MASK = 0x3C
#: esm_class message types that carry a receipt or acknowledgement, not a message
ESM_RECEIPT_TYPES = {0x04: "smsc_delivery_receipt", 0x08: "sme_delivery_ack",
                     0x10: "sme_manual_ack", 0x20: "intermediate_notification"}

#: SMPP 3.4 section 5.2.28 message_state
MESSAGE_STATES = {1: "enroute", 2: "delivered", 3: "expired", 4: "deleted",
                  5: "undeliverable", 6: "accepted", 7: "unknown", 8: "rejected",
                  9: "skipped"}
#: the stat: words of the text receipt (SMPP 3.4 Appendix B) and the state each means
STAT_WORDS = {"ENROUTE": "enroute", "DELIVRD": "delivered", "EXPIRED": "expired",
              "DELETED": "deleted", "UNDELIV": "undeliverable", "ACCEPTD": "accepted",
              "UNKNOWN": "unknown", "REJECTD": "rejected", "SKIPPED": "skipped"}

#: data_coding 0x00-0x0E (section 5.2.19): (encoding name in /sms, Python codec or None)
_SMPP_CODINGS: dict[int, tuple[str, str | None]] = {
    0x01: ("ascii", "ascii"),
    0x02: ("8bit", None),
    0x03: ("latin1", "latin-1"),
    0x04: ("8bit", None),
    0x06: ("iso-8859-5", "iso8859_5"),
    0x07: ("iso-8859-8", "iso8859_8"),
    0x08: ("ucs2", "utf-16-be"),
    0x0A: ("iso-2022-jp", "iso2022_jp"),
    0x0E: ("ks-c-5601", "euc_kr"),
}
_DEFAULT_CODECS = {"latin1": "latin-1", "ascii": "ascii"}


@dataclass(frozen=True, slots=True)
class Alphabets:
    """What a bind's SMSC means by data_coding 0 and 1; journalled with each deliver_sm
    (``storage`` column, e.g. ``"gsm7/auto"``) so a row decodes as it would have then."""

    default: DefaultAlphabet = "gsm7"
    ia5: Ia5Alphabet = "auto"

    def stored(self) -> str:
        return f"{self.default}/{self.ia5}"

    @classmethod
    def from_stored(cls, value: str | None) -> Alphabets:
        default, _, ia5 = (value or "").partition("/")
        return cls(default=next((a for a in DEFAULT_ALPHABETS if a == default), "gsm7"),
                   ia5=next((a for a in IA5_ALPHABETS if a == ia5), "auto"))


def ia5_is_gsm7(body: bytes, ia5: Ia5Alphabet) -> bool:
    """Whether data_coding 1 octets are to be read as GSM 7-bit (see Ia5Alphabet)."""
    if ia5 != "auto":
        return ia5 == "gsm7"
    return any(octet < 0x20 and octet not in _TEXT_CONTROLS for octet in body)

_RECEIPT_TEXT = re.compile(r"^\s*id:(?P<id>\S+)(?=.*\bstat:(?P<stat>[A-Z]{7})\b)", re.I | re.S)
_RECEIPT_FIELD = re.compile(r"\b(id|sub|dlvrd|submit date|done date|stat|err|text):\s*"
                            r"(\S*)", re.I)


@dataclass(frozen=True, slots=True)
class DeliverFields:
    """What a deliver_sm says besides its message: addresses and codes, for /sms."""

    destination: str
    data_coding: int
    esm_class: int
    encoding: str  # as /sms names it: gsm7, ucs2, 8bit, latin1, ascii, iso-8859-5 ...
    service_type: str


@dataclass(frozen=True, slots=True)
class SmppReceipt:
    """A delivery receipt (or SME acknowledgement) delivered by deliver_sm."""

    kind: str  # an ESM_RECEIPT_TYPES value, or "smsc_delivery_receipt" for a text-only one
    message_id: str | None
    state: str  # a MESSAGE_STATES value
    stat: str | None  # the text form's stat: word
    error: str | None
    recipient: Address  # the handset the receipted message was sent to
    destination: str  # the address that sent it (ours)
    submitted_at: datetime | None
    done_at: datetime | None
    text: str | None
    warnings: tuple[str, ...]

    @property
    def delivered(self) -> bool:
        return self.state == "delivered"


def record_identity(raw: bytes) -> bytes:
    """What identifies a journalled deliver_sm: the PDU without its 16-octet header.

    The header holds the sequence number, which an SMSC chooses anew when it sends an
    unanswered deliver_sm again on a new session; the body (addresses, codes, message, TLVs)
    is the message, so a resend keeps its id.
    """
    return raw[HEADER_OCTETS:] if len(raw) > HEADER_OCTETS else raw


@lru_cache(maxsize=64)  # the pipeline reads a row twice (message, then /sms fields)
def parse_deliver_sm(raw: bytes) -> Any:
    """The smpplib deliver_sm object for *raw* (shared: do not change it); DecodeError if it
    is not a readable one."""
    if len(raw) < HEADER_OCTETS:
        raise DecodeError(f"a PDU is at least 16 octets, not {len(raw)}", field="header")
    # here, not at the top: the pipeline imports this module, and a gateway without SMPP
    # binds (nor SMPP rows in its journal) need not keep smpplib and six resident
    from smpplib import exceptions as smpp_exceptions
    from smpplib import smpp as smpp_pdu

    try:
        pdu = smpp_pdu.parse_pdu(raw, sequence=0, allow_unknown_opt_params=True)
    except (struct.error, IndexError, ValueError, KeyError, TypeError, AttributeError,
            smpp_exceptions.UnknownCommandError, smpp_exceptions.PDUError) as exc:
        raise DecodeError(f"unreadable deliver_sm: {exc or type(exc).__name__}",
                          field="deliver_sm") from exc
    if pdu is None or pdu.command not in ("deliver_sm", "data_sm"):
        raise DecodeError(f"not a deliver_sm or data_sm: {getattr(pdu, 'command', None)}",
                          field="command_id")
    return pdu


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def smpp_address(value: Any, ton: int | None) -> Address:
    """source_addr/destination_addr as an Address: ``+digits`` for international numbers."""
    text = _text(value).strip()
    ton = (ton or 0) & 0x07
    kind = ADDRESS_KINDS[ton]
    if kind == "international" and text.lstrip("+").isdigit():
        text = "+" + text.lstrip("+")
    return Address(number=text, ton=ton, npi=0, kind=kind)


def _payload(pdu: Any) -> bytes:
    message = getattr(pdu, "short_message", None) or b""  # a data_sm has none
    extra = pdu.message_payload or b""
    # section 5.3.2.32: message_payload carries the message when short_message is empty
    return bytes(extra) if extra and not message else bytes(message)


def _split_udh(payload: bytes, esm_class: int, notes: list[str]) -> tuple[UserDataHeader | None,
                                                                         bytes]:
    if not esm_class & ESM_UDHI:
        return None, payload
    if not payload or 1 + payload[0] > len(payload):
        raise DecodeError("esm_class says a UDH comes first, but its length overruns the "
                          "message", field="short_message")
    header = payload[1 : 1 + payload[0]]
    return _parse_udh(header, 1, False, notes), payload[1 + payload[0] :]


def _with_sar(udh: UserDataHeader | None, pdu: Any) -> UserDataHeader | None:
    """A UDH with the sar_* TLVs as a 16-bit concatenation IE, unless the UDH has one."""
    reference, total, sequence = pdu.sar_msg_ref_num, pdu.sar_total_segments, \
        pdu.sar_segment_seqnum
    if reference is None or total is None or sequence is None:
        return udh
    if udh is not None and udh.concat is not None:
        return udh
    element = InformationElement(IEI_CONCAT_16BIT, bytes([reference >> 8 & 0xFF,
                                                          reference & 0xFF, total & 0xFF,
                                                          sequence & 0xFF]))
    elements = (udh.elements if udh is not None else ()) + (element,)
    return UserDataHeader(elements=elements)


def _utf16(body: bytes, concatenated: bool, notes: list[str]) -> str:
    if len(body) % 2:
        notes.append("UCS-2 message: odd trailing octet dropped")
        body = body[:-1]
    text = body.decode("utf-16-be", "surrogatepass")
    if concatenated:
        return text  # a pair split between parts is rejoined by assemble()
    if any("\ud800" <= char <= "\udfff" for char in text):
        notes.append("UCS-2 message: unpaired UTF-16 surrogate replaced by U+FFFD")
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def _decode_body(body: bytes, data_coding: int, alphabets: Alphabets,
                 udh: UserDataHeader | None, notes: list[str]
                 ) -> tuple[str, DataCoding, str | None, bytes | None]:
    """(encoding name, DataCoding for the model, text, data) of the message octets."""
    concatenated = udh is not None and udh.concat is not None
    default = alphabets.default
    if data_coding == 0x01 and ia5_is_gsm7(body, alphabets.ia5):
        dcs = DataCoding(1, "smpp_ia5_gsm7", "gsm7", None, False, None)
        return "gsm7", dcs, _gsm7(body, udh, notes), None
    if data_coding >= 0x10:  # TS 23.038 coding groups, as SMPP 3.4 allows above 0x0F
        dcs, dcs_notes = parse_dcs(data_coding)
        notes.extend(dcs_notes)
        if dcs.alphabet == "ucs2":
            return "ucs2", dcs, _utf16(body, concatenated, notes), None
        if dcs.alphabet == "8bit":
            return "8bit", dcs, None, body
        return "gsm7", dcs, _gsm7(body, udh, notes), None
    if data_coding == 0x00:
        dcs = DataCoding(0, f"smpp_default_{default}", "gsm7", None, False, None)
        if default == "gsm7":
            return "gsm7", dcs, _gsm7(body, udh, notes), None
        return default, dcs, _single_byte(body, _DEFAULT_CODECS[default], notes), None
    encoding, codec = _SMPP_CODINGS.get(data_coding, ("8bit", None))
    if data_coding not in _SMPP_CODINGS:
        notes.append(f"data_coding 0x{data_coding:02X} is not supported; kept as bytes")
    if encoding == "ucs2":
        return "ucs2", DataCoding(data_coding, "smpp", "ucs2", None, False, None), \
            _utf16(body, concatenated, notes), None
    if codec is None:
        return "8bit", DataCoding(data_coding, "smpp", "8bit", None, False, None), None, body
    return encoding, DataCoding(data_coding, "smpp", "gsm7", None, False, None), \
        _single_byte(body, codec, notes), None


def _gsm7(body: bytes, udh: UserDataHeader | None, notes: list[str]) -> str:
    """GSM 7-bit text as SMPP carries it: one septet per octet (unpacked)."""
    locking = (udh.national_locking_shift if udh else None) or 0
    single = (udh.national_single_shift if udh else None) or 0
    if any(octet > 0x7F for octet in body):
        notes.append("GSM 7-bit message has octets above 0x7F (packed?); high bits ignored")
    return decode_gsm7(body, locking, single, notes)


def _single_byte(body: bytes, codec: str, notes: list[str]) -> str:
    try:
        return body.decode(codec)
    except UnicodeDecodeError:
        notes.append(f"message is not valid {codec}; undecodable octets replaced by U+FFFD")
        return body.decode(codec, "replace")


def deliver_fields(raw: bytes, *, alphabets: Alphabets = Alphabets()) -> DeliverFields:
    """Destination, codes and encoding name of a journalled deliver_sm (for /sms)."""
    pdu = parse_deliver_sm(raw)
    data_coding = int(pdu.data_coding or 0)
    if data_coding == 0x01:
        _, body = _split_udh(_payload(pdu), int(pdu.esm_class or 0), [])
        encoding: str = "gsm7" if ia5_is_gsm7(body, alphabets.ia5) else "ascii"
    elif data_coding >= 0x10:
        encoding = parse_dcs(data_coding)[0].alphabet
    elif data_coding == 0:
        encoding = alphabets.default
    else:
        encoding = _SMPP_CODINGS.get(data_coding, ("8bit", None))[0]
    return DeliverFields(
        destination=smpp_address(pdu.destination_addr, pdu.dest_addr_ton).number,
        data_coding=data_coding,
        esm_class=int(pdu.esm_class or 0),
        encoding=encoding,
        service_type=_text(pdu.service_type),
    )


def decode_deliver_sm(
    raw: bytes,
    *,
    received_at: float,
    alphabets: Alphabets = Alphabets(),
) -> SmsDeliver | SmppReceipt:
    """Read a journalled deliver_sm as a message or, for a receipt, as SmppReceipt.

    SMPP carries no service-centre time stamp for a mobile-originated message; ``scts`` is
    *received_at*, when the journal took the deliver_sm.
    """
    pdu = parse_deliver_sm(raw)
    notes: list[str] = []
    esm_class = int(pdu.esm_class or 0)
    data_coding = int(pdu.data_coding or 0)
    udh, body = _split_udh(_payload(pdu), esm_class, notes)
    udh = _with_sar(udh, pdu)
    encoding, dcs, text, data = _decode_body(body, data_coding, alphabets, udh, notes)
    del encoding  # /sms takes it from deliver_fields()
    sender = smpp_address(pdu.source_addr, pdu.source_addr_ton)
    receipt = _receipt(pdu, esm_class, sender, text, notes)
    if receipt is not None:
        return receipt
    return SmsDeliver(
        smsc=None,
        sender=sender,
        pid=int(getattr(pdu, "protocol_id", None) or 0),
        dcs=dcs,
        scts=datetime.fromtimestamp(received_at, UTC),
        udh=udh,
        text=text,
        data=data,
        # MTI 0b11 (reserved): never read as a TPDU; reassembly falls back to the text
        tpdu=b"\x03SMPP" + record_identity(raw),
        more_messages=False,
        reply_path=False,
        status_report_indication=False,
        warnings=tuple(notes),
    )


def _receipt(pdu: Any, esm_class: int, sender: Address, text: str | None,
             notes: list[str]) -> SmppReceipt | None:
    kind = ESM_RECEIPT_TYPES.get(esm_class & ESM_TYPE_MASK)
    receipted = _text(pdu.receipted_message_id) or None
    state_code = pdu.message_state
    fields = parse_receipt_text(text) if text else {}
    text_form = bool(fields.get("id") and fields.get("stat", "").upper() in STAT_WORDS)
    if kind is None and receipted is None and state_code is None and not text_form:
        return None
    stat = fields.get("stat", "").upper() or None
    if state_code is not None:
        state = MESSAGE_STATES.get(int(state_code), "unknown")
    elif stat is not None:
        state = STAT_WORDS.get(stat, "unknown")
    else:
        state = "unknown"
    error = fields.get("err") or None
    network_error = pdu.network_error_code
    if network_error:
        error = error or bytes(network_error).hex().upper()
    return SmppReceipt(
        kind=kind or "smsc_delivery_receipt",
        message_id=receipted or fields.get("id") or None,
        state=state,
        stat=stat,
        error=error,
        recipient=sender,
        destination=smpp_address(pdu.destination_addr, pdu.dest_addr_ton).number,
        submitted_at=_receipt_time(fields.get("submit date")),
        done_at=_receipt_time(fields.get("done date")),
        text=text,
        warnings=tuple(notes),
    )


def parse_receipt_text(text: str) -> dict[str, str]:
    """The key:value fields of a text receipt ("id:… sub:… dlvrd:… submit date:… done
    date:… stat:DELIVRD err:000 text:…"), keys lower case; {} if it is not one."""
    if not _RECEIPT_TEXT.match(text):
        return {}
    return {key.lower(): value for key, value in _RECEIPT_FIELD.findall(text)}


def _receipt_time(value: str | None) -> datetime | None:
    """YYMMDDhhmm[ss] of a text receipt, read as UTC (the format carries no zone)."""
    if not value or not value.isdigit() or len(value) not in (10, 12):
        return None
    try:
        return datetime.strptime(value, "%y%m%d%H%M%S" if len(value) == 12 else "%y%m%d%H%M"
                                 ).replace(tzinfo=UTC)
    except ValueError:
        return None

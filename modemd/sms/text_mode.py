"""Text-mode records (3GPP TS 27.005 3.4.3 / 3.4.2): ``+CMGR``, ``+CMGL``, ``+CMT``, ``+CDS``.

Modems disagree on the details (with or without ``+CSDH=1`` fields, a missing ``<stat>``, a
four-digit year and no zone, spaces after commas), so the header is read by the shape of its
fields rather than by position alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from modemd.errors import DecodeError
from modemd.sms.dcs import parse_dcs
from modemd.sms.decode import YEAR_PIVOT, zone
from modemd.sms.model import (
    ADDRESS_KINDS,
    Address,
    DataCoding,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
)

_PREFIX = re.compile(r"^\s*\+(CMGR|CMGL|CMT|CDS|CDSI)\s*:\s*", re.IGNORECASE)
_STATS = {"REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL"}
_TIMESTAMP = re.compile(
    r"^(?P<year>\d{2}|\d{4})/(?P<month>\d{1,2})/(?P<day>\d{1,2}),\s*"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{1,2}):(?P<second>\d{1,2})"
    r"(?:(?P<sign>[+-])(?P<quarters>\d{1,2}))?$",
    re.ASCII,
)
_DIALABLE = re.compile(r"^\+?[0-9*#abcABC]*$")
_RECORD_TAG = "modemd-text-record-v1"
MAX_PLAUSIBLE_ZONE = 56  # quarter hours: UTC+14, the easternmost zone in use
MAX_ZONE = 96  # quarter hours: a fixed offset must stay under 24 hours


@dataclass(frozen=True, slots=True)
class _Field:
    value: str
    quoted: bool

    def integer(self) -> int | None:
        text = self.value.strip()
        return int(text) if not self.quoted and text.isascii() and text.isdigit() else None


def decode_text_record(
    header: str, body: str | None, *, status_report: bool = False
) -> SmsDeliver | SmsStatusReport | SmsSubmit:
    """Read a text-mode record: ``header`` is the line after ``+CMGR: `` (the prefix may be left
    on), ``body`` the next line (None for status reports).

    ``tpdu`` of the result is a canonical UTF-8 rendering of the record, so it hashes stably.
    A stored outgoing message (``"STO UNSENT"``/``"STO SENT"``) comes back as an SmsSubmit.
    Raises only DecodeError.
    """
    if not isinstance(header, str):
        raise DecodeError(f"expected a str header, got {type(header).__name__}", field="header")
    match = _PREFIX.match(header)
    command = match.group(1).upper() if match else ""
    fields = _split_fields(header[match.end() :] if match else header)
    notes: list[str] = []

    if len(fields) >= 2 and fields[0].integer() is not None and _is_stat(fields[1]):
        fields = fields[1:]  # +CMGL index
    elif command == "CMGL" and fields and fields[0].integer() is not None:
        fields = fields[1:]
    stat = ""
    if fields and _is_stat(fields[0]):
        stat = fields[0].value.strip().upper()
        fields = fields[1:]
    elif len(fields) >= 2 and not fields[0].value.strip() and fields[1].integer() is not None:
        fields = fields[1:]  # <stat> left empty (ZTE)
    first_octet = fields[0].integer() if fields else None
    if (
        status_report
        or command in ("CDS", "CDSI")
        or (first_octet is not None and first_octet & 3 == 2)
    ):
        return _status_report(fields, notes)
    if stat.startswith("STO"):
        return _submit(fields, body, notes)
    return _deliver(fields, body, notes)


def _is_stat(field: _Field) -> bool:
    return field.quoted and field.value.strip().upper() in _STATS


def _split_fields(text: str) -> list[_Field]:
    """Comma-separated fields; commas inside double quotes belong to the field."""
    fields: list[_Field] = []
    index = 0
    length = len(text)
    while True:
        while index < length and text[index] in " \t":
            index += 1
        if index < length and text[index] == '"':
            end = text.find('"', index + 1)
            if end < 0:
                raise DecodeError("unbalanced quote in the header", field="header", offset=index)
            fields.append(_Field(text[index + 1 : end], True))
            index = end + 1
            while index < length and text[index] in " \t":
                index += 1
            if index < length and text[index] != ",":
                raise DecodeError("text after a quoted field", field="header", offset=index)
        else:
            end = text.find(",", index)
            end = length if end < 0 else end
            fields.append(_Field(text[index:end].strip(), False))
            index = end
        if index >= length:
            return fields
        index += 1  # the comma


def _timestamp(field: _Field | None, name: str, notes: list[str]) -> datetime:
    text = field.value.strip() if field is not None else ""
    match = _TIMESTAMP.match(text)
    if match is None:
        raise DecodeError(f"not a time stamp: {text!r}", field=name)
    parts = match.groupdict()
    year = int(parts["year"])
    if len(parts["year"]) == 2:
        year += 2000 if year < YEAR_PIVOT else 1900
    try:
        local = datetime(
            year,
            int(parts["month"]),
            int(parts["day"]),
            int(parts["hour"]),
            int(parts["minute"]),
            int(parts["second"]),
        )
    except ValueError as exc:
        raise DecodeError(f"invalid time stamp {text!r}: {exc}", field=name) from None
    if parts["quarters"] is None:
        notes.append(f"{name}: no time zone given, read as UTC")
        return local.replace(tzinfo=UTC)
    quarters = int(parts["quarters"])
    if quarters >= MAX_ZONE:
        raise DecodeError(
            f"time zone {parts['sign']}{parts['quarters']} is a day or more", field=name
        )
    if quarters > MAX_PLAUSIBLE_ZONE:
        notes.append(
            f"{name}: implausible time zone {parts['sign']}{parts['quarters']} quarter hours"
        )
    if parts["sign"] == "-":
        quarters = -quarters
    return local.replace(tzinfo=zone(quarters))


def _looks_like_timestamp(field: _Field) -> bool:
    return field.quoted and _TIMESTAMP.match(field.value.strip()) is not None


def _address(field: _Field | None, type_field: _Field | None) -> Address:
    number = field.value.strip() if field is not None else ""
    toa = type_field.integer() if type_field is not None else None
    if toa is not None and 0 <= toa <= 0xFF:
        ton = (toa >> 4) & 0b111
        npi = toa & 0x0F
        kind = ADDRESS_KINDS[ton]
    elif number.startswith("+"):
        ton, npi, kind = 1, 1, "international"
    elif _DIALABLE.match(number):
        ton, npi, kind = 0, 1, "unknown"
    else:
        ton, npi, kind = 5, 0, "alphanumeric"
    if kind == "international" and number and not number.startswith("+"):
        number = "+" + number
    return Address(number=number, ton=ton, npi=npi, kind=kind)


def _field(fields: list[_Field], index: int) -> _Field | None:
    return fields[index] if index < len(fields) else None


def _body(
    body: str | None, dcs: DataCoding | None, notes: list[str]
) -> tuple[str | None, bytes | None]:
    """27.005 3.1: with 8-bit or UCS2 coding the ME shows the octets as hex."""
    text = body if body is not None else ""
    if dcs is None or dcs.alphabet == "gsm7":
        return text, None
    compact = "".join(text.split())
    try:
        octets = bytes.fromhex(compact)
    except ValueError:
        notes.append(f"body is not the hex the DCS (0x{dcs.raw:02X}) calls for; kept as text")
        return text, None
    if dcs.alphabet == "8bit":
        return None, octets
    if len(octets) % 2:
        notes.append("odd trailing octet of UCS-2 text dropped")
        octets = octets[:-1]
    return octets.decode("utf-16-be", "replace"), None


def _canonical(*items: str) -> bytes:
    return "\x1f".join((_RECORD_TAG, *items)).encode("utf-8", "surrogatepass")


def _extras(fields: list[_Field], start: int) -> dict[str, _Field]:
    """The +CSDH=1 fields after the time stamp: 7 for +CMGR/+CMT, 2 for +CMGL."""
    rest = fields[start:]
    names: tuple[str, ...]
    if len(rest) >= 7:
        names = ("tooa", "fo", "pid", "dcs", "sca", "tosca", "length")
    elif len(rest) >= 1:
        names = ("tooa", "length")
    else:
        names = ()
    return dict(zip(names, rest, strict=False))


def _deliver(fields: list[_Field], body: str | None, notes: list[str]) -> SmsDeliver:
    if not fields:
        raise DecodeError("no originating address", field="header")
    sender_field = fields[0]
    # Motorola phones leave out <alpha>: the time stamp then comes right after the address.
    index = 1 if len(fields) > 1 and _looks_like_timestamp(fields[1]) else 2
    scts = _timestamp(_field(fields, index), "scts", notes)
    extras = _extras(fields, index + 1)
    sender = _address(sender_field, extras.get("tooa"))
    dcs_value = extras["dcs"].integer() if "dcs" in extras else None
    dcs, dcs_notes = parse_dcs(dcs_value) if dcs_value is not None else parse_dcs(0)
    notes.extend(dcs_notes)
    text, data = _body(body, dcs if dcs_value is not None else None, notes)
    first_octet = extras["fo"].integer() if "fo" in extras else None
    pid = extras["pid"].integer() if "pid" in extras else None
    smsc = _address(extras["sca"], extras.get("tosca")) if "sca" in extras else None
    if smsc is not None and not smsc.number:
        smsc = None
    fo = first_octet or 0
    return SmsDeliver(
        smsc=smsc,
        sender=sender,
        pid=pid or 0,
        dcs=dcs,
        scts=scts,
        udh=None,
        text=text,
        data=data,
        tpdu=_canonical("deliver", sender.number, scts.isoformat(), body or ""),
        more_messages=False,
        reply_path=bool(fo & 0x80),
        status_report_indication=bool(fo & 0x20),
        warnings=tuple(notes),
    )


def _submit(fields: list[_Field], body: str | None, notes: list[str]) -> SmsSubmit:
    # <da>,[<alpha>][,<toda>,<fo>,<pid>,<dcs>,[<vp>],<sca>,<tosca>,<length>]
    if not fields:
        raise DecodeError("no destination address", field="header")
    names = ("da", "alpha", "toda", "fo", "pid", "dcs", "vp", "sca", "tosca", "length")
    named = dict(zip(names, fields, strict=False))
    recipient = _address(named["da"], named.get("toda"))
    dcs_value = named["dcs"].integer() if "dcs" in named else None
    dcs, dcs_notes = parse_dcs(dcs_value) if dcs_value is not None else parse_dcs(0)
    notes.extend(dcs_notes)
    text, data = _body(body, dcs if dcs_value is not None else None, notes)
    pid = named["pid"].integer() if "pid" in named else None
    smsc = _address(named["sca"], named.get("tosca")) if "sca" in named else None
    if smsc is not None and not smsc.number:
        smsc = None
    return SmsSubmit(
        smsc=smsc,
        message_reference=0,
        recipient=recipient,
        pid=pid or 0,
        dcs=dcs,
        validity=None,
        udh=None,
        text=text,
        data=data,
        tpdu=_canonical("submit", recipient.number, body or ""),
        warnings=tuple(notes),
    )


def _status_report(fields: list[_Field], notes: list[str]) -> SmsStatusReport:
    # <fo>,<mr>,[<ra>],[<tora>],<scts>,<dt>,<st>
    if len(fields) < 7:
        raise DecodeError(f"a status report needs 7 fields, got {len(fields)}", field="header")
    reference = fields[1].integer()
    status = fields[6].integer()
    if reference is None or status is None:
        raise DecodeError("message reference and status must be numbers", field="header")
    recipient = _address(fields[2], fields[3])
    scts = _timestamp(fields[4], "scts", notes)
    discharge = _timestamp(fields[5], "dt", notes)
    return SmsStatusReport(
        smsc=None,
        message_reference=reference & 0xFF,
        recipient=recipient,
        scts=scts,
        discharge_time=discharge,
        status=status & 0xFF,
        tpdu=_canonical(
            "status-report",
            recipient.number,
            str(reference),
            scts.isoformat(),
            discharge.isoformat(),
            str(status),
        ),
        warnings=tuple(notes),
    )

"""PDU decoding: SMS-DELIVER, SMS-SUBMIT and SMS-STATUS-REPORT (3GPP TS 23.040 9.2).

Strict mode refuses anything that breaks the spec's framing (a length that points past the
data, bad time stamp digits, an IE overrunning the header...) with a :class:`DecodeError`
naming the field and octet offset. Lenient mode recovers what it can and says what it did in
the message's ``warnings``. No other exception is meant to escape either mode.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

from modemd.errors import DecodeError
from modemd.sms.dcs import parse_dcs
from modemd.sms.gsm7 import decode_gsm7, unpack_septets
from modemd.sms.gsm7_tables import LANGUAGES, LOCKING_SHIFT, SINGLE_SHIFT
from modemd.sms.model import (
    ADDRESS_KINDS,
    IEI_CONCAT_8BIT,
    IEI_CONCAT_16BIT,
    IEI_NATIONAL_LOCKING_SHIFT,
    IEI_NATIONAL_SINGLE_SHIFT,
    IEI_PORTS_8BIT,
    IEI_PORTS_16BIT,
    Address,
    DataCoding,
    InformationElement,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    UserDataHeader,
    concat_from_element,
)

YEAR_PIVOT = 80
"""Two-digit SCTS years below this are 20YY, the rest 19YY (00-79 → 2000-2079, 80-99 →
1980-1999): SMS time stamps before 1980 cannot occur, and 2080 is far enough away."""

UNKNOWN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
"""What lenient decoding puts in place of a time stamp whose date digits are unusable."""

MAX_ADDRESS_SEMI_OCTETS = 20  # TS 23.040 9.1.2.5: the address field is at most 12 octets
MAX_SMSC_OCTETS = 12
MAX_SEPTETS = 160
MAX_OCTETS = 140

_NIBBLE_SWAP = bytes(((octet & 0x0F) << 4) | (octet >> 4) for octet in range(256))
"""Swaps the semi-octets of each octet, so ``.hex()`` lists address digits in order."""
_SEMI_OCTET_TEXT = str.maketrans("abcde", "*#abc")
"""Hex digits a-e are the semi-octets 0xA-0xE: * # a b c (TS 23.040 9.1.2.5)."""
_KNOWN_IE_LENGTHS = {
    IEI_CONCAT_8BIT: 3,
    IEI_CONCAT_16BIT: 4,
    IEI_PORTS_8BIT: 2,
    IEI_PORTS_16BIT: 4,
    IEI_NATIONAL_SINGLE_SHIFT: 1,
    IEI_NATIONAL_LOCKING_SHIFT: 1,
}

Message = SmsDeliver | SmsStatusReport | SmsSubmit


class _Reader:
    """Bounds-checked cursor over the TPDU; ``base`` turns positions into PDU octet offsets."""

    __slots__ = ("base", "data", "pos")

    def __init__(self, data: bytes, base: int) -> None:
        self.data = data
        self.pos = 0
        self.base = base

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def octet(self, field: str) -> int:
        if self.pos >= len(self.data):
            raise DecodeError(
                "truncated: the PDU ends before this field", field=field, offset=self.offset
            )
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, count: int, field: str) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise DecodeError(
                f"truncated: needs {count} octets, {len(self.data) - self.pos} left",
                field=field,
                offset=self.offset,
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk


def decode_pdu(data: bytes | str, *, with_smsc: bool = True, strict: bool = True) -> Message:
    """Decode a PDU as listed by ``+CMGL``/``+CMGR`` or delivered by ``+CMT``/``+CDS``.

    ``data`` is raw octets or hex (either case, whitespace ignored). With ``with_smsc`` the
    PDU starts with the SMSC address field (27.005 PDU mode). Raises only DecodeError.

    Time stamps are aware datetimes in the zone the PDU states. Their two-digit years pivot
    at 80: 00-79 are 2000-2079, 80-99 are 1980-1999 (:data:`YEAR_PIVOT`).
    """
    notes: list[str] = []
    octets = _octets(data, strict, notes)
    if not octets:
        raise DecodeError("empty PDU", field="hex", offset=0)
    smsc: Address | None = None
    start = 0
    if with_smsc:
        smsc, start = _read_smsc(octets, strict, notes)
    tpdu = octets[start:]
    if not tpdu:
        raise DecodeError("no TPDU after the SMSC field", field="TP-MTI", offset=start)
    reader = _Reader(tpdu, start)
    mti = tpdu[0] & 0b11
    if mti == 0b00:
        return _deliver(reader, smsc, strict, notes)
    if mti == 0b01:
        return _submit(reader, smsc, strict, notes)
    if mti == 0b10:
        return _status_report(reader, smsc, strict, notes)
    raise DecodeError(
        f"reserved message type indicator 3 (first octet 0x{tpdu[0]:02X})",
        field="TP-MTI",
        offset=start,
    )


# --- input -----------------------------------------------------------------------------------


def _octets(data: bytes | str, strict: bool, notes: list[str]) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if not isinstance(data, str):
        raise DecodeError(f"expected bytes or a hex string, got {type(data).__name__}", field="hex")
    text = "".join(data.split())
    if text.isascii():
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    for index, char in enumerate(text):
        if char not in "0123456789abcdefABCDEF":
            raise DecodeError(f"non-hex character {char!r}", field="hex", offset=index // 2)
    if strict:
        raise DecodeError(
            f"odd number of hex digits ({len(text)})", field="hex", offset=len(text) // 2
        )
    notes.append(f"odd number of hex digits ({len(text)}): the last one was dropped")
    return bytes.fromhex(text[:-1])


# --- addresses -------------------------------------------------------------------------------


def _read_smsc(octets: bytes, strict: bool, notes: list[str]) -> tuple[Address | None, int]:
    length = octets[0]
    if length == 0:
        return None, 1
    if strict and length > MAX_SMSC_OCTETS:
        raise DecodeError(
            f"SMSC field of {length} octets exceeds {MAX_SMSC_OCTETS}", field="SMSC", offset=0
        )
    if 1 + length > len(octets):
        raise DecodeError(
            f"truncated: SMSC field of {length} octets but only {len(octets) - 1} follow",
            field="SMSC",
            offset=0,
        )
    toa = octets[1]
    value = octets[2 : 1 + length]
    digits = 2 * len(value)
    if value and value[-1] >> 4 == 0xF:
        digits -= 1  # filler of an odd-length number
    address = _address(toa, value, digits, "SMSC", 1, strict, notes, octet_count=True)
    return address, 1 + length


def _read_address(reader: _Reader, field: str, strict: bool, notes: list[str]) -> Address:
    start = reader.offset
    semi_octets = reader.octet(field)
    if strict and semi_octets > MAX_ADDRESS_SEMI_OCTETS:
        raise DecodeError(
            f"address of {semi_octets} semi-octets exceeds {MAX_ADDRESS_SEMI_OCTETS}",
            field=field,
            offset=start,
        )
    toa = reader.octet(field)
    value = reader.take((semi_octets + 1) // 2, field)
    return _address(toa, value, semi_octets, field, start + 1, strict, notes)


def _address(
    toa: int,
    value: bytes,
    semi_octets: int,
    field: str,
    toa_offset: int,
    strict: bool,
    notes: list[str],
    *,
    octet_count: bool = False,
) -> Address:
    if not toa & 0x80:
        if strict:
            raise DecodeError(
                f"type-of-address 0x{toa:02X} lacks its extension bit (bit 8)",
                field=field,
                offset=toa_offset,
            )
        notes.append(f"{field}: type-of-address 0x{toa:02X} lacks its extension bit")
    ton = (toa >> 4) & 0b111
    npi = toa & 0x0F
    kind = ADDRESS_KINDS[ton]
    if kind == "alphanumeric":
        # TS 23.040 9.1.2.5: GSM 7 bit characters packed into the semi-octets counted by the
        # length; only whole septets are characters (so no '@' out of the padding bits).
        count = (8 * len(value)) // 7 if octet_count else (4 * semi_octets) // 7
        number = decode_gsm7(unpack_septets(value, count), notes=notes)
        return Address(number=number, ton=ton, npi=npi, kind=kind)
    digits = value.translate(_NIBBLE_SWAP).hex()[:semi_octets]
    if "f" in digits:
        digits = _without_fillers(digits, field, toa_offset, strict, notes)
    digits = digits.translate(_SEMI_OCTET_TEXT)
    number = "+" + digits if kind == "international" and digits else digits
    return Address(number=number, ton=ton, npi=npi, kind=kind)


def _without_fillers(
    digits: str, field: str, toa_offset: int, strict: bool, notes: list[str]
) -> str:
    """Digits (as hex) with 0xF fillers dealt with: a counted trailing filler is tolerated."""
    if digits.endswith("f") and len(digits) % 2 == 0 and "f" not in digits[:-1]:
        # The length counted the filler of an odd-length number: harmless, and common
        # enough in encoders that refusing it would lose real messages.
        notes.append(f"{field}: address length counts its filler semi-octet")
        return digits[:-1]
    if strict:
        raise DecodeError(
            "filler semi-octet 0xF inside the address", field=field, offset=toa_offset
        )
    notes.append(f"{field}: filler semi-octet inside the address skipped")
    return digits.replace("f", "")


# --- time stamps -----------------------------------------------------------------------------


@lru_cache(maxsize=256)
def zone(quarter_hours: int) -> timezone:
    """The fixed-offset zone for a TS 23.040 time zone (quarter hours east of UTC)."""
    return UTC if quarter_hours == 0 else timezone(timedelta(minutes=15 * quarter_hours))


def _swapped_bcd(octet: int) -> int:
    """Value of a semi-octet pair (first digit in bits 0-3), or -1 if a digit is not 0-9."""
    low = octet & 0x0F
    high = octet >> 4
    if low > 9 or high > 9:
        return -1
    return low * 10 + high


def _read_timestamp(reader: _Reader, field: str, strict: bool, notes: list[str]) -> datetime:
    start = reader.offset
    return _timestamp(reader.take(7, field), field, start, strict, notes)


def _timestamp(raw: bytes, field: str, offset: int, strict: bool, notes: list[str]) -> datetime:
    """TS 23.040 9.2.3.11: YY MM DD hh mm ss TZ, semi-octets swapped; TZ in quarter hours with
    the sign in bit 3. Two-digit years pivot at :data:`YEAR_PIVOT`."""
    fields = [_swapped_bcd(octet) for octet in raw[:6]]
    tz_octet = raw[6]
    tz_units = tz_octet >> 4
    quarters = (tz_octet & 0x07) * 10 + tz_units
    if tz_octet & 0x08:
        quarters = -quarters
    tz_ok = tz_units <= 9
    local: datetime | None = None
    if min(fields) >= 0:
        year, month, day, hour, minute, second = fields
        year += 2000 if year < YEAR_PIVOT else 1900
        try:
            local = datetime(year, month, day, hour, minute, second)
        except ValueError:
            local = None
    if local is not None and tz_ok:
        return local.replace(tzinfo=zone(quarters))
    if strict:
        raise DecodeError(
            f"invalid time stamp digits {raw.hex().upper()}", field=field, offset=offset
        )
    if local is not None:
        notes.append(f"{field}: invalid time zone octet 0x{tz_octet:02X}, read as UTC")
        return local.replace(tzinfo=UTC)
    notes.append(
        f"{field}: invalid time stamp {raw.hex().upper()}, replaced by {UNKNOWN_TIME.isoformat()}"
    )
    return UNKNOWN_TIME


def _relative_validity(value: int) -> timedelta:
    """TS 23.040 9.2.3.12.1."""
    if value <= 143:
        return timedelta(minutes=5 * (value + 1))
    if value <= 167:
        return timedelta(hours=12, minutes=30 * (value - 143))
    if value <= 196:
        return timedelta(days=value - 166)
    return timedelta(weeks=value - 192)


def _read_validity(
    reader: _Reader, vpf: int, strict: bool, notes: list[str]
) -> timedelta | datetime | None:
    if vpf == 0b00:
        return None
    if vpf == 0b10:
        return _relative_validity(reader.octet("TP-VP"))
    if vpf == 0b11:
        return _read_timestamp(reader, "TP-VP", strict, notes)
    raw = reader.take(7, "TP-VP")  # enhanced format, TS 23.040 9.2.3.12.3
    kind = raw[0] & 0b111
    if kind == 0b000:
        return None
    if kind == 0b001:
        return _relative_validity(raw[1])
    if kind == 0b010:
        return timedelta(seconds=raw[1])
    if kind == 0b011:
        hours, minutes, seconds = (_swapped_bcd(octet) for octet in raw[1:4])
        if min(hours, minutes, seconds) >= 0:
            return timedelta(hours=hours, minutes=minutes, seconds=seconds)
    notes.append(f"TP-VP: enhanced validity period {raw.hex().upper()} not understood")
    return None


# --- user data -------------------------------------------------------------------------------


def _parse_udh(header: bytes, offset: int, strict: bool, notes: list[str]) -> UserDataHeader:
    elements: list[InformationElement] = []
    index = 0
    while index < len(header):
        if index + 2 > len(header) or index + 2 + header[index + 1] > len(header):
            iei = header[index]
            if strict:
                raise DecodeError(
                    f"information element 0x{iei:02X} overruns the {len(header)}-octet header",
                    field="TP-UDH",
                    offset=offset + index,
                )
            # TS 23.040 9.2.3.24: a header whose last IE has too few octets is ignored whole.
            notes.append(
                f"TP-UDH: information element 0x{iei:02X} overruns the header; header ignored"
            )
            return UserDataHeader(elements=())
        iei = header[index]
        length = header[index + 1]
        elements.append(InformationElement(iei=iei, data=header[index + 2 : index + 2 + length]))
        index += 2 + length
    for element in elements:
        expected = _KNOWN_IE_LENGTHS.get(element.iei)
        if expected is not None and len(element.data) != expected:
            notes.append(
                f"TP-UDH: IE 0x{element.iei:02X} has {len(element.data)} octets, "
                f"not {expected}; ignored"
            )
        elif (
            element.iei in (IEI_CONCAT_8BIT, IEI_CONCAT_16BIT)
            and concat_from_element(element) is None
        ):
            notes.append(
                f"TP-UDH: concatenation IE {element.data.hex().upper()} has a zero or "
                "out-of-range count; ignored (TS 23.040 9.2.3.24.1)"
            )
    return UserDataHeader(elements=tuple(elements))


def _language(udh: UserDataHeader | None, single: bool, notes: list[str]) -> int:
    if udh is None:
        return 0
    value = udh.national_single_shift if single else udh.national_locking_shift
    if value is None:
        return 0
    tables = SINGLE_SHIFT if single else LOCKING_SHIFT
    if value not in tables:
        kind = "single" if single else "locking"
        name = LANGUAGES.get(value, "reserved")
        notes.append(
            f"no national {kind} shift table for language {value} ({name}); default table used"
        )
        return 0
    return value


def _utf16(payload: bytes, concatenated: bool, offset: int, strict: bool, notes: list[str]) -> str:
    """UCS-2 user data read as UTF-16-BE, so surrogate pairs (emoji) survive.

    A lone surrogate at the edge of a concatenated part is a pair split between parts: it
    shows as U+FFFD here and is rejoined by :func:`modemd.sms.reassembly.assemble`.
    """
    if len(payload) % 2:
        if strict:
            raise DecodeError(
                f"UCS-2 text has an odd number of octets ({len(payload)})",
                field="TP-UD",
                offset=offset,
            )
        notes.append("TP-UD: odd trailing octet of UCS-2 text dropped")
        payload = payload[:-1]
    try:
        return payload.decode("utf-16-be")
    except UnicodeDecodeError:
        pass
    text = payload.decode("utf-16-be", "surrogatepass")
    lone = [index for index, char in enumerate(text) if "\ud800" <= char <= "\udfff"]
    last = len(text) - 1
    at_edges = all(
        (index == 0 and text[index] >= "\udc00") or (index == last and text[index] < "\udc00")
        for index in lone
    )
    if concatenated and at_edges:
        notes.append("TP-UD: a surrogate pair is split across concatenated parts")
    elif strict:
        raise DecodeError("unpaired UTF-16 surrogate in UCS-2 text", field="TP-UD", offset=offset)
    else:
        notes.append("TP-UD: unpaired UTF-16 surrogate replaced by U+FFFD")
    return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in text)


class _UserData:
    __slots__ = ("data", "payload", "text", "udh")

    def __init__(
        self, udh: UserDataHeader | None, text: str | None, data: bytes | None, payload: bytes
    ) -> None:
        self.udh = udh
        self.text = text
        self.data = data
        self.payload = payload  # the octets after the UDH (for UCS-2 reassembly)


def _read_user_data(
    reader: _Reader, first_octet: int, dcs: DataCoding, strict: bool, notes: list[str]
) -> _UserData:
    septet_coded = dcs.alphabet == "gsm7" and not dcs.compressed
    if reader.remaining() == 0:
        if strict:
            raise DecodeError(
                "truncated: the PDU ends before this field", field="TP-UDL", offset=reader.offset
            )
        notes.append("TP-UDL missing: read as empty user data")
        if dcs.compressed or dcs.alphabet == "8bit":
            return _UserData(None, None, b"", b"")
        return _UserData(None, "", None, b"")
    udl_offset = reader.offset
    udl = reader.octet("TP-UDL")
    unit = "septets" if septet_coded else "octets"
    limit = MAX_SEPTETS if septet_coded else MAX_OCTETS
    if udl > limit:
        if strict:
            raise DecodeError(
                f"TP-UDL of {udl} {unit} exceeds {limit}", field="TP-UDL", offset=udl_offset
            )
        notes.append(f"TP-UDL of {udl} {unit} exceeds {limit}")
    needed = (7 * udl + 7) // 8 if septet_coded else udl
    ud_offset = reader.offset
    available = reader.remaining()
    if available < needed:
        if strict:
            raise DecodeError(
                f"TP-UDL of {udl} {unit} needs {needed} octets but only {available} follow",
                field="TP-UDL",
                offset=udl_offset,
            )
        notes.append(
            f"user data truncated: TP-UDL {udl} {unit} needs {needed} octets, {available} present"
        )
        needed = available
    elif available > needed:
        notes.append(f"{available - needed} octets after the user data ignored")
    ud = reader.take(needed, "TP-UD")

    udh: UserDataHeader | None = None
    header_octets = 0
    if first_octet & 0x40:
        if not ud:
            notes.append("TP-UDHI set but the user data is empty")
        else:
            udhl = ud[0]
            header_octets = 1 + udhl
            header_septets = (8 * header_octets + 6) // 7
            beyond = header_octets > len(ud) or (septet_coded and header_septets > udl)
            if beyond:
                if strict:
                    raise DecodeError(
                        f"UDH length {udhl} runs beyond the {len(ud)}-octet user data",
                        field="TP-UDH",
                        offset=ud_offset,
                    )
                notes.append(f"TP-UDH length {udhl} runs beyond the user data")
                header_octets = min(header_octets, len(ud))
            udh = _parse_udh(ud[1:header_octets], ud_offset + 1, strict, notes)
    payload = ud[header_octets:]
    payload_offset = ud_offset + header_octets

    if dcs.compressed:
        notes.append("compressed")
        return _UserData(udh, None, payload, payload)
    if septet_coded:
        header_septets = (8 * header_octets + 6) // 7
        fill_bits = 7 * header_septets - 8 * header_octets
        count = max(0, udl - header_septets)
        septets = unpack_septets(payload, count, fill_bits)
        locking = _language(udh, False, notes)
        single = _language(udh, True, notes)
        return _UserData(udh, decode_gsm7(septets, locking, single, notes), None, payload)
    if dcs.alphabet == "ucs2":
        concatenated = udh is not None and udh.concat is not None
        return _UserData(
            udh, _utf16(payload, concatenated, payload_offset, strict, notes), None, payload
        )
    return _UserData(udh, None, payload, payload)


# --- message types ---------------------------------------------------------------------------


def _coding(reader: _Reader, notes: list[str]) -> DataCoding:
    dcs, dcs_notes = parse_dcs(reader.octet("TP-DCS"))
    notes.extend(dcs_notes)
    return dcs


def _deliver(reader: _Reader, smsc: Address | None, strict: bool, notes: list[str]) -> SmsDeliver:
    first = reader.octet("TP-MTI")
    sender = _read_address(reader, "TP-OA", strict, notes)
    pid = reader.octet("TP-PID")
    dcs = _coding(reader, notes)
    scts = _read_timestamp(reader, "TP-SCTS", strict, notes)
    user_data = _read_user_data(reader, first, dcs, strict, notes)
    return SmsDeliver(
        smsc=smsc,
        sender=sender,
        pid=pid,
        dcs=dcs,
        scts=scts,
        udh=user_data.udh,
        text=user_data.text,
        data=user_data.data,
        tpdu=reader.data,
        more_messages=not first & 0x04,  # TP-MMS 0 means "more messages are waiting"
        reply_path=bool(first & 0x80),
        status_report_indication=bool(first & 0x20),
        warnings=tuple(notes),
    )


def _submit(reader: _Reader, smsc: Address | None, strict: bool, notes: list[str]) -> SmsSubmit:
    first = reader.octet("TP-MTI")
    reference = reader.octet("TP-MR")
    recipient = _read_address(reader, "TP-DA", strict, notes)
    pid = reader.octet("TP-PID")
    dcs = _coding(reader, notes)
    validity = _read_validity(reader, (first >> 3) & 0b11, strict, notes)
    user_data = _read_user_data(reader, first, dcs, strict, notes)
    return SmsSubmit(
        smsc=smsc,
        message_reference=reference,
        recipient=recipient,
        pid=pid,
        dcs=dcs,
        validity=validity,
        udh=user_data.udh,
        text=user_data.text,
        data=user_data.data,
        tpdu=reader.data,
        warnings=tuple(notes),
    )


def _status_report(
    reader: _Reader, smsc: Address | None, strict: bool, notes: list[str]
) -> SmsStatusReport:
    reader.octet("TP-MTI")
    reference = reader.octet("TP-MR")
    recipient = _read_address(reader, "TP-RA", strict, notes)
    scts = _read_timestamp(reader, "TP-SCTS", strict, notes)
    discharge = _read_timestamp(reader, "TP-DT", strict, notes)
    status = reader.octet("TP-ST")
    if reader.remaining():
        _skip_optional_parameters(reader, notes)
    return SmsStatusReport(
        smsc=smsc,
        message_reference=reference,
        recipient=recipient,
        scts=scts,
        discharge_time=discharge,
        status=status,
        tpdu=reader.data,
        warnings=tuple(notes),
    )


def user_data_payload(tpdu: bytes) -> bytes:
    """The user data octets after the UDH of an SMS-DELIVER or SMS-SUBMIT TPDU, read leniently.

    Reassembly joins UCS-2 parts on these raw octets, so a surrogate pair split between two
    parts comes back whole.
    """
    notes: list[str] = []
    reader = _Reader(tpdu, 0)
    first = reader.octet("TP-MTI")
    mti = first & 0b11
    if mti == 0b00:
        _read_address(reader, "TP-OA", False, notes)
        reader.octet("TP-PID")
        dcs = _coding(reader, notes)
        _read_timestamp(reader, "TP-SCTS", False, notes)
    elif mti == 0b01:
        reader.octet("TP-MR")
        _read_address(reader, "TP-DA", False, notes)
        reader.octet("TP-PID")
        dcs = _coding(reader, notes)
        _read_validity(reader, (first >> 3) & 0b11, False, notes)
    else:
        raise DecodeError("not an SMS-DELIVER or SMS-SUBMIT", field="TP-MTI", offset=0)
    return _read_user_data(reader, first, dcs, False, notes).payload


def _skip_optional_parameters(reader: _Reader, notes: list[str]) -> None:
    """Check TP-PI and what it announces (TS 23.040 9.2.3.27). The report's meaning is in
    MR/RA/ST, so trouble here is noted, never fatal."""
    indicator = reader.octet("TP-PI")
    if indicator & 0x78:
        # Reserved bits: typically the 0xFF padding of a SIM record, not parameters.
        notes.append(f"TP-PI 0x{indicator:02X} has reserved bits set; the rest is ignored")
        return
    extension = indicator
    while extension & 0x80 and reader.remaining():
        extension = reader.octet("TP-PI")
    try:
        if indicator & 0x01:
            reader.octet("TP-PID")
        dcs = _coding(reader, notes) if indicator & 0x02 else parse_dcs(0)[0]
        if indicator & 0x04:
            first_octet = reader.data[0]
            _read_user_data(reader, first_octet, dcs, False, notes)
    except DecodeError as exc:
        notes.append(f"optional parameters unreadable: {exc}")

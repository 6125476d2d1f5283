"""Specific behaviours of modemd.sms, including what peer decoders get wrong.

PDUs here are written out in hex where the point is the octets themselves, so the decoder is
not checked against its own encoder.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from modemd.errors import DecodeError
from modemd.sms import (
    Address,
    InformationElement,
    Ports,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    assemble,
    decode_pdu,
    decode_text_record,
    encode_deliver,
    encode_deliver_parts,
)
from modemd.sms.dcs import parse_dcs
from modemd.sms.decode import UNKNOWN_TIME
from modemd.sms.gsm7 import encode_gsm7, pack_septets

OA = "0B915155214365F7"  # +15551234567
SCTS = "11101131522400"  # 2011-01-11 13:25:42 +00:00
WHEN = datetime(2024, 5, 17, 9, 30, 5, tzinfo=timezone(timedelta(hours=2)))


def deliver(*, first: str = "04", dcs: str = "00", ud: str, oa: str = OA, scts: str = SCTS) -> str:
    """Hex of an SMS-DELIVER without SMSC: ``ud`` starts with TP-UDL."""
    return "00" + first + oa + "00" + dcs + scts + ud


def decoded(pdu: str, *, strict: bool = True) -> SmsDeliver:
    message = decode_pdu(pdu, strict=strict)
    assert isinstance(message, SmsDeliver)
    return message


def gsm7_user_data(header: bytes, text: str, *, locking: int = 0, single: int = 0) -> str:
    """TP-UDL + TP-UD for GSM 7 bit text after ``header`` (UDHL included), padded by hand."""
    septets = encode_gsm7(text, locking, single)
    header_septets = (len(header) * 8 + 6) // 7
    bits = "".join(f"{octet:08b}"[::-1] for octet in header).ljust(header_septets * 7, "0")
    bits += "".join(f"{septet:07b}"[::-1] for septet in septets)
    bits = bits.ljust((len(bits) + 7) // 8 * 8, "0")
    octets = bytes(int(bits[i : i + 8][::-1], 2) for i in range(0, len(bits), 8))
    return f"{header_septets + len(septets):02X}" + octets.hex().upper()


# --- what the peers get wrong ----------------------------------------------------------------


def test_first_character_after_a_16_bit_reference_header_is_kept() -> None:
    # UDHL 6 (IE 08, 16-bit reference): 7 header octets = exactly 8 septets, zero fill bits.
    pdu = deliver(first="44", ud="0D" + "060804123402" + "01" + "C8329BFD06")
    message = decoded(pdu)
    assert message.text == "Hello"
    assert message.concat is not None
    assert (message.concat.reference, message.concat.total, message.concat.sequence) == (
        0x1234,
        2,
        1,
    )
    assert message.concat.ref_bits == 16
    built = encode_deliver(
        sender="+15551234567",
        text="Hello",
        scts=datetime(2011, 1, 11, 13, 25, 42, tzinfo=UTC),
        udh=[InformationElement(0x08, bytes.fromhex("12340201"))],
    )
    assert built.hex().upper() == pdu


def test_septet_0x5f_is_the_section_sign() -> None:
    assert decoded(deliver(ud="025F00")).text == "§@"


def test_eight_bit_data_is_not_decoded_as_text() -> None:
    message = decoded(deliver(dcs="F5", ud="0548656C6C6F"))
    assert message.encoding == "8bit" and message.text is None
    assert message.data == b"Hello"
    assert message.message_class == 1


def test_alphanumeric_sender_of_13_semi_octets_has_no_padding_at() -> None:
    # "Megafon": 7 characters = 49 bits in 13 semi-octets; the 3 spare bits are no '@'.
    message = decoded(deliver(oa="0DD0CDF2396C7EBB01", ud="00"))
    assert message.sender == Address("Megafon", 5, 0, "alphanumeric")


def test_emoji_in_ucs2_survives() -> None:
    message = decoded(deliver(dcs="08", ud="0A" + "004800690020D83DDE00"))
    assert message.text == "Hi 😀"


def test_ucs2_lone_surrogate_is_an_error_in_strict_mode() -> None:
    pdu = deliver(dcs="08", ud="04" + "D83D0041")
    with pytest.raises(DecodeError):
        decode_pdu(pdu)
    message = decoded(pdu, strict=False)
    assert message.text == "\ufffdA" and message.warnings


def test_ucs2_odd_trailing_octet() -> None:
    pdu = deliver(dcs="08", ud="03" + "004100")
    with pytest.raises(DecodeError) as raised:
        decode_pdu(pdu)
    assert raised.value.field == "TP-UD"
    message = decoded(pdu, strict=False)
    assert message.text == "A" and message.warnings


# --- national language shift tables, selected by UDH IEs 0x24/0x25 --------------------------


@pytest.mark.parametrize(
    ("elements", "septets", "expected"),
    [
        # Turkish locking shift (NLI 1): ı Ğ İ ç ş
        ("250101", [0x07, 0x0B, 0x40, 0x60, 0x1D], "ıĞİçş"),
        # Turkish single shift: default table plus escaped Ş ğ ı
        ("240101", [0x41, 0x1B, 0x53, 0x1B, 0x67, 0x1B, 0x69], "AŞğı"),
        # Spanish single shift (NLI 2): á é í ó ú ñ (é and ñ are in the default table)
        ("240102", [0x1B, 0x61, 0x05, 0x1B, 0x69, 0x1B, 0x6F, 0x1B, 0x75, 0x7D], "áéíóúñ"),
        # Portuguese locking + single shift (NLI 3): ê ã õ ç Â
        ("250103240103", [0x04, 0x7B, 0x7C, 0x09, 0x1B, 0x61], "êãõçÂ"),
        # Hindi locking shift (NLI 6): नमस्ते
        ("250106", [0x2F, 0x42, 0x4C, 0x5F, 0x27, 0x59], "नमस्ते"),
        # Hindi locking + single shift: digits ० १ from the single shift table
        ("250106240106", [0x1B, 0x1C, 0x1B, 0x1D], "०१"),
        # Bengali locking shift (NLI 4): বাংলা
        ("250104", [0x40, 0x50, 0x01, 0x46, 0x50], "বাংলা"),
    ],
)
def test_national_language_shift(elements: str, septets: list[int], expected: str) -> None:
    header = bytes([len(elements) // 2]) + bytes.fromhex(elements)
    header_septets = (len(header) * 8 + 6) // 7
    fill = header_septets * 7 - len(header) * 8
    user_data = header + pack_septets(bytes(septets), fill)
    udl = header_septets + len(septets)
    message = decoded(deliver(first="44", ud=f"{udl:02X}" + user_data.hex()))
    assert message.text == expected
    assert not message.warnings


def test_unknown_national_language_falls_back_to_default_with_a_warning() -> None:
    header = bytes.fromhex("0325010E")  # NLI 14: reserved
    message = decoded(deliver(first="44", ud=gsm7_user_data(header, "ok")))
    assert message.text == "ok"
    assert any("language 14" in warning for warning in message.warnings)
    spanish_locking = decoded(
        deliver(first="44", ud=gsm7_user_data(bytes.fromhex("03250102"), "x"))
    )
    assert spanish_locking.text == "x" and spanish_locking.warnings


def test_encoder_uses_national_tables_from_the_header() -> None:
    elements = [InformationElement(0x25, b"\x01"), InformationElement(0x24, b"\x01")]
    pdu = encode_deliver(
        sender="+905321234567", text="Günaydın İstanbul ğş", scts=WHEN, udh=elements
    )
    message = decode_pdu(pdu)
    assert isinstance(message, SmsDeliver)
    assert message.encoding == "gsm7" and message.text == "Günaydın İstanbul ğş"
    assert message.udh is not None and message.udh.national_locking_shift == 1


# --- fill bits for every header length ----------------------------------------------------------


@pytest.mark.parametrize("element_octets", [0, *range(2, 11)])
def test_gsm7_text_after_any_header_length(element_octets: int) -> None:
    body = (
        b""
        if element_octets == 0
        else bytes([0x80, element_octets - 2]) + bytes(element_octets - 2)
    )
    header = bytes([len(body)]) + body
    message = decoded(deliver(first="44", ud=gsm7_user_data(header, "Fill {bits} ok")))
    assert message.text == "Fill {bits} ok"
    assert message.udh is not None
    assert len(message.udh.elements) == (1 if element_octets else 0)


# --- errors name what is wrong ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pdu", "field"),
    [
        ("00040", "hex"),  # odd length
        ("00zz", "hex"),
        ("", "hex"),
        ("0004", "TP-OA"),
        ("00040B9151", "TP-OA"),  # truncated address
        ("07911326", "SMSC"),  # SMSC longer than the data
        ("0003", "TP-MTI"),  # reserved MTI
        (deliver(ud="05C8329BFD"), "TP-UDL"),  # UDL longer than the data
        (deliver(first="44", ud="02" + "0500"), "TP-UDH"),  # UDH length beyond the UD
        (deliver(first="44", ud="0A" + "0400031200" + "00000000"), "TP-UDH"),  # IE overruns
        (deliver(scts="11101131522A00", ud="00"), "TP-SCTS"),  # a digit 0xA
        (deliver(scts="11311131522400", ud="00"), "TP-SCTS"),  # month 13
        (deliver(dcs="00", ud="A1" + "00" * 160), "TP-UDL"),  # 161 septets
        (deliver(oa="1591" + "11" * 11, ud="00"), "TP-OA"),  # 21 semi-octets
        (deliver(oa="0481F1F1", ud="00"), "TP-OA"),  # filler inside the number
        (deliver(oa="04012143", ud="00"), "TP-OA"),  # type of address without bit 8
    ],
)
def test_strict_errors_name_the_field(pdu: str, field: str) -> None:
    with pytest.raises(DecodeError) as raised:
        decode_pdu(pdu)
    assert raised.value.field == field, str(raised.value)
    assert field in str(raised.value)


def test_error_offsets_point_at_the_field() -> None:
    with pytest.raises(DecodeError) as raised:
        decode_pdu("07911326040000F0" + deliver(ud="05C8329BFD")[2:])
    assert raised.value.field == "TP-UDL"
    assert raised.value.offset == 8 + 1 + 8 + 2 + 7  # SMSC, first octet, OA, PID/DCS, SCTS


def test_lenient_mode_decodes_what_is_there() -> None:
    message = decoded(deliver(ud="0AC8329BFD06"), strict=False)  # 10 septets claimed, 5 sent
    assert message.text == "Hello"
    assert any("truncated" in warning for warning in message.warnings)


def test_lenient_mode_keeps_a_bad_time_stamp_visible() -> None:
    bad_zone = decoded(deliver(scts="111011315224C2", ud="00"), strict=False)
    assert bad_zone.scts == datetime(2011, 1, 11, 13, 25, 42, tzinfo=UTC)
    bad_date = decoded(deliver(scts="11F01131522400", ud="00"), strict=False)
    assert bad_date.scts == UNKNOWN_TIME
    assert bad_zone.warnings and bad_date.warnings


def test_lenient_mode_ignores_a_header_whose_last_element_overruns() -> None:
    message = decoded(deliver(first="44", ud="0A" + "0400031200" + "00000000"), strict=False)
    assert message.udh is not None and message.udh.elements == ()
    assert message.warnings


def test_input_forms() -> None:
    hexed = deliver(ud="05C8329BFD06")
    expected = decoded(hexed)
    assert decoded(hexed.lower()) == expected
    assert decoded(" ".join(hexed[i : i + 2] for i in range(0, len(hexed), 2)) + "\r\n") == expected
    assert decode_pdu(bytes.fromhex(hexed)) == expected
    assert decode_pdu(hexed[2:], with_smsc=False) == expected
    assert expected.tpdu == bytes.fromhex(hexed[2:])


# --- time stamps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "year"), [("00", 2000), ("79", 2079), ("80", 1980), ("99", 1999), ("42", 2042)]
)
def test_year_pivot(digits: str, year: int) -> None:
    swapped = digits[::-1]
    assert decoded(deliver(scts=swapped + SCTS[2:], ud="00")).scts.year == year


@pytest.mark.parametrize(
    ("zone_octet", "minutes"),
    [("00", 0), ("80", 2 * 60), ("8A", -7 * 60), ("63", 9 * 60), ("49", -(3 * 60 + 30))],
)
def test_time_zone(zone_octet: str, minutes: int) -> None:
    message = decoded(deliver(scts=SCTS[:12] + zone_octet, ud="00"))
    assert message.scts.utcoffset() == timedelta(minutes=minutes)


# --- data coding schemes: every group of TS 23.038 section 4 ------------------------------------


@pytest.mark.parametrize(
    ("raw", "group", "alphabet", "message_class", "compressed", "noted"),
    [
        (0x00, "general", "gsm7", None, False, False),
        (0x04, "general", "8bit", None, False, False),
        (0x08, "general", "ucs2", None, False, False),
        (0x0C, "general", "gsm7", None, False, True),  # reserved character set
        (0x10, "general", "gsm7", 0, False, False),
        (0x15, "general", "8bit", 1, False, False),
        (0x1A, "general", "ucs2", 2, False, False),
        (0x03, "general", "gsm7", None, False, False),  # class bits without bit 4: no class
        (0x20, "general", "gsm7", None, True, False),
        (0x39, "general", "ucs2", 1, True, False),
        (0x40, "automatic_deletion", "gsm7", None, False, False),
        (0x56, "automatic_deletion", "8bit", 2, False, False),
        (0x68, "automatic_deletion", "ucs2", None, True, False),
        (0x80, "reserved", "gsm7", None, False, True),
        (0xBF, "reserved", "gsm7", None, False, True),
        (0xC0, "message_waiting_discard", "gsm7", None, False, False),
        (0xD8, "message_waiting_store", "gsm7", None, False, False),
        (0xEB, "message_waiting_store_ucs2", "ucs2", None, False, False),
        (0xF0, "data_coding_class", "gsm7", 0, False, False),
        (0xF6, "data_coding_class", "8bit", 2, False, False),
        (0xF9, "data_coding_class", "gsm7", 1, False, True),  # reserved bit 3
    ],
)
def test_data_coding_groups(
    raw: int, group: str, alphabet: str, message_class: int | None, compressed: bool, noted: bool
) -> None:
    coding, notes = parse_dcs(raw)
    assert (coding.raw, coding.group, coding.alphabet) == (raw, group, alphabet)
    assert (coding.message_class, coding.compressed) == (message_class, compressed)
    assert bool(notes) == noted


def test_message_waiting_indication() -> None:
    coding, _ = parse_dcs(0xD8)
    assert coding.waiting is not None
    assert (coding.waiting.active, coding.waiting.indication, coding.waiting.store) == (
        True,
        "voicemail",
        True,
    )
    discard, _ = parse_dcs(0xC2)
    assert discard.waiting is not None
    assert (discard.waiting.active, discard.waiting.indication, discard.waiting.store) == (
        False,
        "email",
        False,
    )


def test_every_dcs_value_reads() -> None:
    for raw in range(256):
        coding, _ = parse_dcs(raw)
        assert coding.alphabet in ("gsm7", "8bit", "ucs2")


def test_reserved_group_is_read_as_gsm7_with_a_warning() -> None:
    message = decoded(deliver(dcs="85", ud="05C8329BFD06"))
    assert message.text == "Hello" and message.dcs.group == "reserved"
    assert any("reserved coding group" in warning for warning in message.warnings)


def test_compressed_text_is_kept_as_data() -> None:
    message = decoded(deliver(dcs="20", ud="03A1B2C3"))
    assert message.text is None and message.data == bytes.fromhex("A1B2C3")
    assert "compressed" in message.warnings


# --- addresses ---------------------------------------------------------------------------------


def test_semi_octets_a_to_e() -> None:
    # Semi-octets A-E are * # a b c (TS 23.040 9.1.2.5); type 0x81 is unknown, so no '+'.
    message = decoded(deliver(oa="0581BADCFE", ud="00"))
    assert message.sender.number == "*#abc"
    assert message.sender.kind == "unknown"


@pytest.mark.parametrize(
    ("toa", "kind"),
    [
        ("81", "unknown"),
        ("91", "international"),
        ("A1", "national"),
        ("B1", "network"),
        ("C1", "subscriber"),
        ("E1", "abbreviated"),
        ("F1", "unknown"),
    ],
)
def test_address_kinds(toa: str, kind: str) -> None:
    sender = decoded(deliver(oa="04" + toa + "2143", ud="00")).sender
    assert sender.kind == kind
    assert sender.number == ("+1234" if kind == "international" else "1234")


def test_encoder_address_forms() -> None:
    for sender in ("+4917012345678", "12345", "Megafon", "Design@Home", "*#123"):
        message = decode_pdu(encode_deliver(sender=sender, text="x", scts=WHEN))
        assert isinstance(message, SmsDeliver)
        assert message.sender.number == sender


# --- SMS-SUBMIT and status reports ------------------------------------------------------------


def test_submit_validity_formats() -> None:
    relative = decode_pdu("0011000B914356143254F60000AA04E8373B0C")
    assert isinstance(relative, SmsSubmit) and relative.validity == timedelta(days=4)
    absolute = decode_pdu("0019000B914316565811F900000170520251930004E8373B0C")
    assert isinstance(absolute, SmsSubmit) and absolute.validity == datetime(
        2010, 7, 25, 20, 15, 39, tzinfo=UTC
    )
    enhanced = decode_pdu("0009000B914316565811F90000" + "03103000000000" + "04E8373B0C")
    assert isinstance(enhanced, SmsSubmit) and enhanced.validity == timedelta(hours=1, minutes=3)
    none = decode_pdu("0001000B914316565811F9000004E8373B0C")
    assert isinstance(none, SmsSubmit) and none.validity is None and none.text == "hola"


@pytest.mark.parametrize(
    ("status", "prefix"),
    [
        (0x00, "delivered"),
        (0x21, "pending"),
        (0x46, "failed"),
        (0x65, "failed"),
        (0x1F, "delivered"),
    ],
)
def test_status_texts(status: int, prefix: str) -> None:
    pdu = "0006D60B911326880736F4111011719551401110117195714000"[:-2] + f"{status:02X}"
    report = decode_pdu(pdu)
    assert isinstance(report, SmsStatusReport)
    assert report.status == status
    assert report.status_text.startswith(prefix)
    assert report.delivered == (status < 0x20)


# --- text-mode records --------------------------------------------------------------------------


def test_text_record_header_forms() -> None:
    plain = decode_text_record('"REC READ","+393312345678",,"16/05/10,10:33:31+08"', "Test")
    assert isinstance(plain, SmsDeliver)
    for header in (
        '+CMGR: "REC READ","+393312345678",,"16/05/10,10:33:31+08"',
        '+CMGL: 3,"REC READ","+393312345678",,"16/05/10,10:33:31+08"',
        '+CMT: "+393312345678",,"16/05/10,10:33:31+08"',
        '"+393312345678","Alice","16/05/10,10:33:31+08"',
    ):
        record = decode_text_record(header, "Test")
        assert isinstance(record, SmsDeliver)
        assert (record.sender, record.scts, record.text) == (plain.sender, plain.scts, plain.text)


def test_text_record_ucs2_and_8bit_bodies_come_as_hex() -> None:
    header = '"REC READ","+85291234567",,"07/02/18,00:05:10+32",145,4,0,8,"+85290000000",145,4'
    record = decode_text_record(header, "D83DDE00")
    assert isinstance(record, SmsDeliver) and record.text == "😀" and record.encoding == "ucs2"
    eight_bit = header.replace(",0,8,", ",0,4,")
    record = decode_text_record(eight_bit, "48656C6C6F")
    assert isinstance(record, SmsDeliver) and record.data == b"Hello" and record.text is None
    assert record.smsc is not None and record.smsc.number == "+85290000000"


def test_text_status_report_via_cds() -> None:
    report = decode_text_record(
        '+CDS: 6,20,"0870000000",129,"13/04/29,19:58:00+04","13/04/29,19:59:00+04",0', None
    )
    assert isinstance(report, SmsStatusReport) and report.message_reference == 20


@pytest.mark.parametrize(
    "header",
    [
        '"REC READ","+3933,,"16/05/10,10:33:31+08"',  # unbalanced quote
        '"REC READ","+393312345678",,"16/13/10,10:33:31+08"',  # month 13
        '"REC READ","+393312345678",,"yesterday"',
        "",
        '"REC READ",6,21,"123",129,"22/12/01,07:33:58+04"',  # status report missing fields
        '"REC READ","+393312345678",,"16/05/10,10:33:31+99"',  # a zone of 24h45
        '"REC READ","+393312345678",,"16/05/10,10:33:31+²"',  # not an ASCII digit
    ],
)
def test_text_record_errors(header: str) -> None:
    with pytest.raises(DecodeError):
        decode_text_record(header, "x")


# --- multipart ------------------------------------------------------------------------------------


def parts_of(
    text: str | None = None,
    data: bytes | None = None,
    *,
    reference: int,
    ref_bits: int = 8,
    ports: Ports | None = None,
) -> list[SmsDeliver]:
    pdus = encode_deliver_parts(
        sender="+4917012345678",
        text=text,
        data=data,
        scts=WHEN,
        reference=reference,
        ref_bits=ref_bits,
        ports=ports,
    )
    return [decoded(pdu.hex()) for pdu in pdus]


def test_gsm7_parts_hold_153_septets_and_never_split_an_escape() -> None:
    parts = parts_of("a" * 152 + "€" + "b" * 10, reference=7)
    assert [len(part.text or "") for part in parts] == [152, 11]
    assert parts[1].text == "€" + "b" * 10
    full = parts_of("c" * 153 * 2, reference=7)
    assert [len(part.text or "") for part in full] == [153, 153]
    sixteen = parts_of("d" * 300, reference=0x1234, ref_bits=16)
    assert [len(part.text or "") for part in sixteen] == [152, 148]


def test_ucs2_parts_hold_67_units_and_never_split_a_pair() -> None:
    parts = parts_of("ж" * 66 + "😀" + "ж" * 5, reference=1)
    assert [part.text for part in parts] == ["ж" * 66, "😀" + "ж" * 5]
    assert len(parts_of("ж" * 134, reference=1)) == 2


def test_single_message_needs_no_concatenation() -> None:
    (only,) = parts_of("short", reference=3, ports=Ports(5000, 5000, 16))
    assert only.concat is None and only.ports == Ports(5000, 5000, 16)
    assembled = assemble([only])
    assert (assembled.text, assembled.complete, assembled.total) == ("short", True, 1)


def test_assemble_in_any_order_with_duplicates_and_gaps() -> None:
    text = "x" * 400
    parts = parts_of(text, reference=9)
    shuffled = [*parts[::-1], parts[0]]
    result = assemble(shuffled)
    assert result.text == text and result.complete and result.missing == ()
    assert result.parts == tuple(parts)
    partial = assemble([parts[0], parts[2]])
    assert not partial.complete and partial.missing == (2,) and partial.total == 3
    assert partial.text == "x" * (153 + 94)


def test_assemble_joins_a_surrogate_pair_split_between_parts() -> None:
    # A sender that cut 😀 (D83D DE00) between two UCS-2 parts.
    first = deliver(first="44", dcs="08", ud="0A" + "0500032A0201" + "0041D83D")
    second = deliver(first="44", dcs="08", ud="0A" + "0500032A0202" + "DE000042")
    one, two = decoded(first), decoded(second)
    assert one.text == "A\ufffd" and two.text == "\ufffdB"
    assert one.warnings and two.warnings
    assert assemble([two, one]).text == "A😀B"


def test_assemble_concatenates_8bit_data() -> None:
    payload = bytes(range(256)) * 2
    parts = parts_of(data=payload, reference=4, ports=Ports(2948, 9200, 16))
    random.Random(1).shuffle(parts)
    result = assemble(parts)
    assert result.data == payload and result.text is None and result.complete


@pytest.mark.parametrize(
    "elements",
    [
        ["0003050300", "0003050301"],  # sequence 0
        ["0003050304", "0003050301"],  # sequence beyond the total
        ["0003050201", "0003050302"],  # totals disagree
        ["0003050201", "0003060202"],  # different references
        ["0003050201", "0804000502" + "02"],  # 8-bit and 16-bit reference
    ],
)
def test_assemble_rejects_inconsistent_sets(elements: list[str]) -> None:
    parts = []
    for element in elements:
        header = bytes([len(element) // 2]) + bytes.fromhex(element)
        parts.append(decoded(deliver(first="44", ud=gsm7_user_data(header, "p")), strict=False))
    with pytest.raises(DecodeError):
        assemble(parts)


def test_assemble_needs_parts() -> None:
    with pytest.raises(DecodeError):
        assemble([])

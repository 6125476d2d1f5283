"""GSM 7 bit tables and septet handling (TS 23.038 6.1.2.1, 6.2.1, Annex A)."""

from __future__ import annotations

import unicodedata

import pytest

from modemd.sms.gsm7 import decode_gsm7, encode_gsm7, pack_septets, unpack_septets
from modemd.sms.gsm7_tables import LANGUAGES, LOCKING_SHIFT, SINGLE_SHIFT

CONTROL_CHARACTERS = {"\n", "\r", "\x0c"}
ESC = 0x1B


def test_every_language_has_its_tables() -> None:
    assert sorted(SINGLE_SHIFT) == list(range(14))
    assert sorted(LOCKING_SHIFT) == [0, 1, *range(3, 14)]  # no Spanish locking table (A.3.2)
    assert set(LANGUAGES) == set(SINGLE_SHIFT)


@pytest.mark.parametrize(
    ("kind", "language"),
    [("locking", n) for n in sorted(LOCKING_SHIFT)] + [("single", n) for n in sorted(SINGLE_SHIFT)],
)
def test_table_shape_and_code_points(kind: str, language: int) -> None:
    table = (LOCKING_SHIFT if kind == "locking" else SINGLE_SHIFT)[language]
    assert len(table) == 128
    assert table[ESC] is None  # escape (or, in a single shift table, reserved)
    for septet, char in enumerate(table):
        if char is None or char in CONTROL_CHARACTERS:
            continue
        assert len(char) == 1
        # Every cell is an assigned character: catches transcription slips such as U+0C11.
        assert unicodedata.name(char, ""), f"{kind} {language} 0x{septet:02X}: U+{ord(char):04X}"


@pytest.mark.parametrize("language", [n for n in sorted(LOCKING_SHIFT) if n >= 4])
def test_indic_and_urdu_locking_tables_share_the_latin_skeleton(language: int) -> None:
    table = LOCKING_SHIFT[language]
    assert (table[0x0A], table[0x0D], table[0x20], table[0x21]) == ("\n", "\r", " ", "!")
    assert "".join(str(table[0x30 + i]) for i in range(10)) == "0123456789"
    assert "".join(str(table[0x61 + i]) for i in range(26)) == "abcdefghijklmnopqrstuvwxyz"
    assert (table[0x28], table[0x29], table[0x2C], table[0x2E]) == (")", "(", ",", ".")
    assert (table[0x3A], table[0x3B], table[0x3F]) == (":", ";", "?")


def test_default_alphabet_and_extension_table() -> None:
    default = LOCKING_SHIFT[0]
    assert default[0x00] == "@" and default[0x02] == "$" and default[0x11] == "_"
    assert default[0x5F] == "§"  # not '¿' or '_' as some decoders have it
    assert default[0x60] == "¿" and default[0x40] == "¡" and default[0x24] == "¤"
    extension = SINGLE_SHIFT[0]
    defined = {septet: char for septet, char in enumerate(extension) if char is not None}
    assert defined == {
        0x0A: "\x0c",
        0x14: "^",
        0x28: "{",
        0x29: "}",
        0x2F: "\\",
        0x3C: "[",
        0x3D: "~",
        0x3E: "]",
        0x40: "|",
        0x65: "€",
    }


@pytest.mark.parametrize(
    ("kind", "language", "septet", "expected"),
    [
        # Cells settled by majority when the three transcriptions disagreed (see gsm7_tables).
        ("locking", 4, 0x2C, ","),
        ("locking", 13, 0x2C, ","),
        ("single", 12, 0x65, "€"),
        ("single", 3, 0x05, "ê"),
        ("single", 9, 0x20, "\u0b6a"),
        ("single", 12, 0x1C, "\u0c66"),
        ("locking", 11, 0x11, None),
        ("locking", 12, 0x11, None),
        ("locking", 7, 0x24, "\u0caa"),
        # Turkish (A.3.1 / A.2.1)
        ("locking", 1, 0x04, "€"),
        ("locking", 1, 0x07, "ı"),
        ("locking", 1, 0x0B, "Ğ"),
        ("locking", 1, 0x0C, "ğ"),
        ("locking", 1, 0x1C, "Ş"),
        ("locking", 1, 0x1D, "ş"),
        ("locking", 1, 0x40, "İ"),
        ("locking", 1, 0x60, "ç"),
        ("single", 1, 0x47, "Ğ"),
        ("single", 1, 0x49, "İ"),
        ("single", 1, 0x53, "Ş"),
        ("single", 1, 0x63, "ç"),
        ("single", 1, 0x67, "ğ"),
        ("single", 1, 0x69, "ı"),
        ("single", 1, 0x73, "ş"),
        # Spanish (A.2.2)
        ("single", 2, 0x09, "ç"),
        ("single", 2, 0x41, "Á"),
        ("single", 2, 0x49, "Í"),
        ("single", 2, 0x4F, "Ó"),
        ("single", 2, 0x55, "Ú"),
        ("single", 2, 0x61, "á"),
        ("single", 2, 0x75, "ú"),
        # Portuguese (A.3.3 / A.2.3)
        ("locking", 3, 0x04, "ê"),
        ("locking", 3, 0x15, "∞"),
        ("locking", 3, 0x60, "~"),
        ("locking", 3, 0x7D, "`"),
        ("single", 3, 0x12, "Φ"),
        # Hindi (A.3.6 / A.2.6)
        ("locking", 6, 0x00, "\u0901"),
        ("locking", 6, 0x7F, "\u097f"),
        ("single", 6, 0x1C, "\u0966"),
        # Urdu (A.3.13)
        ("locking", 13, 0x00, "\u0627"),
    ],
)
def test_table_cells(kind: str, language: int, septet: int, expected: str | None) -> None:
    table = (LOCKING_SHIFT if kind == "locking" else SINGLE_SHIFT)[language]
    assert table[septet] == expected


def test_pack_known_vector() -> None:
    # The classic "hellohello" example: 10 septets in 9 octets.
    assert pack_septets(encode_gsm7("hellohello")).hex().upper() == "E8329BFD4697D9EC37"
    assert decode_gsm7(unpack_septets(bytes.fromhex("E8329BFD4697D9EC37"), 10)) == "hellohello"


@pytest.mark.parametrize("fill", range(7))
def test_pack_unpack_with_fill_bits(fill: int) -> None:
    septets = encode_gsm7("Fill bits {€}")
    packed = pack_septets(septets, fill)
    assert packed[0] & ((1 << fill) - 1) == 0
    assert unpack_septets(packed, len(septets), fill) == septets


def test_unpack_reads_only_whole_septets() -> None:
    assert len(unpack_septets(b"\xff" * 7, 100)) == 8
    assert len(unpack_septets(b"\xff" * 7, 100, fill_bits=1)) == 7
    assert unpack_septets(b"", 5) == b""


def test_escape_rules() -> None:
    notes: list[str] = []
    # Escape + a septet the extension table leaves undefined: the default table's character.
    assert decode_gsm7(bytes([ESC, 0x41])) == "A"
    # Escape escape is reserved for another extension table: a space (TS 23.038 6.2.1.1 note 1).
    assert decode_gsm7(bytes([ESC, ESC, 0x41])) == " A"
    # Escape + 0x0A is the page break.
    assert decode_gsm7(bytes([ESC, 0x0A])) == "\x0c"
    assert decode_gsm7(bytes([0x41, ESC]), notes=notes) == "A"
    assert notes and "lone escape" in notes[0]


def test_undefined_locking_cell_shows_replacement_and_is_noted() -> None:
    notes: list[str] = []
    assert decode_gsm7(bytes([0x11]), locking=4, notes=notes) == "\ufffd"  # Bengali 0x11
    assert notes


def test_encode_prefers_one_septet_and_rejects_the_unencodable() -> None:
    assert encode_gsm7("{") == bytes([ESC, 0x28])
    assert encode_gsm7("ç", locking=1) == bytes([0x60])  # Turkish locking has ç in place
    assert encode_gsm7("ç", single=1) == bytes([ESC, 0x63])  # default table has only Ç
    with pytest.raises(ValueError, match="not in the GSM 7 bit tables"):
        encode_gsm7("😀")

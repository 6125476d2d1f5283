"""TP-DCS, the SMS data coding scheme (3GPP TS 23.038 section 4), in both directions."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from modemd.sms.model import Alphabet, DataCoding, MessageWaiting

_ALPHABET_BITS: dict[int, Alphabet] = {0b00: "gsm7", 0b01: "8bit", 0b10: "ucs2"}
_INDICATIONS: tuple[Literal["voicemail", "fax", "email", "other"], ...] = (
    "voicemail",
    "fax",
    "email",
    "other",
)

_WAITING_GROUPS: dict[int, tuple[str, Alphabet]] = {
    0b1100: ("message_waiting_discard", "gsm7"),
    0b1101: ("message_waiting_store", "gsm7"),
    0b1110: ("message_waiting_store_ucs2", "ucs2"),
}


@lru_cache(maxsize=256)
def parse_dcs(raw: int) -> tuple[DataCoding, tuple[str, ...]]:
    """Read a DCS octet; the second item lists notes on reserved values met.

    Every reserved coding is read as the GSM 7 bit default alphabet, as section 4 asks of a
    receiving entity ("Any reserved codings shall be assumed to be the GSM 7 bit default
    alphabet").
    """
    raw &= 0xFF
    group_bits = raw >> 4
    notes: list[str] = []
    if group_bits <= 0b0111:
        group = "general" if group_bits <= 0b0011 else "automatic_deletion"
        alphabet = _ALPHABET_BITS.get((raw >> 2) & 0b11)
        if alphabet is None:
            notes.append(f"DCS 0x{raw:02X}: reserved character set, read as GSM 7 bit")
            alphabet = "gsm7"
        message_class = raw & 0b11 if raw & 0x10 else None
        return (
            DataCoding(
                raw=raw,
                group=group,
                alphabet=alphabet,
                message_class=message_class,
                compressed=bool(raw & 0x20),
                waiting=None,
            ),
            tuple(notes),
        )
    if group_bits <= 0b1011:
        notes.append(f"DCS 0x{raw:02X}: reserved coding group, read as GSM 7 bit")
        return (
            DataCoding(raw, "reserved", "gsm7", None, False, None),
            tuple(notes),
        )
    if group_bits <= 0b1110:
        if raw & 0x04:
            notes.append(f"DCS 0x{raw:02X}: reserved bit 2 set in a message waiting group")
        waiting = MessageWaiting(
            active=bool(raw & 0x08),
            indication=_INDICATIONS[raw & 0b11],
            store=group_bits != 0b1100,
        )
        group, waiting_alphabet = _WAITING_GROUPS[group_bits]
        return (
            DataCoding(raw, group, waiting_alphabet, None, False, waiting),
            tuple(notes),
        )
    if raw & 0x08:
        notes.append(f"DCS 0x{raw:02X}: reserved bit 3 set in the data coding/message class group")
    alphabet = "8bit" if raw & 0x04 else "gsm7"
    return (
        DataCoding(raw, "data_coding_class", alphabet, raw & 0b11, False, None),
        tuple(notes),
    )


def build_dcs(alphabet: Alphabet, message_class: int | None = None) -> int:
    """The general-group DCS octet for an alphabet, with a message class if one is given."""
    bits = {"gsm7": 0x00, "8bit": 0x04, "ucs2": 0x08}[alphabet]
    if message_class is None:
        return bits
    if message_class not in (0, 1, 2, 3):
        raise ValueError("message class is 0..3")
    return 0x10 | bits | message_class

"""SMS-DELIVER encoding (TS 23.040 9.2.2.1): what a modem would hand us, built on purpose.

The daemon only receives; this exists for the simulator, the demo and round-trip tests.
Bad arguments (unencodable text, a message too long for one PDU, a naive time stamp) raise
ValueError: they are programming errors, not data errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from modemd.sms.dcs import build_dcs
from modemd.sms.gsm7 import encode_gsm7, is_gsm7, pack_septets, septet_lengths
from modemd.sms.gsm7_tables import LOCKING_SHIFT, SINGLE_SHIFT
from modemd.sms.model import (
    IEI_CONCAT_8BIT,
    IEI_CONCAT_16BIT,
    IEI_NATIONAL_LOCKING_SHIFT,
    IEI_NATIONAL_SINGLE_SHIFT,
    IEI_PORTS_8BIT,
    IEI_PORTS_16BIT,
    Alphabet,
    InformationElement,
    Ports,
)

__all__ = [
    "encode_address",
    "encode_deliver",
    "encode_deliver_parts",
    "encode_gsm7",
    "encode_scts",
    "encode_smsc",
    "pack_septets",
    "user_data_header",
]

Encoding = Literal["auto", "gsm7", "ucs2", "8bit"]

MAX_SEPTETS = 160
MAX_OCTETS = 140
MAX_PARTS = 255
_SEMI_OCTETS = {char: index for index, char in enumerate("0123456789*#abc")}


def encode_deliver(
    *,
    sender: str,
    text: str | None = None,
    data: bytes | None = None,
    encoding: Encoding = "auto",
    scts: datetime,
    smsc: str | None = None,
    udh: Sequence[InformationElement] = (),
    pid: int = 0,
    message_class: int | None = None,
) -> bytes:
    """A full PDU (SMSC field first, ``00`` without SMSC) carrying one SMS-DELIVER.

    ``sender`` is ``+<digits>`` (international), digits (unknown type) or any other text
    (alphanumeric, GSM 7 bit packed). National language shift IEs (0x24/0x25) in ``udh`` select
    the tables GSM 7 bit text is encoded with.
    """
    locking, single = _languages(udh)
    alphabet = _choose_alphabet(text, data, encoding, locking, single)
    header = user_data_header(udh)
    if alphabet == "gsm7":
        septets = encode_gsm7(text or "", locking, single)
        header_septets = (8 * len(header) + 6) // 7
        fill_bits = 7 * header_septets - 8 * len(header)
        udl = header_septets + len(septets)
        if udl > MAX_SEPTETS:
            raise ValueError(
                f"{udl} septets do not fit one SMS ({MAX_SEPTETS}); use encode_deliver_parts"
            )
        user_data = header + pack_septets(septets, fill_bits)
    else:
        payload = (text or "").encode("utf-16-be") if alphabet == "ucs2" else bytes(data or b"")
        user_data = header + payload
        udl = len(user_data)
        if udl > MAX_OCTETS:
            raise ValueError(
                f"{udl} octets do not fit one SMS ({MAX_OCTETS}); use encode_deliver_parts"
            )
    if not 0 <= pid <= 0xFF:
        raise ValueError("TP-PID is one octet")
    first_octet = 0x04 | (0x40 if header else 0)  # SMS-DELIVER, no more messages waiting
    tpdu = (
        bytes((first_octet,))
        + encode_address(sender)
        + bytes((pid, build_dcs(alphabet, message_class)))
        + encode_scts(scts)
        + bytes((udl,))
        + user_data
    )
    return encode_smsc(smsc) + tpdu


def encode_deliver_parts(
    *,
    sender: str,
    text: str | None = None,
    data: bytes | None = None,
    encoding: Encoding = "auto",
    scts: datetime,
    smsc: str | None = None,
    reference: int,
    ref_bits: int = 8,
    ports: Ports | None = None,
) -> list[bytes]:
    """PDUs for a message of any length: one PDU if it fits, else a concatenated set.

    Parts are filled to capacity (153 GSM 7 bit septets, 67 UTF-16 units or 134 octets with an
    8-bit reference, less with a 16-bit reference or ports), never cutting an escape sequence
    or a surrogate pair.
    """
    if ref_bits not in (8, 16):
        raise ValueError("ref_bits is 8 or 16")
    if not 0 <= reference < (1 << ref_bits):
        raise ValueError(f"reference {reference} does not fit {ref_bits} bits")
    alphabet = _choose_alphabet(text, data, encoding, 0, 0)
    port_elements = [_port_element(ports)] if ports is not None else []

    def build(
        part_text: str | None, part_data: bytes | None, elements: list[InformationElement]
    ) -> bytes:
        return encode_deliver(
            sender=sender,
            text=part_text,
            data=part_data,
            encoding=alphabet,
            scts=scts,
            smsc=smsc,
            udh=elements,
        )

    try:
        return [build(text, data, port_elements)]
    except ValueError as exc:
        if "do not fit" not in str(exc):
            raise

    concat_octets = 5 if ref_bits == 8 else 6
    header_octets = 1 + concat_octets + sum(2 + len(e.data) for e in port_elements)
    text_chunks: list[str] = []
    data_chunks: list[bytes] = []
    if alphabet == "gsm7":
        body = text or ""
        capacity = MAX_SEPTETS - (8 * header_octets + 6) // 7
        text_chunks = _split_by_cost(body, septet_lengths(body), capacity)
    elif alphabet == "ucs2":
        body = text or ""
        costs = [2 if ord(char) > 0xFFFF else 1 for char in body]
        text_chunks = _split_by_cost(body, costs, (MAX_OCTETS - header_octets) // 2)
    else:
        payload = bytes(data or b"")
        size = MAX_OCTETS - header_octets
        data_chunks = [payload[i : i + size] for i in range(0, len(payload), size)]
    total = len(text_chunks) + len(data_chunks)
    if total > MAX_PARTS:
        raise ValueError(f"{total} parts exceed the {MAX_PARTS} a concatenated set may have")
    pdus: list[bytes] = []
    for sequence in range(1, total + 1):
        elements = [_concat_element(reference, ref_bits, total, sequence), *port_elements]
        if text_chunks:
            pdus.append(build(text_chunks[sequence - 1], None, elements))
        else:
            pdus.append(build(None, data_chunks[sequence - 1], elements))
    return pdus


def _split_by_cost(text: str, costs: list[int], capacity: int) -> list[str]:
    chunks: list[str] = []
    start = 0
    used = 0
    for index, cost in enumerate(costs):
        if used + cost > capacity:
            chunks.append(text[start:index])
            start = index
            used = 0
        used += cost
    chunks.append(text[start:])
    return chunks


def _concat_element(reference: int, ref_bits: int, total: int, sequence: int) -> InformationElement:
    if ref_bits == 8:
        return InformationElement(IEI_CONCAT_8BIT, bytes((reference, total, sequence)))
    return InformationElement(
        IEI_CONCAT_16BIT, reference.to_bytes(2, "big") + bytes((total, sequence))
    )


def _port_element(ports: Ports) -> InformationElement:
    if ports.bits == 8:
        if not (0 <= ports.destination <= 0xFF and 0 <= ports.source <= 0xFF):
            raise ValueError("8-bit application ports are 0..255")
        return InformationElement(IEI_PORTS_8BIT, bytes((ports.destination, ports.source)))
    if ports.bits != 16 or not (0 <= ports.destination <= 0xFFFF and 0 <= ports.source <= 0xFFFF):
        raise ValueError("16-bit application ports are 0..65535")
    return InformationElement(
        IEI_PORTS_16BIT, ports.destination.to_bytes(2, "big") + ports.source.to_bytes(2, "big")
    )


def _languages(udh: Sequence[InformationElement]) -> tuple[int, int]:
    locking = single = 0
    for element in udh:
        if element.iei == IEI_NATIONAL_LOCKING_SHIFT and len(element.data) == 1:
            locking = element.data[0] if element.data[0] in LOCKING_SHIFT else 0
        elif element.iei == IEI_NATIONAL_SINGLE_SHIFT and len(element.data) == 1:
            single = element.data[0] if element.data[0] in SINGLE_SHIFT else 0
    return locking, single


def _choose_alphabet(
    text: str | None, data: bytes | None, encoding: Encoding, locking: int, single: int
) -> Alphabet:
    if text is not None and data is not None:
        raise ValueError("give text or data, not both")
    if data is not None:
        if encoding not in ("auto", "8bit"):
            raise ValueError(f"data is sent as 8-bit, not {encoding}")
        return "8bit"
    if encoding == "8bit":
        raise ValueError("8-bit encoding needs data, not text")
    if encoding == "auto":
        return "gsm7" if is_gsm7(text or "", locking, single) else "ucs2"
    return encoding


def user_data_header(elements: Sequence[InformationElement]) -> bytes:
    """The TP-UDH octets (length first) for these IEs, or nothing when there are none."""
    if not elements:
        return b""
    body = bytearray()
    for element in elements:
        if not 0 <= element.iei <= 0xFF or len(element.data) > 0xFF:
            raise ValueError(f"information element 0x{element.iei:X} does not fit the UDH")
        body += bytes((element.iei, len(element.data))) + element.data
    if len(body) > 0xFF:
        raise ValueError("the UDH is longer than 255 octets")
    return bytes((len(body),)) + bytes(body)


def _semi_octets(digits: str) -> bytes:
    nibbles = [_SEMI_OCTETS[char] for char in digits]
    if len(nibbles) % 2:
        nibbles.append(0x0F)
    return bytes(nibbles[i] | (nibbles[i + 1] << 4) for i in range(0, len(nibbles), 2))


def _is_dialable(number: str) -> bool:
    """Digits (with ``* # a b c``) make a number; a name such as "abba" stays alphanumeric."""
    if not all(char in _SEMI_OCTETS for char in number):
        return False
    return not number or any(char in "0123456789*#" for char in number)


def encode_address(number: str) -> bytes:
    """TP-OA/TP-DA: length in semi-octets, type of address, value (TS 23.040 9.1.2.5)."""
    if number.startswith("+") and all(char in _SEMI_OCTETS for char in number[1:]):
        digits, toa = number[1:], 0x91
    elif _is_dialable(number):
        digits, toa = number, 0x81
    else:
        septets = encode_gsm7(number)
        semi_octets = (7 * len(septets) + 3) // 4
        if semi_octets > 20:
            raise ValueError(f"alphanumeric address {number!r} is longer than 11 characters")
        return bytes((semi_octets, 0xD0)) + pack_septets(septets)
    if len(digits) > 20:
        raise ValueError(f"address {number!r} has more than 20 digits")
    return bytes((len(digits), toa)) + _semi_octets(digits)


def encode_smsc(number: str | None) -> bytes:
    """The 27.005 SMSC field: length in octets (type of address included), or ``00``."""
    if number is None:
        return b"\x00"
    if number.startswith("+"):
        digits, toa = number[1:], 0x91
    else:
        digits, toa = number, 0x81
    if not all(char in _SEMI_OCTETS for char in digits) or len(digits) > 20:
        raise ValueError(f"SMSC number {number!r} is not dialable")
    value = _semi_octets(digits)
    return bytes((1 + len(value), toa)) + value


def _bcd(value: int) -> int:
    return ((value % 10) << 4) | (value // 10)


def encode_scts(moment: datetime) -> bytes:
    """TP-SCTS of an aware datetime, in its own zone (TS 23.040 9.2.3.11)."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("the time stamp needs a time zone")
    seconds = int(offset.total_seconds())
    if seconds % 900:
        raise ValueError("the time zone must be a whole number of quarter hours")
    quarters = seconds // 900
    if abs(quarters) > 79:
        raise ValueError("the time zone is out of range")
    if not 1980 <= moment.year <= 2079:
        raise ValueError("TP-SCTS years are 1980..2079")
    magnitude = abs(quarters)
    zone_octet = (magnitude // 10) | ((magnitude % 10) << 4) | (0x08 if quarters < 0 else 0)
    fields = (
        moment.year % 100,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
    )
    return bytes(_bcd(value) for value in fields) + bytes((zone_octet,))

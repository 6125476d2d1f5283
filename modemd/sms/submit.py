"""SMS-SUBMIT encoding (TS 23.040 9.2.2.2): what modemd hands a modem to send.

One message becomes one PDU when it fits, else a concatenated set: 153 GSM 7 bit septets or
67 UCS-2 units per part with an 8-bit reference (152 / 66 with a 16-bit one), never cutting an
escape sequence or a surrogate pair. 8-bit data can be port addressed. TP-MR is left 0: in
PDU mode the modem puts its own reference in and answers it in ``+CMGS: <mr>``.

Also here: SMS-STATUS-REPORT encoding, which the simulated modem needs to answer a send.
Bad arguments raise ValueError (the send layer validates requests before they get here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from modemd.sms.dcs import build_dcs
from modemd.sms.encode import (
    MAX_OCTETS,
    MAX_PARTS,
    MAX_SEPTETS,
    _choose_alphabet,
    _concat_element,
    _port_element,
    _split_by_cost,
    encode_address,
    encode_scts,
    encode_smsc,
    user_data_header,
)
from modemd.sms.gsm7 import encode_gsm7, is_gsm7, pack_septets, septet_lengths
from modemd.sms.model import Alphabet, InformationElement, Ports

Encoding = Literal["auto", "gsm7", "ucs2", "8bit"]

_MTI_SUBMIT = 0x01
_REJECT_DUPLICATES = 0x04
_VPF_RELATIVE = 0x10
_STATUS_REPORT_REQUEST = 0x20
_UDHI = 0x40


@dataclass(frozen=True, slots=True)
class SubmitPdu:
    """One SMS-SUBMIT as written after ``AT+CMGS=<tpdu_length>``: SMSC field first."""

    pdu: bytes
    tpdu_length: int  # octets after the SMSC field: the AT+CMGS argument
    sequence: int = 1
    total: int = 1

    @property
    def hex(self) -> str:
        return self.pdu.hex().upper()


def validity_octet(period: timedelta) -> int:
    """TP-VP, relative format (TS 23.040 9.2.3.12.1): the shortest period not below ``period``.

    Periods past 63 weeks are capped at 63 weeks; one below 5 minutes becomes 5 minutes.
    """
    minutes = max(period.total_seconds() / 60.0, 5.0)
    if minutes <= 12 * 60:
        return math.ceil(minutes / 5) - 1
    if minutes <= 24 * 60:
        return 143 + math.ceil((minutes - 720) / 30)
    days = minutes / 1440
    if days <= 30:
        return 166 + math.ceil(days)
    return min(192 + math.ceil(days / 7), 255)


def encode_submit(
    *,
    recipient: str,
    text: str | None = None,
    data: bytes | None = None,
    encoding: Encoding = "auto",
    udh: tuple[InformationElement, ...] = (),
    message_class: int | None = None,
    validity: timedelta | None = None,
    status_report: bool = False,
    reject_duplicates: bool = False,
    message_reference: int = 0,
    pid: int = 0,
    dcs: int | None = None,
    smsc: str | None = None,
) -> SubmitPdu:
    """One SMS-SUBMIT PDU; ValueError when the content does not fit one.

    ``dcs`` overrides the TP-DCS octet (it must name the same alphabet); by default it is the
    general-group value for the alphabet and ``message_class``.
    """
    alphabet = _choose_alphabet(text, data, encoding, 0, 0)
    header = user_data_header(udh)
    if alphabet == "gsm7":
        septets = encode_gsm7(text or "")
        header_septets = (8 * len(header) + 6) // 7
        udl = header_septets + len(septets)
        if udl > MAX_SEPTETS:
            raise ValueError(f"{udl} septets do not fit one SMS ({MAX_SEPTETS})")
        user_data = header + pack_septets(septets, 7 * header_septets - 8 * len(header))
    else:
        payload = (text or "").encode("utf-16-be") if alphabet == "ucs2" else bytes(data or b"")
        user_data = header + payload
        udl = len(user_data)
        if udl > MAX_OCTETS:
            raise ValueError(f"{udl} octets do not fit one SMS ({MAX_OCTETS})")
    if not 0 <= message_reference <= 0xFF or not 0 <= pid <= 0xFF:
        raise ValueError("TP-MR and TP-PID are one octet each")
    first = _MTI_SUBMIT
    first |= _REJECT_DUPLICATES if reject_duplicates else 0
    first |= _VPF_RELATIVE if validity is not None else 0
    first |= _STATUS_REPORT_REQUEST if status_report else 0
    first |= _UDHI if header else 0
    vp = bytes((validity_octet(validity),)) if validity is not None else b""
    tpdu = (
        bytes((first, message_reference))
        + encode_address(recipient)
        + bytes((pid, build_dcs(alphabet, message_class) if dcs is None else dcs))
        + vp
        + bytes((udl,))
        + user_data
    )
    return SubmitPdu(encode_smsc(smsc) + tpdu, len(tpdu))


def choose_alphabet(text: str | None, data: bytes | None) -> Alphabet:
    """What a message will be sent as: 8-bit for data, GSM 7 bit if it can, else UCS-2."""
    if data is not None:
        return "8bit"
    return "gsm7" if is_gsm7(text or "") else "ucs2"


def split_message(
    text: str | None, data: bytes | None, *, header_octets: int = 0, ref_bits: int = 8
) -> tuple[Alphabet, list[str] | list[bytes]]:
    """The alphabet and the chunks a message is sent in (one chunk when it fits one SMS).

    ``header_octets`` is the UDH a single part carries anyway (ports), length octet included.
    """
    alphabet = choose_alphabet(text, data)
    concat = 1 + (5 if ref_bits == 8 else 6) + max(header_octets - 1, 0)
    if alphabet == "8bit":
        payload = bytes(data or b"")
        if header_octets + len(payload) <= MAX_OCTETS:
            return alphabet, [payload]
        size = MAX_OCTETS - concat
        return alphabet, [payload[i : i + size] for i in range(0, len(payload), size)]
    body = text or ""
    if alphabet == "gsm7":
        costs = septet_lengths(body)
        single = MAX_SEPTETS - (8 * header_octets + 6) // 7
        capacity = MAX_SEPTETS - (8 * concat + 6) // 7
    else:
        costs = [2 if ord(char) > 0xFFFF else 1 for char in body]
        single = (MAX_OCTETS - header_octets) // 2
        capacity = (MAX_OCTETS - concat) // 2
    if sum(costs) <= single:
        return alphabet, [body]
    return alphabet, _split_by_cost(body, costs, capacity)


def encode_submit_parts(
    *,
    recipient: str,
    text: str | None = None,
    data: bytes | None = None,
    ports: Ports | None = None,
    reference: int = 0,
    ref_bits: int = 8,
    flash: bool = False,
    validity: timedelta | None = None,
    status_report: bool = False,
    smsc: str | None = None,
) -> list[SubmitPdu]:
    """The PDUs of one message of any length (a concatenated set when it needs more than one).

    ``flash`` sends message class 0 (shown, not stored). ``reference`` identifies the set at
    the recipient (8 or 16 bits, ``ref_bits``).
    """
    if ref_bits not in (8, 16):
        raise ValueError("ref_bits is 8 or 16")
    if not 0 <= reference < (1 << ref_bits):
        raise ValueError(f"reference {reference} does not fit {ref_bits} bits")
    if ports is not None and data is None:
        raise ValueError("application ports go with 8-bit data")
    port_elements = (_port_element(ports),) if ports is not None else ()
    alphabet, chunks = split_message(
        text, data, header_octets=len(user_data_header(port_elements)), ref_bits=ref_bits)
    total = len(chunks)
    if total > MAX_PARTS:
        raise ValueError(f"{total} parts exceed the {MAX_PARTS} a concatenated set may have")
    pdus: list[SubmitPdu] = []
    for sequence, chunk in enumerate(chunks, start=1):
        elements = port_elements
        if total > 1:
            elements = (_concat_element(reference, ref_bits, total, sequence), *port_elements)
        single = encode_submit(
            recipient=recipient,
            text=chunk if isinstance(chunk, str) else None,
            data=chunk if isinstance(chunk, bytes) else None,
            encoding=alphabet,
            udh=elements,
            message_class=0 if flash else None,
            validity=validity,
            status_report=status_report,
            smsc=smsc,
        )
        pdus.append(SubmitPdu(single.pdu, single.tpdu_length, sequence, total))
    return pdus


def encode_status_report(
    *,
    message_reference: int,
    recipient: str,
    scts: datetime,
    discharge_time: datetime,
    status: int,
    smsc: str | None = None,
) -> bytes:
    """A full PDU (SMSC field first) carrying one SMS-STATUS-REPORT (TS 23.040 9.2.2.3)."""
    if not 0 <= message_reference <= 0xFF or not 0 <= status <= 0xFF:
        raise ValueError("TP-MR and TP-ST are one octet each")
    tpdu = (
        bytes((0x06, message_reference))  # SMS-STATUS-REPORT, TP-SRQ 0 (report of a SUBMIT)
        + encode_address(recipient)
        + encode_scts(scts)
        + encode_scts(discharge_time)
        + bytes((status,))
    )
    return encode_smsc(smsc) + tpdu


__all__ = [
    "SubmitPdu",
    "choose_alphabet",
    "encode_status_report",
    "encode_submit",
    "encode_submit_parts",
    "split_message",
    "validity_octet",
]

"""PDU helpers of the simulator, and the text-mode (AT+CMGF=1) view of a stored PDU.

The text-mode fields come from ``modemd.sms.decode_pdu``, imported when first needed so the
simulator works (in PDU mode) even where the codec is not importable; header octets (first
octet, TOA, PID, DCS) are read from the TPDU directly.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

_HEX_JUNK = re.compile(r"[\s:]")


def parse_hex(text: str) -> bytes:
    """Bytes from a hex string (any case, whitespace allowed); ValueError when not hex."""
    cleaned = _HEX_JUNK.sub("", text)
    if len(cleaned) % 2:
        raise ValueError(f"odd number of hex digits ({len(cleaned)})")
    return bytes.fromhex(cleaned)


def as_pdu(pdu: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(pdu, str):
        return parse_hex(pdu)
    return bytes(pdu)


def to_hex(data: bytes, *, lowercase: bool = False) -> str:
    text = data.hex()
    return text if lowercase else text.upper()


def tpdu_length(pdu: bytes) -> int:
    """<length> of +CMGL/+CMGR/+CMT in PDU mode: octets after the SMSC field."""
    if not pdu:
        return 0
    smsc_len = pdu[0]
    if 1 + smsc_len > len(pdu):
        return max(len(pdu) - 1, 0)
    return len(pdu) - 1 - smsc_len


def format_scts(moment: datetime) -> str:
    """ "yy/MM/dd,hh:mm:ss+zz" with zz in quarter hours (27.005 <scts>)."""
    offset = moment.utcoffset() or timedelta(0)
    quarters = int(offset.total_seconds() // 900)
    sign = "+" if quarters >= 0 else "-"
    return moment.strftime("%y/%m/%d,%H:%M:%S") + f"{sign}{abs(quarters):02d}"


def encode_for_charset(text: str, charset: str) -> str:
    """How the TE sees a string under AT+CSCS (UCS2 and HEX as hex, IRA/GSM as ASCII)."""
    upper = charset.upper()
    if upper == "UCS2":
        return text.encode("utf-16-be").hex().upper()
    if upper == "HEX":
        return text.encode("latin-1", "replace").hex().upper()
    if upper == "8859-1":
        return text.encode("latin-1", "replace").decode("latin-1")
    return text.encode("ascii", "replace").decode("ascii")


@dataclass(frozen=True, slots=True)
class TextRecord:
    """The fields of a text-mode +CMGL / +CMGR / +CMT."""

    address: str  # originator (DELIVER) or destination (a stored SUBMIT), in the TE charset
    toa: int
    scts: str | None  # formatted; None for a SUBMIT (it has no service-centre time stamp)
    body: str  # in the TE character set (or hex for 8-bit data)
    first_octet: int
    pid: int
    dcs: int
    sca: str
    tosca: int
    length: int  # characters (GSM/UCS2) or octets (8-bit)


def _toa_for(number: str) -> int:
    if number.startswith("+"):
        return 145
    if number.isdigit():
        return 129
    return 208


def _toa(address: Any) -> int:
    ton, npi = getattr(address, "ton", None), getattr(address, "npi", None)
    if isinstance(ton, int) and isinstance(npi, int):
        return 0x80 | (ton & 0x07) << 4 | (npi & 0x0F)
    return _toa_for(str(address.number))


def _load_decoder() -> Any:
    for name in ("modemd.sms", "modemd.sms.decode"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        decode = getattr(module, "decode_pdu", None)
        if decode is not None:
            return decode
    return None


def _decoded(pdu: bytes) -> Any:
    decode = _load_decoder()
    if decode is None:
        return None
    try:
        return decode(pdu, with_smsc=True, strict=False)
    except Exception:  # noqa: BLE001 -- any decoder failure means "no text view"
        return None


def text_record(pdu: bytes, charset: str) -> TextRecord | None:
    """The text-mode view of a stored SMS-DELIVER or SMS-SUBMIT, or None if there is none."""
    message = _decoded(pdu)
    if message is None:
        return None
    submit = hasattr(message, "recipient")
    address = message.recipient if submit else getattr(message, "sender", None)
    if address is None:  # a status report: no text-mode record here
        return None
    try:
        tpdu = pdu[1 + pdu[0] :]
        first_octet = tpdu[0]
        at = 2 if submit else 1  # a SUBMIT has TP-MR before its address
        address_octets = (tpdu[at] + 1) // 2
        pid = tpdu[at + 2 + address_octets]
        dcs = tpdu[at + 3 + address_octets]
    except IndexError:
        return None
    text = getattr(message, "text", None)
    data = getattr(message, "data", None)
    if text is not None:
        body = encode_for_charset(str(text), charset)
        length = len(str(text))
    elif data is not None:
        body = bytes(data).hex().upper()
        length = len(data)
    else:
        body, length = "", 0
    scts = None if submit else getattr(message, "scts", None)
    smsc = getattr(message, "smsc", None)
    return TextRecord(
        address=encode_for_charset(str(address.number), charset),
        toa=_toa(address),
        scts=None if submit else (format_scts(scts) if isinstance(scts, datetime) else ""),
        body=body,
        first_octet=first_octet,
        pid=pid,
        dcs=dcs,
        sca=str(smsc.number) if smsc is not None else "",
        tosca=_toa(smsc) if smsc is not None else 129,
        length=length,
    )

def summary(pdu: bytes, width: int = 30) -> str | None:
    """ "<sender>: <start of text>" for listings, or None when it cannot be decoded."""
    message = _decoded(pdu)
    address = None
    if message is not None:
        address = getattr(message, "sender", None) or getattr(message, "recipient", None)
    if address is None:
        return None
    text = getattr(message, "text", None)
    data = getattr(message, "data", None)
    if text is not None:
        body = str(text)
    elif data is not None:
        body = "<" + bytes(data).hex() + ">"
    else:
        body = ""
    if len(body) > width:
        body = body[: width - 1] + "…"
    return f"{address.number}: {body}"

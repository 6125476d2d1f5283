"""Reading a modem's identity answers into values that are true, or into a stated problem.

ICCID (ITU-T E.118): 19 or 20 digits starting with 89, the last one a Luhn check digit; the
SIM stores it nibble-swapped (EF_ICCID) and some firmware reports it that way ("98..."), some
pad it with a trailing F. A missing ICCID (the modem does not say) and a bad one (it says
something that is not an ICCID) are told apart: the bad one is never shown as the ICCID.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["IccidReading", "luhn_ok", "read_iccid", "read_imei"]

_HEXISH: Final = re.compile(r"[0-9A-Fa-f]+")


@dataclass(frozen=True, slots=True)
class IccidReading:
    value: str | None  # the ICCID, digits only, check digit verified
    problem: str | None = None  # why what the modem said is not used (None: fine or absent)


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _unswap(text: str) -> str:
    padded = text + "F" * (len(text) % 2)
    return "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))


def read_iccid(answer: str) -> IccidReading:
    """The ICCID in an answer (``+CCID: 8949...``'s value, quotes allowed), or its problem."""
    text = answer.strip().strip('"').strip()
    if not text:
        return IccidReading(None)
    if _HEXISH.fullmatch(text) is None:
        return IccidReading(None, f"the modem's ICCID answer {text[:32]!r} is not an ICCID")
    if text.startswith("98"):
        text = _unswap(text)  # reported as stored on the SIM, nibbles swapped
    digits = text.upper().rstrip("F")
    if not digits.isdigit() or not 18 <= len(digits) <= 20:
        return IccidReading(None, f"the modem's ICCID answer {answer.strip()[:32]!r} is not "
                                  "18-20 digits")
    if len(digits) >= 19 and not luhn_ok(digits):
        return IccidReading(None, f"ICCID {digits} fails its check digit (misread?)")
    return IccidReading(digits)


def read_imei(answer: str) -> str | None:
    """15 digits (an IMEI), else None: a boot banner or a URC is never taken for one."""
    text = answer.strip().strip('"').strip()
    return text if len(text) == 15 and text.isdigit() and text.isascii() else None

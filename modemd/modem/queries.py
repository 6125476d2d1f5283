"""What the driver and the probe ask a modem, and what each answer looks like.

One table for both, so the probe frames answers as the driver does: a line that does not fit
the declared answer (a boot banner, a call event, a vendor URC) is unsolicited for the probe
too, never glued into the IMEI or the ICCID it reports.
"""

from __future__ import annotations

from modemd.at.answers import IMEI, IMSI, Answer, bare, prefixed

#: An ICCID answer: 18-22 hex digits (swapped nibbles and a trailing F are read later).
ICCID_PATTERN = r'"?[0-9A-Fa-f]{18,22}"?'

MANUFACTURER = prefixed("+CGMI", free_text=True)
MODEL = prefixed("+CGMM", free_text=True)
REVISION = prefixed("+CGMR", free_text=True)

_BY_COMMAND: dict[str, Answer] = {
    "AT+CGMI": MANUFACTURER,
    "AT+CGMM": MODEL,
    "AT+CGMR": REVISION,
    "AT+CGSN": IMEI,
    "AT+CIMI": IMSI,
}


def iccid_answer(prefix: str = "") -> Answer:
    """The answer of one of a profile's ICCID commands (``AT+CCID``, ``AT+QCCID`` ...)."""
    return bare(ICCID_PATTERN, prefix) if prefix else bare(ICCID_PATTERN)


def answer_for(command: str, prefix: str = "") -> Answer:
    """The declared answer of a query: the table's, else the lines named ``prefix``."""
    known = _BY_COMMAND.get(command.upper())
    if known is not None:
        return known
    return prefixed(prefix) if prefix else Answer()

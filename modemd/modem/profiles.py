"""Modem families as data: what differs between vendors lives here, not in if-branches.

A profile is picked from the AT+CGMI / AT+CGMM answers (or forced in the config). Each entry
says which command reads the ICCID, how to reset the radio, which vendor URCs the modem sends,
what storage to prefer and which quirks it is known for. hardware.md documents the same table
for people.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from modemd.modem.usb_ids import usb_ids_of


@dataclass(frozen=True, slots=True)
class ModemProfile:
    name: str
    title: str
    manufacturer: str = ""  # regex, matched against AT+CGMI (case-insensitive)
    model: str = ""  # regex, matched against AT+CGMM
    iccid_commands: tuple[tuple[str, str], ...] = (("AT+CCID", "+CCID"), ("AT+ICCID", "+ICCID"))
    reset_command: str = "AT+CFUN=1,1"
    reset_settle: float = 10.0  # seconds the modem needs after a reset before it answers
    storage_preference: tuple[str, ...] = ("ME", "SM", "MT")
    extra_urcs: tuple[str, ...] = ()
    storage_full_urcs: tuple[str, ...] = ()
    lte_quality_command: str | None = None
    init_commands: tuple[str, ...] = ()
    at_interface: str = ""  # which USB interface is the AT port, for `modemd ports`
    usb_ids: tuple[str, ...] = ()  # "vid:pid"
    quirks: tuple[str, ...] = field(default=())

    def matches(self, manufacturer: str, model: str) -> bool:
        if not self.manufacturer and not self.model:
            return False
        ok_m = not self.manufacturer or re.search(self.manufacturer, manufacturer, re.I)
        ok_n = not self.model or re.search(self.model, model, re.I)
        return bool(ok_m and ok_n)


# How to ask how many PIN attempts are left: the 3GPP command and the vendors' own.
# (command, answer prefix, index of the PIN retries among the answer's fields)
PIN_RETRY_QUERIES: tuple[tuple[str, str, int], ...] = (
    ('AT+CPINR="SIM PIN"', "+CPINR", 1),  # 3GPP: +CPINR: SIM PIN,<retries>,<default>
    ('AT+QPINC="SC"', "+QPINC", 1),  # Quectel: +QPINC: "SC",<pin retries>,<puk retries>
    ("AT+SPIC", "+SPIC", 0),  # SIMCom: +SPIC: <pin retries>,<puk retries>,...
)

GENERIC = ModemProfile(name="generic", title="Any 3GPP TS 27.005 modem")

PROFILES: tuple[ModemProfile, ...] = (
    ModemProfile(
        name="sim800",
        title="SIMCom SIM800 / SIM900",
        manufacturer=r"SIMCOM",
        model=r"SIM(8|9)\d\d",
        iccid_commands=(("AT+CCID", "+CCID"), ("AT+CCID", "")),
        reset_command="AT+CFUN=1,1",
        storage_preference=("SM", "ME"),
        extra_urcs=("Call Ready", "SMS Ready", "+CPIN", "UNDER-VOLTAGE", "OVER-VOLTAGE"),
        at_interface="UART (TTL 2.8 V), no USB",
        quirks=(
            "needs 2 A current bursts: brown-outs reset it (UNDER-VOLTAGE POWER DOWN)",
            "AT+CCID answers the bare ICCID without a prefix",
        ),
    ),
    ModemProfile(
        name="quectel_ec25",
        title="Quectel EC2x / EG25 / EG9x",
        manufacturer=r"Quectel",
        model=r"E[CG]2\d|EG9\d|EC2\d|BG9\d",
        iccid_commands=(("AT+QCCID", "+QCCID"), ("AT+CCID", "+CCID")),
        reset_command="AT+CFUN=1,1",
        storage_preference=("ME", "SM"),
        extra_urcs=("RDY", "+QIND", "+QUSIM", "+CPIN", "+CFUN", "POWERED DOWN"),
        storage_full_urcs=("+QIND",),
        lte_quality_command="AT+QCSQ",
        at_interface="USB interface 02 (ttyUSB2); see usb_ids.py",
        usb_ids=usb_ids_of("quectel_ec25"),
        quirks=("+QIND: SMSFULL when storage is full",),
    ),
    ModemProfile(
        name="simcom_sim7600",
        title="SIMCom SIM7600 / A7670",
        manufacturer=r"SIMCOM",
        model=r"SIM7[0-9]{3}|A76\d\d",
        iccid_commands=(("AT+CICCID", "+ICCID"), ("AT+CCID", "+CCID")),
        reset_command="AT+CRESET",
        storage_preference=("ME", "SM"),
        extra_urcs=("+CPIN", "SMS DONE", "PB DONE", "+CFUN"),
        lte_quality_command="AT+CPSI?",
        at_interface="USB interface 02 (SIM7600, SIM7080) or 04 (A76xx); see usb_ids.py",
        usb_ids=usb_ids_of("simcom_sim7600"),
    ),
    ModemProfile(
        name="huawei_e3372",
        title="Huawei E3372 / E3531 (stick/serial firmware)",
        manufacturer=r"huawei",
        model=r"E3372|E3531|E3276|E1752|K3715|E153|E173",
        iccid_commands=(("AT^ICCID?", "^ICCID"), ("AT+CCID", "+CCID")),
        reset_command="AT^RESET",
        storage_preference=("SM", "ME"),
        extra_urcs=("^RSSI", "^HCSQ", "^BOOT", "^MODE", "^SRVST", "^SIMST", "^SMMEMFULL",
                    "^DSFLOWRPT", "^STIN", "^SYSSTART", "^CEND", "^ORIG", "^CONF", "^CONN"),
        storage_full_urcs=("^SMMEMFULL",),
        init_commands=("AT^CURC=0",),  # stop the ^RSSI/^DSFLOWRPT flood
        at_interface="the PC UI interface in stick mode (not 00); HiLink has no AT port",
        usb_ids=usb_ids_of("huawei_e3372"),
        quirks=(
            "answers COMMAND NOT SUPPORT instead of ERROR",
            "HiLink (12d1:14dc / 1f01) exposes a network card, no serial port",
        ),
    ),
    ModemProfile(
        name="telit_le910",
        title="Telit LE910",
        manufacturer=r"Telit",
        model=r"LE910|LE866|HE910",
        iccid_commands=(("AT#CCID", "#CCID"), ("AT+ICCID", "+ICCID")),
        reset_command="AT#REBOOT",
        storage_preference=("SM", "ME"),
        extra_urcs=("#QSS",),
        at_interface="USB interface 04 (1bc7:1201) or 01 (1bc7:1031); see usb_ids.py",
        usb_ids=usb_ids_of("telit_le910"),
    ),
    ModemProfile(
        name="ublox_lara",
        title="u-blox LARA / SARA",
        manufacturer=r"u-blox",
        model=r"LARA|SARA|TOBY",
        iccid_commands=(("AT+CCID", "+CCID"),),
        reset_command="AT+CFUN=16",
        storage_preference=("ME", "SM"),
        extra_urcs=("+UUPSDD", "+UUSORD", "+CIEV"),
        at_interface="USB interface 00 (LARA-R2) or 01 (LARA-R6, ttyUSB1); see usb_ids.py",
        usb_ids=usb_ids_of("ublox_lara"),
    ),
    GENERIC,
)

BY_NAME: dict[str, ModemProfile] = {p.name: p for p in PROFILES}


def profile_named(name: str) -> ModemProfile:
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(BY_NAME))
        raise KeyError(f"unknown modem profile {name!r} (known: {known})") from None


def detect_profile(manufacturer: str, model: str) -> ModemProfile:
    """The first profile whose patterns match the modem's CGMI/CGMM answers, else generic."""
    for profile in PROFILES:
        if profile.matches(manufacturer, model):
            return profile
    return GENERIC

"""Modem families as data: what differs between vendors lives here, not in if-branches.

A profile is picked from the AT+CGMI / AT+CGMM answers (or forced in the config). Each entry
says which command reads the ICCID, how to reset the radio, which vendor URCs the modem sends,
what storage to prefer and which quirks it is known for. hardware.md documents the same table
for people.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from modemd.at.parser import DEFAULT_URC_PREFIXES
from modemd.modem.usb_ids import usb_ids_of

EventMeaning = Literal[
    "storage_full",  # the message storage is full: sweep now
    "restarted",  # the modem rebooted: its settings are gone, re-initialise and sweep
    "call",  # a call event (RING, a caller hanging up, a missed call)
    "power_warning",  # supply voltage out of range, still running
    "power_down",  # the modem is switching itself off
    "sim",  # the SIM's state changed (removed, inserted, ready)
    "info",  # known and harmless (signal, network time, "SMS DONE")
]


@dataclass(frozen=True, slots=True)
class VendorEvent:
    """What an unsolicited line means: ``name`` as the parser reports it (``+QIND``,
    ``RDY``, ``UNDER-VOLTAGE``), ``args`` a regex its arguments must match (case-insensitive,
    from the start; empty: any)."""

    name: str
    meaning: EventMeaning
    args: str = ""

    def matches(self, name: str, args: str) -> bool:
        if name != self.name:
            return False
        return not self.args or re.match(self.args, args, re.I) is not None


# Events every modem may send (3GPP TS 27.007 and the boot lines several vendors share).
COMMON_EVENTS: tuple[VendorEvent, ...] = (
    *(VendorEvent(n, "call") for n in ("RING", "+CRING", "+CLIP", "+CCWA", "NO CARRIER",
                                        "BUSY", "NO ANSWER", "NO DIALTONE", "MISSED_CALL",
                                        "VOICE CALL", "+COLP", "+CSSI", "+CSSU")),
    VendorEvent("RDY", "restarted"),
    VendorEvent("^SYSSTART", "restarted"),
    VendorEvent("+CPIN", "sim"),
    *(VendorEvent(n, "info") for n in ("+CREG", "+CGREG", "+CEREG", "+C5GREG", "+CGEV",
                                        "+CTZV", "+CTZE", "+CIEV", "+CFUN", "+CUSD",
                                        "+CUSATP", "+CUSATEND", "+STIN")),
)



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
    storage_full_urcs: tuple[str, ...] = ()  # kept for older callers; see events
    events: tuple[VendorEvent, ...] = ()  # what the vendor's unsolicited lines mean
    line_prefix_urcs: tuple[str, ...] = ()  # URCs matched by the start of the line
    pin_retry_queries: tuple[tuple[str, str, int], ...] = ()  # see PIN_RETRY_QUERIES
    pin_settle: float = 0.5  # seconds the SIM needs after a PIN before it answers
    sim_busy_retries: int = 5  # AT+CPIN? answered "SIM busy" (CME 14): asked again, 1 s apart
    command_timeouts: tuple[tuple[str, float], ...] = ()  # command prefix -> seconds (at least)
    ready_timeout: float = 0.0  # seconds after power-up before AT answers (slow-boot modules)
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
        extra_urcs=("Call Ready", "SMS Ready", "+CPIN", "MISSED_CALL", "NORMAL POWER DOWN"),
        # SIM800 Series AT Command Manual V1.09, "Summary of unsolicited result codes".
        line_prefix_urcs=("UNDER-VOLTAGE", "OVER-VOLTAGE"),
        events=(
            VendorEvent("UNDER-VOLTAGE", "power_down", "POWER DOWN"),
            VendorEvent("OVER-VOLTAGE", "power_down", "POWER DOWN"),
            VendorEvent("UNDER-VOLTAGE", "power_warning"),
            VendorEvent("OVER-VOLTAGE", "power_warning"),
            VendorEvent("NORMAL POWER DOWN", "power_down"),
            VendorEvent("Call Ready", "info"),
            VendorEvent("SMS Ready", "info"),
        ),
        pin_retry_queries=(("AT+SPIC", "+SPIC", 0),),
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
        # Quectel EC2x AT Commands Manual V2.0, AT+QINDCFG / "+QIND" and AT+QPINC.
        events=(
            VendorEvent("+QIND", "storage_full", r'"?smsfull"?'),
            VendorEvent("+QIND", "info"),  # SMS DONE, PB DONE, "csq",..., "act",...
            VendorEvent("+QUSIM", "info"),
            VendorEvent("POWERED DOWN", "power_down"),
        ),
        pin_retry_queries=(('AT+QPINC="SC"', "+QPINC", 1),),
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
        extra_urcs=("+CPIN", "SMS DONE", "PB DONE", "+CFUN", "*ATREADY", "VOICE CALL",
                    "+CPSI"),
        # SIMCom SIM7500/SIM7600 Series AT Command Manual V3.00 and A76XX AT Command Manual
        # V1.09: "*ATREADY: 1" once the AT port works after a (re)start, "SMS DONE",
        # "PB DONE" once the SIM's phonebook / SMS are loaded.
        events=(
            VendorEvent("*ATREADY", "restarted"),
            VendorEvent("SMS DONE", "info"),
            VendorEvent("PB DONE", "info"),
        ),
        pin_retry_queries=(("AT+SPIC", "+SPIC", 0), ('AT+CPINR="SIM PIN"', "+CPINR", 1)),
        # A76xx firmware reads a large SIM for 10 s and more before AT+CPIN?/+CIMI answer.
        command_timeouts=(("AT+CPIN", 20.0), ("AT+CIMI", 20.0), ("AT+CICCID", 20.0),
                          ("AT+CPMS", 20.0)),
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
                    "^DSFLOWRPT", "^STIN", "^SYSSTART", "^CEND", "^ORIG", "^CONF", "^CONN",
                    "^NWTIME", "^ACTIVEBAND", "^RFSWITCH", "^EONS", "^LWURC", "^NDISSTAT",
                    "^SYSINFOEX", "^CSNR", "^ECLSTAT", "^CRSSI", "^CERSSI", "^ANLEVEL",
                    "^TIME", "^SMSREADY", "^POSITION", "^WNINV", "^SIMSWITCH", "^LOCCHD"),
        storage_full_urcs=("^SMMEMFULL",),
        # Huawei HiLink/stick AT Command Interface Specification (ME909s, E3372 V2.x):
        # ^BOOT is a periodic heartbeat (not a restart), ^SIMST the SIM state, ^SMMEMFULL
        # the storage; ^PORTSEL=0 routes URCs to the PCUI port modemd reads.
        events=(
            VendorEvent("^SMMEMFULL", "storage_full"),
            VendorEvent("^SIMST", "sim"),
            VendorEvent("^SYSSTART", "restarted"),
            *(VendorEvent(n, "info") for n in (
                "^RSSI", "^HCSQ", "^BOOT", "^MODE", "^SRVST", "^DSFLOWRPT", "^NWTIME",
                "^STIN", "^CEND", "^ORIG", "^CONF", "^CONN", "^ACTIVEBAND", "^RFSWITCH",
                "^EONS", "^LWURC", "^NDISSTAT", "^SYSINFOEX", "^CSNR", "^ECLSTAT",
                "^CRSSI", "^CERSSI", "^ANLEVEL", "^TIME", "^SMSREADY", "^POSITION",
                "^WNINV", "^SIMSWITCH", "^LOCCHD")),
        ),
        init_commands=("AT^CURC=0", "AT^PORTSEL=0"),  # stop the ^RSSI flood; URCs to PCUI
        pin_retry_queries=(("AT^CPIN?", "^CPIN", 3),),  # ^CPIN: <code>,<times>,<puk>,<pin>,..
        pin_settle=3.0,
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
        extra_urcs=("#QSS", "#STN", "#OTAEV", "#MWI", "#SIMPR"),
        # Telit LE910Cx AT Commands Reference Guide: #QSS SIM status, #PCT PIN attempts.
        events=(
            VendorEvent("#QSS", "sim"),
            VendorEvent("#SIMPR", "sim"),
            *(VendorEvent(n, "info") for n in ("#STN", "#OTAEV", "#MWI")),
        ),
        pin_retry_queries=(("AT#PCT", "#PCT", 0),),
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
        extra_urcs=("+UUPSDD", "+UUSORD", "+CIEV", "+UUSIMSTAT", "+UUPSDA", "+UUSTKEVENT",
                    "+UMWI", "+UUSOCL", "+UUSORF", "+UUPING", "+UUCELLINFO", "+UREG"),
        # u-blox AT Commands Manual (UBX-13002752): +UUSIMSTAT SIM state, +UPINCNT attempts;
        # TOBY-L2 needs about 20 s after power-on before the AT interface answers.
        events=(
            VendorEvent("+UUSIMSTAT", "sim"),
            *(VendorEvent(n, "info") for n in ("+UUPSDD", "+UUSORD", "+UUPSDA", "+UUSTKEVENT",
                                                "+UMWI", "+UUSOCL", "+UUSORF", "+UUPING",
                                                "+UUCELLINFO", "+UREG")),
        ),
        pin_retry_queries=(("AT+UPINCNT", "+UPINCNT", 0),),
        ready_timeout=20.0,
        at_interface="USB interface 00 (LARA-R2) or 01 (LARA-R6, ttyUSB1); see usb_ids.py",
        usb_ids=usb_ids_of("ublox_lara"),
    ),
    GENERIC,
)

BY_NAME: dict[str, ModemProfile] = {p.name: p for p in PROFILES}


def meaning_of(profile: ModemProfile, name: str, args: str) -> EventMeaning | None:
    """What an unsolicited line means for ``profile``; None when nobody knows it."""
    for event in (*profile.events, *COMMON_EVENTS):
        if event.matches(name, args):
            return event.meaning
    if name in profile.storage_full_urcs:
        return "storage_full"
    return None


def pin_retry_queries(profile: ModemProfile) -> tuple[tuple[str, str, int], ...]:
    """How to read the PIN attempts left on ``profile``: its own ways first, then 3GPP's."""
    return (*profile.pin_retry_queries, ('AT+CPINR="SIM PIN"', "+CPINR", 1))


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


# Every vendor URC any profile knows: the parser must recognise them before the profile is
# known (a ^RSSI can arrive in the middle of the very first command). Driver and probe alike.
ALL_URC_PREFIXES: tuple[str, ...] = tuple(
    dict.fromkeys([*DEFAULT_URC_PREFIXES, *(u for p in PROFILES for u in p.extra_urcs),
                   *(e.name for p in PROFILES for e in p.events)])
)
ALL_LINE_PREFIX_URCS: tuple[str, ...] = tuple(
    dict.fromkeys(u for p in PROFILES for u in p.line_prefix_urcs))

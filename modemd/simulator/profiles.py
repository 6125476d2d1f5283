"""What the simulated modem families say, as data.

One :class:`SimProfile` per family in ``docs/hardware.md``. Everything that differs between
vendors lives in this table (identity strings, the ICCID command and its answer format, what
``AT+CPMS=?`` / ``AT+CNMI=?`` offer, boot and vendor URCs, the reset command, the first
storage index, how an unknown command is refused); the command handlers never branch on the
profile's name.

Templates may use ``{manufacturer}``, ``{model}``, ``{revision}``, ``{imei}`` (identity lines),
``{cpin}`` (boot URCs), ``{mem}`` (storage-full URC) and ``{rssi}`` (periodic URCs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modemd.at.responses import parse_cpms_test


@dataclass(frozen=True, slots=True)
class IccidCommand:
    """One way a family reads the SIM's ICCID."""

    command: str  # the command after "AT", upper case, exactly: "+CCID", "^ICCID?"
    prefix: str  # the answer's prefix, "" for a bare number ("+CCID: ", "^ICCID: ")
    quoted: bool = False  # the number is in double quotes
    swapped: bool = False  # nibble-swapped, as EF_ICCID is stored (some Qualcomm Huaweis)
    needs_pin: bool = True  # refused with +CME ERROR: 11 while the SIM is PIN-locked


@dataclass(frozen=True, slots=True)
class SimProfile:
    name: str
    manufacturer: str
    model: str
    revision: str
    iccid_commands: tuple[IccidCommand, ...]
    cpms_test: str  # the whole AT+CPMS=? information line
    cnmi_test: str  # the whole AT+CNMI=? information line
    cscs_test: str = '+CSCS: ("IRA","GSM","UCS2")'
    cgmi_line: str = "{manufacturer}"
    cgmm_line: str = "{model}"
    cgmr_line: str = "{revision}"
    ati_lines: tuple[str, ...] = ("{manufacturer}", "{model}", "Revision: {revision}")
    default_cscs: str = "IRA"
    default_cnmi: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    default_cmee: int = 0
    default_storage: tuple[str, str, str] = ("SM", "SM", "SM")
    first_index: int = 1  # index of the first storage slot
    boot_urcs: tuple[str, ...] = ()  # after a reset, always
    ready_urcs: tuple[str, ...] = ()  # after a reset or PIN entry, once the SIM is ready
    storage_full_urc: str | None = None
    periodic_urcs: tuple[tuple[float, str], ...] = ()  # (period in s, template); ^CURC=0 stops
    chatter_urcs: tuple[str, ...] = ()  # vendor URCs the ``chatter`` quirk puts in answers
    missed_call_urcs: tuple[str, ...] = ("NO CARRIER",)  # after RING/+CLIP when nobody answers
    reset_commands: tuple[str, ...] = ("+CFUN=1,1",)  # besides AT+CFUN=<fun>,1
    optional_commands: frozenset[str] = frozenset()  # "+CESQ", "+CEREG", "+CGREG", "^CURC"
    cmgr_empty_error: int | None = 321  # +CMS ERROR for reading an empty slot; None: bare OK
    unknown_command_answer: str | None = None  # replaces ERROR / +CME ERROR: 4 for unknowns
    operator: str = "Telekom.de"
    operator_numeric: str = "26201"
    access_technology: int = 7  # <AcT> in +COPS?: 0 GSM, 2 UTRAN, 7 E-UTRAN
    smsc: str = "+491710760000"

    def storages(self, position: int) -> tuple[str, ...]:
        """The memory names AT+CPMS=? offers for <mem1> (0), <mem2> (1) or <mem3> (2)."""
        groups = parse_cpms_test(self.cpms_test)  # every real form: mixed, doubly bracketed
        return groups[position] if position < len(groups) else ()

    def all_storages(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for position in range(3):
            for name in self.storages(position):
                seen.setdefault(name, None)
        for name in self.default_storage:
            seen.setdefault(name, None)
        return tuple(seen)

    def cnmi_ranges(self) -> tuple[frozenset[int], ...]:
        """The values AT+CNMI=? allows for <mode>, <mt>, <bm>, <ds>, <bfr>."""
        return tuple(_parse_range(group) for group in re.findall(r"\(([^()]*)\)", self.cnmi_test))

    def charsets(self) -> tuple[str, ...]:
        return tuple(re.findall(r'"([^"]+)"', self.cscs_test))


def _parse_range(text: str) -> frozenset[int]:
    values: set[int] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if "-" in item:
            low, high = item.split("-", 1)
            values.update(range(int(low), int(high) + 1))
        else:
            values.add(int(item))
    return frozenset(values)


_LTE = frozenset({"+CESQ", "+CEREG", "+CGREG"})

PROFILES: dict[str, SimProfile] = {
    profile.name: profile
    for profile in (
        SimProfile(
            name="generic",
            manufacturer="modemd",
            model="Simulated GSM modem",
            revision="SIM 1.0",
            iccid_commands=(
                IccidCommand("+CCID", "+CCID: "),
                IccidCommand("+ICCID", "+ICCID: "),
            ),
            cpms_test='+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")',
            cnmi_test="+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)",
            boot_urcs=("+CPIN: {cpin}",),
            chatter_urcs=('+CTZV: "26/12/01,11:00:00",+04', "+CIEV: 2,3", "+CREG: 1"),
            optional_commands=_LTE,
        ),
        SimProfile(
            name="sim800",
            manufacturer="SIMCOM_Ltd",
            model="SIMCOM_SIM800L",
            revision="1418B04SIM800L24",
            cgmr_line="Revision:{revision}",
            ati_lines=("SIM800 R14.18",),
            iccid_commands=(IccidCommand("+CCID", ""),),
            cpms_test=(
                '+CPMS: ("SM","ME","SM_P","ME_P","MT"),("SM","ME","SM_P","ME_P","MT"),'
                '("SM","ME","SM_P","ME_P","MT")'
            ),
            cnmi_test="+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)",
            cscs_test='+CSCS: ("IRA","GSM","UCS2","HEX","PCCP","PCDN","8859-1")',
            default_cnmi=(2, 1, 0, 0, 0),
            boot_urcs=("RDY", "+CFUN: 1", "+CPIN: {cpin}"),
            ready_urcs=("Call Ready", "SMS Ready"),
            # SIM800 Series AT Command Manual V1.09: unsolicited result codes.
            chatter_urcs=("Call Ready", "SMS Ready", "UNDER-VOLTAGE WARNNING",
                          '+CIEV: 10,"26201","Telekom.de","Telekom.de", 0, 0'),
            missed_call_urcs=("NO CARRIER", "MISSED_CALL: 11:02AM {number}"),
            cmgr_empty_error=None,
            access_technology=0,
        ),
        SimProfile(
            name="quectel_ec25",
            manufacturer="Quectel",
            model="EC25",
            revision="EC25EFAR06A06M4G",
            iccid_commands=(
                IccidCommand("+QCCID", "+QCCID: "),
                IccidCommand("+CCID", "+CCID: "),
            ),
            cpms_test='+CPMS: ("SM","ME","MT"),("SM","ME","MT"),("SM","ME","MT")',
            cnmi_test="+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)",
            cscs_test='+CSCS: ("GSM","IRA","UCS2")',
            default_cscs="GSM",
            default_cnmi=(2, 1, 0, 0, 0),
            default_cmee=1,
            first_index=0,
            boot_urcs=("RDY", "+CFUN: 1", "+CPIN: {cpin}", "+QUSIM: 1"),
            ready_urcs=("+QIND: SMS DONE", "+QIND: PB DONE"),
            storage_full_urc='+QIND: "smsfull","{mem}"',
            # Quectel EC2x AT Commands Manual V2.0: AT+QINDCFG, +QIND: "csq"/"act"/SMS DONE.
            chatter_urcs=('+QIND: "csq",{rssi},99', '+QIND: "act","LTE"', "+QIND: SMS DONE",
                          "+QIND: PB DONE", '+CTZE: "+04",0,"2026/12/01,11:00:00"'),
            optional_commands=_LTE,
        ),
        SimProfile(
            name="simcom_sim7600",
            manufacturer="SIMCOM INCORPORATED",
            model="SIMCOM_SIM7600E-H",
            revision="LE20B04SIM7600M22",
            cgmr_line="+CGMR: {revision}",
            ati_lines=(
                "Manufacturer: {manufacturer}",
                "Model: {model}",
                "Revision: SIM7600M22_V2.0",
                "IMEI: {imei}",
                "+GCAP: +CGSM",
            ),
            iccid_commands=(
                IccidCommand("+CICCID", "+ICCID: "),
                IccidCommand("+CCID", "+CCID: "),
            ),
            cpms_test=(
                '+CPMS: ("ME","MT","SM","SR"),("ME","MT","SM","SR"),("ME","MT","SM","SR")'
            ),
            cnmi_test="+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)",
            first_index=0,
            boot_urcs=("+CPIN: {cpin}",),
            ready_urcs=("SMS DONE", "PB DONE"),
            # SIM7500/SIM7600 Series AT Command Manual V3.00: SMS DONE / PB DONE, VOICE CALL.
            chatter_urcs=("SMS DONE", "PB DONE", "+CGEV: ME PDN ACT 1"),
            missed_call_urcs=("VOICE CALL: END: 000000", "MISSED_CALL: 11:02AM {number}"),
            reset_commands=("+CRESET", "+CFUN=1,1"),
            optional_commands=_LTE,
        ),
        SimProfile(
            name="huawei_e3372",
            manufacturer="huawei",
            model="E3372",
            revision="22.200.15.00.00",
            ati_lines=(
                "Manufacturer: {manufacturer}",
                "Model: {model}",
                "Revision: {revision}",
                "IMEI: {imei}",
                "+GCAP: +CGSM,+DS,+ES",
            ),
            iccid_commands=(IccidCommand("^ICCID?", "^ICCID: ", quoted=True, needs_pin=False),),
            cpms_test='+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")',
            cnmi_test="+CNMI: (0,1,2),(0,1,2,3),(0,2),(0,1,2),(0,1)",
            first_index=0,
            boot_urcs=("^SIMST: 1", "^SRVST: 2"),
            storage_full_urc='^SMMEMFULL: "{mem}"',
            periodic_urcs=((4.0, "^RSSI: {rssi}"),),
            # Huawei ME909s/E3372 AT Command Interface Specification: ^RSSI, ^MODE, ^BOOT,
            # ^NWTIME, ^SRVST, ^HCSQ (sent whatever ^CURC says on some firmware).
            chatter_urcs=("^RSSI: {rssi}", "^MODE: 5,4", "^BOOT: 20952545,0,0,0,72",
                          "^NWTIME: 26/12/01,11:00:00+04,00", "^SRVST: 2",
                          '^HCSQ: "LTE",45,40,120,20'),
            missed_call_urcs=("^CEND: 1,0,104,16", "NO CARRIER"),
            reset_commands=("^RESET",),
            optional_commands=frozenset({"+CEREG", "+CGREG", "^CURC"}),
            unknown_command_answer="COMMAND NOT SUPPORT",
        ),
        SimProfile(
            name="telit_le910",
            manufacturer="Telit",
            model="LE910C1-EU",
            revision="25.21.660",
            ati_lines=("Telit", "{model}"),
            iccid_commands=(
                IccidCommand("#CCID", "#CCID: "),
                IccidCommand("+ICCID", "+ICCID: "),
            ),
            cpms_test='+CPMS: ("ME","SM","SR"),("ME","SM"),("ME","SM")',
            cnmi_test="+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)",
            reset_commands=("#REBOOT",),
            # Telit LE910Cx AT Commands Reference Guide: #QSS SIM status.
            chatter_urcs=("#QSS: 1", '+CIEV: "signal",4'),
            optional_commands=_LTE,
        ),
        SimProfile(
            name="ublox_lara",
            manufacturer="u-blox",
            model="LARA-R211",
            revision="30.31",
            ati_lines=(
                "Manufacturer: {manufacturer}",
                "Model: {model}",
                "Revision: {revision}",
                "SVN: 02",
                "IMEI: {imei}",
            ),
            iccid_commands=(IccidCommand("+CCID", "+CCID: "),),
            cpms_test='+CPMS: ("ME","SM"),("ME","SM"),("ME","SM")',
            cnmi_test="+CNMI: (0-2),(0-3),(0-2),(0-2),(0,1)",
            reset_commands=("+CFUN=16", "+CFUN=15"),
            # u-blox AT Commands Manual UBX-13002752: +UUPSDD, +UUSIMSTAT, +CIEV.
            chatter_urcs=("+UUPSDD: 0", "+UUSIMSTAT: 5", "+CIEV: 2,4"),
            optional_commands=_LTE,
        ),
    )
}


def sim_profile(name: str) -> SimProfile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown simulator profile {name!r} (known: {known})") from None

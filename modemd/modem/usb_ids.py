"""Which USB interface of each modem is its AT port, as data.

A USB modem shows several serial ports: one or two answer AT commands, the others carry a
diagnostic protocol (Qualcomm DM/QCDM), NMEA sentences from the GPS, PCM audio or PPP data.
Writing to the wrong one is not harmless (a DM port takes binary frames; bytes sent to a GPS
port can change its configuration), so `modemd ports`, `--probe` and the search for a modem
that re-enumerated use this table and never guess.

Each entry names the document it rests on (``source``); hardware.md says which were confirmed
on real hardware (none so far). The udev rules in ``systemd/99-modemd.rules`` are generated
from this table (``python -m modemd.modem.udev_rules``), and a test keeps them in sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["at", "at-secondary", "ppp", "diag", "gps", "audio", "unused", "unknown"]

#: roles modemd never writes to (and never opens while searching for a modem)
NEVER_WRITE: frozenset[str] = frozenset({"diag", "gps", "audio", "unused"})

_MM = "ModemManager src/plugins/{}/77-mm-{}-port-types.rules (commit 9a2d5863)"
MM_QUECTEL = _MM.format("quectel", "quectel")
MM_SIMTECH = _MM.format("simtech", "simtech")
MM_TELIT = _MM.format("telit", "telit")
MM_UBLOX = _MM.format("ublox", "ublox")
MM_HUAWEI = ("ModemManager src/plugins/huawei/77-mm-huawei-net-port-types.rules and "
             "mm-plugin-huawei.c (commit 9a2d5863): class ff, protocol 02 = PC UI, 01 = modem")


@dataclass(frozen=True, slots=True)
class UsbInterface:
    """What sysfs says about the USB interface behind one tty."""

    number: str  # bInterfaceNumber, two hex digits: "02"
    klass: str = ""  # bInterfaceClass, "ff" = vendor specific
    subclass: str = ""
    protocol: str = ""
    description: str = ""  # the interface string (iInterface), often empty


@dataclass(frozen=True, slots=True)
class UsbModem:
    """One USB composition (vid:pid) of a modem family, and the role of each interface."""

    usb_id: str  # "vid:pid", lowercase hex
    product: str
    profile: str  # the modem profile (modemd/modem/profiles.py) of the family
    interfaces: tuple[tuple[str, Role], ...] = ()  # (bInterfaceNumber, role)
    link: str = ""  # the stable /dev/<link> udev gives its AT port
    source: str = ""
    # Huawei: interface numbers change with the firmware and AT^SETPORT; the role comes from
    # the interface's class/protocol or its description, ``interfaces`` is only the fallback.
    by_function: bool = False

    @property
    def vendor(self) -> str:
        return self.usb_id.split(":")[0]

    @property
    def product_id(self) -> str:
        return self.usb_id.split(":")[1]

    @property
    def at_interface(self) -> str | None:
        """The interface modemd reads, when it is fixed for this composition."""
        if self.by_function:
            return None
        return next((number for number, role in self.interfaces if role == "at"), None)

    def role(self, interface: UsbInterface) -> Role:
        by_text = _role_from_description(interface.description)
        if by_text is not None:
            return by_text
        if self.by_function:
            by_class = _huawei_role(interface)
            if by_class is not None:
                return by_class
        return dict(self.interfaces).get(interface.number.lower(), "unknown")


def _role_from_description(text: str) -> Role | None:
    """The role an interface string names ("HUAWEI Mobile Connect - PC UI Interface",
    "... NMEA ...", "... Diagnostics ..."), or None."""
    lowered = text.lower().replace(" ", "")
    if not lowered:
        return None
    if "pcui" in lowered:
        return "at"
    if "nmea" in lowered or "gps" in lowered or "gnss" in lowered:
        return "gps"
    if "diag" in lowered:
        return "diag"
    if "modem" in lowered:
        return "ppp"
    return None


# Huawei vendor-specific interfaces (class ff): bInterfaceProtocol names the function. 02 and
# 01 are from ModemManager's Huawei rules, 05/14 (GPS) likewise; 12 and 62 (PC UI on LTE
# firmware) from ROOTer's Huawei NCM port selection; 10 (modem) from a ME909u descriptor dump.
_HUAWEI_PROTOCOL_ROLES: dict[str, Role] = {
    "02": "at", "12": "at", "62": "at",
    "01": "ppp", "10": "ppp",
    "03": "diag", "13": "diag",
    "05": "gps", "14": "gps",
}


def _huawei_role(interface: UsbInterface) -> Role | None:
    if interface.klass.lower() != "ff":
        return None
    return _HUAWEI_PROTOCOL_ROLES.get(interface.protocol.lower())


_QUECTEL: tuple[tuple[str, Role], ...] = (
    ("00", "diag"), ("01", "gps"), ("02", "at"), ("03", "at-secondary"))

USB_MODEMS: tuple[UsbModem, ...] = (
    # Quectel: 00 DM, 01 NMEA, 02 AT, 03 AT/PPP (Quectel's Linux USB driver guide, and
    # ModemManager's rules for each of these ids except the EC21).
    UsbModem("2c7c:0125", "Quectel EC25 / EG25-G", "quectel_ec25", _QUECTEL, "modem-ec25",
             MM_QUECTEL),
    UsbModem("2c7c:0121", "Quectel EC21", "quectel_ec25", _QUECTEL, "modem-ec21",
             "Quectel WCDMA&LTE Linux USB Driver User Guide (same layout as the EC25)"),
    UsbModem("2c7c:0191", "Quectel EG91", "quectel_ec25", _QUECTEL, "modem-eg91", MM_QUECTEL),
    UsbModem("2c7c:0195", "Quectel EG95", "quectel_ec25", _QUECTEL, "modem-eg95", MM_QUECTEL),
    UsbModem("2c7c:0296", "Quectel BG96", "quectel_ec25", _QUECTEL, "modem-bg96", MM_QUECTEL),
    # SIMCom
    UsbModem("1e0e:9001", "SIMCom SIM7600 / SIM7100 / SIM7000", "simcom_sim7600",
             (("00", "diag"), ("01", "gps"), ("02", "at"), ("03", "at-secondary"),
              ("04", "audio")), "modem-sim7600", MM_SIMTECH),
    UsbModem("1e0e:9011", "SIMCom A76xx (A7600E-H, A7602E-H, A7670)", "simcom_sim7600",
             (("02", "unused"), ("04", "at"), ("05", "ppp")), "modem-a76xx", MM_SIMTECH),
    UsbModem("1e0e:9205", "SIMCom SIM7070 / SIM7080 / SIM7090 (default layout)",
             "simcom_sim7600",
             (("00", "diag"), ("01", "gps"), ("02", "at"), ("03", "ppp")), "modem-sim7080",
             MM_SIMTECH),
    UsbModem("1e0e:9206", "SIMCom SIM7070 / SIM7080 / SIM7090 (secondary layout)",
             "simcom_sim7600",
             (("00", "diag"), ("01", "gps"), ("02", "at"), ("03", "unused"), ("04", "unused"),
              ("05", "ppp")), "modem-sim7080", MM_SIMTECH),
    # Huawei sticks in stick (serial) firmware: the PC UI port, never interface 00 (the modem
    # port, for PPP). Old firmware reports class ff / protocol ff on every interface: then
    # the fixed layout below is all there is (12d1:1001: PC UI on 02, chan_datacard's table).
    UsbModem("12d1:1506", "Huawei E3372 / E3531 / E171 (stick mode)", "huawei_e3372",
             (("00", "ppp"),), "modem-e3372", MM_HUAWEI, by_function=True),
    UsbModem("12d1:1001", "Huawei E169 / E1550 / E173 (stick mode)", "huawei_e3372",
             (("00", "ppp"), ("01", "audio"), ("02", "at")), "modem-e3372",
             MM_HUAWEI + "; chan_datacard pdiscovery.c: 12d1:1001 AT on 2", by_function=True),
    UsbModem("12d1:1436", "Huawei E1750 / E173 (stick mode)", "huawei_e3372",
             (("00", "ppp"),), "modem-e3372", MM_HUAWEI, by_function=True),
    UsbModem("12d1:155e", "Huawei E3276 / E3531 (stick mode)", "huawei_e3372",
             (("00", "ppp"),), "modem-e3372", MM_HUAWEI, by_function=True),
    # Telit
    UsbModem("1bc7:1201", "Telit LE910C1 (default USB configuration)", "telit_le910",
             (("00", "diag"), ("03", "gps"), ("04", "at"), ("05", "at-secondary"),
              ("06", "unused")), "modem-le910", MM_TELIT),
    UsbModem("1bc7:1031", "Telit LE910C1-EUX", "telit_le910",
             (("00", "diag"), ("01", "at"), ("02", "at-secondary")), "modem-le910", MM_TELIT),
    UsbModem("1bc7:1033", "Telit LE910C1-EUX (ECM)", "telit_le910",
             (("00", "diag"), ("01", "at"), ("02", "at-secondary")), "modem-le910", MM_TELIT),
    # u-blox
    UsbModem("05c6:908b", "u-blox LARA-R6001 / LARA-R6001D", "ublox_lara",
             (("00", "diag"), ("01", "at"), ("02", "at-secondary"), ("03", "unused")),
             "modem-lara-r6", MM_UBLOX),
    UsbModem("1546:110a", "u-blox LARA-R2", "ublox_lara",
             (("00", "at"), ("02", "at-secondary"), ("04", "at-secondary"), ("06", "gps"),
              ("08", "unused"), ("0a", "diag")), "modem-lara-r2", MM_UBLOX),
    UsbModem("1546:1107", "u-blox TOBY-R2", "ublox_lara",
             (("00", "at"), ("02", "at-secondary"), ("04", "at-secondary"), ("06", "gps"),
              ("08", "unused"), ("0a", "diag")), "modem-toby-r2", MM_UBLOX),
    UsbModem("1546:1102", "u-blox LISA-U2 / SARA-U2", "ublox_lara",
             (("00", "at"), ("02", "at-secondary"), ("04", "at-secondary"), ("06", "gps"),
              ("08", "diag"), ("0a", "diag"), ("0c", "unused")), "modem-sara-u2", MM_UBLOX),
    # TOBY-L2 (ECM composition): ModemManager only waits 20 s for it; no document found says
    # which CDC-ACM interface is which, so no port is marked and none is probed.
    UsbModem("1546:1141", "u-blox TOBY-L2 (ECM)", "ublox_lara", (), "",
             MM_UBLOX + " (a 20 s ready delay only; the port layout is not documented there)"),
)

BY_USB_ID: dict[str, UsbModem] = {m.usb_id: m for m in USB_MODEMS}

#: Serial devices that are not modems, named so `modemd ports` can say what they are. modemd
#: never opens them on its own (a DTR toggle resets an Arduino; bytes confuse a GPS).
NOT_MODEMS: dict[str, str] = {
    "1546:01a7": "u-blox 7 GPS receiver",
    "1546:01a8": "u-blox 8 GPS receiver",
    "1546:01a9": "u-blox 9 GPS receiver",
    "10c4:ea60": "Silicon Labs CP210x USB-serial (Zigbee sticks, USB-TTL adapters)",
    "1a86:7523": "CH340 USB-serial (Arduino clones, USB-TTL adapters)",
    "0403:6001": "FTDI FT232 USB-serial (Arduino, USB-TTL adapters)",
    "0403:6015": "FTDI FT231X USB-serial",
    "2341:0043": "Arduino Uno",
    "1cf1:0030": "dresden elektronik ConBee (Zigbee)",
}


def usb_ids_of(profile: str) -> tuple[str, ...]:
    """The USB ids of one profile's family, in table order."""
    return tuple(m.usb_id for m in USB_MODEMS if m.profile == profile)


def modem_for(usb_id: str | None) -> UsbModem | None:
    return BY_USB_ID.get((usb_id or "").lower())

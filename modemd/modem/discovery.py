"""Finding modems among the serial ports: for `modemd ports`, and to re-find a modem by IMEI
after a USB reset gave it another device name."""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modemd.errors import ModemdError
from modemd.modem.huawei_ports import read_port_roles
from modemd.modem.profiles import PROFILES
from modemd.modem.usb_ids import NOT_MODEMS, USB_MODEMS, UsbInterface, modem_for
from modemd.transport.port_users import MODEMMANAGER_FIX

if TYPE_CHECKING:
    from modemd.config import ModemConfig

log = logging.getLogger(__name__)

KNOWN_USB_IDS = {m.usb_id: m.profile for m in USB_MODEMS}

#: the filesystem root sysfs and /dev are read under; tests point it at a fake tree
SYSTEM_ROOT = Path("/")


@dataclass(frozen=True)  # no slots: `modemd ports --json` reads __dict__
class PortInfo:
    device: str
    stable_path: str  # /dev/serial/by-id/... when there is one
    usb_id: str | None
    interface: str | None
    description: str
    profile_hint: str | None
    looks_like_at: bool  # the AT port of a known modem: its USB id AND interface match
    answered_at: bool | None = None
    imei: str | None = None
    role: str | None = None  # at, at-secondary, ppp, diag, gps, audio, unused, unknown
    product: str | None = None  # the modem (or known non-modem device) by its USB id

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def may_write(self) -> bool:
        """Whether modemd may open this port on its own: only a known modem's AT port."""
        return self.role == "at"


@dataclass(frozen=True, slots=True)
class _Tty:
    name: str
    usb_id: str | None
    interface: UsbInterface | None
    serial_driver: str  # "usb-serial", "cdc_acm", "platform", "pnp", ...
    usb_device: str = ""  # the USB device's sysfs path: which ttys belong to one modem


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _usb_parents(device: Path) -> tuple[Path, Path] | None:
    """The USB interface and USB device directories above a tty's sysfs device."""
    here = device
    for _ in range(6):
        if (here / "bInterfaceNumber").exists() and (here.parent / "idVendor").exists():
            return here, here.parent
        if here.parent == here:
            break
        here = here.parent
    return None


def _scan_ttys(root: Path) -> list[_Tty]:
    """Every tty in sysfs with a device behind it (virtual consoles and ptys have none)."""
    found: list[_Tty] = []
    class_dir = root / "sys" / "class" / "tty"
    try:
        entries = sorted(class_dir.iterdir(), key=lambda p: _natural(p.name))
    except OSError:
        return found
    for entry in entries:
        device_link = entry / "device"
        if not device_link.exists():
            continue
        device = device_link.resolve()
        subsystem = (device / "subsystem").resolve().name if (device / "subsystem").exists() \
            else ""
        parents = _usb_parents(device)
        if parents is None:
            found.append(_Tty(entry.name, None, None, subsystem))
            continue
        iface_dir, usb_dir = parents
        usb_id = f"{_read(usb_dir / 'idVendor').lower()}:{_read(usb_dir / 'idProduct').lower()}"
        interface = UsbInterface(
            number=_read(iface_dir / "bInterfaceNumber").lower(),
            klass=_read(iface_dir / "bInterfaceClass").lower(),
            subclass=_read(iface_dir / "bInterfaceSubClass").lower(),
            protocol=_read(iface_dir / "bInterfaceProtocol").lower(),
            description=_read(iface_dir / "interface"),
        )
        found.append(_Tty(entry.name, usb_id, interface, subsystem, str(usb_dir)))
    return found


def _natural(name: str) -> tuple[str, int]:
    digits = len(name) - len(name.rstrip("0123456789"))
    stem, number = (name[:-digits], int(name[-digits:])) if digits else (name, -1)
    return stem, number


def _by_id_links(root: Path) -> dict[str, str]:
    links: dict[str, str] = {}
    for name in ("serial0", "serial1"):  # Raspberry Pi OS: the GPIO header's UART
        link = root / "dev" / name
        if link.is_symlink():
            links[os.path.realpath(link)] = str(link)
    for folder in ("by-id", "by-path"):
        for link in sorted((root / "dev" / "serial" / folder).glob("*")):
            links.setdefault(os.path.realpath(link), str(link))
    return links


def _port_info(tty: _Tty, root: Path, links: dict[str, str]) -> PortInfo | None:
    device = str(root / "dev" / tty.name)
    stable = links.get(os.path.realpath(device), device)
    if tty.usb_id is None:
        # A UART: listed when it is real (a PC's pnp port, or the Pi's UART behind
        # /dev/serial0), never marked or probed. A platform ttyS with nothing behind it is not.
        if tty.serial_driver == "platform" and stable == device:
            return None
        return PortInfo(device=device, stable_path=stable, usb_id=None, interface=None,
                        description="UART", profile_hint=None,
                        looks_like_at=False)
    modem = modem_for(tty.usb_id)
    interface = tty.interface or UsbInterface(number="")
    role = modem.role(interface) if modem is not None else None
    product = modem.product if modem is not None else NOT_MODEMS.get(tty.usb_id)
    return PortInfo(
        device=device,
        stable_path=stable,
        usb_id=tty.usb_id,
        interface=interface.number or None,
        description=interface.description or product or "",
        profile_hint=modem.profile if modem is not None else None,
        looks_like_at=role == "at",
        role=role,
        product=product,
    )


def list_ports(*, probe: bool = False, timeout: float = 1.0,
               root: Path | None = None) -> list[PortInfo]:
    """Serial ports with their USB ids and the role of each (from modemd/modem/usb_ids.py).

    Only the AT port of a known modem (USB id AND interface match) is marked; ``probe``
    sends AT+CGSN to those and to nothing else: never to a diagnostic, GPS/NMEA or audio
    port, nor to a device whose USB id no profile names (an Arduino, a Zigbee stick).
    """
    base = SYSTEM_ROOT if root is None else root
    links = _by_id_links(base)
    entries = [(tty, info) for tty in _scan_ttys(base)
               if (info := _port_info(tty, base, links)) is not None]
    if probe:
        entries = _ask_huawei_layouts(entries, timeout=timeout)
    result: list[PortInfo] = []
    for _, found in entries:
        if probe and found.may_write:
            imei = read_imei(found.device, timeout=timeout)
            result.append(dataclasses.replace(found, answered_at=imei is not None, imei=imei))
        else:
            result.append(found)
    return result


def _ask_huawei_layouts(entries: list[tuple[_Tty, PortInfo]], *, timeout: float,
                        ) -> list[tuple[_Tty, PortInfo]]:
    """For a Huawei stick whose descriptors name no PC UI port: AT^GETPORTMODE on its modem
    port (interface 00, which answers AT), and the roles it lists for its ttys."""
    sticks: dict[str, list[int]] = {}
    for index, (tty, _info) in enumerate(entries):
        modem = modem_for(tty.usb_id)
        if modem is not None and modem.by_function and tty.usb_device:
            sticks.setdefault(tty.usb_device, []).append(index)
    result = list(entries)
    for indexes in sticks.values():
        ports = sorted((result[i] for i in indexes), key=lambda e: e[1].interface or "")
        if any(info.role == "at" for _, info in ports):
            continue
        first = ports[0][1]
        if first.interface != "00" or first.role not in ("ppp", "unknown"):
            continue
        roles = read_port_roles(first.device, timeout=timeout)
        if not roles:
            continue
        by_device = {info.device: role for (_, info), role in zip(ports, roles, strict=False)}
        for i in indexes:
            tty, info = result[i]
            role = by_device.get(info.device, info.role)
            result[i] = (tty, dataclasses.replace(info, role=role, looks_like_at=role == "at"))
    return result


@dataclass(frozen=True, slots=True)
class PortIdentity:
    imei: str | None
    iccid: str | None


# Every ICCID query any profile knows: which one a modem answers is not known before asking.
_ICCID_QUERIES = tuple(dict.fromkeys(q for p in PROFILES for q in p.iccid_commands))


def read_identity(port: str, *, baudrate: int = 115200, timeout: float = 1.0,
                  with_iccid: bool = False) -> PortIdentity | None:
    """Ask one port for its IMEI (and ICCID); None if it does not answer like a modem."""
    from modemd.modem.session import ATSession
    from modemd.transport import SerialTransport

    transport = SerialTransport(port, baudrate=baudrate)
    try:
        transport.open()
    except ModemdError:
        return None
    session = ATSession(transport, on_urc=lambda urc: None, name=f"probe:{port}")
    try:
        session.execute("AT", timeout=timeout, check=False)
        imei = _digits(session.execute("AT+CGSN", timeout=timeout, check=False).lines,
                       "+CGSN", 14, 17)
        if imei is None:
            return None
        iccid = None
        for command, prefix in _ICCID_QUERIES if with_iccid else ():
            answer = session.execute(command, timeout=timeout, check=False)
            iccid = _digits(answer.lines, prefix, 18, 22, strip="F")
            if iccid:
                break
        return PortIdentity(imei=imei, iccid=iccid)
    except ModemdError:
        return None
    finally:
        session.close()


def _digits(lines: Sequence[str], prefix: str, shortest: int, longest: int,
            strip: str = "") -> str | None:
    for line in lines:
        text = line.strip()
        if prefix and text.startswith(prefix + ":"):
            text = text[len(prefix) + 1 :]
        text = text.strip().strip('"').rstrip(strip)
        if text.isdigit() and shortest <= len(text) <= longest:
            return text
    return None


def read_imei(port: str, *, baudrate: int = 115200, timeout: float = 1.0) -> str | None:
    """Ask one port for its IMEI (AT+CGSN); None if it does not answer like a modem."""
    found = read_identity(port, baudrate=baudrate, timeout=timeout)
    return found.imei if found else None


def candidate_ports(root: Path | None = None) -> list[str]:
    """The ports worth asking for an IMEI: the AT port of every modem whose USB id and
    interface a profile names, by-id names first. Never any other tty: opening a port
    toggles DTR (an Arduino resets) and AT bytes confuse GPS receivers and Zigbee sticks.
    MODEMD_EXTRA_PORT_GLOB adds ports the operator names explicitly (the simulator in tests).
    """
    found = [p for p in list_ports(root=root) if p.may_write]
    paths = sorted(p.stable_path for p in found if p.stable_path != p.device)
    paths += [p.device for p in found if p.stable_path == p.device]
    extra = os.environ.get("MODEMD_EXTRA_PORT_GLOB")
    if extra:
        paths += sorted(glob.glob(extra))
    return list(dict.fromkeys(paths))


def find_port_by_identity(config: ModemConfig, *, root: Path | None = None) -> str | None:
    """The port of the modem whose IMEI or ICCID the config names, wherever it re-enumerated
    (a USB reset can turn ttyUSB2 into ttyUSB6). Only known modems' AT ports are asked."""
    if not config.imei and not config.iccid:
        return None
    for path in candidate_ports(root):
        found = read_identity(path, baudrate=config.baudrate, with_iccid=bool(config.iccid))
        if found is not None and config.matches(imei=found.imei, iccid=found.iccid):
            return path
    return None


def field_hints(
    found: Sequence[PortInfo],
    *,
    sysfs: Path = Path("/sys/bus/usb/devices"),
    proc: Path = Path("/proc"),
) -> list[str]:
    """What a field engineer should know about the ports `modemd ports` found: no modem port
    at all, a Huawei stick in HiLink mode (no AT port), ModemManager holding modems."""
    from modemd.modem.probe import HILINK_USB_IDS, hilink_sticks, modemmanager_running

    hints: list[str] = []
    if not any(p.looks_like_at for p in found):
        hints.append(
            "no port looks like a modem's AT port: is the modem plugged in and powered "
            "(`lsusb`)? A USB modem shows up as /dev/ttyUSB* or /dev/ttyACM*; a SIM800 on the "
            "Pi's GPIO UART is /dev/serial0 (enable the UART, disable the serial console in "
            "raspi-config).")
    for usb_id in hilink_sticks(sysfs):
        hints.append(
            f"Huawei {usb_id} is in {HILINK_USB_IDS[usb_id]}: it has no AT port; switch it to "
            "stick mode with usb_modeswitch (see hardware.md).")
    for port in found:
        modem = modem_for(port.usb_id)
        if modem is not None and not modem.interfaces and not modem.by_function:
            hints.append(
                f"{port.device}: {modem.product} ({port.usb_id}): no document found says which "
                "of its ports is the AT port, so none is marked or probed; ask each with "
                f"`modemd probe {port.device}`.")
    if modemmanager_running(proc):
        hints.append(f"ModemManager is running: it opens modem ports too. {MODEMMANAGER_FIX}")
    return hints

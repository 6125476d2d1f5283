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
from typing import Any

from serial.tools import list_ports as pyserial_ports

from modemd.config import ModemConfig
from modemd.errors import ModemdError
from modemd.modem.profiles import PROFILES

log = logging.getLogger(__name__)

KNOWN_USB_IDS = {usb_id: p.name for p in PROFILES for usb_id in p.usb_ids}


@dataclass(frozen=True)  # no slots: `modemd ports --json` reads __dict__
class PortInfo:
    device: str
    stable_path: str  # /dev/serial/by-id/... when there is one
    usb_id: str | None
    interface: str | None
    description: str
    profile_hint: str | None
    looks_like_at: bool
    answered_at: bool | None = None
    imei: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _by_id_links() -> dict[str, str]:
    links: dict[str, str] = {}
    for link in sorted(glob.glob("/dev/serial/by-id/*")):
        links[os.path.realpath(link)] = link
    return links


def list_ports(*, probe: bool = False, timeout: float = 1.0) -> list[PortInfo]:
    """Serial ports, with a guess of which are AT ports; ``probe`` sends AT to each."""
    links = _by_id_links()
    result: list[PortInfo] = []
    for port in sorted(pyserial_ports.comports(), key=lambda p: p.device):
        usb_id = f"{port.vid:04x}:{port.pid:04x}" if port.vid is not None else None
        interface = None
        location = port.location or ""
        if ":" in location:
            interface = location.rsplit(".", 1)[-1]
        hint = KNOWN_USB_IDS.get(usb_id or "")
        looks = usb_id is not None and (
            hint is not None or "modem" in (port.description or "").lower()
            or port.device.startswith(("/dev/ttyUSB", "/dev/ttyACM"))
        )
        info = PortInfo(
            device=port.device,
            stable_path=links.get(os.path.realpath(port.device), port.device),
            usb_id=usb_id,
            interface=interface,
            description=port.description or "",
            profile_hint=hint,
            looks_like_at=looks,
        )
        if probe and looks:
            imei = read_imei(port.device, timeout=timeout)
            info = dataclasses.replace(info, answered_at=imei is not None, imei=imei,
                                       looks_like_at=imei is not None)
        result.append(info)
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
    session.start()
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


def candidate_ports() -> list[str]:
    """Device paths worth asking for an IMEI, by-id names first."""
    paths = sorted(glob.glob("/dev/serial/by-id/*"))
    paths += sorted(glob.glob("/dev/ttyUSB*")) + sorted(glob.glob("/dev/ttyACM*"))
    extra = os.environ.get("MODEMD_EXTRA_PORT_GLOB")  # e.g. the simulator's links in tests
    if extra:
        paths += sorted(glob.glob(extra))
    return list(dict.fromkeys(paths))


def find_port_by_identity(config: ModemConfig) -> str | None:
    """The port of the modem whose IMEI or ICCID the config names, wherever it re-enumerated
    (a USB reset can turn ttyUSB2 into ttyUSB6)."""
    if not config.imei and not config.iccid:
        return None
    for path in candidate_ports():
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
    if modemmanager_running(proc):
        hints.append(
            "ModemManager is running: it opens modem ports too. Stop it (`systemctl disable "
            "--now ModemManager`) or keep it away with systemd/99-modemd.rules "
            "(ENV{ID_MM_DEVICE_IGNORE}=\"1\").")
    return hints

"""Is ModemManager in the way of a modem modemd drives?

ModemManager probes every modem port it finds and keeps the ones it takes. While it *holds* a
port, opening it fails (modemd/transport/port_users.py names it then). Running but not told to
leave a modem alone, it *uses* the port whenever it (re)probes: after a USB reset, a replug, or
its own restart, and then talks over modemd. Told to leave it alone means the udev property
ID_MM_DEVICE_IGNORE=1 on the port, which udev keeps in /run/udev/data/c<major>:<minor>.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from modemd.transport.port_users import MODEMMANAGER_FIX, modemmanager_active

if TYPE_CHECKING:
    from modemd.config import ModemConfig

log = logging.getLogger(__name__)


def ignored_by_modemmanager(port: str, *, root: Path = Path("/")) -> bool | None:
    """Whether udev marked ``port`` ID_MM_DEVICE_IGNORE=1; None when it cannot be told (not a
    device node, or udev keeps no record of it)."""
    try:
        info = os.stat(port)
    except OSError:
        return None
    if not stat.S_ISCHR(info.st_mode):
        return None
    record = root / "run" / "udev" / "data" / f"c{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
    try:
        lines = record.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return "E:ID_MM_DEVICE_IGNORE=1" in lines


def modemmanager_ports(*, mmcli: str | None = "mmcli") -> dict[str, str]:
    """The ports ModemManager uses, by tty name ("ttyUSB2" -> its modem's D-Bus path), as
    `mmcli -K` reports them; empty when mmcli is missing or ModemManager does not answer."""
    command = shutil.which(mmcli) if mmcli else None
    if command is None:
        return {}

    def ask(*args: str) -> list[tuple[str, str]]:
        try:
            done = subprocess.run([command, *args, "-K"], capture_output=True, text=True,
                                  timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return []
        pairs = []
        for line in done.stdout.splitlines() if done.returncode == 0 else ():
            key, colon, value = line.partition(":")
            if colon:
                pairs.append((key.strip(), value.strip()))
        return pairs

    used: dict[str, str] = {}
    for key, modem in ask("-L"):
        if not key.startswith("modem-list.value"):
            continue
        for port_key, value in ask("-m", modem):
            if port_key.startswith("modem.generic.ports.value") and value:
                used[value.split()[0]] = modem  # "ttyUSB2 (at)"
    return used


def modemmanager_warning(port: str, *, root: Path = Path("/"),
                         systemctl: str | None = "systemctl",
                         mmcli: str | None = "mmcli") -> str | None:
    """What to do when ModemManager runs and nothing keeps it off ``port``, or it uses the
    port right now; else None."""
    if not modemmanager_active(proc=root / "proc", systemctl=systemctl):
        return None
    name = os.path.basename(os.path.realpath(port))
    modem = modemmanager_ports(mmcli=mmcli).get(name)
    if modem is not None:
        return (f"ModemManager is using {port} ({name}): it manages this modem as {modem}, "
                "so it answers and sends commands on the port while modemd does. Rules "
                "installed after ModemManager took the modem count only after its restart. "
                + MODEMMANAGER_FIX)
    if ignored_by_modemmanager(port, root=root):
        return None
    return (f"ModemManager is running and nothing tells it to leave {port} alone (no "
            "ID_MM_DEVICE_IGNORE on the port): it will take the port, or talk over modemd, the "
            "next time it probes (after a USB reset, a replug, or its restart). "
            + MODEMMANAGER_FIX)


def warn_about_modemmanager(modems: Sequence[ModemConfig], *, root: Path = Path("/"),
                            systemctl: str | None = "systemctl",
                            mmcli: str | None = "mmcli") -> list[str]:
    """Log (and return) a warning for each configured modem ModemManager may take."""
    warnings = []
    for modem in modems:
        if not modem.port.startswith("/"):
            continue
        warning = modemmanager_warning(modem.port, root=root, systemctl=systemctl,
                                       mmcli=mmcli)
        if warning is not None:
            log.warning("modem %s: %s", modem.name, warning)
            warnings.append(warning)
    return warnings

"""Who else has a serial port open, and ModemManager in particular.

ModemManager opens every modem port it finds with TIOCEXCL and keeps the ones it takes; then
modemd's open fails with EBUSY (or, as root, succeeds and both talk at once). /proc tells who
holds a device: the ``fd`` links of every process. Another user's links are readable only by
root, so when none can be read the presence of a ModemManager process is the best guess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MODEMMANAGER = "ModemManager"

MODEMMANAGER_FIX = (
    "ModemManager takes modem ports for itself (it opens them exclusively). Either keep it "
    "away from this modem: install modemd's udev rules (scripts/install-pi does it, or "
    "`sudo install -m 0644 systemd/99-modemd.rules /etc/udev/rules.d/`), then "
    "`sudo udevadm control --reload-rules && sudo udevadm trigger --action=change "
    "--subsystem-match=usb --subsystem-match=tty` and `sudo systemctl restart ModemManager` "
    "(or unplug and replug the modem); or, if nothing else on this gateway needs "
    "ModemManager: `sudo systemctl disable --now ModemManager` (and `sudo systemctl mask "
    "ModemManager` so nothing starts it again)."
)


@dataclass(frozen=True, slots=True)
class PortUser:
    pid: int
    name: str  # the process's comm, e.g. "ModemManager", "minicom", "modemd"


def _comm(pid_dir: Path) -> str:
    try:
        return (pid_dir / "comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "?"


def _pids(proc: Path) -> list[Path]:
    try:
        return [p for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return []


def users_of(device: str, *, proc: Path = Path("/proc")) -> list[PortUser]:
    """The other processes that have ``device`` open (as far as /proc lets us see)."""
    target = os.path.realpath(device)
    own = os.getpid()
    users: list[PortUser] = []
    for pid_dir in _pids(proc):
        if int(pid_dir.name) == own:
            continue
        try:
            fds = list((pid_dir / "fd").iterdir())
        except OSError:  # another user's process, or it just exited
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link == target or os.path.realpath(link) == target:
                users.append(PortUser(int(pid_dir.name), _comm(pid_dir)))
                break
    return users


def processes_named(name: str, *, proc: Path = Path("/proc")) -> list[int]:
    """PIDs of the processes whose comm is ``name`` (readable for every user)."""
    return sorted(int(p.name) for p in _pids(proc) if _comm(p) == name)


def modemmanager_active(*, proc: Path = Path("/proc"), systemctl: str | None = "systemctl",
                        ) -> bool:
    """Is ModemManager running: a process of that name, or `systemctl is-active` says so
    (the service's ProtectProc= can hide other users' processes)."""
    if processes_named(MODEMMANAGER, proc=proc):
        return True
    command = shutil.which(systemctl) if systemctl else None
    if command is None or not (proc.parent / "run" / "systemd" / "system").is_dir():
        return False
    try:
        answer = subprocess.run([command, "is-active", "--quiet", "ModemManager.service"],
                                capture_output=True, timeout=3, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return answer.returncode == 0


def busy_advice(device: str, *, proc: Path = Path("/proc")) -> str:
    """Why ``device`` is busy and the exact fix, naming the holder when /proc shows it."""
    users = users_of(device, proc=proc)
    names = ", ".join(f"{u.name} (pid {u.pid})" for u in users)
    if any(u.name == MODEMMANAGER for u in users):
        return f"the port is held by {names}. {MODEMMANAGER_FIX}"
    if users:
        advice = "`systemctl stop modemd` while you probe" if any(
            u.name.startswith("modemd") for u in users) else "close it, or stop it"
        return f"the port is in use by another program: {names}; {advice}."
    mm = processes_named(MODEMMANAGER, proc=proc)
    if mm:
        return (f"the port is in use by another program, most likely ModemManager (pid "
                f"{mm[0]}; run as root, `fuser -v {device}` shows who). {MODEMMANAGER_FIX}")
    return ("the port is in use by another program (another modemd? minicom? "
            f"`fuser -v {device}` shows who); ModemManager, if installed, is kept away by "
            "systemd/99-modemd.rules (ENV{ID_MM_DEVICE_IGNORE}=\"1\").")

"""The port is modemd's alone: TIOCEXCL on open (a second open fails with EBUSY), and a port
that ModemManager (or anything else) holds is refused with the exact fix, by the transport
the daemon uses and by `modemd probe`."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modemd.errors import TransportError
from modemd.modem.probe import probe_port
from modemd.transport import SerialTransport
from modemd.transport.port_users import busy_advice, modemmanager_active, users_of

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by nobody, unlike a venv under /root


@pytest.fixture
def pty_slave() -> Iterator[str]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    os.chmod(path, 0o666)  # so that an unprivileged process may try to open it
    yield path
    os.close(master)


def _open_as_nobody(path: str) -> str:
    """What an unprivileged process gets opening ``path`` (root ignores TIOCEXCL)."""
    code = ("import os, sys\n"
            "try:\n    os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)\n"
            "except OSError as e:\n    print(e.errno)\nelse:\n    print('opened')\n")
    done = subprocess.run([SYSTEM_PYTHON, "-c", code, path], user=NOBODY, group=NOBODY,
                          capture_output=True, text=True, timeout=20, check=True)
    return done.stdout.strip()


def _transport_error_as_nobody(path: str) -> str:
    """modemd's own open, in a forked child that dropped root: the error text it gets."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, just the open
        try:
            os.close(read_end)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                SerialTransport(path).open()
                message = "opened"
            except TransportError as exc:
                message = str(exc)
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


class FakeModemManager:
    """A process named ModemManager holding the port with TIOCEXCL, as ModemManager does."""

    def __init__(self, path: str) -> None:
        code = ("import fcntl, os, sys, termios\n"
                "fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)\n"
                "fcntl.ioctl(fd, termios.TIOCEXCL)\n"
                "open('/proc/self/comm', 'w').write('ModemManager')\n"
                "print('ready', flush=True)\n"
                "sys.stdin.read()\n")
        self.process = subprocess.Popen([sys.executable, "-c", code, path],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


def test_modemd_holds_the_port_exclusively(pty_slave: str) -> None:
    assert _open_as_nobody(pty_slave) == "opened"  # free before
    transport = SerialTransport(pty_slave)
    transport.open()
    try:
        assert _open_as_nobody(pty_slave) == str(errno.EBUSY)
    finally:
        transport.close()
    assert _open_as_nobody(pty_slave) == "opened"  # and free again after close


def test_a_port_held_by_modemmanager_gives_the_exact_fix(pty_slave: str) -> None:
    mm = FakeModemManager(pty_slave)
    try:
        # the modemd service (not root): EBUSY, and ModemManager named with the fix
        message = _transport_error_as_nobody(pty_slave)
        assert "ModemManager" in message, message
        assert "systemctl restart ModemManager" in message
        assert "99-modemd.rules" in message and "systemctl disable --now ModemManager" in message
        # root would get past TIOCEXCL: modemd looks in /proc and refuses all the same
        assert [u.name for u in users_of(pty_slave)] == ["ModemManager"]
        with pytest.raises(TransportError) as caught:
            SerialTransport(pty_slave).open()
        assert f"held by ModemManager (pid {mm.process.pid})" in str(caught.value)
        assert modemmanager_active(systemctl=None)
    finally:
        mm.stop()
    assert users_of(pty_slave) == []
    transport = SerialTransport(pty_slave)
    transport.open()
    transport.close()


def test_probe_names_modemmanager_and_sends_nothing(pty_slave: str) -> None:
    mm = FakeModemManager(pty_slave)
    try:
        report = probe_port(pty_slave, timeout=1)
    finally:
        mm.stop()
    assert not report.opened and not report.answered
    (problem,) = report.problems
    assert problem.code == "port_busy"
    assert "ModemManager" in problem.problem
    assert "systemctl restart ModemManager" in problem.advice


def test_busy_advice_for_other_holders(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "4242" / "fd").mkdir(parents=True)
    (proc / "4242" / "comm").write_text("minicom\n")
    (proc / "4242" / "fd" / "3").symlink_to("/dev/ttyUSB2")
    advice = busy_advice("/dev/ttyUSB2", proc=proc)
    assert "minicom (pid 4242)" in advice
    (proc / "4242" / "comm").write_text("ModemManager\n")
    (proc / "4242" / "fd" / "3").unlink()  # its fds unreadable to us: named by its process
    advice = busy_advice("/dev/ttyUSB2", proc=proc)
    assert "most likely ModemManager (pid 4242" in advice and "fuser -v /dev/ttyUSB2" in advice


# --- ModemManager running and not told to leave the modem alone ------------------------------


def _fake_root(tmp_path: Path, port: str, *, ignored: bool, mm_running: bool = True) -> Path:
    root = tmp_path / "root"
    (root / "proc" / "812").mkdir(parents=True)
    (root / "proc" / "812" / "comm").write_text("ModemManager\n" if mm_running else "bash\n")
    rdev = os.stat(port).st_rdev
    data = root / "run" / "udev" / "data"
    data.mkdir(parents=True)
    lines = ["E:ID_VENDOR_ID=2c7c", "E:ID_USB_INTERFACE_NUM=02"]
    if ignored:
        lines.append("E:ID_MM_DEVICE_IGNORE=1")
    (data / f"c{os.major(rdev)}:{os.minor(rdev)}").write_text("\n".join(lines) + "\n")
    return root


def test_probe_warns_when_modemmanager_may_take_the_port(tmp_path: Path) -> None:
    from modemd.simulator.modem import SimulatedModem

    sim = SimulatedModem()
    sim.start()
    try:
        exposed = probe_port(sim.port, timeout=2,
                             system_root=_fake_root(tmp_path / "a", sim.port, ignored=False))
        kept_away = probe_port(sim.port, timeout=2,
                               system_root=_fake_root(tmp_path / "b", sim.port, ignored=True))
        no_mm = probe_port(sim.port, timeout=2, system_root=_fake_root(
            tmp_path / "c", sim.port, ignored=False, mm_running=False))
    finally:
        sim.stop()
    (warning,) = [d for d in exposed.problems if d.code == "modemmanager"]
    assert warning.severity == "warning" and exposed.ok
    assert "ID_MM_DEVICE_IGNORE" in warning.advice and "systemctl restart ModemManager" in \
        warning.advice
    assert not [d for d in kept_away.problems if d.code == "modemmanager"]
    assert not [d for d in no_mm.problems if d.code == "modemmanager"]


def test_daemon_start_warns_about_modemmanager(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    from modemd.config import ModemConfig
    from modemd.modem.modemmanager import warn_about_modemmanager

    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        modems = [ModemConfig(name="m1", port=port), ModemConfig(name="url", port="socket://x:1")]
        root = _fake_root(tmp_path, port, ignored=False)
        with caplog.at_level("WARNING"):
            warnings = warn_about_modemmanager(modems, root=root, systemctl=None)
        assert len(warnings) == 1
        assert "modem m1: ModemManager is running" in caplog.text
        assert warn_about_modemmanager(modems, root=_fake_root(tmp_path / "ok", port,
                                                               ignored=True)) == []
    finally:
        os.close(slave)
        os.close(master)


def test_modemmanager_using_the_port_is_named_even_with_the_rules(tmp_path: Path) -> None:
    """The rules are installed (the port is marked) but ModemManager was not restarted: it
    still manages the modem, and mmcli says it uses the port."""
    from modemd.modem.modemmanager import modemmanager_ports, modemmanager_warning

    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        name = os.path.basename(port)
        mmcli = tmp_path / "mmcli"
        mmcli.write_text(
            "#!/bin/sh\n"
            'if [ "$1" = -L ]; then\n'
            "  echo 'modem-list.length   : 1'\n"
            "  echo 'modem-list.value[1] : /org/freedesktop/ModemManager1/Modem/0'\n"
            'elif [ "$1" = -m ] && [ "$2" = /org/freedesktop/ModemManager1/Modem/0 ]; then\n'
            "  echo 'modem.generic.primary-port : cdc-wdm0'\n"
            "  echo 'modem.generic.ports.length : 2'\n"
            "  echo 'modem.generic.ports.value[1] : cdc-wdm0 (qmi)'\n"
            f"  echo 'modem.generic.ports.value[2] : {name} (at)'\n"
            "else exit 1; fi\n")
        mmcli.chmod(0o755)
        assert modemmanager_ports(mmcli=str(mmcli)) == {
            "cdc-wdm0": "/org/freedesktop/ModemManager1/Modem/0",
            name: "/org/freedesktop/ModemManager1/Modem/0"}
        root = _fake_root(tmp_path, port, ignored=True)
        warning = modemmanager_warning(port, root=root, systemctl=None, mmcli=str(mmcli))
        assert warning is not None and f"ModemManager is using {port}" in warning
        assert "Modem/0" in warning and "systemctl restart ModemManager" in warning
        assert modemmanager_warning(port, root=root, systemctl=None, mmcli=None) is None
    finally:
        os.close(slave)
        os.close(master)

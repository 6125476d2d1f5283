"""Trusting modemd under systemd: the notify protocol, the unit file, the udev rules.

The notify tests play systemd: they bind the AF_UNIX datagram socket that $NOTIFY_SOCKET
names and read what the daemon sends.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modemd.config import load_config
from modemd.config_view import freeze
from modemd.daemon import Daemon, mqtt_settings
from modemd.simulator.modem import SimulatedModem
from modemd.systemd import Notifier
from tests.helpers import REPO, DaemonProcess, wait_until, write_config
from tests.notify import NotifySocket

UNIT = REPO / "systemd" / "modemd.service"
RULES = REPO / "systemd" / "99-modemd.rules"


@pytest.fixture
def sim() -> Iterator[SimulatedModem]:
    modem = SimulatedModem(profile="quectel_ec25")
    modem.start()
    yield modem
    modem.stop()


# --- the notify protocol -------------------------------------------------------------------------


@pytest.mark.integration
def test_daemon_sends_ready_then_watchdog_repeatedly_then_stopping(
        tmp_path: Path, sim: SimulatedModem, notify: NotifySocket) -> None:
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}])
    env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"}
    daemon = DaemonProcess(cfg, env=env).start()
    try:
        ready_at = notify.wait_for("READY=1", timeout=20)
        ready = next(text for _, text in notify.messages if "READY=1" in text)
        assert "STATUS=1/1 modem(s) up" in ready
        # WATCHDOG_USEC=2 s: a ping at least every second from then on.
        notify.poll(3.5)
        assert notify.count("WATCHDOG=1", after=ready_at) >= 3, notify.messages
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        code = daemon.stop()
    notify.poll(0.3)
    assert code == 0, daemon.output()
    assert notify.count("STOPPING=1") == 1
    # The modem was really initialised by the daemon before READY.
    assert any(c.upper() == "AT+CGSN" for c in sim.command_log)


def test_watchdog_stops_when_a_thread_dies(tmp_path: Path, sim: SimulatedModem,
                                           notify: NotifySocket) -> None:
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}])
    notifier = Notifier({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"})
    daemon = Daemon(load_config(cfg), notifier=notifier)
    daemon.start()
    runner = threading.Thread(target=daemon.run_forever, name="test-run-forever")
    runner.start()
    try:
        ready_at = notify.wait_for("READY=1", timeout=15)
        notify.poll(1.5)
        assert notify.count("WATCHDOG=1", after=ready_at) >= 2
        assert daemon.pipeline is not None
        daemon.pipeline.stop()  # as if the pipeline thread had died
        wait_until(lambda: not daemon.healthy(), timeout=5, what="unhealthy")
        notify.poll(0.6)  # a ping already on its way may still arrive
        silent_from = time.monotonic()
        notify.poll(2.0)
        assert notify.count("WATCHDOG=1", after=silent_from) == 0, notify.messages
    finally:
        daemon.request_stop()
        runner.join(5)
        daemon.stop()


def test_empty_credential_means_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit's SetCredential= default is a lone newline: modemd must read it as no secret
    (an MQTT login without password, no PIN), never as a secret of "\\n"."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "mqtt-password").write_text("\n")
    (creds / "sim-pin").write_text("\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": "/dev/null", "pin_file": "sim-pin"}],
                       mqtt={"host": "localhost", "username": "u",
                             "password_file": "mqtt-password"})
    for config in (load_config(cfg), freeze(load_config(cfg))):  # as validated, as `run` runs
        (creds / "mqtt-password").write_text("\n")
        settings = mqtt_settings(config)
        assert settings is not None and settings.password is None
        assert not config.modem[0].resolved_pin()
        (creds / "mqtt-password").write_text("s3cret\n")
        settings = mqtt_settings(config)
        assert settings is not None and settings.password == "s3cret"


# --- the unit file --------------------------------------------------------------------------------


def unit_settings(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every assignment in a unit file."""
    section = ""
    result = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        result.append((section, key.strip(), value.strip()))
    return result


def test_unit_has_the_promised_settings() -> None:
    settings = unit_settings(UNIT.read_text())
    service = {}
    for section, key, value in settings:
        if section == "Service":
            service.setdefault(key, []).append(value)
    expected = {
        "Type": ["notify"], "NotifyAccess": ["main"], "WatchdogSec": ["30"],
        "Restart": ["on-failure"], "RestartSec": ["5"], "User": ["modemd"],
        "Group": ["modemd"], "SupplementaryGroups": ["dialout"], "DevicePolicy": ["closed"],
        "ProtectSystem": ["strict"], "ProtectHome": ["true"], "PrivateTmp": ["true"],
        "NoNewPrivileges": ["true"], "StateDirectory": ["modemd"],
        "ConfigurationDirectory": ["modemd"], "Environment": ["PYTHONUNBUFFERED=1"],
        "ExecStart": ["/opt/modemd/venv/bin/modemd run -c /etc/modemd/modemd.toml"],
    }
    for key, values in expected.items():
        assert service.get(key) == values, key
    assert {"char-ttyUSB rw", "char-ttyACM rw"} <= set(service["DeviceAllow"])
    assert not any(k in service for k in ("StandardOutput", "StandardError")) or \
        set(service["StandardOutput"] + service["StandardError"]) == {"journal"}
    assert "LogsDirectory" not in service  # no log files
    # Every credential that is loaded from a file has a default, so a missing file never
    # stops the service from starting.
    loaded = {v.split(":", 1)[0] for v in service["LoadCredential"]}
    defaults = {v.split(":", 1)[0] for v in service["SetCredential"]}
    assert loaded == {"sim-pin", "mqtt-password", "influx-token"}
    assert loaded <= defaults
    for value in service["LoadCredential"]:
        name, path = value.split(":", 1)
        assert path == f"/etc/modemd/{name}"


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: it comes with the 'systemd' package "
                    "(Debian/Raspberry Pi OS: apt-get install systemd); this test verifies "
                    "systemd/modemd.service with it and must not be skipped")
    return tool


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    # /opt/modemd/venv does not exist here: verify a copy whose ExecStart is this venv's
    # modemd (the unit name must stay modemd.service).
    modemd = Path(sys.executable).parent / "modemd"
    assert modemd.exists(), f"{modemd} missing: is modemd installed in the test venv?"
    text = UNIT.read_text()
    assert "/opt/modemd/venv/bin/modemd" in text
    copy = tmp_path / "modemd.service"
    copy.write_text(text.replace("/opt/modemd/venv/bin/modemd", str(modemd)))
    result = verify(copy)
    # verify exits 0 even for lines it ignores ("Invalid syntax, ignoring", "Unknown key"):
    # any complaint about our unit counts.
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "modemd" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_systemd_analyze_flags_only_the_missing_venv_in_the_original(tmp_path: Path) -> None:
    copy = tmp_path / "modemd.service"
    shutil.copy(UNIT, copy)
    result = verify(copy)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "modemd" in line]
    if Path("/opt/modemd/venv/bin/modemd").exists():
        assert result.returncode == 0 and not complaints
    else:
        assert complaints == [
            "modemd.service: Command /opt/modemd/venv/bin/modemd is not executable: "
            "No such file or directory"], complaints


# --- the udev rules -------------------------------------------------------------------------------

_RULE_TOKEN = re.compile(
    r'^(?P<key>[A-Z_]+)(\{(?P<attr>[^}]+)\})?(?P<op>==|!=|\+=|:=|=)"(?P<value>[^"]*)"$')
_MATCH_KEYS = {"ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "ENV", "ATTR", "ATTRS", "DRIVERS"}
_ASSIGN_KEYS = {"ENV", "SYMLINK", "GROUP", "MODE", "GOTO", "LABEL", "OWNER", "TAG", "RUN"}


def udev_rules() -> list[list[dict[str, str]]]:
    rules = []
    for number, raw in enumerate(RULES.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = []
        for part in (p.strip() for p in line.split(", ")):
            match = _RULE_TOKEN.match(part)
            assert match, f"99-modemd.rules:{number}: cannot read {part!r}"
            token = match.groupdict()
            assert token["key"] in (_MATCH_KEYS | _ASSIGN_KEYS), f"line {number}: {part}"
            tokens.append(token)
        rules.append(tokens)
    return rules


def test_udev_rules_are_well_formed_and_keep_modemmanager_away() -> None:
    rules = udev_rules()
    labels = {t["value"] for r in rules for t in r if t["key"] == "LABEL"}
    gotos = {t["value"] for r in rules for t in r if t["key"] == "GOTO"}
    assert gotos <= labels
    links = {}
    for rule in rules:
        symlinks = [t["value"] for t in rule if t["key"] == "SYMLINK"]
        if not symlinks:
            continue
        assign = {(t["key"], t["attr"]): t["value"] for t in rule if t["op"] in ("=", "+=")}
        match = {(t["key"], t["attr"]): t["value"] for t in rule if t["op"] == "=="}
        assert assign[("ENV", "ID_MM_DEVICE_IGNORE")] == "1"
        assert assign[("GROUP", None)] == "dialout"
        if ("ENV", "ID_USB_INTERFACE_NUM") in match:  # Huawei: by class/protocol instead
            links.setdefault(symlinks[0], (match[("ENV", "ID_VENDOR_ID")],
                                           match[("ENV", "ID_MODEL_ID")],
                                           match[("ENV", "ID_USB_INTERFACE_NUM")]))
    # every family gets its link on its AT interface (tests/test_usb_ports.py checks each one)
    assert links["modem-ec25"] == ("2c7c", "0125", "02")
    assert links["modem-sim7600"] == ("1e0e", "9001", "02")
    assert links["modem-le910"] == ("1bc7", "1201", "04")

# --- hardening ------------------------------------------------------------------------------------


def service_settings() -> dict[str, list[str]]:
    service: dict[str, list[str]] = {}
    for section, key, value in unit_settings(UNIT.read_text()):
        if section == "Service":
            service.setdefault(key, []).append(value)
    return service


def test_unit_is_hardened_as_far_as_the_serial_ports_allow() -> None:
    service = service_settings()
    for key, value in {"ProtectProc": "invisible", "ProcSubset": "pid",
                       "PrivateMounts": "true", "RemoveIPC": "true",
                       "MemoryDenyWriteExecute": "true", "NoNewPrivileges": "true",
                       "CapabilityBoundingSet": ""}.items():
        assert service.get(key) == [value], key
    filters = service["SystemCallFilter"]
    assert "@system-service" in filters
    denied = {name for f in filters if f.startswith("~") for name in f[1:].split()}
    assert {"@privileged", "@resources"} <= denied
    (families,) = service["RestrictAddressFamilies"]
    assert families.split() == ["AF_UNIX", "AF_INET", "AF_INET6"]  # no AF_NETLINK


def test_finding_serial_ports_needs_no_netlink(monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit allows no AF_NETLINK: port discovery must read sysfs, not ask udev."""
    from modemd.modem import discovery

    real_socket = socket.socket
    opened: list[int] = []

    def no_netlink(family: int = socket.AF_INET, *args: object, **kwargs: object) -> object:
        if family == socket.AF_NETLINK:
            opened.append(family)
            raise PermissionError(1, "AF_NETLINK is not allowed by the unit")
        return real_socket(family, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "socket", no_netlink)
    found = discovery.list_ports(probe=False)
    discovery.field_hints(found)
    assert opened == []


def test_systemd_analyze_security_exposure(tmp_path: Path) -> None:
    """docs/security.md quotes this figure; a change that weakens the unit fails here."""
    copy = tmp_path / "modemd.service"
    shutil.copy(UNIT, copy)
    result = subprocess.run([systemd_analyze(), "security", "--offline=yes", "--no-pager",
                             str(copy)], capture_output=True, text=True, timeout=60,
                            check=False)
    match = re.search(r"Overall exposure level for modemd\.service: (\d+\.\d+)",
                      result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 1.5, result.stdout

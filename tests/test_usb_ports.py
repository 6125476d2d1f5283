"""The right AT port for every family: `modemd ports` on fake sysfs trees, `--probe` and the
search for a vanished modem writing only to known modems' AT ports, and the udev rules kept
in sync with the USB table (ModemManager kept away from every id the profiles name)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modemd.cli import app
from modemd.config import ModemConfig
from modemd.modem import discovery
from modemd.modem.profiles import PROFILES
from modemd.modem.udev_rules import render
from modemd.modem.usb_ids import USB_MODEMS
from modemd.simulator.modem import SimulatedModem
from modemd.transport import SerialTransport
from tests.usb_tree import Iface, acm_ports, add_usb_device, option_ports

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "systemd" / "99-modemd.rules"

# family -> (usb id, its serial interfaces, the tty modemd must pick)
FAMILIES: dict[str, tuple[str, list[Iface], str]] = {
    "quectel_ec25": ("2c7c:0125", option_ports(["00", "01", "02", "03"]), "ttyUSB2"),
    "quectel_ec21": ("2c7c:0121", option_ports(["00", "01", "02", "03"]), "ttyUSB2"),
    "quectel_eg91": ("2c7c:0191", option_ports(["00", "01", "02", "03"]), "ttyUSB2"),
    "quectel_eg95": ("2c7c:0195", option_ports(["00", "01", "02", "03"]), "ttyUSB2"),
    "quectel_bg96": ("2c7c:0296", option_ports(["00", "01", "02", "03"]), "ttyUSB2"),
    "simcom_sim7600": ("1e0e:9001", option_ports(["00", "01", "02", "03", "04"]), "ttyUSB2"),
    # A76xx: interfaces 00/01 are RNDIS, the serial ones start at 02; AT is interface 04
    "simcom_a76xx": ("1e0e:9011", option_ports(["02", "03", "04", "05"]), "ttyUSB2"),
    "simcom_sim7080": ("1e0e:9206", option_ports(["00", "01", "02", "03", "04", "05"]),
                       "ttyUSB2"),
    # Telit LE910C1 1bc7:1201: 00 diag, (01/02 rmnet), 03 GPS, 04 AT, 05 AT, 06 unused
    "telit_1201": ("1bc7:1201", option_ports(["00", "03", "04", "05", "06"]), "ttyUSB2"),
    "telit_1031": ("1bc7:1031", option_ports(["00", "01", "02"]), "ttyUSB1"),
    "ublox_lara_r6": ("05c6:908b", option_ports(["00", "01", "02", "03"]), "ttyUSB1"),
    "ublox_lara_r2": ("1546:110a", acm_ports(["00", "02", "04", "06", "08", "0a"]), "ttyACM0"),
    # Huawei E3372 stick firmware: 00 is the modem (PPP) port, 01 the PC UI port
    "huawei_e3372": ("12d1:1506", [Iface("00", "ttyUSB0", "ff", "02", "01"),
                                   Iface("01", "ttyUSB1", "ff", "02", "02")], "ttyUSB1"),
    # a Huawei that names its interfaces (class info all ff)
    "huawei_named": ("12d1:1436", [
        Iface("00", "ttyUSB0", description="HUAWEI Mobile Connect - Modem"),
        Iface("03", "ttyUSB1", description="HUAWEI Mobile Connect - Application Interface"),
        Iface("04", "ttyUSB2", description="HUAWEI Mobile Connect - PC UI Interface")],
        "ttyUSB2"),
    # old Huawei firmware: ff/ff/ff everywhere, no names: the documented fixed layout
    "huawei_old": ("12d1:1001", option_ports(["00", "01", "02"]), "ttyUSB2"),
}

NOT_MODEMS: list[tuple[str, list[Iface]]] = [
    ("0403:6001", [Iface("00", "ttyUSB30")]),  # an Arduino behind an FTDI chip
    ("1a86:7523", [Iface("00", "ttyUSB31")]),  # a CH340 Arduino clone
    ("1546:01a7", acm_ports(["00"], first_tty=30)),  # a u-blox 7 GPS receiver
    ("10c4:ea60", [Iface("00", "ttyUSB32")]),  # a Zigbee stick (CP2102)
]


def _add_not_modems(root: Path) -> None:
    for usb_id, interfaces in NOT_MODEMS:
        add_usb_device(root, usb_id, interfaces, product=f"thing{usb_id[:4]}")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ports_marks_only_the_at_port_of_each_family(tmp_path: Path, family: str) -> None:
    usb_id, interfaces, expected = FAMILIES[family]
    add_usb_device(tmp_path, usb_id, interfaces)
    _add_not_modems(tmp_path)
    ports = discovery.list_ports(root=tmp_path)
    marked = [Path(p.device).name for p in ports if p.looks_like_at]
    assert marked == [expected]
    (at,) = [p for p in ports if p.looks_like_at]
    assert at.usb_id == usb_id and at.role == "at"
    assert at.stable_path.startswith(str(tmp_path / "dev" / "serial" / "by-id"))
    by_name = {Path(p.device).name: p for p in ports}
    for iface in interfaces:  # a documented diagnostic/GPS/audio port is never writable
        port = by_name[iface.tty]
        assert port.may_write == (iface.tty == expected), port
    for usb_id_other, others in NOT_MODEMS:
        for iface in others:
            port = by_name[iface.tty]
            assert port.usb_id == usb_id_other and not port.looks_like_at and port.role is None
            assert port.product  # named: "FTDI ...", "u-blox 7 GPS receiver", ...


def test_quectel_roles_and_huawei_ppp_port_are_named(tmp_path: Path) -> None:
    usb_id, interfaces, _ = FAMILIES["quectel_ec25"]
    add_usb_device(tmp_path, usb_id, interfaces)
    usb_id, interfaces, _ = FAMILIES["huawei_e3372"]
    add_usb_device(tmp_path, usb_id, [Iface(i.number, f"ttyUSB{4 + n}", i.klass, i.subclass,
                                            i.protocol) for n, i in enumerate(interfaces)])
    roles = {Path(p.device).name: p.role for p in discovery.list_ports(root=tmp_path)}
    assert roles == {"ttyUSB0": "diag", "ttyUSB1": "gps", "ttyUSB2": "at",
                     "ttyUSB3": "at-secondary", "ttyUSB4": "ppp", "ttyUSB5": "at"}


def test_probe_writes_only_to_at_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_usb_device(tmp_path, "2c7c:0125", option_ports(["00", "01", "02", "03"], first_tty=10))
    add_usb_device(tmp_path, "1bc7:1201", option_ports(["00", "03", "04", "05", "06"],
                                                       first_tty=20))
    _add_not_modems(tmp_path)
    asked: list[str] = []

    def fake_read_imei(port: str, **_: object) -> str:
        asked.append(Path(port).name)
        return "356938035643809"

    monkeypatch.setattr(discovery, "read_imei", fake_read_imei)
    ports = discovery.list_ports(root=tmp_path, probe=True)
    assert sorted(asked) == ["ttyUSB12", "ttyUSB22"]  # EC25 if02, LE910 if04: nothing else
    assert {Path(p.device).name for p in ports if p.answered_at} == {"ttyUSB12", "ttyUSB22"}


def test_cli_ports_shows_roles_and_marks_the_at_port(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    usb_id, interfaces, _ = FAMILIES["telit_1201"]
    add_usb_device(tmp_path, usb_id, interfaces, product="Telit_LE910C1")
    _add_not_modems(tmp_path)
    monkeypatch.setattr(discovery, "SYSTEM_ROOT", tmp_path)
    result = CliRunner().invoke(app, ["ports"])
    assert result.exit_code == 0, result.output
    marked = [line for line in result.output.splitlines() if line.startswith("AT ")]
    assert len(marked) == 1 and "if04" in marked[0] and "1bc7:1201" in marked[0], result.output
    assert "diag" in result.output and "gps" in result.output
    result = CliRunner().invoke(app, ["ports", "--json"])
    rows = json.loads(result.output)
    assert [r["interface"] for r in rows if r["looks_like_at"]] == ["04"]
    assert {r["role"] for r in rows if r["usb_id"] == "1bc7:1201"} == {
        "diag", "gps", "at", "at-secondary", "unused"}


# --- a vanished modem is searched for among known modems' AT ports only ----------------------


def test_vanished_modem_is_looked_for_only_on_known_at_ports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = SimulatedModem(imei="356938035640042")
    sim.start()
    try:
        assert sim.slave_path is not None
        usb_id, interfaces, _ = FAMILIES["quectel_ec25"]
        add_usb_device(tmp_path, usb_id, [Iface(i.number, f"ttyUSB{4 + n}")
                                          for n, i in enumerate(interfaces)],
                       product="Quectel_EC25", dev_targets={"ttyUSB6": sim.slave_path})
        _add_not_modems(tmp_path)
        monkeypatch.delenv("MODEMD_EXTRA_PORT_GLOB", raising=False)
        opened: list[str] = []
        real_open = SerialTransport.open

        def spy(self: SerialTransport) -> None:
            opened.append(Path(self.port).name)
            real_open(self)

        monkeypatch.setattr(SerialTransport, "open", spy)
        config = ModemConfig(name="m1", port=str(tmp_path / "dev" / "ttyUSB2"),
                             imei="356938035640042")
        found = discovery.find_port_by_identity(config, root=tmp_path)
        assert found is not None and Path(found).resolve() == Path(sim.slave_path).resolve()
        assert "if02" in found  # the stable by-id name, not the ttyUSB number
        assert opened == [Path(found).name]  # no Arduino, GPS, Zigbee, DM or NMEA port opened

        other = ModemConfig(name="m2", port="/dev/ttyUSB2", imei="356938035649999")
        opened.clear()
        assert discovery.find_port_by_identity(other, root=tmp_path) is None
        assert opened == [Path(found).name]
    finally:
        sim.stop()


# --- udev rules: generated from the table, covering every profile's USB ids -----------------

_TOKEN = re.compile(r'^(?P<key>[A-Z_]+)(\{(?P<attr>[^}]+)\})?(?P<op>==|!=|\+=|:=|=)"(?P<value>'
                    r'[^"]*)"$')


def _rules() -> list[dict[tuple[str, str | None, str], str]]:
    parsed = []
    for raw in RULES.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        rule = {}
        for part in line.split(", "):
            match = _TOKEN.match(part.strip())
            assert match, part
            rule[(match["key"], match["attr"], match["op"])] = match["value"]
        parsed.append(rule)
    return parsed


def test_udev_rules_file_is_the_generated_one() -> None:
    assert RULES.read_text() == render(), (
        "systemd/99-modemd.rules is stale: python -m modemd.modem.udev_rules > "
        "systemd/99-modemd.rules")


def test_udev_rules_keep_modemmanager_away_from_every_profile_usb_id() -> None:
    ignored = set()
    for rule in _rules():
        if rule.get(("ENV", "ID_MM_DEVICE_IGNORE", "=")) != "1":
            continue
        vid = rule.get(("ATTRS", "idVendor", "=="))
        pid = rule.get(("ATTRS", "idProduct", "=="))
        if vid and pid and rule.get(("SUBSYSTEMS", None, "==")) == "usb":
            ignored.add(f"{vid}:{pid}")
    named = {usb_id for p in PROFILES for usb_id in p.usb_ids}
    assert named >= {"1bc7:1201", "1bc7:1031", "1e0e:9011", "05c6:908b", "2c7c:0296",
                     "2c7c:0191", "1e0e:9206", "12d1:1506"}
    assert named <= ignored, named - ignored


def test_udev_links_point_at_the_at_interface_of_each_fixed_layout() -> None:
    links: dict[tuple[str, str], str] = {}
    for rule in _rules():
        link = rule.get(("SYMLINK", None, "+="))
        if not link:
            continue
        assert rule[("GROUP", None, "=")] == "dialout"
        assert rule[("ENV", "ID_MM_DEVICE_IGNORE", "=")] == "1"
        key = (rule[("ENV", "ID_VENDOR_ID", "==")], rule[("ENV", "ID_MODEL_ID", "==")])
        number = rule.get(("ENV", "ID_USB_INTERFACE_NUM", "=="))
        if number is not None and key not in links:
            links[key] = number
    assert links[("2c7c", "0125")] == "02"
    assert links[("1bc7", "1201")] == "04"
    assert links[("1bc7", "1031")] == "01"
    assert links[("1e0e", "9011")] == "04"
    assert links[("05c6", "908b")] == "01"
    assert links[("12d1", "1001")] == "02"  # the old-firmware fallback, never 00
    assert ("12d1", "1506") not in links  # found by its PC UI class/protocol instead


def test_profiles_and_usb_table_agree() -> None:
    profiles = {p.name for p in PROFILES}
    for modem in USB_MODEMS:
        assert modem.profile in profiles, modem
    for profile in PROFILES:
        assert set(profile.usb_ids) == {m.usb_id for m in USB_MODEMS
                                        if m.profile == profile.name}


def test_probe_refuses_a_diagnostic_port_and_names_the_at_port(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modemd.modem.probe import probe_port

    usb_id, interfaces, _ = FAMILIES["telit_1201"]
    add_usb_device(tmp_path, usb_id, interfaces, product="Telit_LE910C1")
    opened: list[str] = []
    monkeypatch.setattr(SerialTransport, "open", lambda self: opened.append(self.port))
    report = probe_port(str(tmp_path / "dev" / "ttyUSB0"), system_root=tmp_path)
    assert opened == [] and not report.opened
    (problem,) = report.problems
    assert problem.code == "wrong_port"
    assert "diag port of a Telit LE910C1" in problem.problem and "interface 00" in problem.problem
    assert "Telit_LE910C1" in problem.advice and "if04" in problem.advice


def test_install_pi_restarts_a_running_modemmanager_after_the_rules(tmp_path: Path) -> None:
    import os
    import subprocess

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "systemctl").write_text(
        '#!/bin/sh\n[ "$1" = is-active ] && [ "$3" = ModemManager ] && exit 0\nexit 1\n')
    (fake_bin / "systemctl").chmod(0o755)
    env = {**os.environ, "LC_ALL": "C", "PATH": f"{fake_bin}:{os.environ['PATH']}"}

    def dry_run(*extra: str) -> list[str]:
        done = subprocess.run([str(REPO / "scripts" / "install-pi"), "--dry-run", "--prefix",
                               str(tmp_path / "opt"), *extra], capture_output=True, text=True,
                              timeout=60, check=True, env=env)
        return [line.strip()[2:] for line in done.stdout.splitlines()
                if line.strip().startswith("+ ")]

    commands = dry_run()
    rules = commands.index(f"install -m 0644 {REPO}/systemd/99-modemd.rules "
                           "/etc/udev/rules.d/99-modemd.rules")
    trigger = next(i for i, c in enumerate(commands) if c.startswith("udevadm trigger"))
    restart = commands.index("systemctl restart ModemManager")
    assert rules < trigger < restart
    assert "systemctl restart ModemManager" not in dry_run("--no-modemmanager-restart")


# --- Huawei: AT^GETPORTMODE when the descriptors name no PC UI port ---------------------------

GETPORTMODE = json.loads((REPO / "tests" / "data" / "huawei_getportmode.json").read_text())


@pytest.mark.parametrize("answer", GETPORTMODE["answers"], ids=lambda a: a["line"][:60])
def test_getportmode_answers_as_modemmanager_reads_them(answer: dict[str, object]) -> None:
    from modemd.modem.huawei_ports import parse_getportmode

    assert parse_getportmode(str(answer["line"])) == answer["modes"]


def test_getportmode_roles_and_non_answers() -> None:
    from modemd.modem.huawei_ports import parse_getportmode, serial_roles

    modes = parse_getportmode("^GETPORTMODE: TYPE: WCDMA: huawei ,, rndis: 0, pcui: 1, "
                              "c_shell: 2, a_shell: 3,3g_diag: 4, gps: 5, 4g_diag: 6, mass_two: 7")
    assert modes is not None
    assert serial_roles(modes) == ["at", "unused", "unused", "diag", "gps", "diag"]
    assert parse_getportmode("+CME ERROR: 58") is None
    assert parse_getportmode("OK") is None


def test_probe_asks_a_nameless_huawei_for_its_layout_on_interface_00(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_usb_device(tmp_path, "12d1:1506", option_ports(["00", "01", "02"]))
    assert [p.looks_like_at for p in discovery.list_ports(root=tmp_path)] == [False] * 3
    asked_layout: list[str] = []
    asked_imei: list[str] = []

    def layout(port: str, **_: object) -> list[str]:
        asked_layout.append(Path(port).name)
        return ["ppp", "diag", "at"]  # "MDM:0,NDIS:1,DIAG:2,PCUI:3" style: PC UI on 02

    def imei(port: str, **_: object) -> str:
        asked_imei.append(Path(port).name)
        return "356938035643809"

    monkeypatch.setattr(discovery, "read_port_roles", layout)
    monkeypatch.setattr(discovery, "read_imei", imei)
    ports = discovery.list_ports(root=tmp_path, probe=True)
    assert asked_layout == ["ttyUSB0"] and asked_imei == ["ttyUSB2"]
    assert [(Path(p.device).name, p.role, p.looks_like_at) for p in ports] == [
        ("ttyUSB0", "ppp", False), ("ttyUSB1", "diag", False), ("ttyUSB2", "at", True)]


def test_read_port_roles_on_a_pty() -> None:
    import os
    import threading

    from modemd.modem.huawei_ports import read_port_roles

    master, slave = os.openpty()
    path = os.ttyname(slave)
    answer = GETPORTMODE["answers"][4]["line"]  # NDIS:0,DIAG:1,PCUI:2,MDM:3,SD:4

    def stick() -> None:
        buffer = b""
        while b"AT^GETPORTMODE\r" not in buffer:
            buffer += os.read(master, 256)
        os.write(master, f"\r\n{answer}\r\n\r\nOK\r\n".encode())

    thread = threading.Thread(target=stick, daemon=True)
    thread.start()
    try:
        assert read_port_roles(path, timeout=5) == ["diag", "at", "ppp"]
    finally:
        thread.join(timeout=5)
        os.close(slave)
        os.close(master)


def test_daemon_finds_a_replugged_modem_without_opening_other_ports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The EC25 re-enumerates (ttyUSB0-3 become ttyUSB4-7) while an Arduino, a GPS and a
    Zigbee stick sit on the same hub: the daemon's port resolver opens only the EC25's AT
    port, finds the modem by IMEI and sweeps what arrived meanwhile."""
    from functools import partial

    from modemd.daemon import Daemon
    from modemd.store.journal import raw_id_for
    from tests.helpers import journal_rows, load, on_sim, unique_pdus, wait_until, write_config
    from tests.usb_tree import remove_usb_device

    monkeypatch.delenv("MODEMD_EXTRA_PORT_GLOB", raising=False)
    sim = SimulatedModem(imei="356938035640077", link_path=tmp_path / "dev" / "ttyUSB6")
    sim.start()
    assert sim.slave_path is not None
    first = add_usb_device(tmp_path, "2c7c:0125", option_ports(["00", "01", "02", "03"]),
                           product="Quectel_EC25", dev_targets={"ttyUSB2": sim.slave_path})
    _add_not_modems(tmp_path)
    opened: list[str] = []
    real_open = SerialTransport.open

    def spy(self: SerialTransport) -> None:
        opened.append(self.port)
        real_open(self)

    monkeypatch.setattr(SerialTransport, "open", spy)
    state = tmp_path / "state"
    configured = str(tmp_path / "dev" / "ttyUSB2")
    cfg = write_config(tmp_path / "modemd.toml", state_dir=state,
                       modems=[{"name": "m1", "port": configured, "imei": sim.identity.imei}])
    daemon = Daemon(load(cfg), port_resolver=partial(discovery.find_port_by_identity,
                                                     root=tmp_path))
    daemon.start()
    try:
        driver = daemon.drivers[0]
        wait_until(driver.ready.is_set, what="modem up")
        meanwhile = unique_pdus(3)
        sim.vanish()
        remove_usb_device(tmp_path, first)
        wait_until(lambda: not driver.state.online, what="port loss noticed")
        for pdu in meanwhile:
            sim.deliver(pdu)
        sim.reappear(new_path=True)
        add_usb_device(tmp_path, "2c7c:0125", option_ports(["00", "01", "02", "03"],
                                                           first_tty=4),
                       product="Quectel_EC25", no_node=frozenset({"ttyUSB6"}))
        wait_until(lambda: len(journal_rows(state)) == 3 and not on_sim(sim), timeout=40,
                   what="swept after the replug")
        assert sorted(r.raw_id for r in journal_rows(state)) == sorted(
            raw_id_for("pdu", p) for p in meanwhile)
        assert "-if02-port0" in driver.state.port
        assert set(opened) <= {configured, driver.state.port}, opened
    finally:
        daemon.stop()
        sim.stop()


def test_probe_on_a_huawei_modem_port_warns_and_names_the_pc_ui_port(tmp_path: Path) -> None:
    from modemd.modem.probe import probe_port

    sim = SimulatedModem(profile="huawei_e3372")
    sim.start()
    try:
        assert sim.slave_path is not None
        add_usb_device(tmp_path, "12d1:1506", [Iface("00", "ttyUSB0", "ff", "02", "01"),
                                               Iface("01", "ttyUSB1", "ff", "02", "02")],
                       product="HUAWEI_MOBILE", dev_targets={"ttyUSB0": sim.slave_path})
        report = probe_port(str(tmp_path / "dev" / "ttyUSB0"), timeout=2,
                            system_root=tmp_path)
    finally:
        sim.stop()
    assert report.answered  # it is asked: the modem port answers AT
    (warning,) = [d for d in report.problems if d.code == "not_at_port"]
    assert warning.severity == "warning"
    assert "ppp port of a Huawei" in warning.problem and "interface 00" in warning.problem
    assert "HUAWEI_MOBILE" in warning.advice and "-if01-" in warning.advice


def test_the_pi_uart_is_listed_under_serial0_and_never_marked(tmp_path: Path) -> None:
    def uart(name: str, bus: str) -> None:
        device = tmp_path / "sys" / "devices" / "platform" / "soc" / f"{name}.serial"
        (device / "tty" / name).mkdir(parents=True)
        (tmp_path / "sys" / "bus" / bus).mkdir(parents=True, exist_ok=True)
        (device / "subsystem").symlink_to(tmp_path / "sys" / "bus" / bus)
        (device / "tty" / name / "device").symlink_to(device)
        (tmp_path / "sys" / "class" / "tty").mkdir(parents=True, exist_ok=True)
        (tmp_path / "sys" / "class" / "tty" / name).symlink_to(device / "tty" / name)
        (tmp_path / "dev").mkdir(exist_ok=True)
        (tmp_path / "dev" / name).write_text("")

    uart("ttyS0", "platform")  # the mini UART, on the header: /dev/serial0
    uart("ttyS1", "platform")  # a platform ttyS with nothing behind it
    uart("ttyAMA0", "amba")  # the PL011 (Bluetooth)
    (tmp_path / "dev" / "serial0").symlink_to("ttyS0")
    (tmp_path / "sys" / "class" / "tty" / "tty1").mkdir()  # a virtual console: no device
    ports = {Path(p.device).name: p for p in discovery.list_ports(root=tmp_path)}
    assert sorted(ports) == ["ttyAMA0", "ttyS0"]
    assert ports["ttyS0"].stable_path == str(tmp_path / "dev" / "serial0")
    assert not any(p.looks_like_at or p.may_write for p in ports.values())

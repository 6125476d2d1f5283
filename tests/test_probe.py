"""`modemd probe PORT` against the simulated modem: identity, and the right diagnosis per fault.

The probe goes through the real transport (pyserial on the simulator's pty), the real AT
session and the response parsers, like the daemon.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modemd.cli import app
from modemd.modem.probe import ProbeReport, pin_retries, probe_port, signal_quality
from modemd.simulator.modem import SimulatedModem
from modemd.simulator.profiles import PROFILES as SIM_PROFILES
from modemd.transport import SerialTransport
from tests.helpers import unique_pdus

IMEI = "867698041234567"
IMSI = "262019876543210"
ICCID = "8949020000012345670"  # a valid check digit


MakeSim = Callable[..., SimulatedModem]


@pytest.fixture
def make_sim() -> Iterator[MakeSim]:
    started: list[SimulatedModem] = []

    def make(**kwargs: Any) -> SimulatedModem:
        sim = SimulatedModem(imei=IMEI, imsi=IMSI, iccid=ICCID, **kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def codes(report: ProbeReport) -> list[str]:
    return [d.code for d in report.problems]


def run_probe(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["probe", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_healthy_modem_prints_identity_and_is_ok(make_sim: MakeSim) -> None:
    sim = make_sim(profile="quectel_ec25")
    code, out = run_probe(sim.port)
    assert code == 0, out
    assert "Quectel EC25" in out
    assert "quectel_ec25" in out
    assert IMEI in out and IMSI in out and ICCID in out
    assert "READY" in out
    assert "registered home on Telekom.de" in out
    assert "-73 dBm (excellent)" in out  # the simulator's CSQ 20
    assert "SM 0/30" in out
    assert "PDU mode yes" in out and "(AT+CNMI) yes" in out
    assert "OK: this modem is ready for modemd" in out
    assert "problems:" not in out and "warnings:" not in out
    # A probe only asks: it never reads, deletes or sends a message.
    log = [c.upper() for c in sim.command_log]
    assert not any(c.startswith(("AT+CMGD", "AT+CMGR", "AT+CMGL", "AT+CMGS")) for c in log)


def test_json_report(make_sim: MakeSim) -> None:
    sim = make_sim(profile="huawei_e3372")
    code, out = run_probe(sim.port, "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["ok"] is True
    assert data["imei"] == IMEI and data["iccid"] == ICCID
    assert data["profile"] == "huawei_e3372"
    assert data["sim"] == "READY" and data["registered"] is True
    assert data["signal_dbm"] == -73 and data["signal_quality"] == "excellent"
    assert data["storage"] == [{"name": "SM", "used": 0, "total": 30, "full": False}]
    assert data["pdu_mode"] is True and data["cnmi_supported"] is True
    assert data["problems"] == []


def test_pin_required_is_diagnosed_with_pin_file_advice(make_sim: MakeSim) -> None:
    sim = make_sim(quirks={"pin_required": True})
    code, out = run_probe(sim.port)
    assert code == 1, out
    assert "SIM        SIM PIN" in out
    assert "the SIM needs its PIN" in out
    assert "pin_file" in out
    assert IMEI in out  # identity is read without the PIN
    assert "NOT READY" in out
    report = probe_port(sim.port, timeout=2)
    assert codes(report) == ["sim_pin"]  # no registration noise on top of the root cause


def test_pin_file_unlocks_the_sim(make_sim: MakeSim, tmp_path: Path) -> None:
    sim = make_sim(pin="4321")
    pin_file = tmp_path / "sim-pin"
    pin_file.write_text("4321\n")
    code, out = run_probe(sim.port, "--pin-file", str(pin_file))
    assert code == 0, out
    assert "READY (PIN entered by the probe)" in out
    assert IMSI in out


def test_wrong_pin_is_reported_and_tried_only_once(make_sim: MakeSim) -> None:
    sim = make_sim(pin="4321")
    report = probe_port(sim.port, pin="0000", timeout=2)
    assert not report.ok
    assert codes(report) == ["sim_pin_wrong"]
    assert "3 attempts" in report.problems[0].advice
    assert sum(c.upper().startswith("AT+CPIN=") for c in sim.command_log) == 1


@pytest.mark.parametrize(("stat", "code", "words"), [
    (True, "registration_searching", "searching for a network"),
    (3, "registration_denied", "the network denied registration"),
    (0, "not_registered", "not registered on a network"),
])
def test_not_registered_is_diagnosed(make_sim: MakeSim, stat: object, code: str,
                                     words: str) -> None:
    sim = make_sim(quirks={"not_registered": stat})
    report = probe_port(sim.port, timeout=2)
    assert not report.ok
    assert codes(report) == [code]
    assert report.registered is False
    assert words in report.render()


def test_storage_full_is_diagnosed_with_the_sweep_advice(make_sim: MakeSim) -> None:
    sim = make_sim(capacity=3)
    for pdu in unique_pdus(3):
        sim.store(pdu)
    code, out = run_probe(sim.port)
    assert "SM 3/3 FULL" in out
    assert "SMS storage SM is full (3/3)" in out
    assert "modemd sweeps the storage when it starts" in out
    # modemd clears a full storage itself, so this is a warning, not a reason to fail.
    assert code == 0, out
    assert len(sim.messages()) == 3  # the probe deleted nothing


def test_no_signal_and_weak_signal(make_sim: MakeSim) -> None:
    report = probe_port(make_sim(signal=(99, 99)).port, timeout=2)
    assert "no_signal" in codes(report) and not report.ok
    assert "antenna" in report.render()
    weak = probe_port(make_sim(signal=(5, 99)).port, timeout=2)
    assert weak.ok and codes(weak) == ["weak_signal"]
    assert weak.signal_dbm == -103 and weak.signal_quality == "poor"


def test_a_hung_modem_gets_the_no_answer_diagnosis(make_sim: MakeSim) -> None:
    sim = make_sim(quirks={"hang": True})
    report = probe_port(sim.port, timeout=0.5)
    assert report.opened and not report.answered and not report.ok
    assert codes(report) == ["no_answer"]
    advice = report.problems[0].advice
    assert "ttyUSB" in advice and "baud" in advice


def test_nonexistent_port(tmp_path: Path) -> None:
    code, out = run_probe(str(tmp_path / "ttyUSB7"))
    assert code == 1
    assert "does not exist" in out and "plugged in" in out


def test_hilink_stick_is_named_when_the_port_is_missing(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    for name, (vid, pid) in {"1-1": ("12d1", "14dc"), "1-2": ("2c7c", "0125")}.items():
        (sysfs / name).mkdir(parents=True)
        (sysfs / name / "idVendor").write_text(vid + "\n")
        (sysfs / name / "idProduct").write_text(pid + "\n")
    report = probe_port(str(tmp_path / "ttyUSB0"), sysfs=sysfs)
    assert codes(report) == ["port_missing", "hilink"]
    hilink = report.problems[1]
    assert "12d1:14dc" in hilink.problem and "HiLink" in hilink.problem
    assert "usb_modeswitch" in hilink.advice and "no AT port" in hilink.advice


def test_port_held_by_another_transport_is_refused_not_shared(make_sim: MakeSim) -> None:
    sim = make_sim()
    holder = SerialTransport(sim.port)
    holder.open()
    try:
        before = len(sim.command_log)
        code, out = run_probe(sim.port)
        assert code == 1
        assert "in use by another program" in out
        assert "systemctl stop modemd" in out and "ID_MM_DEVICE_IGNORE" in out
        assert len(sim.command_log) == before  # not one byte was sent to the modem
    finally:
        holder.close()
    assert probe_port(sim.port, timeout=2).ok  # free again once the holder closed it


def test_signal_words() -> None:
    assert [signal_quality(d) for d in (-51, -73, -75, -83, -85, -93, -95, -109, -111, None)] == [
        "excellent", "excellent", "good", "good", "fair", "fair", "poor", "poor", "none", "none"]


@pytest.mark.parametrize("profile", sorted(SIM_PROFILES))
def test_every_simulated_family_is_identified(make_sim: MakeSim, profile: str) -> None:
    report = probe_port(make_sim(profile=profile).port, timeout=2)
    assert report.ok, report.render()
    assert report.profile == profile  # detect_profile recognises the family's CGMI/CGMM
    assert report.imei == IMEI and report.iccid == ICCID


class CannedModem:
    """Answers `value()` like a modem that knows some PIN-retry commands."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def value(self, command: str, prefix: str = "") -> str | None:
        self.asked.append(command)
        return self.answers.get(command)


@pytest.mark.parametrize(("answers", "expected"), [
    ({'AT+CPINR="SIM PIN"': "SIM PIN,2,3"}, 2),
    ({'AT+QPINC="SC"': '"SC",1,10'}, 1),
    ({"AT+SPIC": "3,10,0,10"}, 3),
    ({}, None),
])
def test_pin_retries_from_the_vendor_commands(answers: dict[str, str],
                                              expected: int | None) -> None:
    assert pin_retries(CannedModem(answers)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("line", ["RDY", "UNDER-VOLTAGE WARNNING", "+XFOO: 1,2", "^XUNKNOWN: 7",
                                  "+CLIP: \"+491701\",145", "^NWTIME: 26/12/01,11:00:00+04,00",
                                  "MISSED_CALL: 11:02AM"])
def test_lines_inside_answers_are_not_taken_for_the_identity(make_sim: MakeSim,
                                                              line: str) -> None:
    sim = make_sim(profile="quectel_ec25", quirks={"inside_answers": [line]})
    _, out = run_probe(sim.port, "--json")
    data = json.loads(out)
    assert (data["imei"], data["imsi"], data["iccid"]) == (IMEI, IMSI, ICCID), data
    assert data["manufacturer"] == "Quectel" and line not in (data["model"] or "")
    assert data["revision"] is None or line not in data["revision"]

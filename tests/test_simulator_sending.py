"""The simulated modem's sending side, driven over its pty with pyserial as a host would:
AT+CMGS in PDU and text mode, AT+CSMP, +CMS ERROR injection, and the status reports it sends
back as +CDS or into SR storage with +CDSI."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from modemd.simulator.modem import SimulatedModem
from modemd.simulator.profiles import sim_profile
from modemd.sms import SmsStatusReport, decode_pdu
from modemd.sms.submit import encode_submit
from tests.test_simulator import FINAL, Host

TO = "+4915112345678"


@pytest.fixture
def sim() -> Iterator[SimulatedModem]:
    with SimulatedModem(capacity=20) as modem:
        yield modem


@pytest.fixture
def host(sim: SimulatedModem) -> Iterator[Host]:
    h = Host(sim.port)
    h.at("ATE0")
    h.at("AT+CMEE=1")
    yield h
    h.close()


def submit(host: Host, pdu_hex: str, length: int) -> bytes:
    host.send(f"AT+CMGS={length}")
    assert host.read_until(b"> ") == b"\r\n> "
    host.ser.write(pdu_hex.encode() + b"\x1a")
    return host.read_until(FINAL)


def test_cmgs_takes_a_pdu_and_answers_its_reference(sim: SimulatedModem, host: Host) -> None:
    pdu = encode_submit(recipient=TO, text="one")
    assert submit(host, pdu.hex, pdu.tpdu_length) == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
    pdu2 = encode_submit(recipient=TO, text="two")
    assert submit(host, pdu2.hex, pdu2.tpdu_length) == b"\r\n+CMGS: 1\r\n\r\nOK\r\n"
    assert [s.pdu for s in sim.sending.sent] == [pdu.pdu, pdu2.pdu]
    assert [s.destination for s in sim.sending.sent] == [TO, TO]


def test_cmgs_with_a_wrong_length_or_not_hex_is_304(sim: SimulatedModem, host: Host) -> None:
    pdu = encode_submit(recipient=TO, text="x")
    assert submit(host, pdu.hex, pdu.tpdu_length + 1).endswith(b"+CMS ERROR: 304\r\n")
    assert submit(host, "ZZ", 1).endswith(b"+CMS ERROR: 304\r\n")
    assert sim.sending.sent == []


def test_escape_cancels_the_prompt(sim: SimulatedModem, host: Host) -> None:
    host.send("AT+CMGS=20")
    host.read_until(b"> ")
    host.ser.write(b"0011\x1b")
    assert host.read_until(FINAL).endswith(b"OK\r\n")
    assert sim.sending.sent == []


def test_injected_errors_come_once_each_in_order(sim: SimulatedModem, host: Host) -> None:
    sim.sending.fail_next(331, None, 42)
    pdu = encode_submit(recipient=TO, text="x")
    answers = [submit(host, pdu.hex, pdu.tpdu_length) for _ in range(4)]
    assert [a.strip().split(b"\r\n")[-1] for a in answers] == [
        b"+CMS ERROR: 331", b"OK", b"+CMS ERROR: 42", b"OK"]
    assert len(sim.sending.sent) == 2


def test_status_report_as_cds_when_asked_for(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CNMI=2,1,0,1,0")
    sim.sending.report_status = 0x00
    pdu = encode_submit(recipient=TO, text="report please", status_report=True)
    submit(host, pdu.hex, pdu.tpdu_length)
    data = host.read_until(b"+CDS: ", timeout=2) + host.read_for(0.3)
    lines = [x for x in data.decode().split("\r\n") if x]
    head = next(i for i, x in enumerate(lines) if x.startswith("+CDS: "))
    report = decode_pdu(lines[head + 1])
    assert isinstance(report, SmsStatusReport)
    assert (report.message_reference, report.recipient.number, report.delivered) == (0, TO, True)
    assert int(lines[head].split()[1]) == len(report.tpdu)


def test_no_report_without_tp_srr(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CNMI=2,1,0,1,0")
    pdu = encode_submit(recipient=TO, text="no report")
    submit(host, pdu.hex, pdu.tpdu_length)
    assert b"+CDS" not in host.read_for(0.4)


def test_status_report_into_sr_with_cdsi() -> None:
    profile = dataclasses.replace(sim_profile("simcom_sim7600"),
                                  cnmi_test="+CNMI: (0-2),(0-3),(0,2),(0,2),(0,1)")
    with SimulatedModem(profile=profile, capacity=20) as sim:
        host = Host(sim.port)
        try:
            host.at("ATE0")
            host.at("AT+CNMI=2,1,0,2,0")
            pdu = encode_submit(recipient=TO, text="store it", status_report=True)
            submit(host, pdu.hex, pdu.tpdu_length)
            assert b'+CDSI: "SR",0' in host.read_until(b"+CDSI", timeout=2) + host.read_for(0.2)
            (stored,) = sim.messages("SR").values()
            assert isinstance(decode_pdu(stored), SmsStatusReport)
        finally:
            host.close()


def test_text_mode_cmgs_with_csmp(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CMGF=1")
    assert host.at("AT+CSMP=49,167,0,0").endswith(b"OK\r\n")
    host.send(f'AT+CMGS="{TO}"')
    host.read_until(b"> ")
    host.ser.write(b"hello text\x1a")
    assert host.read_until(FINAL).endswith(b"+CMGS: 0\r\n\r\nOK\r\n")
    (sent,) = sim.sending.sent
    assert (sent.text, sent.destination, sent.status_report) == ("hello text", TO, True)
    assert host.lines("AT+CSMP?") == ["+CSMP: 49,167,0,0", "OK"]


def test_stall_takes_the_pdu_and_never_answers(sim: SimulatedModem, host: Host) -> None:
    sim.sending.stall = True
    pdu = encode_submit(recipient=TO, text="lost answer")
    host.send(f"AT+CMGS={pdu.tpdu_length}")
    host.read_until(b"> ")
    host.ser.write(pdu.hex.encode() + b"\x1a")
    assert host.read_for(0.5) == b""
    assert len(sim.sending.sent) == 1

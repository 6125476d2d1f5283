"""`modemd at`: the safe AT console, against the simulated modem over its pty."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from modemd.cli import app
from modemd.modem.console import (
    EXIT_FAILED,
    EXIT_NO_PORT,
    EXIT_OK,
    EXIT_REFUSED,
    destructive_reason,
    run_console,
    split_commands,
)
from modemd.simulator.modem import SimulatedModem
from modemd.transport import SerialTransport
from tests.helpers import unique_pdus

IMEI = "867698041234567"


@pytest.fixture
def sim() -> Iterator[SimulatedModem]:
    modem = SimulatedModem(imei=IMEI)
    modem.start()
    yield modem
    modem.stop()


def console(port: str, command: str | None, *, force: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = run_console(port, command, stdout=out, timeout=2.0, force=force)
    return code, out.getvalue()


def test_one_shot_cgsn_prints_the_imei(sim: SimulatedModem) -> None:
    code, out = console(sim.port, "AT+CGSN")
    assert code == EXIT_OK
    assert out.splitlines() == [IMEI, "OK"]


def test_one_shot_through_the_cli(sim: SimulatedModem) -> None:
    result = CliRunner().invoke(app, ["at", sim.port, "AT+CGSN"])
    assert result.exit_code == 0, result.output
    assert IMEI in result.output and "OK" in result.output


def test_answers_with_a_urc_prefix_are_the_answer_not_unsolicited(sim: SimulatedModem) -> None:
    code, out = console(sim.port, "at+creg?;+csq")
    assert code == EXIT_OK
    assert out.splitlines() == ["+CREG: 0,1", "+CSQ: 20,99", "OK"]


def test_an_error_result_exits_1(sim: SimulatedModem) -> None:
    code, out = console(sim.port, "AT+NOSUCHCOMMAND")
    assert code == EXIT_FAILED
    assert out.splitlines()[-1].startswith(("ERROR", "+CME ERROR"))


def test_no_answer_exits_1(sim: SimulatedModem) -> None:
    sim.set_quirk("hang", True)
    out = io.StringIO()
    assert run_console(sim.port, "AT", stdout=out, timeout=0.3) == EXIT_FAILED
    assert "no answer within 0.3 s" in out.getvalue()


def test_refuses_while_another_transport_holds_the_port(sim: SimulatedModem) -> None:
    holder = SerialTransport(sim.port)  # what the running daemon holds
    holder.open()
    try:
        before = len(sim.command_log)
        code, out = console(sim.port, "AT+CGSN")
        assert code == EXIT_NO_PORT
        assert "the port is in use (is modemd running? `systemctl stop modemd` first" in out
        assert len(sim.command_log) == before
    finally:
        holder.close()
    assert console(sim.port, "AT+CGSN")[0] == EXIT_OK


def test_destructive_command_is_refused_without_force(sim: SimulatedModem) -> None:
    (pdu,) = unique_pdus(1)
    index = sim.store(pdu)
    code, out = console(sim.port, f"AT+CMGD={index}")
    assert code == EXIT_REFUSED
    assert "refused 'AT+CMGD=" in out and "lost for good" in out and "--force" in out
    assert sim.messages() == {index: pdu}
    assert not any(c.upper().startswith("AT+CMGD") for c in sim.command_log)
    # With force, it is sent.
    code, out = console(sim.port, f"AT+CMGD={index}", force=True)
    assert code == EXIT_OK, out
    assert sim.messages() == {}


@pytest.mark.parametrize("command", [
    "AT+CMGD=1,4", "at+cmgd=3", "AT+CFUN=0", "AT+CFUN=4", "AT+CFUN=1,1", "AT+CFUN=16",
    'AT+CPIN="1234"', "AT&F", "ATE0&F", "AT+CRSM=176,28539,0,0,12", "AT^RESET", "AT+CRESET",
    "AT#REBOOT", 'AT^SETPORT="FF;1"', "ATE0;+CMGD=1", "AT&W", "AT+CMGS=24",
    # a modem reads a line the way split_commands does: each of these hides a destructive part
    "AT\rAT+CMGD=1,4", "AT\nAT+CMGD=1,4", "AT+CSQ\r\nAT+CFUN=0", "ATE0+CMGD=1,4",
    "AT&F+CFUN=1,1", "ATE0V1&F", "ATZ", "ATE0Z", "ATV1 Z0", "AT+CSQ;&F", "ATS0=0+CMGD=1",
    "AT+CSQ;+CMGD=1,4", 'AT+CSCS="GSM";+CMGW="123"', 'AT+CPMS="ME","ME","ME"', "AT+CMSS=3",
    "AT+CPWD=\"SC\",\"1234\",\"4321\"", 'AT+CLCK="SC",0,"1234"', "AT+QPOWD=1", "AT+CPOF",
    "AT+QPRTPARA=3", "AT^RESET", "at+cmgd=1;+csq", "xxAT+CMGD=1", "ATD+4915112345678;",
    "AT+CNMI=2,2,0,0,0", "AT+CMGX\bD=1", "AT+CMGD\x7f=1", "ATE0 +CMGD=1,4", "AT+CFUN=1",
    "AT+CFUN=1,0", "AT+CFUN=x", "AT+CFUN",
])
def test_destructive_commands(command: str) -> None:
    assert destructive_reason(command) is not None


@pytest.mark.parametrize("command", [
    "AT", "ATI", "AT+CGSN", "AT+CMGD=?", "AT+CFUN?", "AT+CFUN=?", "AT+CPIN?",
    "AT+CMGL=4", "AT+CMGR=1", "AT+CSQ", 'AT+CPMS?', "AT+CPMS=?", "ATE0", "AT+CMGF=0",
    'AT+CSCS="GSM";+CMGF=1', "ATE0V1", "AT+CPINR", "AT\rAT+CSQ", 'AT+CSCS="A;+CMGD=1"',
    "ATS0?", "AT+CNMI=2,1,0,0,0", "ATI3", "AT&V", "ATE0+CSQ",
])
def test_harmless_commands(command: str) -> None:
    assert destructive_reason(command) is None


class SlowInput(io.StringIO):
    """Lines typed by a person: one every 0.15 s."""

    def readline(self, size: int | None = -1) -> str:
        time.sleep(0.15)
        return super().readline(-1 if size is None else size)


def test_interactive_prints_answers_and_urcs_and_asks_before_destructive(
        sim: SimulatedModem) -> None:
    typed = SlowInput("AT+CNMI=2,1,0,0,0\n\nAT+CFUN=0\nyes\nAT+CGSN\nexit\nAT+CSQ\n")
    out = io.StringIO()
    timer = threading.Timer(0.4, lambda: sim.deliver(unique_pdus(1)[0]))
    timer.start()
    try:
        code = run_console(sim.port, None, stdin=typed, stdout=out, timeout=2.0)
    finally:
        timer.join()
    text = out.getvalue()
    assert '[unsolicited] +CMTI: "SM",1' in text
    assert "refused 'AT+CFUN=0': +CFUN: 0 switches the radio off" in text
    assert "not sent" in text and "--force" in text
    assert IMEI in text
    assert "+CSQ" not in text  # 'exit' ended the session
    assert code == EXIT_REFUSED  # a refusal is remembered in the exit code
    assert "AT+CFUN=0" not in [c.upper() for c in sim.command_log]
    assert not any(c.upper().startswith("AT+CFUN") for c in sim.command_log)


@pytest.mark.parametrize("command", [
    "AT\rAT+CMGD=1,4", "AT\nAT+CMGD=1,4", "ATE0+CMGD=1,4", "AT+CSQ;+CMGD=1,4",
    "AT&F+CFUN=1,1", "ATE0 Z", "AT+CPMS=\"ME\",\"ME\",\"ME\"",
])
def test_hidden_destructive_parts_send_nothing(sim: SimulatedModem, command: str) -> None:
    pdus = unique_pdus(2)
    stored = {sim.store(pdu): pdu for pdu in pdus}
    before = list(sim.command_log)
    code, out = console(sim.port, command)
    assert code == EXIT_REFUSED, out
    assert "refused" in out and "--force" in out
    assert sim.command_log == before  # not even the harmless first part went out
    assert sim.messages() == stored


def test_hidden_deletion_over_the_cli_subprocess(sim: SimulatedModem) -> None:
    """What was found: `modemd at PORT $'AT\\rAT+CMGD=1,4'` deleted every SMS, exit 0."""
    import subprocess
    import sys

    pdus = unique_pdus(2)
    stored = {sim.store(pdu): pdu for pdu in pdus}
    proc = subprocess.run([sys.executable, "-m", "modemd", "at", sim.port, "AT\rAT+CMGD=1,4"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_REFUSED, proc.stdout + proc.stderr
    assert "CMGD" in proc.stdout and "Traceback" not in proc.stderr
    assert sim.messages() == stored
    assert not any("CMGD" in c.upper() for c in sim.command_log)


def test_interactive_refuses_hidden_parts_without_force(sim: SimulatedModem) -> None:
    (pdu,) = unique_pdus(1)
    index = sim.store(pdu)
    typed = io.StringIO("ATE0+CMGD=1,4\nyes\nAT\rAT+CMGD=1,4\nAT+CSQ\n")
    out = io.StringIO()
    code = run_console(sim.port, None, stdin=typed, stdout=out, timeout=2.0)
    assert code == EXIT_REFUSED, out.getvalue()
    assert out.getvalue().count("refused") == 2
    assert sim.messages() == {index: pdu}
    assert not any("CMGD" in c.upper() for c in sim.command_log)


def test_harmless_lines_are_sent_one_at_a_time(sim: SimulatedModem) -> None:
    code, out = console(sim.port, "AT+CGSN\rAT+CSQ")
    assert code == EXIT_OK, out
    assert out.splitlines() == [IMEI, "OK", "+CSQ: 20,99", "OK"]


def test_force_sends_a_hidden_deletion(sim: SimulatedModem) -> None:
    (pdu,) = unique_pdus(1)
    sim.store(pdu)
    code, out = console(sim.port, "ATE0+CMGD=1,4", force=True)
    assert code == EXIT_OK, out
    assert sim.messages() == {}


def test_what_the_modem_prints_reaches_the_terminal_without_control_characters() -> None:
    from modemd.modem.console import _Printer

    out = io.StringIO()
    printer = _Printer(out)
    printer.line('+CMGR: "REC UNREAD","+4915112345678",,"26/11/25,10:00:00+04"')
    printer.line("\x1b]0;owned\x07hello \x9b2J \u202eevil")
    first, second = out.getvalue().splitlines()
    assert first == '+CMGR: "REC UNREAD","+4915112345678",,"26/11/25,10:00:00+04"'
    assert second == "\\x1b]0;owned\\x07hello \\x9b2J \\u202eevil"


HARMLESS = ["AT", "ATE0", "ATV1", "ATQ0", "AT+CSQ", "AT+CREG?", "ATI", "AT+CMGF=0",
            'AT+CSCS="GSM"', "ATS0?", "AT&V", "AT+CPMS?"]
DESTRUCTIVE = ["+CMGD=1,4", "+CMGW", "+CMSS=1", "+CMGS=20", '+CPMS="ME"', "+CFUN=0",
               "+CFUN=1,1", '+CPIN="1234"', '+CLCK="SC",1,"1234"', "&F", "Z", "^RESET",
               "+QPOWD=1", "+CPOF", "+QPRTPARA=3", "&W"]


@given(st.sampled_from(HARMLESS), st.sampled_from(DESTRUCTIVE),
       st.sampled_from(["\r", "\n", "\r\n", ";", "", " ", "\rAT", "\nat", ";AT"]),
       st.booleans())
def test_a_destructive_part_is_found_however_it_is_joined(
        harmless: str, destructive: str, joint: str, lower: bool) -> None:
    if joint in ("\r", "\n", "\r\n"):
        joint += "AT"
    # "AT+CSQZ" names the command "+CSQZ" (Z is a name character; V.250 wants a ';' after
    # an extended command), which a modem refuses as unknown: no Z is hidden there
    assume(not (destructive == "Z" and joint in ("", " ") and "+" in harmless))
    line = harmless + joint + destructive
    assert destructive_reason(line.lower() if lower else line) is not None, line


@given(st.text(max_size=80))
def test_the_guard_reads_any_text(text: str) -> None:
    destructive_reason(text)
    split_commands(text)

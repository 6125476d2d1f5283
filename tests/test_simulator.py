"""The simulated modem, driven over its pty with pyserial exactly as a host would.

PDUs below are real SMS-DELIVER PDUs from babca/python-gsmmodem@5c816bae12 (LGPL-3.0),
test/test_pdu.py:369 and test/test_modem.py:1315/1799, via /work/shared/corpus.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import serial

from modemd.simulator.control import handle_control_line
from modemd.simulator.modem import SimulatedModem, StorageFullError
from modemd.simulator.profiles import PROFILES

# +27821234567 "Test2" (python-gsmmodem test/test_pdu.py:369); TPDU 24 octets
PDU_TEST2 = "06917228195339040B917228214365F700003130805120618005D4F29C2E03"
# +0123456789 "Hello world!" (test/test_modem.py:1315); TPDU 29 octets
PDU_HELLO = "06917228195339040A9110325476980000313080512061800CC8329BFD06DDDF72363904"
# +27748577604 "Hello raspberry pi" (test/test_modem.py:1799); TPDU 35 octets
PDU_RASPI = "07917248014000F3240B917247587706F400003110824115248012C8329BFD06C9C373B8B82C97E741F034"

FINAL = re.compile(
    rb"\r\n(OK|ERROR|COMMAND NOT SUPPORT|\+CME ERROR: [^\r]*|\+CMS ERROR: [^\r]*)\r\n"
)


class Host:
    """What a daemon does with the port: pyserial, bytes, a deadline."""

    def __init__(self, path: str) -> None:
        self.ser = serial.Serial(path, baudrate=115200, timeout=0.05)

    def close(self) -> None:
        self.ser.close()

    def send(self, command: str) -> None:
        self.ser.write(command.encode() + b"\r")

    def read_some(self) -> bytes:
        data = self.ser.read(1)  # returns on the first byte, or after the 50 ms timeout
        if data and self.ser.in_waiting:
            data += self.ser.read(self.ser.in_waiting)
        return data

    def read_for(self, seconds: float) -> bytes:
        data = bytearray()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            data += self.read_some()
        return bytes(data)

    def read_until(self, pattern: re.Pattern[bytes] | bytes, timeout: float = 2.0) -> bytes:
        regex = re.compile(re.escape(pattern)) if isinstance(pattern, bytes) else pattern
        data = bytearray()
        deadline = time.monotonic() + timeout
        while not regex.search(data):
            if time.monotonic() > deadline:
                raise AssertionError(f"waited in vain for {regex.pattern!r}; got {bytes(data)!r}")
            data += self.read_some()
        return bytes(data)

    def at(self, command: str, timeout: float = 2.0) -> bytes:
        self.send(command)
        return self.read_until(FINAL, timeout)

    def lines(self, command: str) -> list[str]:
        """The answer's non-empty lines, without the echo."""
        raw = self.at(command).decode("latin-1")
        return [x for x in raw.split("\r\n") if x and x.rstrip("\r") != command]


@pytest.fixture
def sim() -> Iterator[SimulatedModem]:
    with SimulatedModem(cnma_timeout=0.3, capacity=60) as modem:
        yield modem


@pytest.fixture
def host(sim: SimulatedModem) -> Iterator[Host]:
    h = Host(sim.port)
    h.at("ATE0")
    yield h
    h.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _sim_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("modemd-sim")]


# -- identity and basics --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_identity_answers_per_profile(name: str) -> None:
    profile = PROFILES[name]
    with SimulatedModem(profile=name, imei="490154203237518", imsi="262019876543210") as sim:
        host = Host(sim.port)
        try:
            host.at("ATE0")
            host.at("AT^CURC=0") if "^CURC" in profile.optional_commands else None
            assert profile.manufacturer in " ".join(host.lines("AT+CGMI"))
            assert profile.model in " ".join(host.lines("AT+CGMM"))
            assert profile.revision in " ".join(host.lines("AT+CGMR"))
            assert host.lines("AT+CGSN") == ["490154203237518", "OK"]
            assert host.lines("AT+GSN") == ["490154203237518", "OK"]
            assert host.lines("AT+CIMI") == ["262019876543210", "OK"]
            assert host.lines("ATI")[-1] == "OK" and len(host.lines("ATI")) >= 2
            iccid = profile.iccid_commands[0]
            answer = host.lines("AT" + iccid.command)
            assert answer[-1] == "OK"
            assert answer[0].startswith(iccid.prefix) and "8949011234567890126" in answer[0]
            assert host.lines("AT+CPMS=?") == [profile.cpms_test, "OK"]
            assert host.lines("AT+CNMI=?") == [profile.cnmi_test, "OK"]
        finally:
            host.close()


def test_sim800_answers_iccid_bare_and_huawei_refuses_unknown_its_way() -> None:
    with SimulatedModem(profile="sim800") as sim:
        host = Host(sim.port)
        assert host.lines("AT+CCID") == ["8949011234567890126", "OK"]
        assert host.lines("AT+QCCID") == ["ERROR"]
        host.close()
    with SimulatedModem(profile="huawei_e3372") as sim:
        host = Host(sim.port)
        assert host.lines("AT^ICCID?") == ['^ICCID: "8949011234567890126"', "OK"]
        assert host.lines("AT+WIND?") == ["COMMAND NOT SUPPORT"]
        host.close()


def test_echo_is_on_at_power_on_and_ate0_turns_it_off(sim: SimulatedModem) -> None:
    host = Host(sim.port)
    try:
        assert host.at("AT+CSQ").startswith(b"AT+CSQ\r\r\n+CSQ: 20,99\r\n")
        assert host.at("ATE0") == b"ATE0\r\r\nOK\r\n"  # the echo of ATE0 itself still comes
        assert host.at("AT+CSQ") == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
        assert host.at("ATE1") == b"\r\nOK\r\n"
        assert host.at("AT").startswith(b"AT\r")
    finally:
        host.close()


def test_unknown_command_error_follows_cmee(host: Host) -> None:
    assert host.lines("AT+NOPE") == ["ERROR"]
    host.at("AT+CMEE=1")
    assert host.lines("AT+NOPE") == ["+CME ERROR: 4"]
    host.at("AT+CMEE=2")
    assert host.lines("AT+NOPE") == ["+CME ERROR: operation not supported"]


def test_chained_commands_and_settings(host: Host) -> None:
    assert host.lines("AT+CMGF=1;+CSDH=1") == ["OK"]
    assert host.lines("at+cmgf?;+csdh?") == ["+CMGF: 1", "+CSDH: 1", "OK"]
    assert host.lines('AT+CPMS="ME","ME","ME"') == ["+CPMS: 0,60,0,60,0,60", "OK"]
    assert host.lines("AT+CPMS?") == ['+CPMS: "ME",0,60,"ME",0,60,"ME",0,60', "OK"]
    assert host.lines('AT+CPMS="XX"') == ["+CMS ERROR: 302"]
    assert host.lines("AT+CNMI=2,1,0,0,0") == ["OK"]
    assert host.lines("AT+CNMI?") == ["+CNMI: 2,1,0,0,0", "OK"]
    assert host.lines("AT+CNMI=2,1,3,0,0") == ["+CMS ERROR: 303"]  # bm=3 not offered
    assert host.lines("AT+CSCA?") == ['+CSCA: "+491710760000",145', "OK"]
    assert host.lines("AT+CREG?") == ["+CREG: 0,1", "OK"]
    assert host.lines("AT+CREG=2;+CREG?") == ["+CREG: 2,1,\"1A2B\",\"01C3D4E5\",7", "OK"]
    assert host.lines("AT+COPS?") == ['+COPS: 0,0,"Telekom.de",7', "OK"]


# -- receiving ------------------------------------------------------------------------------


def test_cmti_on_delivery(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CNMI=2,1,0,0,0")
    index = sim.deliver(PDU_TEST2)
    assert index == 1
    assert host.read_until(b'+CMTI: "SM",1\r\n') == b'\r\n+CMTI: "SM",1\r\n'
    assert sim.deliver(bytes.fromhex(PDU_HELLO)) == 2
    host.read_until(b'+CMTI: "SM",2\r\n')


def test_cnmi_mt0_stores_silently(sim: SimulatedModem, host: Host) -> None:
    assert sim.deliver(PDU_TEST2) == 1
    assert host.read_for(0.2) == b""
    assert sim.messages() == {1: bytes.fromhex(PDU_TEST2)}


def test_cmgl_cmgr_cmgd_round_trip(sim: SimulatedModem, host: Host) -> None:
    first, second = sim.store(PDU_TEST2), sim.store(PDU_RASPI)
    assert (first, second) == (1, 2)
    assert host.lines("AT+CMGL=4") == [
        "+CMGL: 1,0,,24",
        PDU_TEST2,
        "+CMGL: 2,0,,35",
        PDU_RASPI,
        "OK",
    ]
    # listing marked them read
    assert host.lines("AT+CMGL=0") == ["OK"]
    assert host.lines("AT+CMGR=2") == ["+CMGR: 1,,35", PDU_RASPI, "OK"]
    assert host.lines("AT+CMGD=1") == ["OK"]
    assert sim.messages() == {2: bytes.fromhex(PDU_RASPI)}
    assert host.lines("AT+CMGR=1") == ["+CMS ERROR: 321"]  # empty slot (generic profile)
    assert host.lines("AT+CMGR=61") == ["+CMS ERROR: 321"]  # beyond capacity
    # lowest free index is reused
    assert sim.store(PDU_HELLO) == 1
    assert host.lines("AT+CMGD=0,4") == ["OK"]
    assert sim.messages() == {}
    log = sim.command_log
    assert log.index("AT+CMGD=1") > log.index("AT+CMGR=2")


def test_cmgr_marks_unread_as_read(sim: SimulatedModem, host: Host) -> None:
    sim.store(PDU_TEST2)
    assert host.lines("AT+CMGR=1")[0] == "+CMGR: 0,,24"
    assert host.lines("AT+CMGR=1")[0] == "+CMGR: 1,,24"
    assert sim.statuses() == {1: 1}


def test_cmgl_in_pdu_mode_refuses_text_stat(host: Host) -> None:
    assert host.lines('AT+CMGL="ALL"') == ["+CMS ERROR: 304"]


def test_cmt_with_cnma_is_not_stored(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CSMS=1")  # phase 2+: +CMT is held until +CNMA
    host.at("AT+CNMI=2,2,0,0,0")
    assert sim.deliver(PDU_TEST2) is None
    assert host.read_until(PDU_TEST2.encode() + b"\r\n") == (
        b"\r\n+CMT: ,24\r\n" + PDU_TEST2.encode() + b"\r\n"
    )
    assert host.lines("AT+CNMA") == ["OK"]
    assert host.read_for(0.5) == b""  # past cnma_timeout: no +CMTI follows
    assert sim.messages() == {}
    assert sim.acknowledged == [bytes.fromhex(PDU_TEST2)]
    assert host.lines("AT+CNMA") == ["+CMS ERROR: 340"]  # nothing to acknowledge


def test_cmt_without_cnma_falls_back_to_storage(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CSMS=1")  # phase 2+: +CMT is held until +CNMA
    host.at("AT+CNMI=2,2,0,0,0")
    started = time.monotonic()
    sim.deliver(PDU_HELLO)
    data = host.read_until(b'+CMTI: "SM",1\r\n', timeout=2.0)
    assert data.startswith(b"\r\n+CMT: ,29\r\n")
    assert time.monotonic() - started >= 0.25  # cnma_timeout is 0.3 s
    assert sim.messages() == {1: bytes.fromhex(PDU_HELLO)}
    assert sim.acknowledged == []


def test_second_cmt_waits_for_the_first_acknowledgement(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CSMS=1")  # phase 2+: +CMT is held until +CNMA
    host.at("AT+CNMI=2,2,0,0,0")
    sim.deliver_many([PDU_TEST2, PDU_HELLO])
    first = host.read_until(PDU_TEST2.encode() + b"\r\n")
    assert PDU_HELLO.encode() not in first
    host.send("AT+CNMA")
    after = host.read_until(PDU_HELLO.encode() + b"\r\n")
    assert after.index(b"OK") < after.index(b"+CMT: ,29")
    assert host.lines("AT+CNMA") == ["OK"]
    assert len(sim.acknowledged) == 2 and sim.messages() == {}


def test_burst_of_50_arrives_in_one_write(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CNMI=2,1,0,0,0")
    fd = host.ser.fileno()
    first_read: list[bytes] = []

    def block_in_read() -> None:  # a host blocked in read(): it wakes on the first write
        select.select([fd], [], [], 5.0)
        first_read.append(os.read(fd, 65536))

    reader = threading.Thread(target=block_in_read)
    reader.start()
    time.sleep(0.1)
    indices = sim.deliver_many([PDU_TEST2] * 50)
    reader.join(5.0)
    assert indices == list(range(1, 51))
    expected = b"".join(b'\r\n+CMTI: "SM",%d\r\n' % i for i in range(1, 51))
    assert first_read == [expected]


def test_delivery_is_thread_safe(sim: SimulatedModem) -> None:
    results: list[int | None] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            index = sim.deliver(PDU_TEST2)
            with lock:
                results.append(index)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i for i in results if i is not None) == list(range(1, 51))


def test_cmgw_prompt_stores_a_pdu(sim: SimulatedModem, host: Host) -> None:
    host.send("AT+CMGW=24")
    assert host.read_until(b"> ") == b"\r\n> "
    host.ser.write(PDU_TEST2.encode() + b"\x1a")
    assert host.read_until(FINAL) == b"\r\n+CMGW: 1\r\n\r\nOK\r\n"
    assert sim.statuses() == {1: 2}  # STO UNSENT


def test_text_mode_listing_reading_and_cmt(sim: SimulatedModem, host: Host) -> None:
    sim.store(PDU_HELLO)
    host.at("AT+CMGF=1")
    assert host.lines('AT+CMGL="ALL"') == [
        '+CMGL: 1,"REC UNREAD","+0123456789",,"13/03/08,15:02:16+08"',
        "Hello world!",
        "OK",
    ]
    host.at("AT+CSDH=1")
    assert host.lines("AT+CMGR=1") == [
        '+CMGR: "REC READ","+0123456789",,"13/03/08,15:02:16+08",145,4,0,0,"+2782913593",145,12',
        "Hello world!",
        "OK",
    ]
    assert host.lines("AT+CMGL=4") == ["+CMS ERROR: 305"]  # PDU-mode <stat> in text mode
    host.at("AT+CSMS=1;+CSDH=0;+CNMI=2,2,0,0,0")
    sim.deliver(PDU_TEST2)
    assert host.read_until(b"Test2\r\n") == (
        b'\r\n+CMT: "+27821234567",,"13/03/08,15:02:16+08"\r\nTest2\r\n'
    )
    assert host.lines("AT+CNMA") == ["OK"]


def test_deliver_sms_encodes_one_or_several_parts(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CNMI=2,1,0,0,0")
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert sim.deliver_sms(sender="+4915112345678", text="ID=PUMP01;BAT=3.71", scts=when) == [1]
    assert sim.deliver_sms(sender="+4915112345678", text="x" * 200, scts=when, reference=7) == [
        2,
        3,
    ]
    burst = host.read_until(b'+CMTI: "SM",3\r\n')
    assert burst.endswith(b'\r\n+CMTI: "SM",2\r\n\r\n+CMTI: "SM",3\r\n')
    host.at("AT+CMGF=1")
    assert host.lines("AT+CMGR=1")[:2] == [
        '+CMGR: "REC UNREAD","+4915112345678",,"24/05/01,12:00:00+08"',
        "ID=PUMP01;BAT=3.71",
    ]


def test_cnmi_mode_0_buffers_indications_until_mode_2(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CNMI=0,1,0,0,0")
    assert sim.deliver(PDU_TEST2) == 1
    assert host.read_for(0.2) == b""
    host.send("AT+CNMI=2,1,0,0,0")
    assert host.read_until(b'+CMTI: "SM",1\r\n') == b'\r\nOK\r\n\r\n+CMTI: "SM",1\r\n'


def test_cfun_0_drops_registration_and_signal(host: Host) -> None:
    assert host.lines("AT+CFUN=0") == ["OK"]
    assert host.lines("AT+CFUN?") == ["+CFUN: 0", "OK"]
    assert host.lines("AT+CSQ") == ["+CSQ: 99,99", "OK"]
    assert host.lines("AT+CREG?") == ["+CREG: 0,0", "OK"]
    host.at("AT+CFUN=1")
    assert host.lines("AT+CREG?") == ["+CREG: 0,1", "OK"]


def test_periodic_vendor_urc_stops_after_curc_0() -> None:
    chatty = replace(PROFILES["huawei_e3372"], periodic_urcs=((0.05, "^RSSI: {rssi}"),))
    with SimulatedModem(profile=chatty, signal=(17, 99)) as sim:
        host = Host(sim.port)
        host.read_until(b"^RSSI: 17\r\n", timeout=1.0)
        host.at("AT^CURC=0")
        time.sleep(0.1)  # one that was already on its way
        host.ser.reset_input_buffer()
        assert b"^RSSI" not in host.read_for(0.3)
        host.close()


# -- quirks ---------------------------------------------------------------------------------


def test_quirk_echo_off_from_power_on() -> None:
    with SimulatedModem(quirks={"echo": False}) as sim:
        host = Host(sim.port)
        assert host.at("AT") == b"\r\nOK\r\n"
        host.close()


def test_quirk_lowercase_hex(sim: SimulatedModem, host: Host) -> None:
    sim.store(PDU_TEST2)
    sim.set_quirk("lowercase_hex", True)
    assert host.lines("AT+CMGL=4")[1] == PDU_TEST2.lower()


def test_quirk_extra_blank_lines(sim: SimulatedModem, host: Host) -> None:
    sim.set_quirk("extra_blank_lines", True)
    assert host.at("AT+CSQ") == b"\r\n+CSQ: 20,99\r\n\r\n\r\nOK\r\n"


def test_quirk_urc_inside_answer(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CNMI=2,1,0,0,0")
    sim.set_quirk("urc_inside_answer", True)
    sim.deliver(PDU_TEST2)
    assert host.read_for(0.2) == b""  # held back ...
    assert host.at("AT+CSQ") == b'\r\n+CSQ: 20,99\r\n\r\n+CMTI: "SM",1\r\n\r\nOK\r\n'  # ... inside


def test_quirk_cms_error(sim: SimulatedModem, host: Host) -> None:
    sim.store(PDU_TEST2)
    sim.set_quirk("cms_error", {"+CMGD": 321})
    assert host.lines("AT+CMGD=1") == ["+CMS ERROR: 321"]
    assert sim.messages() != {}
    sim.set_quirk("cms_error", {})
    assert host.lines("AT+CMGD=1") == ["OK"]
    assert sim.messages() == {}


def test_quirk_hang(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CNMI=2,1,0,0,0")
    sim.set_quirk("hang", True)
    host.send("AT")
    assert sim.deliver(PDU_TEST2) == 1  # stored, but no +CMTI
    assert host.read_for(0.3) == b""
    assert "AT" in sim.command_log  # it did read
    sim.set_quirk("hang", False)
    assert host.lines("AT") == ["OK"]


def test_quirk_slow(sim: SimulatedModem, host: Host) -> None:
    sim.set_quirk("slow", 0.3)
    started = time.monotonic()
    assert host.lines("AT") == ["OK"]
    assert time.monotonic() - started >= 0.3


def test_quirk_garbage_every(sim: SimulatedModem, host: Host) -> None:
    sim.set_quirk("garbage_every", 2)
    answers = [host.at("AT") for _ in range(4)]
    junk = [b"\xff\x00\xfe" in a for a in answers]
    assert junk.count(True) == 2 and junk[0] != junk[1]


def test_quirk_pin_required(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CMEE=1")
    sim.set_quirk("pin_required", True)
    assert host.lines("AT+CPIN?") == ["+CPIN: SIM PIN", "OK"]
    assert host.lines("AT+CIMI") == ["+CME ERROR: 11"]
    assert host.lines("AT+CCID") == ["+CME ERROR: 11"]
    assert host.lines("AT+CMGL=4") == ["+CMS ERROR: 311"]
    assert host.lines("AT+CREG?") == ["+CREG: 0,0", "OK"]
    assert host.lines('AT+CPIN="0000"') == ["+CME ERROR: 16"]
    assert host.lines('AT+CPIN="1234"') == ["OK"]
    assert host.lines("AT+CIMI") == ["262011234567890", "OK"]


def test_pin_at_construction() -> None:
    with SimulatedModem(pin="4711") as sim:
        host = Host(sim.port)
        assert host.lines("AT+CPIN?") == ["+CPIN: SIM PIN", "OK"]
        assert host.lines('AT+CPIN="4711"') == ["OK"]
        assert host.lines("AT+CPIN?") == ["+CPIN: READY", "OK"]
        host.close()


def test_quirk_not_registered_and_creg_urc(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CREG=1")
    sim.set_quirk("not_registered", True)
    assert host.read_until(b"+CREG: 2\r\n")
    assert host.lines("AT+CREG?") == ["+CREG: 1,2", "OK"]
    assert host.lines("AT+COPS?") == ["+COPS: 0", "OK"]
    sim.set_quirk("not_registered", 3)  # registration denied
    assert host.read_until(b"+CREG: 3\r\n") == b"\r\n+CREG: 3\r\n"
    assert host.lines("AT+CREG?") == ["+CREG: 1,3", "OK"]
    sim.set_quirk("not_registered", False)
    assert host.read_until(b"+CREG: 1\r\n") == b"\r\n+CREG: 1\r\n"


def test_quirk_storage_full_rejects_and_retries() -> None:
    with SimulatedModem(profile="huawei_e3372", capacity=2) as sim:
        host = Host(sim.port)
        host.at("ATE0;^CURC=0;+CNMI=2,1,0,0,0")
        assert sim.deliver_many([PDU_TEST2, PDU_HELLO]) == [0, 1]
        assert sim.deliver(PDU_RASPI) is None
        assert host.read_until(b'^SMMEMFULL: "SM"\r\n')
        assert sim.rejected == [bytes.fromhex(PDU_RASPI)]
        with pytest.raises(StorageFullError):
            sim.store(PDU_RASPI)
        host.at("AT+CMGD=0")
        assert sim.retry_rejected() == [0]
        host.read_until(b'+CMTI: "SM",0\r\n')
        assert sim.rejected == []
        sim.set_quirk("storage_full", True)
        assert sim.deliver(PDU_TEST2) is None
        host.send("AT+CMGW=24")
        host.read_until(b"> ")
        host.ser.write(PDU_TEST2.encode() + b"\x1a")
        assert host.read_until(FINAL).endswith(b"\r\n+CMS ERROR: 322\r\n")
        host.close()


# -- reset, unplug, life cycle --------------------------------------------------------------


def test_reset_goes_silent_then_boots_with_default_echo() -> None:
    with SimulatedModem(profile="sim800", reset_silence=0.6) as sim:
        host = Host(sim.port)
        host.at("ATE0")
        host.at("AT+CMGF=1")
        assert host.at("AT+CFUN=1,1") == b"\r\nOK\r\n"
        host.send("AT")
        boot = host.read_until(b"SMS Ready\r\n", timeout=2.0)
        assert b"OK" not in boot  # the AT sent during the reset was not answered
        assert boot == (
            b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n"
        )
        assert host.at("AT+CMGF?").startswith(b"AT+CMGF?\r")  # echo is back on
        assert b"+CMGF: 0" in host.at("AT+CMGF?")
        host.close()


def test_profile_reset_command() -> None:
    with SimulatedModem(profile="simcom_sim7600") as sim:
        host = Host(sim.port)
        host.at("ATE0")
        assert host.at("AT+CRESET") == b"\r\nOK\r\n"
        host.read_until(b"PB DONE\r\n")
        host.close()


def test_vanish_breaks_the_host_and_reappear_gives_a_new_port(tmp_path: Path) -> None:
    link = tmp_path / "by-id" / "usb-Simulated_Modem-if02"
    with SimulatedModem(link_path=link) as sim:
        assert sim.port == str(link)
        first = sim.slave_path
        assert first is not None and os.readlink(link) == first
        host = Host(sim.port)
        host.at("ATE0;+CNMI=2,1,0,0,0")
        sim.store(PDU_TEST2)

        sim.vanish()
        assert not link.exists()
        with pytest.raises(serial.SerialException):  # "device reports readiness to read ..."
            host.ser.read(1)
        with pytest.raises(serial.SerialException):  # "write failed: [Errno 5] ..."
            host.ser.write(b"AT\r")
        with pytest.raises(OSError):  # in_waiting: a plain OSError(EIO)
            _ = host.ser.in_waiting
        host.close()
        assert sim.deliver(PDU_HELLO) == 2  # stored while unplugged

        port = sim.reappear()
        assert port == str(link)
        assert sim.slave_path != first
        assert os.readlink(link) == sim.slave_path
        host = Host(sim.port)
        assert host.at("AT").startswith(b"AT\r")  # echo back on after power-on
        assert host.lines("AT+CNMI?") == ["+CNMI: 0,0,0,0,0", "OK"]
        assert host.lines("AT+CGSN") == ["356938035643809", "OK"]
        listing = host.lines("AT+CMGL=4")
        assert listing[0].startswith("+CMGL: 1,") and listing[2].startswith("+CMGL: 2,")
        host.close()


def test_stop_leaves_no_thread_and_no_fd(tmp_path: Path) -> None:
    fds_before = _open_fds()
    sim = SimulatedModem(profile="huawei_e3372", link_path=tmp_path / "modem").start()
    assert _sim_threads() != []
    host = Host(sim.port)
    host.at("AT")
    sim.vanish()
    sim.reappear()
    host.close()
    started = time.monotonic()
    sim.stop()
    sim.stop()  # idempotent
    assert time.monotonic() - started < 1.0
    assert _sim_threads() == []
    assert _open_fds() == fds_before
    assert not (tmp_path / "modem").exists()


# -- control protocol -----------------------------------------------------------------------


def test_control_protocol(sim: SimulatedModem, host: Host) -> None:
    assert "sms" in handle_control_line(sim, "help")
    assert handle_control_line(sim, f"store {PDU_TEST2}") == "stored at 1"
    assert handle_control_line(sim, "pdu " + PDU_HELLO) == "delivered: stored at 2"
    assert handle_control_line(sim, "list").startswith("2 message(s): [1 REC UNREAD]")
    assert handle_control_line(sim, "quirk slow 0.25") == "quirk slow = 0.25"
    assert sim.quirks.slow == 0.25
    answer = handle_control_line(sim, "quirk cms_error +CMGD=321")
    assert answer == "quirk cms_error = {'+CMGD': 321}"
    assert handle_control_line(sim, "garbage fffe") == "wrote 2 byte(s) of garbage"
    assert host.read_until(b"\xff\xfe") == b"\xff\xfe"
    assert handle_control_line(sim, "urc +CSQ: 1,99") == "urc written"
    assert handle_control_line(sim, "quirk nope 1").startswith("error: unknown quirk")
    assert handle_control_line(sim, "pdu zz").startswith("error:")
    assert handle_control_line(sim, "frobnicate").startswith("error: unknown command")
    assert handle_control_line(sim, "") == ""
    assert handle_control_line(sim, "vanish") == "port vanished (as on USB unplug)"
    assert sim.vanished
    assert handle_control_line(sim, "reappear").startswith("port is back at /dev/")
    assert not sim.vanished


def test_cmt_without_csms_1_is_not_held(sim: SimulatedModem, host: Host) -> None:
    """Phase 2 (AT+CSMS=0): the modem does not wait for +CNMA; the message is its host's."""
    host.at("AT+CNMI=2,2,0,0,0")
    sim.deliver(PDU_TEST2)
    host.read_until(PDU_TEST2.encode() + b"\r\n")
    assert host.lines("AT+CNMA") == ["+CMS ERROR: 340"]
    assert host.read_for(0.5) == b""  # past cnma_timeout: nothing stored either
    assert sim.messages() == {} and sim.unheld == [bytes.fromhex(PDU_TEST2)]


def test_a_modem_can_refuse_csms_1(host: Host, sim: SimulatedModem) -> None:
    sim.set_quirk("refuse_csms", True)
    assert host.lines("AT+CSMS=1") == ["+CMS ERROR: 303"]
    assert host.lines("AT+CSMS=?") == ["+CSMS: (0)", "OK"]


def test_corrupt_entries_are_listed_as_such(sim: SimulatedModem, host: Host) -> None:
    host.at("AT+CPMS=\"SM\",\"SM\",\"SM\"")
    sim.store(PDU_TEST2)
    sim.store_corrupt("ZZ0791")
    sim.store_corrupt("")
    assert host.lines("AT+CMGL=4") == [
        "+CMGL: 1,0,,24", PDU_TEST2, "+CMGL: 2,0,,24", "ZZ0791", "+CMGL: 3,0,,0", "OK"]


def test_slow_baud_paces_the_answer() -> None:
    with SimulatedModem(capacity=60, quirks={"baud": 9600}) as modem:
        for _ in range(10):
            modem.store(PDU_RASPI)
        host = Host(modem.port)
        try:
            host.at("ATE0")
            started = time.monotonic()
            data = host.at("AT+CMGL=4", timeout=10)
            elapsed = time.monotonic() - started
            assert data.count(b"+CMGL:") == 10
            assert elapsed >= len(data) * 10 / 9600 * 0.8
        finally:
            host.close()


def test_scripted_answers_and_lines_inside_answers(sim: SimulatedModem, host: Host) -> None:
    sim.set_quirk("answers", {"+CPIN?": "+CME ERROR: 10"})
    sim.set_quirk("inside_answers", ["^NWTIME: 26/12/01,11:00:00+04,00"])
    raw = host.at("AT+CPIN?").decode()
    assert "^NWTIME" in raw and raw.rstrip().endswith("+CME ERROR: 10")


def test_control_corrupt_ring_and_restart(sim: SimulatedModem, host: Host) -> None:
    assert handle_control_line(sim, "corrupt ZZ00").startswith("stored a corrupt entry at ")
    assert "ZZ00" in host.lines("AT+CMGL=4")
    assert handle_control_line(sim, "ring +4930123456") == "rang (a missed call)"
    assert b'+CLIP: "+4930123456"' in host.read_until(b"NO CARRIER\r\n")
    host.at("AT+CNMI=2,1,0,0,0")
    assert handle_control_line(sim, "restart").startswith("restarting")
    assert b"+CPIN: READY" in host.read_until(b"+CPIN: READY\r\n", timeout=3)
    assert sim.state.cnmi == [0, 0, 0, 0, 0]  # the settings did not survive

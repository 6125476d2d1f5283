"""Tests of the sans-IO AT parser against real modem transcripts and hostile byte streams.

Every transcript is fed whole, split in two at every point (a sample for long ones) and byte
by byte; the events must be the same each time (the parser is chunking-independent).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modemd.at import (
    DEFAULT_URC_PREFIXES,
    MAX_LINE_BYTES,
    ATEvent,
    ATParser,
    FinalResult,
    Garbage,
    InfoLine,
    Prompt,
    ResultKind,
    Urc,
)
from modemd.at.parser import CALL_RESULTS

E = TypeVar("E", InfoLine, FinalResult, Prompt, Urc, Garbage)
DATA = Path(__file__).parent / "data" / "transcripts"
SOURCES = [json.loads(line) for line in (DATA / "sources.jsonl").read_text().splitlines()]
MAX_SPLITS = 160  # split points tried per transcript (all of them for short ones)


# ---------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Cmd:
    """A command to announce to the parser before feeding (None: feed outside a command)."""

    text: str
    prefixes: tuple[str, ...] = ()
    prompt: bool = False

    def start(self, parser: ATParser) -> None:
        parser.command_started(
            self.text, response_prefixes=self.prefixes, expects_prompt=self.prompt
        )


def prefix_of(command: str) -> tuple[str, ...]:
    """``AT+CREG?`` -> ``("+CREG",)``; a basic command (``ATI``) has no prefix."""
    match = re.match(r"AT([+^$*#%][A-Z0-9]+)", command, re.IGNORECASE)
    return (match.group(1).upper(),) if match else ()


def feed_chunks(
    chunks: Iterable[bytes], cmd: Cmd | None, parser: ATParser | None = None
) -> list[ATEvent]:
    parser = parser or ATParser()
    if cmd is not None:
        cmd.start(parser)
    events: list[ATEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events


def split_points(size: int) -> range:
    step = max(1, size // MAX_SPLITS)
    return range(0, size + 1, step)


def feed_every_way(
    data: bytes, cmd: Cmd | None, make: Callable[[], ATParser] = ATParser
) -> list[ATEvent]:
    """Feed ``data`` whole, in two halves at every split point and byte by byte; assert the
    events are the same every time and return them."""
    whole = feed_chunks([data], cmd, make())
    for cut in split_points(len(data)):
        halves = feed_chunks([data[:cut], data[cut:]], cmd, make())
        assert halves == whole, f"split at {cut}: {data[:cut]!r} | {data[cut:]!r}"
    single = feed_chunks([data[i : i + 1] for i in range(len(data))], cmd, make())
    assert single == whole, "byte by byte"
    return whole


def final(
    kind: ResultKind = ResultKind.OK, code: int | None = None, text: str = "OK"
) -> FinalResult:
    return FinalResult(kind, code, text)


OK = final()


def only(events: Sequence[ATEvent], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


# ---------------------------------------------------------------------------- gammu dumps

GAMMU = [s for s in SOURCES if s["file"].startswith("gammu/")]
NOISY = {"gammu/at-getmemory/samsung.dump"}  # \x0e\x04 inside a quoted name


def oracle_lines(data: bytes) -> list[str]:
    """Naive reading of a clean transcript: split on CR/LF, drop control bytes and blanks."""
    text = data.decode("latin-1")
    text = "".join(c for c in text if c in "\r\n\t" or (0x20 <= ord(c) < 0xFF and c != "\x7f"))
    return [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]


@pytest.mark.parametrize("entry", GAMMU, ids=[s["file"] for s in GAMMU])
def test_gammu_transcript(entry: dict[str, object]) -> None:
    data = (DATA / str(entry["file"])).read_bytes()
    command = entry["command"]
    if command is None and "at-ussd" in str(entry["file"]):
        # A bare +CUSD URC between commands.
        events = feed_every_way(data, None)
        assert len(events) == 1
        urc = events[0]
        assert isinstance(urc, Urc) and urc.name == "+CUSD"
        assert urc.args == oracle_lines(data)[0].split(":", 1)[1].strip()
        return
    command = str(command or "AT+CSCS?")
    cmd = Cmd(command, prefix_of(command))
    events = feed_every_way(data, cmd)
    lines = oracle_lines(data)
    if lines[0].casefold() == command.casefold():
        lines = lines[1:]  # the echo
    assert lines[-1] == "OK"
    assert events[-1] == OK
    garbage = only(events, Garbage)
    if entry["file"] in NOISY:
        assert garbage and all(g.reason == "control bytes in line" for g in garbage)
    else:
        assert garbage == []
    assert only(events, InfoLine) == [InfoLine(line) for line in lines[:-1]]
    assert only(events, Urc) == []


def test_gammu_creg_answer_is_info_not_urc() -> None:
    data = (DATA / "gammu/at-creg/telit.dump").read_bytes()
    assert feed_chunks([data], Cmd("AT+CREG?", ("+CREG",))) == [
        InfoLine('+CREG: 0,1,"5E25","605F",2'),
        OK,
    ]
    # Without the declared prefix the same line is a registration URC inside the answer.
    assert feed_chunks([data], Cmd("AT+CREG?")) == [Urc("+CREG", '0,1,"5E25","605F",2'), OK]


def test_gammu_long_model_line_and_padding() -> None:
    data = (DATA / "gammu/at-model/06.dump").read_bytes()  # AT+CGMM\r\r\n MULTIBAND ... \r\n\r\nOK
    assert feed_every_way(data, Cmd("AT+CGMM")) == [InfoLine("MULTIBAND  900E  1800"), OK]


# ---------------------------------------------------------------------------- python-gsmmodem


def fakemodem_sections(data: bytes) -> list[tuple[str, bytes]]:
    """Split a fake-modem profile into (command, response bytes) pairs."""
    sections = []
    for block in re.split(rb"(?<=\r\n)\n(?=AT|$)", data):
        if not block:
            continue
        command, _, _ = block.partition(b"\r\n")
        sections.append((command.decode("ascii"), block))
    return sections


FAKEMODEMS = sorted(p.name for p in (DATA / "python-gsmmodem").glob("fakemodem_*.txt"))


@pytest.mark.parametrize("name", FAKEMODEMS)
def test_fakemodem_profile(name: str) -> None:
    sections = fakemodem_sections((DATA / "python-gsmmodem" / name).read_bytes())
    assert len(sections) >= 8
    driver = ATParser()  # one parser for the whole session, as the driver uses it
    for command, block in sections:
        cmd = Cmd(command, prefix_of(command))
        events = feed_every_way(block, cmd)
        assert feed_chunks([block], cmd, driver) == events
        assert only(events, Garbage) == [] and only(events, Urc) == []
        last = oracle_lines(block)[-1]
        if name == "fakemodem_WavecomMultiband900E1800.txt" and command == "AT+CPIN?":
            # This Wavecom does not end +CPIN? with OK: the driver's timeout has to.
            assert events == [InfoLine("+CPIN: READY")]
            assert driver.in_command
            driver.command_aborted()
            continue
        assert isinstance(events[-1], FinalResult)
        assert events[-1].kind == ResultKind(last)
        assert not driver.in_command


def test_huawei_clac_listing_cr_cr_lf_and_bare_urc_names() -> None:
    sections = dict(
        fakemodem_sections((DATA / "python-gsmmodem/fakemodem_HuaweiE1752.txt").read_bytes())
    )
    events = feed_chunks([sections["AT+CLAC"]], Cmd("AT+CLAC"))
    infos = [e.text for e in only(events, InfoLine)]
    # "+CREG", "^BOOT", "+CPIN" alone on a line are command names here, not URCs.
    assert {"+CREG", "^BOOT", "+CPIN", "+CUSD", "+CFUN"} <= set(infos)
    assert len(infos) == len(oracle_lines(sections["AT+CLAC"])) - 2
    assert events[-1] == OK


def test_huawei_command_not_support() -> None:
    sections = dict(
        fakemodem_sections((DATA / "python-gsmmodem/fakemodem_HuaweiE1752.txt").read_bytes())
    )
    events = feed_chunks([sections["AT+WIND?"]], Cmd("AT+WIND?", ("+WIND",)))
    assert events == [final(ResultKind.COMMAND_NOT_SUPPORT, text="COMMAND NOT SUPPORT")]


@pytest.mark.parametrize(
    ("name", "command", "prefix"),
    [
        ("cmgl_pdu_mode_4.txt", "AT+CMGL=4", "+CMGL"),
        ("cmgl_text_mode_all.txt", 'AT+CMGL="ALL"', "+CMGL"),
        ("cmgr_status_report_issue15.txt", "AT+CMGR=1", "+CMGR"),
        ("cmgr_status_report_text_mode.txt", "AT+CMGR=57", "+CMGR"),
        ("cmgr_status_report_zte.txt", "AT+CMGR=1", "+CMGR"),
    ],
)
def test_gsmmodem_listing(name: str, command: str, prefix: str) -> None:
    data = (DATA / "python-gsmmodem" / name).read_bytes()
    events = feed_every_way(data, Cmd(command, (prefix,)))
    assert events[-1] == OK
    assert only(events, InfoLine) == [InfoLine(line) for line in oracle_lines(data)[1:-1]]
    assert len(events) == len(oracle_lines(data)) - 1


def test_cmgs_prompt_with_zte_unsolicited_codes() -> None:
    data = (DATA / "python-gsmmodem/cmgs_with_zte_unsolicited.txt").read_bytes()
    events = feed_every_way(data, Cmd("AT+CMGS=23", ("+CMGS",), prompt=True))
    zdonr = Urc("+ZDONR", '"METEOR",272,3,"CS_ONLY","ROAM_OFF"')
    zpasr = Urc("+ZPASR", '"UMTS"')
    assert events == [
        zdonr,
        zpasr,
        Prompt(),
        # the modem's echo of "<PDU>" + Ctrl-Z is dropped
        zdonr,
        zpasr,
        Urc("+ZDONR", '"METEOR",272,3,"CS_PS","ROAM_OFF"'),
        zpasr,
        InfoLine("+CMGS: <ref>"),
        OK,
    ]


ERROR_FRAGMENTS = [
    json.loads(line)
    for line in (DATA / "python-gsmmodem/error_fragments.jsonl").read_text().splitlines()
]


@pytest.mark.parametrize("fragment", ERROR_FRAGMENTS, ids=[f["source"] for f in ERROR_FRAGMENTS])
def test_error_fragments(fragment: dict[str, str]) -> None:
    data = fragment["response"].encode()
    text = fragment["response"].strip()
    kind = ResultKind.CME_ERROR if text.startswith("+CME") else ResultKind.CMS_ERROR
    events = feed_every_way(b"AT+CMGS=12\r\r\n" + data, Cmd("AT+CMGS=12"))
    assert events == [FinalResult(kind, int(text.split(":")[1]), text)]


# ---------------------------------------------------------------------------- framing


def test_echo_is_dropped_case_insensitively() -> None:
    events = feed_every_way(b"at+csq \r\r\n+CSQ: 20,99\r\n\r\nOK\r\n", Cmd("AT+CSQ", ("+CSQ",)))
    assert events == [InfoLine("+CSQ: 20,99"), OK]


def test_echo_only_before_the_response() -> None:
    events = feed_chunks([b"AT\r\nAT\r\nOK\r\n"], Cmd("AT"))
    assert events == [OK]  # both lines come before any information line
    events = feed_chunks([b"ATI\r\nATI\r\nOK\r\n"], Cmd("ATI"))
    assert events == [OK]
    events = feed_chunks([b"ATI\r\nQuectel\r\nATI\r\nOK\r\n"], Cmd("ATI"))
    assert events == [InfoLine("Quectel"), InfoLine("ATI"), OK]


@pytest.mark.parametrize(
    "data",
    [
        b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n",  # V.250 framing, echo off
        b"+CSQ: 20,99\nOK\n",  # LF only
        b"+CSQ: 20,99\rOK\r",  # CR only
        b"\r\n\r\n\r\n+CSQ: 20,99\r\r\n\n\r\n\r\n\r\nOK\r\n\r\n\r\n",  # extra blank lines
        b"\n\r+CSQ: 20,99\n\r\n\rOK\n\r",  # LFCR
    ],
)
def test_line_endings_and_blank_lines(data: bytes) -> None:
    assert feed_every_way(data, Cmd("AT+CSQ", ("+CSQ",))) == [InfoLine("+CSQ: 20,99"), OK]


def test_cmti_inside_csq_answer() -> None:
    data = b'AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\n+CMTI: "SM",3\r\n\r\nOK\r\n'
    assert feed_every_way(data, Cmd("AT+CSQ", ("+CSQ",))) == [
        InfoLine("+CSQ: 20,99"),
        Urc("+CMTI", '"SM",3'),
        OK,
    ]


@pytest.mark.parametrize("in_command", [False, True])
def test_burst_of_50_cmti_in_one_chunk(in_command: bool) -> None:
    burst = b"".join(b'\r\n+CMTI: "ME",%d\r\n' % i for i in range(50))
    cmd = Cmd("AT+CPMS?", ("+CPMS",)) if in_command else None
    tail = b'\r\n+CPMS: "ME",50,255,"ME",50,255,"ME",50,255\r\n\r\nOK\r\n' if in_command else b""
    events = feed_every_way(burst + tail, cmd)
    assert only(events, Urc) == [Urc("+CMTI", f'"ME",{i}') for i in range(50)]
    if in_command:
        assert events[-2:] == [InfoLine('+CPMS: "ME",50,255,"ME",50,255,"ME",50,255'), OK]
    else:
        assert len(events) == 50


PDU = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"


def test_cmt_takes_its_pdu_line() -> None:
    data = f"\r\n+CMT: ,38\r\n{PDU}\r\n".encode()
    assert feed_every_way(data, None) == [Urc("+CMT", ",38", PDU)]


def test_cmt_inside_a_command_and_in_text_mode() -> None:
    data = (
        b"AT+CSQ\r\r\n+CSQ: 14,0\r\n"
        b'\r\n+CMT: "+491701234567",,"24/01/02,10:20:30+04"\r\nHello, RING\r\n'
        b"\r\nOK\r\n"
    )
    assert feed_every_way(data, Cmd("AT+CSQ", ("+CSQ",))) == [
        InfoLine("+CSQ: 14,0"),
        Urc("+CMT", '"+491701234567",,"24/01/02,10:20:30+04"', "Hello, RING"),
        OK,
    ]


def test_two_line_urc_without_body() -> None:
    # The stream goes on with a final result or another URC: no body, nothing lost.
    data = b'AT\r\r\n+CMT: ,23\r\nOK\r\n+CMT: ,24\r\n+CMTI: "SM",4\r\nRING\r\n'
    assert feed_every_way(data, Cmd("AT")) == [
        Urc("+CMT", ",23"),
        OK,
        Urc("+CMT", ",24"),
        Urc("+CMTI", '"SM",4'),
        Urc("RING"),
    ]


def test_cds_pdu_mode_has_a_body_text_mode_does_not() -> None:
    data = (
        b"\r\n+CDS: 25\r\n07912470338016000006E80C9166666666666690907061842280909070618462800\r\n"
        b'\r\n+CDS: 6,20,"0870000000",129,"13/04/29,19:58:00+04","13/04/29,19:59:00+04",0\r\n'
        b'\r\n+CDSI: "SR",57\r\n'
    )
    assert feed_every_way(data, None) == [
        Urc("+CDS", "25", "07912470338016000006E80C9166666666666690907061842280909070618462800"),
        Urc("+CDS", '6,20,"0870000000",129,"13/04/29,19:58:00+04","13/04/29,19:59:00+04",0'),
        Urc("+CDSI", '"SR",57'),
    ]


def test_pending_body_waits_for_more_bytes() -> None:
    parser = ATParser()
    assert parser.feed(b"\r\n+CMT: ,38\r\n") == []
    assert parser.feed(PDU[:10].encode()) == []
    assert parser.feed(PDU[10:].encode() + b"\r") == [Urc("+CMT", ",38", PDU)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("OK", final()),
        ("ERROR", final(ResultKind.ERROR, text="ERROR")),
        ("+CMS ERROR: 500", final(ResultKind.CMS_ERROR, 500, "+CMS ERROR: 500")),
        ("+CMS ERROR: 321", final(ResultKind.CMS_ERROR, 321, "+CMS ERROR: 321")),
        ("+CME ERROR: 10", final(ResultKind.CME_ERROR, 10, "+CME ERROR: 10")),
        (
            "+CME ERROR: SIM PIN required",
            final(ResultKind.CME_ERROR, None, "+CME ERROR: SIM PIN required"),
        ),
        (
            "+CME ERROR: invalid index",
            final(ResultKind.CME_ERROR, None, "+CME ERROR: invalid index"),
        ),
        (
            "+CMS ERROR: unknown error",
            final(ResultKind.CMS_ERROR, None, "+CMS ERROR: unknown error"),
        ),
        ("+CME ERROR:3", final(ResultKind.CME_ERROR, 3, "+CME ERROR:3")),
        ("NO CARRIER", final(ResultKind.NO_CARRIER, text="NO CARRIER")),
        ("BUSY", final(ResultKind.BUSY, text="BUSY")),
        ("NO ANSWER", final(ResultKind.NO_ANSWER, text="NO ANSWER")),
        ("NO DIALTONE", final(ResultKind.NO_DIALTONE, text="NO DIALTONE")),
        ("COMMAND NOT SUPPORT", final(ResultKind.COMMAND_NOT_SUPPORT, text="COMMAND NOT SUPPORT")),
    ],
)
def test_final_results(line: str, expected: FinalResult) -> None:
    parser = ATParser()
    # Call results end only a dialling command (see test_at_framing.py for the rest).
    command = "ATD+4915112345678;" if expected.kind in CALL_RESULTS else "AT+CMGD=1"
    parser.command_started(command)
    assert parser.feed(f"{command}\r\r\n{line}\r\n".encode()) == [expected]
    assert not parser.in_command
    # The same line outside a command is a stray result, or a call event.
    stray = parser.feed(f"\r\n{line}\r\n".encode())
    if expected.kind in CALL_RESULTS:
        assert stray == [Urc(line)]
    else:
        assert stray == [Garbage(line.encode(), "stray result outside a command")]


def test_stray_ok_outside_a_command_and_after_abort() -> None:
    parser = ATParser()
    assert parser.feed(b"\r\nOK\r\n") == [Garbage(b"OK", "stray result outside a command")]
    parser.command_started("AT+CMGL=4", response_prefixes=("+CMGL",))
    started = parser.in_command
    parser.command_aborted()
    assert started and not parser.in_command
    assert parser.feed(b"+CMGL: 1,0,,23\r\n0011\r\nOK\r\n") == [
        Garbage(b"+CMGL: 1,0,,23", "line outside a command"),
        Garbage(b"0011", "line outside a command"),
        Garbage(b"OK", "stray result outside a command"),
    ]


def test_info_lines_inside_a_command() -> None:
    data = (
        b"AT+CMGL=4\r\r\n+CMGL: 1,0,,23\r\n0791947106004034040C9194710651750000\r\n"
        b"^SOMEVENDOR: 1\r\nfree text\r\n+CMGL: 2,1,,23\r\n0791abcdef\r\nOK\r\n"
    )
    assert feed_every_way(data, Cmd("AT+CMGL=4", ("+CMGL",))) == [
        InfoLine("+CMGL: 1,0,,23"),
        InfoLine("0791947106004034040C9194710651750000"),
        InfoLine("^SOMEVENDOR: 1"),
        InfoLine("free text"),
        InfoLine("+CMGL: 2,1,,23"),
        InfoLine("0791abcdef"),
        OK,
    ]


def test_unknown_lines_outside_a_command_are_garbage() -> None:
    assert feed_every_way(b"\r\n^FOO: 1\r\nhello\r\n", None) == [
        Garbage(b"^FOO: 1", "line outside a command"),
        Garbage(b"hello", "line outside a command"),
    ]


@pytest.mark.parametrize(
    ("line", "urc"),
    [
        ("RING", Urc("RING")),
        ("+CRING: VOICE", Urc("+CRING", "VOICE")),
        ('+CLIP: "+491701234567",145,,,,0', Urc("+CLIP", '"+491701234567",145,,,,0')),
        ("+CREG: 1", Urc("+CREG", "1")),
        ('+CGREG: 5,"2AF5","0B88E350",2', Urc("+CGREG", '5,"2AF5","0B88E350",2')),
        ('+CEREG: 1,"1A2B","01A2B3C4",7', Urc("+CEREG", '1,"1A2B","01A2B3C4",7')),
        ('+CUSD: 0,"Balance 3.00",15', Urc("+CUSD", '0,"Balance 3.00",15')),
        ('^SMMEMFULL: "SM"', Urc("^SMMEMFULL", '"SM"')),
        ("^RSSI:15", Urc("^RSSI", "15")),
        ('^HCSQ:"LTE",45,40,120,20', Urc("^HCSQ", '"LTE",45,40,120,20')),
        ("^BOOT:12345678,0,0,0,72", Urc("^BOOT", "12345678,0,0,0,72")),
        ("^MODE:5,4", Urc("^MODE", "5,4")),
        ("^SRVST:2", Urc("^SRVST", "2")),
        ('+QIND: "SMS DONE"', Urc("+QIND", '"SMS DONE"')),
        ("+CPIN: READY", Urc("+CPIN", "READY")),
        ("+CFUN: 1", Urc("+CFUN", "1")),
        ("RDY", Urc("RDY")),
        ("Call Ready", Urc("Call Ready")),
        ("SMS Ready", Urc("SMS Ready")),
        ("+PBREADY", Urc("+PBREADY")),
        ("^SYSSTART", Urc("^SYSSTART")),
        ("+STIN: 25", Urc("+STIN", "25")),
        ("+CIEV: 2,3", Urc("+CIEV", "2,3")),
        ("+SIMCARD: NOT AVAILABLE", Urc("+SIMCARD", "NOT AVAILABLE")),
        ("+QUSIM: 1", Urc("+QUSIM", "1")),
        ('+CBMI: "BM",2', Urc("+CBMI", '"BM",2')),
        ('+CMTI :  "ME" , 7  ', Urc("+CMTI", '"ME" , 7')),
    ],
)
def test_default_urcs(line: str, urc: Urc) -> None:
    assert urc.name in DEFAULT_URC_PREFIXES
    assert feed_every_way(f"\r\n{line}\r\n".encode(), None) == [urc]
    # ... also in the middle of another command's answer.
    data = f"AT+CGSN\r\r\n{line}\r\n123456789012345\r\n\r\nOK\r\n".encode()
    assert feed_every_way(data, Cmd("AT+CGSN")) == [urc, InfoLine("123456789012345"), OK]


def test_declared_response_prefix_wins_over_urc() -> None:
    data = b"AT+CPIN?\r\r\n+CPIN: READY\r\n\r\nOK\r\n"
    assert feed_every_way(data, Cmd("AT+CPIN?", ("+CPIN",))) == [InfoLine("+CPIN: READY"), OK]
    assert feed_every_way(data, Cmd("AT+CPIN?")) == [Urc("+CPIN", "READY"), OK]


def test_custom_urc_prefixes() -> None:
    def make() -> ATParser:
        return ATParser(urc_prefixes=("+ZTEST:", "BEEP"), two_line_urcs=("+ZTEST",))

    data = b'\r\n+ZTEST: 1\r\nbody\r\nBEEP\r\n+CMTI: "SM",1\r\n'
    assert feed_every_way(data, None, make) == [
        Urc("+ZTEST", "1", "body"),
        Urc("BEEP"),
        Garbage(b'+CMTI: "SM",1', "line outside a command"),
    ]


# ---------------------------------------------------------------------------- prompt


def test_prompt_for_cmgs() -> None:
    parser = ATParser()
    parser.command_started("AT+CMGS=23", response_prefixes=("+CMGS",), expects_prompt=True)
    assert parser.feed(b"AT+CMGS=23\r\r\n> ") == [Prompt()]
    assert parser.in_command
    # the echo of the PDU we then write, ended by Ctrl-Z, is not an answer line
    assert parser.feed(b"0011000B911326880736F40000A70A\x1a") == []
    assert parser.feed(b"\r\n+CMGS: 5\r\n\r\nOK\r\n") == [InfoLine("+CMGS: 5"), OK]


@pytest.mark.parametrize(
    "data",
    [
        b"AT+CMGS=23\r\r\n> ",
        b"\r\n> ",
        b"\r\n>",  # no space
        b"\r\n>\r\n",  # a terminated prompt line
        b"> ",
    ],
)
def test_prompt_forms(data: bytes) -> None:
    assert feed_every_way(data, Cmd("AT+CMGS=23", ("+CMGS",), prompt=True)) == [Prompt()]


def test_prompt_then_escape_cancels() -> None:
    data = b"AT+CMGS=23\r\r\n> 00110\x1b\r\nOK\r\n"
    assert feed_every_way(data, Cmd("AT+CMGS=23", ("+CMGS",), prompt=True)) == [Prompt(), OK]


def test_prompt_then_error() -> None:
    data = b"AT+CMGS=23\r\r\n> \r\n+CMS ERROR: 304\r\n"
    assert feed_every_way(data, Cmd("AT+CMGS=23", ("+CMGS",), prompt=True)) == [
        Prompt(),
        final(ResultKind.CMS_ERROR, 304, "+CMS ERROR: 304"),
    ]


def test_prompt_not_expected_is_a_line() -> None:
    assert feed_chunks([b"\r\n> \r\nOK\r\n"], Cmd("AT+CMGF=0")) == [InfoLine(">"), OK]
    assert feed_chunks([b"\r\n> \r\n"], None) == [Garbage(b">", "line outside a command")]


def test_prompt_flushes_a_pending_two_line_urc() -> None:
    data = b"\r\n+CMT: ,23\r\n> "
    assert feed_every_way(data, Cmd("AT+CMGS=23", prompt=True)) == [Urc("+CMT", ",23"), Prompt()]


# ---------------------------------------------------------------------------- noise


def test_garbage_before_inside_and_after_an_answer() -> None:
    parser = ATParser()
    junk = bytes([0xFF, 0x00, 0xFE, 0x80, 0x1A, 0x7F])
    assert parser.feed(junk + b"\r\n") == [
        Garbage(bytes([0xFF, 0x00, 0x1A, 0x7F]), "control bytes in line"),
        Garbage(b"\xfe\x80", "noise line"),
    ]
    parser.command_started("AT+CSQ", response_prefixes=("+CSQ",))
    events = parser.feed(b"\xffAT+CSQ\r\r\n+CSQ:\x00 20,99\r\n\x00\xff\r\nO\x00K\r\n")
    assert events == [
        Garbage(b"\xff", "control bytes in line"),
        Garbage(b"\x00", "control bytes in line"),
        InfoLine("+CSQ: 20,99"),
        Garbage(b"\x00\xff", "control bytes in line"),
        Garbage(b"\x00", "control bytes in line"),
        OK,
    ]
    assert parser.feed(b"\xff\xff\x00\r\n\x13\x37") == [
        Garbage(b"\xff\xff\x00", "control bytes in line")
    ]
    # The next command is not disturbed by what was left over.
    parser.command_started("AT")
    assert parser.feed(b"\r\nOK\r\n") == [
        Garbage(b"\x13", "control bytes in line"),
        InfoLine("7"),
        OK,
    ]
    parser.command_started("AT+CGMI")
    assert parser.feed(b"\r\nQuectel\r\n\r\nOK\r\n") == [InfoLine("Quectel"), OK]


def test_random_binary_between_commands() -> None:
    noise = bytes(range(256)) * 4
    parser = ATParser()
    events = parser.feed(noise)
    assert all(isinstance(e, Garbage) for e in events)
    parser.feed(b"\r\n")
    parser.command_started("AT+CSQ", response_prefixes=("+CSQ",))
    assert parser.feed(b"AT+CSQ\r\r\n+CSQ: 9,99\r\n\r\nOK\r\n") == [InfoLine("+CSQ: 9,99"), OK]


def test_overlong_line_is_dropped_in_bounded_memory() -> None:
    long = b"A" * (MAX_LINE_BYTES * 2 + 100)
    data = b"AT+CGMR\r\r\n" + long + b"\r\n\r\nOK\r\n"
    events = feed_every_way(data, Cmd("AT+CGMR"))
    assert events == [
        Garbage(b"A" * MAX_LINE_BYTES, "line too long"),
        Garbage(b"A" * MAX_LINE_BYTES, "line too long"),
        Garbage(b"A" * 100, "rest of a line that was too long"),
        OK,
    ]
    parser = ATParser()
    for _ in range(100):
        parser.feed(b"\x55" * 1000)
        assert len(parser._buf) <= MAX_LINE_BYTES  # the memory bound itself


def test_empty_feed() -> None:
    parser = ATParser()
    assert parser.feed(b"") == []
    parser.command_started("AT")
    assert parser.feed(b"") == []
    assert parser.feed(b"OK\r") == [OK]


# ---------------------------------------------------------------------------- property tests

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


NOISY_BYTES = st.binary(max_size=300) | st.lists(
    st.sampled_from(
        [
            b"\r",
            b"\n",
            b"\x00",
            b"\xff",
            b"> ",
            b"OK",
            b"+CMT: 1",
            b"RING",
            b"\x1a",
            b"+CME ERROR: x",
        ]
    ),
    max_size=40,
).map(b"".join)


@FUZZ
@given(data=st.data(), junk=NOISY_BYTES, in_command=st.booleans(), prompt=st.booleans())
def test_fuzz_never_raises_and_is_chunking_independent(
    data: st.DataObject, junk: bytes, in_command: bool, prompt: bool
) -> None:
    cmd = Cmd("AT+CMGS=5", ("+CMGS",), prompt) if in_command else None
    whole = feed_chunks([junk], cmd)
    assert feed_chunks(data.draw(chunked(junk)), cmd) == whole
    assert all(isinstance(e, (InfoLine, FinalResult, Prompt, Urc, Garbage)) for e in whole)


ANSWERS = [
    ("AT+CSQ", ("+CSQ",), b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n", OK),
    ("AT+CMGR=1", ("+CMGR",), b"\r\n+CMGR: 0,,23\r\n0011AABB\r\n\r\nOK\r\n", OK),
    (
        "AT+CMGD=9",
        (),
        b"\r\n+CMS ERROR: 321\r\n",
        final(ResultKind.CMS_ERROR, 321, "+CMS ERROR: 321"),
    ),
    (
        "AT+CPIN?",
        ("+CPIN",),
        b"\r\n+CME ERROR: SIM not inserted\r\n",
        final(ResultKind.CME_ERROR, None, "+CME ERROR: SIM not inserted"),
    ),
]


@FUZZ
@given(data=st.data(), junk=NOISY_BYTES, answer=st.sampled_from(ANSWERS))
def test_fuzz_junk_between_commands_does_not_break_the_next(
    data: st.DataObject, junk: bytes, answer: tuple[str, tuple[str, ...], bytes, FinalResult]
) -> None:
    command, prefixes, reply, expected = answer
    parser = ATParser()
    for chunk in data.draw(chunked(junk + b"\r\n")):
        parser.feed(chunk)
    parser.command_started(command, response_prefixes=prefixes)
    events: list[ATEvent] = []
    for chunk in data.draw(chunked(reply)):
        events += parser.feed(chunk)
    assert events[-1] == expected
    assert not parser.in_command


# Junk inside an answer can only be told from the answer if it does not itself look like a
# final result, URC, prompt or echo: no capital letters and no '>'.
ANSWER_SAFE_JUNK = st.binary(max_size=200).map(
    lambda b: bytes(c for c in b if not (0x41 <= c <= 0x5A or c == 0x3E))
)


@FUZZ
@given(data=st.data(), junk=ANSWER_SAFE_JUNK, answer=st.sampled_from(ANSWERS))
def test_fuzz_junk_inside_an_answer(
    data: st.DataObject, junk: bytes, answer: tuple[str, tuple[str, ...], bytes, FinalResult]
) -> None:
    command, prefixes, reply, expected = answer
    head, sep, tail = reply.rpartition(b"\r\n\r\n") if b"\r\n\r\n" in reply else (b"", b"", reply)
    stream = head + sep + junk + b"\r\n" + tail
    parser = ATParser()
    parser.command_started(command, response_prefixes=prefixes)
    events: list[ATEvent] = []
    for chunk in data.draw(chunked(stream)):
        events += parser.feed(chunk)
    assert events[-1] == expected
    assert not parser.in_command
    clean = feed_chunks([reply], Cmd(command, prefixes))
    assert [e for e in events if not isinstance(e, (Garbage, InfoLine))] == [
        e for e in clean if not isinstance(e, (Garbage, InfoLine))
    ]
    assert set(only(clean, InfoLine)) <= set(only(events, InfoLine))


def test_a_noise_line_inside_an_answer_is_not_an_answer_line() -> None:
    """The fault campaign's find: b"\\xff\\x00\\xfe" before an answer left "þ" as an
    information line, which CPMS/CMGL parsing then tripped over for good."""
    parser = ATParser()
    parser.command_started("AT+CMGL=4", response_prefixes=("+CMGL",))
    events = parser.feed(b"\xff\x00\xfe\r\n+CMGL: 1,0,,4\r\n0011\r\n\r\nOK\r\n")
    assert [e for e in events if isinstance(e, InfoLine)] == [
        InfoLine("+CMGL: 1,0,,4"), InfoLine("0011")]
    assert events[-1] == OK

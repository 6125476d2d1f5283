"""Tests of the information-line parsers, mostly on real modem answers (tests/data/transcripts)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modemd.at import (
    ATParser,
    FinalResult,
    InfoLine,
    ListedPdu,
    ListedText,
    Operator,
    Registration,
    ResponseParseError,
    Signal,
    StorageIndex,
    StorageUse,
    choose_cnmi,
    choose_cpms,
    parse_cmgl_pdu,
    parse_cmgl_text,
    parse_cmgr_pdu,
    parse_cmgr_text,
    parse_cmti,
    parse_cnmi_test,
    parse_cops,
    parse_cpin,
    parse_cpms_query,
    parse_cpms_set,
    parse_cpms_test,
    parse_creg,
    parse_csq,
)
from modemd.errors import ATError

DATA = Path(__file__).parent / "data" / "transcripts"
SOURCES = {
    entry["file"]: entry
    for entry in map(json.loads, (DATA / "sources.jsonl").read_text().splitlines())
}


def answer_lines(data: bytes, command: str) -> list[str]:
    """Run an answer through the AT parser; return its information lines (asserting OK)."""
    prefix = re.match(r"AT([+^][A-Z]+)", command)
    parser = ATParser()
    parser.command_started(command, response_prefixes=(prefix.group(1),) if prefix else ())
    events = parser.feed(data)
    assert isinstance(events[-1], FinalResult) and events[-1].ok
    return [e.text for e in events if isinstance(e, InfoLine)]


def dump_lines(name: str) -> list[str]:
    entry = SOURCES[name]
    return answer_lines((DATA / name).read_bytes(), entry["command"] or "AT")


def fakemodem_answer(profile: str, command: str) -> list[str]:
    data = (DATA / "python-gsmmodem" / profile).read_bytes()
    start = data.index(command.encode() + b"\r\n")
    end = data.find(b"\r\n\n", start)
    return answer_lines(data[start : end + 2], command)


def test_error_type_names_the_line() -> None:
    with pytest.raises(ResponseParseError) as info:
        parse_csq("+CSQ: x,99")
    assert isinstance(info.value, ATError)
    assert info.value.line == "+CSQ: x,99"
    assert "'+CSQ: x,99'" in str(info.value)


# ---------------------------------------------------------------------------- +CMTI


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ('"SM",3', StorageIndex("SM", 3)),
        ('+CMTI: "ME",12', StorageIndex("ME", 12)),
        ('"SM", 3', StorageIndex("SM", 3)),
        ("SM,3", StorageIndex("SM", 3)),
        ('"MT",0', StorageIndex("MT", 0)),
        ('+CDSI: "SR",57', StorageIndex("SR", 57)),
    ],
)
def test_parse_cmti(args: str, expected: StorageIndex) -> None:
    assert parse_cmti(args) == expected


@pytest.mark.parametrize("args", ['"SM"', '"SM",x', '"SM",-1', "", ",3", "+CMGS: 1"])
def test_parse_cmti_rejects(args: str) -> None:
    with pytest.raises(ResponseParseError):
        parse_cmti(args)


# ---------------------------------------------------------------------------- PDU mode


def test_parse_cmgl_pdu_python_gsmmodem_listing() -> None:
    lines = answer_lines((DATA / "python-gsmmodem/cmgl_pdu_mode_4.txt").read_bytes(), "AT+CMGL=4")
    listed = parse_cmgl_pdu(lines)
    assert [(m.index, m.status, m.length, m.alpha) for m in listed] == [
        (0, 0, 35, None),
        (1, 1, 161, None),
        (2, 1, 159, None),
    ]
    assert listed[0].pdu_hex.startswith("07917248014000F3240B9172")
    assert [m.pdu_hex for m in listed] == [lines[1], lines[3], lines[5]]


def test_parse_cmgl_pdu_tolerates_blank_lines_lowercase_and_alpha() -> None:
    lines = [
        "",
        "+CMGL: 1,0,,23",
        "  0791947106004034040c9194710651750000  ",
        "",
        '+CMGL: 7,1,"Smith, John",5',
        "00aAbB0011",
        "",
    ]
    assert parse_cmgl_pdu(lines) == [
        ListedPdu(1, 0, 23, "0791947106004034040C9194710651750000", None),
        ListedPdu(7, 1, 5, "00AABB0011", "Smith, John"),
    ]
    assert parse_cmgl_pdu([]) == []


@pytest.mark.parametrize(
    "lines",
    [
        ["+CMGL: 1,0,,23"],  # header without its PDU
        ["+CMGL: 1,0,,23", "+CMGL: 2,0,,23", "0011"],  # two headers in a row
        ["+CMGL: 1,0,,23", "00XY"],  # not hex
        ["+CMGL: 1,0,,23", "001"],  # odd number of digits
        ["0011", "+CMGL: 1,0,,23"],  # PDU before the header
        ["+CMGL: x,0,,23", "0011"],  # index not a number
        ["+CMGL: 1,23", "0011"],  # too few fields
        ["+CMGR: 1,,23", "0011"],  # another command's answer
    ],
)
def test_parse_cmgl_pdu_rejects(lines: list[str]) -> None:
    with pytest.raises(ResponseParseError):
        parse_cmgl_pdu(lines)


PDU_DUMPS = sorted(
    name for name in SOURCES if name.startswith(("gammu/at-sms/", "gammu/at-sms-failing/"))
)
NOT_HEX = {"gammu/at-sms-failing/13.dump", "gammu/at-sms-failing/17.dump"}


@pytest.mark.parametrize("name", PDU_DUMPS)
def test_parse_cmgr_pdu_gammu(name: str) -> None:
    lines = dump_lines(name)
    if name in NOT_HEX:  # gammu expects these to fail too: the "PDU" has non-hex characters
        with pytest.raises(ResponseParseError, match="hex"):
            parse_cmgr_pdu(lines)
        return
    listed = parse_cmgr_pdu(lines)
    assert listed.index is None
    assert listed.pdu_hex == lines[1].strip('"').upper()
    assert listed.length == int(lines[0].rsplit(",", 1)[-1].split(":")[-1])


@pytest.mark.parametrize(
    ("header", "status", "length"),
    [
        ("+CMGR: 3,,29", 3, 29),
        ("+CMGR: 0,23", 0, 23),  # no alpha field at all
        ("+CMGR: 24", None, 24),  # only the length
        ("+CMGR: ,,92", None, 92),  # ZTE: no stat
        ("+CMGR: 4,1,,151", 4, 151),
        ('+CMGR: 1,"Mom",25', 1, 25),
    ],
)
def test_parse_cmgr_pdu_header_forms(header: str, status: int | None, length: int) -> None:
    listed = parse_cmgr_pdu([header, "0011"])
    assert (listed.status, listed.length, listed.pdu_hex) == (status, length, "0011")


def test_parse_cmgr_pdu_status_reports() -> None:
    zte = dump_like("python-gsmmodem/cmgr_status_report_zte.txt", "AT+CMGR=1")
    assert parse_cmgr_pdu(zte) == ListedPdu(
        None, None, 27, "0297F1061C0F910B487228297020F5317062419272803170624192138000"
    )
    issue15 = dump_like("python-gsmmodem/cmgr_status_report_issue15.txt", "AT+CMGR=1")
    assert parse_cmgr_pdu(issue15).pdu_hex.startswith("0006230E91")
    lowercase = dump_lines("gammu/at-sms/41.dump")
    assert parse_cmgr_pdu(lowercase).pdu_hex == lowercase[1].upper()


def dump_like(name: str, command: str) -> list[str]:
    return answer_lines((DATA / name).read_bytes(), command)


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["+CMGR: 0,,0"],  # an empty slot: no PDU line
        ["+CMGR: 1,,23", "0011", "0022"],
        ["0011"],
        ["+CMGR: 1,,", "0011"],
        ["+CMGL: 1,1,,23", "0011"],
    ],
)
def test_parse_cmgr_pdu_rejects(lines: list[str]) -> None:
    with pytest.raises(ResponseParseError):
        parse_cmgr_pdu(lines)


# ---------------------------------------------------------------------------- text mode


def test_parse_cmgl_text_python_gsmmodem_listing() -> None:
    data = (DATA / "python-gsmmodem/cmgl_text_mode_all.txt").read_bytes()
    listed = parse_cmgl_text(answer_lines(data, 'AT+CMGL="ALL"'))
    expected = SOURCES["python-gsmmodem/cmgl_text_mode_all.txt"]["expected"]
    assert [m.index for m in listed] == [e["index"] for e in expected]
    assert [m.body for m in listed] == [e["text"] for e in expected]
    assert [m.header_args[:2] for m in listed] == [(e["status"], e["number"]) for e in expected]
    assert listed[0].header_args == ("REC UNREAD", "+27748577604", "", "13/01/28,14:51:42+08")


def test_parse_cmgl_text_multiline_bodies_and_status_reports() -> None:
    lines = [
        '+CMGL: 1,"REC READ","+4912",,"24/01/02,10:20:30+04"',
        "first line",
        "",
        "third, line",
        '+CMGL: 2,"REC READ",6,20,"0870000000",129,"13/04/29,19:58:00+04","13/04/29,19:59:00+04",0',
        '+CMGL: 3,"REC UNREAD","+4913",,"24/01/02,10:20:31+04"',
        "+CMGL lookalike? no: a body line starts with +CMGL only in a header",
    ]
    listed = parse_cmgl_text(lines[:6])
    assert listed == [
        ListedText(
            1, ("REC READ", "+4912", "", "24/01/02,10:20:30+04"), "first line\n\nthird, line"
        ),
        ListedText(
            2,
            (
                "REC READ",
                "6",
                "20",
                "0870000000",
                "129",
                "13/04/29,19:58:00+04",
                "13/04/29,19:59:00+04",
                "0",
            ),
            "",
        ),
        ListedText(3, ("REC UNREAD", "+4913", "", "24/01/02,10:20:31+04"), ""),
    ]
    assert parse_cmgl_text([]) == []
    with pytest.raises(ResponseParseError):
        parse_cmgl_text(["hello", *lines[:2]])
    with pytest.raises(ResponseParseError):
        parse_cmgl_text(['+CMGL: x,"REC READ"', "body"])


@pytest.mark.parametrize(
    ("name", "stat", "sender", "body_start"),
    [
        ("gammu/at-sms-txt/motorola-l7.dump", "REC READ", "+4123456789132", "Hoewfliepl"),
        ("gammu/at-sms-txt/timezone.dump", "REC READ", "+31625044454", "Test message 2"),
        ("gammu/at-sms-txt-detail/m2m.dump", "REC READ", "3473065111", "hello."),
        ("gammu/at-sms-txt-detail/sample.dump", "REC READ", "+393488535999", "You have"),
        ("gammu/at-sms-txt-detail/sample2.dump", "REC READ", "+85291234567", "It is easy"),
        ("gammu/at-sms-txt-detail/unsent.dump", "STO UNSENT", "+10011", "Hello World"),
    ],
)
def test_parse_cmgr_text_gammu(name: str, stat: str, sender: str, body_start: str) -> None:
    message = parse_cmgr_text(dump_lines(name))
    assert message.index is None
    assert message.header_args[:2] == (stat, sender)
    assert message.body.startswith(body_start)


def test_parse_cmgr_text_details() -> None:
    m2m = parse_cmgr_text(dump_lines("gammu/at-sms-txt-detail/m2m.dump"))
    assert m2m.header_args == (
        "REC READ",
        "3473065111",
        "",
        "06/05/28,18:15:41+80",
        "129",
        "17",
        "0",
        "18",
        "+393492001157",
        "145",
        "6",
    )
    long = parse_cmgr_text(dump_lines("gammu/at-sms-txt/motorola-long.dump"))
    assert long.body.count("\n") == 3 and long.body.endswith("Noytaj.")
    report = parse_cmgr_text(
        dump_like("python-gsmmodem/cmgr_status_report_text_mode.txt", "AT+CMGR=57")
    )
    assert report == ListedText(
        None,
        ("", "6", "20", "0870000000", "129", "13/04/29,19:58:00+04", "13/04/29,19:59:00+04", "0"),
        "",
    )
    with pytest.raises(ResponseParseError):
        parse_cmgr_text([])
    with pytest.raises(ResponseParseError):
        parse_cmgr_text(["Hello", '+CMGR: "REC READ"'])


# ---------------------------------------------------------------------------- +CPMS


BOTH = ("SM", "ME")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("gammu/at-cpms/generic.dump", (BOTH, BOTH, BOTH)),
        ("gammu/at-cpms/brovi-e3372-325.dump", (BOTH, BOTH, BOTH)),
        ("gammu/at-cpms/alcatel-s320.dump", (("SM", "ME", "SM_P", "ME_P", "MT"),) * 3),
        ("gammu/at-cpms/samsung-j700.dump", ()),
        ("gammu/at-cpms-sm/iwow.dump", (("SM",), ("SM",), ("SM",))),
        ("gammu/at-cpms-sr/generic.dump", (("ME", "SR"), ("ME", "SR"), ("ME",))),
    ],
)
def test_parse_cpms_test_gammu(source: str, expected: tuple[tuple[str, ...], ...]) -> None:
    (line,) = dump_lines(source)
    assert parse_cpms_test(line) == expected


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("fakemodem_HuaweiE1752.txt", (("ME", "MT", "SM", "SR"),) * 3),
        ("fakemodem_HuaweiK3715.txt", (("ME", "MT", "SM", "SR"),) * 3),
        ("fakemodem_QualcommM6280.txt", (("ME", "MT", "SM", "SR"),) * 3),
        ("fakemodem_ZteK3565Z.txt", (("ME", "MT", "SM", "SR"),) * 3),
        ("fakemodem_WavecomMultiband900E1800.txt", (("SM", "BM", "SR"), ("SM",))),
        ("fakemodem_NokiaN79.txt", ((), (), ())),
    ],
)
def test_parse_cpms_test_fakemodems(profile: str, expected: tuple[tuple[str, ...], ...]) -> None:
    (line,) = fakemodem_answer(profile, "AT+CPMS=?")
    assert parse_cpms_test(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        '+CPMS: ("SM","ME"',
        '+CPMS: "SM","ME")',
        '+CPMS: ("SM") x ("ME")',
        '+CPMS: ("S M")',
        '+CNMI: ("SM")',
    ],
)
def test_parse_cpms_test_rejects(line: str) -> None:
    with pytest.raises(ResponseParseError):
        parse_cpms_test(line)


def test_parse_cpms_query_and_set() -> None:
    assert parse_cpms_query('+CPMS: "SM",5,30,"SM",5,30,"ME",0,100') == [
        StorageUse("SM", 5, 30),
        StorageUse("SM", 5, 30),
        StorageUse("ME", 0, 100),
    ]
    assert parse_cpms_query('+CPMS: "ME",1,23') == [StorageUse("ME", 1, 23)]
    (wavecom,) = fakemodem_answer("fakemodem_WavecomMultiband900E1800.txt", 'AT+CPMS="SM","SM"')
    assert parse_cpms_set(wavecom, ("SM", "SM")) == [
        StorageUse("SM", 14, 50),
        StorageUse("SM", 14, 50),
    ]
    assert parse_cpms_set("+CPMS: 14,50,14,50,0,20") == [
        StorageUse("", 14, 50),
        StorageUse("", 14, 50),
        StorageUse("", 0, 20),
    ]
    assert parse_cpms_set('+CPMS: "ME",2,100') == [StorageUse("ME", 2, 100)]


@pytest.mark.parametrize(
    ("parser", "line"),
    [
        (parse_cpms_query, "+CPMS: ,,,,,,,,"),  # Nokia N79
        (parse_cpms_query, '+CPMS: "SM",5'),
        (parse_cpms_query, '+CPMS: "SM",x,30'),
        (parse_cpms_query, ""),
        (parse_cpms_set, "+CPMS: 14,50,14"),
        (parse_cpms_set, "+CPMS: 14,fifty"),
    ],
)
def test_parse_cpms_query_and_set_reject(parser: object, line: str) -> None:
    assert callable(parser)
    with pytest.raises(ResponseParseError):
        parser(line)


@pytest.mark.parametrize(
    ("options", "prefer", "expected"),
    [
        ((BOTH, BOTH, BOTH), None, ("ME", "ME", "ME")),
        ((BOTH, BOTH, BOTH), ("SM",), ("SM", "SM", "SM")),
        ((("ME", "MT", "SM", "SR"),) * 3, None, ("ME", "ME", "ME")),
        ((("SM", "BM", "SR"), ("SM",)), None, ("SM", "SM", "")),  # Wavecom: two parameters
        ((("SM",), ("SM",), ("SM",)), None, ("SM", "SM", "SM")),
        ((("ME", "SR"), ("ME", "SR"), ("ME",)), None, ("ME", "ME", "ME")),
        ((("SM", "ME"), ("SM",), ("SM",)), None, ("SM", "SM", "SM")),  # read where it arrives
        ((("BM", "SR", "XX"), ("XX",), ("XX",)), None, ("XX", "XX", "XX")),
        # Never BM/SR: a parameter offering nothing else is left off.
        ((("SM", "SR"), ("SM",), ("SR",)), None, ("SM", "SM", "")),
    ],
)
def test_choose_cpms(
    options: tuple[tuple[str, ...], ...],
    prefer: tuple[str, ...] | None,
    expected: tuple[str, str, str],
) -> None:
    chosen = choose_cpms(options) if prefer is None else choose_cpms(options, prefer)
    assert chosen == expected


def test_choose_cpms_rejects_nothing_offered() -> None:
    for options in [(), ((), (), ()), (("SR",), ("SR",), ("BM",))]:
        with pytest.raises(ResponseParseError):
            choose_cpms(options)


# ---------------------------------------------------------------------------- +CNMI


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("gammu/at-cnmi/01.dump", ((2,), (0, 1, 3), (0, 2), (0, 1), (0,))),
        ("gammu/at-cnmi/02.dump", ((0, 1, 2), (0, 1, 3), (0,), (0, 1), (0, 1))),
        ("gammu/at-cnmi/03.dump", ((0, 1, 2, 3),) * 3 + ((0, 1), (0, 1))),
    ],
)
def test_parse_cnmi_test_gammu(source: str, expected: tuple[tuple[int, ...], ...]) -> None:
    (line,) = dump_lines(source)
    options = parse_cnmi_test(line)
    assert options == expected
    assert choose_cnmi(options) == "2,1,0,1,0"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("+CNMI: (0-2,3),(0),(),(0,1),(0)", ((0, 1, 2, 3), (0,), (), (0, 1), (0,))),
        ("+CNMI: (0,1,2),(0-3)", ((0, 1, 2), (0, 1, 2, 3))),
        ("(1),(1)", ((1,), (1,))),
        ("+CNMI: 2,1,0,0,0", ((2,), (1,), (0,), (0,), (0,))),
        ("+CNMI: ( 0 - 2 ), ( 0 , 1 )", ((0, 1, 2), (0, 1))),
    ],
)
def test_parse_cnmi_test_forms(line: str, expected: tuple[tuple[int, ...], ...]) -> None:
    assert parse_cnmi_test(line) == expected


@pytest.mark.parametrize(
    "line", ["+CNMI: (0-x)", "+CNMI: (3-1)", "+CNMI: (0-2", "+CNMI: (0-99999)"]
)
def test_parse_cnmi_test_rejects(line: str) -> None:
    with pytest.raises(ResponseParseError):
        parse_cnmi_test(line)


@pytest.mark.parametrize(
    ("options", "prefer_direct", "expected"),
    [
        (((0, 1, 2, 3),) * 3 + ((0, 1, 2), (0, 1)), False, "2,1,0,1,0"),
        (((0, 1, 2, 3),) * 3 + ((0, 1, 2), (0, 1)), True, "2,2,0,1,0"),
        (((0, 1), (0, 1), (0,), (0,), (0,)), True, "1,1,0,0,0"),  # no direct delivery offered
        (((1, 2), (0, 2)), False, "2,2"),  # only +CMT offered
        (((2,), (1,), (0,), (2,)), False, "2,1,0,2"),  # <ds>: only +CDSI
        (((2,), (1,), (0,), (0, 2)), False, "2,1,0,2"),  # +CDSI rather than no reports
        (((2,), (1,), (), (1,)), False, "2,1"),  # left off from the first empty group
        (((3,), (3,), (2,), (0,), (1,)), False, "3,3,2,0,1"),
    ],
)
def test_choose_cnmi(
    options: tuple[tuple[int, ...], ...], prefer_direct: bool, expected: str
) -> None:
    assert choose_cnmi(options, prefer_direct=prefer_direct) == expected


@pytest.mark.parametrize("options", [(), ((2,),), ((0,), (1,)), ((2,), (0,))])
def test_choose_cnmi_rejects(options: tuple[tuple[int, ...], ...]) -> None:
    with pytest.raises(ResponseParseError):
        choose_cnmi(options)


# ---------------------------------------------------------------------------- +CSQ


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("+CSQ: 0,0", Signal(-113, 0, 0)),
        ("+CSQ: 1,7", Signal(-111, 7, 1)),
        ("+CSQ: 20,99", Signal(-73, None, 20)),
        ("+CSQ: 31,99", Signal(-51, None, 31)),
        ("+CSQ: 99,99", Signal(None, None, 99)),
        ("+CSQ: 100,0", Signal(-116, 0, 100)),
        ("+CSQ: 191,0", Signal(-25, 0, 191)),
        ("+CSQ: 199,99", Signal(None, None, 199)),
        ("+CSQ:14, 3", Signal(-85, 3, 14)),
        ("14,99", Signal(-85, None, 14)),
    ],
)
def test_parse_csq(line: str, expected: Signal) -> None:
    assert parse_csq(line) == expected


@pytest.mark.parametrize("line", ["+CSQ: 20", "+CSQ: ,99", "+CSQ: 20,99,1", "+CREG: 0,1", ""])
def test_parse_csq_rejects(line: str) -> None:
    with pytest.raises(ResponseParseError):
        parse_csq(line)


# ---------------------------------------------------------------------------- +CREG


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("gammu/at-creg/huawei.dump", Registration(1, "registered_home", "4CA", "81DE445")),
        ("gammu/at-creg/none.dump", Registration(0, "not_registered")),
        ("gammu/at-creg/siemens.dump", Registration(1, "registered_home", "5E25", "605F")),
        (
            "gammu/at-creg/sierra312u.dump",
            Registration(5, "registered_roaming", "2AF5", "0B88E350", 2),
        ),
        ("gammu/at-creg/telit.dump", Registration(1, "registered_home", "5E25", "605F", 2)),
        ("gammu/at-creg-corner/empty-lac.dump", Registration(1, "registered_home", None, "605F")),
        (
            "gammu/at-creg-corner/mismatched-quotes.dump",
            Registration(1, "registered_home", "0B", "0100701", 7),
        ),
        ("gammu/at-creg-corner/single-quote.dump", Registration(1, "registered_home", "5E25")),
    ],
)
def test_parse_creg_gammu(source: str, expected: Registration) -> None:
    (line,) = dump_lines(source)
    assert parse_creg(line) == expected
    assert parse_creg(line, form="query") == expected


def test_gammu_creg_empty_answer_has_no_line() -> None:
    assert dump_lines("gammu/at-creg/empty.dump") == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("+CREG: 1", Registration(1, "registered_home")),
        ("+CREG: 5", Registration(5, "registered_roaming")),
        ('+CREG: 1,"5E25","605F"', Registration(1, "registered_home", "5E25", "605F")),
        (
            '+CGREG: 5,"2af5","0b88e350",2',
            Registration(5, "registered_roaming", "2AF5", "0B88E350", 2),
        ),
        (
            '+CEREG: 1,"1A2B","01A2B3C4",7',
            Registration(1, "registered_home", "1A2B", "01A2B3C4", 7),
        ),
        ("+CREG: 1,4CA,81DE445", Registration(1, "registered_home", "4CA", "81DE445")),
        ("+CREG: 1,'5E25','605F'", Registration(1, "registered_home", "5E25", "605F")),
        ("+CREG: 3", Registration(3, "denied")),
        ("+CREG: 12", Registration(12, "unknown")),
    ],
)
def test_parse_creg_urc_form(line: str, expected: Registration) -> None:
    assert parse_creg(line) == expected
    assert parse_creg(line, form="urc") == expected


def test_parse_creg_explicit_form_and_registered() -> None:
    # "1,2" alone is read as the query form (n=1, searching) unless told it is a URC.
    assert parse_creg("+CREG: 1,2").stat == 2
    assert parse_creg("+CREG: 1,2", form="urc").lac == "2"
    assert parse_creg('0,1,"5E25","605F"', form="query").registered
    assert not parse_creg("+CREG: 0,2").registered
    assert parse_creg("+CREG: 0,6").registered  # SMS only: enough for modemd


@pytest.mark.parametrize(
    "line",
    ["+CREG: ", "+CREG: x", "+CREG: 0,x", '+CREG: 1,"ZZZZ","605F"', "+COPS: 0,1", "+CREG: 1,1,,,x"],
)
def test_parse_creg_rejects(line: str) -> None:
    with pytest.raises(ResponseParseError):
        parse_creg(line)


# ---------------------------------------------------------------------------- +COPS, +CPIN


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('+COPS: 0,0,"Vodafone.de",7', Operator(0, 0, "Vodafone.de", 7)),
        ('+COPS: 1,2,"26202",2', Operator(1, 2, "26202", 2)),
        ('+COPS: 0,0,"T-Mobile, D"', Operator(0, 0, "T-Mobile, D", None)),
        ("+COPS: 0", Operator(0)),
        ("+COPS: 2", Operator(2)),
        ('+COPS: 0,0,""', Operator(0, 0, None)),
    ],
)
def test_parse_cops(line: str, expected: Operator) -> None:
    assert parse_cops(line) == expected


@pytest.mark.parametrize(
    "line",
    ['+COPS: (2,"Vodafone","Vodafone","26202",7),,(0-4),(0-2)', "+COPS: ", "+COPS: a", "+CSQ: 1,1"],
)
def test_parse_cops_rejects(line: str) -> None:
    with pytest.raises(ResponseParseError):
        parse_cops(line)


@pytest.mark.parametrize("profile", ["fakemodem_HuaweiE1752.txt", "fakemodem_ZteK3565Z.txt"])
def test_parse_cpin_fakemodems(profile: str) -> None:
    (line,) = fakemodem_answer(profile, "AT+CPIN?")
    assert parse_cpin(line) == "READY"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("+CPIN: SIM PIN", "SIM PIN"),
        ('+CPIN: "SIM PUK"', "SIM PUK"),
        ("READY", "READY"),
        ("+cpin: READY", "READY"),
    ],
)
def test_parse_cpin(line: str, expected: str) -> None:
    assert parse_cpin(line) == expected


@pytest.mark.parametrize("line", ["+CPIN:", "+CPIN: ", '+CPIN: ""', "+CREG: 1"])
def test_parse_cpin_rejects(line: str) -> None:
    with pytest.raises(ResponseParseError):
        parse_cpin(line)

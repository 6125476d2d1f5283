"""Framing by the expected answer: each command declares its answer; the rest is unsolicited.

Every transcript is fed whole, in two halves at every split point and byte by byte (pymodbus'
framer tests): the events must be the same however the bytes arrive. The vendor lines come
from the manuals named in tests/data/vendor_urcs.md.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modemd.at import ATParser, FinalResult, Garbage, InfoLine, ResultKind, Urc
from modemd.at.answers import IMEI, NOTHING, Answer, entries, prefixed
from modemd.at.events import ATEvent
from modemd.at.responses import listing_entries, parse_entry_pdu, parse_entry_text
from modemd.errors import ResponseParseError
from modemd.modem.profiles import ALL_LINE_PREFIX_URCS, ALL_URC_PREFIXES

OK = FinalResult(ResultKind.OK, None, "OK")
PDU = "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37"


def parser() -> ATParser:
    return ATParser(urc_prefixes=ALL_URC_PREFIXES, line_prefix_urcs=ALL_LINE_PREFIX_URCS)


def feed_all_ways(command: str, answer: Answer, data: bytes) -> list[ATEvent]:
    """The events of ``data`` (whole, halved at every point, byte by byte), all equal."""
    def run(chunks: list[bytes]) -> list[ATEvent]:
        p = parser()
        p.command_started(command, answer=answer)
        events: list[ATEvent] = []
        for chunk in chunks:
            events += p.feed(chunk)
        return events

    whole = run([data])
    assert run([bytes([b]) for b in data]) == whole
    for cut in range(1, len(data), max(1, len(data) // 40)):
        assert run([data[:cut], data[cut:]]) == whole, cut
    return whole


def info(events: list[ATEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, InfoLine)]


def urcs(events: list[ATEvent]) -> list[Urc]:
    return [e for e in events if isinstance(e, Urc)]


# --- identity answers with unsolicited lines glued in -------------------------------------

GLUED = [
    b"RING\r\n",  # a missed call
    b'+CLIP: "+4915112345678",145,"",0,"",0\r\n',
    b"RDY\r\n",  # a boot banner
    b"^NWTIME: 26/12/01,11:00:00+04,00\r\n",  # Huawei network time
    b"*ATREADY: 1\r\n",  # SIMCom A76xx
    b"+XUNKNOWN: 3,4\r\n",  # nobody knows it
    b"Some firmware banner v1.2\r\n",
]


@pytest.mark.parametrize("line", GLUED)
def test_imei_is_the_15_digits_and_nothing_else(line: bytes) -> None:
    data = b"AT+CGSN\r\r\n" + line + b"356938035643809\r\n" + line + b"\r\nOK\r\n"
    events = feed_all_ways("AT+CGSN", IMEI, data)
    assert info(events) == ["356938035643809"]
    assert events[-1] == OK
    unknown = [e for e in events if isinstance(e, Garbage)]
    assert len(urcs(events)) + len(unknown) == 2  # each glued line reported once


def test_an_unknown_line_inside_a_prefixed_answer_is_not_part_of_it() -> None:
    data = b"\r\n+CSQ: 20,99\r\n\r\nMODEM BOOTING\r\n\r\nOK\r\n"
    events = feed_all_ways("AT+CSQ", prefixed("+CSQ"), data)
    assert info(events) == ["+CSQ: 20,99"]
    assert any(isinstance(e, Garbage) and b"MODEM BOOTING" in e.data for e in events)


# --- call events --------------------------------------------------------------------------

@pytest.mark.parametrize("word", ["NO CARRIER", "BUSY", "NO ANSWER"])
def test_call_results_end_only_a_dialling_command(word: str) -> None:
    listing = (f"\r\n+CMGL: 1,0,,{len(PDU) // 2 - 8}\r\n{PDU}\r\n\r\n{word}\r\n"
               f"+CMGL: 2,1,,{len(PDU) // 2 - 8}\r\n{PDU}\r\n\r\nOK\r\n").encode()
    events = feed_all_ways("AT+CMGL=4", entries("+CMGL", "pdu"), listing)
    assert events[-1] == OK
    assert urcs(events) == [Urc(word)]
    assert len(listing_entries([e for e in events if isinstance(e, InfoLine)], "+CMGL")) == 2
    dialled = feed_all_ways("ATD+4915112345678;", Answer(dialling=True),
                            f"\r\n{word}\r\n".encode())
    assert isinstance(dialled[-1], FinalResult) and dialled[-1].text == word


@pytest.mark.parametrize(
    ("line", "name"),
    [
        (b"RING", "RING"),
        (b"+CRING: VOICE", "+CRING"),
        (b'+CLIP: "+4915112345678",145', "+CLIP"),
        (b"MISSED_CALL: 11:02AM +4915112345678", "MISSED_CALL"),
        (b"VOICE CALL: END: 000012", "VOICE CALL"),
        (b"UNDER-VOLTAGE WARNNING", "UNDER-VOLTAGE"),
        (b"UNDER-VOLTAGE POWER DOWN", "UNDER-VOLTAGE"),
        (b"OVER-VOLTAGE WARNNING", "OVER-VOLTAGE"),
        (b'+QIND: "smsfull","SM"', "+QIND"),
        (b"^SMMEMFULL: \"SM\"", "^SMMEMFULL"),
        (b"*ATREADY: 1", "*ATREADY"),
        (b"SMS DONE", "SMS DONE"),
        (b"PB DONE", "PB DONE"),
        (b"Call Ready", "Call Ready"),
    ],
)
def test_vendor_and_call_events_are_urcs_inside_and_outside_commands(line: bytes,
                                                                     name: str) -> None:
    events = feed_all_ways("AT", NOTHING, b"\r\n" + line + b"\r\n\r\nOK\r\n")
    assert [u.name for u in urcs(events)] == [name]
    assert events[-1] == OK
    assert [u.name for u in urcs(parser().feed(b"\r\n" + line + b"\r\n"))] == [name]


# --- listings: one entry at a time --------------------------------------------------------

def test_an_empty_slot_and_a_bad_pdu_are_entries_of_their_own() -> None:
    data = (b"\r\n+CMGL: 1,0,,24\r\n" + PDU.encode() + b"\r\n"
            b"+CMGL: 2,1,,0\r\n"
            b"+CMGL: 3,1,,24\r\nZZ0791GG\r\n"
            b"+CMGL: 4,1,,24\r\n0791ABC\r\n"
            b"+CMGL: 5,0,,24\r\n" + PDU.encode() + b"\r\n\r\nOK\r\n")
    events = feed_all_ways("AT+CMGL=4", entries("+CMGL", "pdu"), data)
    items = [e for e in events if isinstance(e, InfoLine)]
    found = listing_entries(items, "+CMGL")
    assert [e.index() for e in found] == [1, 2, 3, 4, 5]
    good, bad = [], []
    for entry in found:
        try:
            good.append(parse_entry_pdu(entry).pdu_hex)
        except ResponseParseError:
            bad.append(entry.index())
    assert good == [PDU, PDU] and bad == [2, 3, 4]


def test_a_urc_between_a_header_and_its_pdu_leaves_the_pdu_in_place() -> None:
    data = (b"\r\n+CMGL: 1,0,,24\r\n^RSSI: 20\r\n+XFOO: 1\r\n" + PDU.encode()
            + b"\r\n\r\nOK\r\n")
    events = feed_all_ways("AT+CMGL=4", entries("+CMGL", "pdu"), data)
    (entry,) = listing_entries([e for e in events if isinstance(e, InfoLine)], "+CMGL")
    assert parse_entry_pdu(entry).pdu_hex == PDU
    assert [u.name for u in urcs(events)] == ["^RSSI"]


# --- text mode: framed by the +CSDH=1 length, not by content -------------------------------

HEADER = '+CMGL: {i},"REC UNREAD","+4915112345678",,"26/11/25,10:00:00+04",145,{n}'
BODIES = [
    "OK",
    "ERROR",
    '+CMGL: 9,"REC READ","+4911",,"26/11/25,10:00:00+04",145,3',
    "  two  spaces  kept  ",
    "line one\nOK\nline three",
    "+CME ERROR: 10",
    "RING",
]


def text_listing(bodies: list[str]) -> bytes:
    out = ""
    for i, body in enumerate(bodies, 1):
        out += "\r\n" + HEADER.format(i=i, n=len(body)) + "\r\n" + body.replace("\n", "\r\n")
    return (out + "\r\n\r\nOK\r\n").encode()


def test_text_bodies_that_look_like_answers_are_text() -> None:
    events = feed_all_ways('AT+CMGL="ALL"', entries("+CMGL", "text"), text_listing(BODIES))
    assert events[-1] == OK
    found = listing_entries([e for e in events if isinstance(e, InfoLine)], "+CMGL")
    assert [parse_entry_text(e).body for e in found] == BODIES
    assert [e.index() for e in found] == list(range(1, len(BODIES) + 1))
    assert urcs(events) == []


@given(st.lists(st.text(alphabet=st.sampled_from("aZ09 +:,\"OKERROR\n"), max_size=40)
                .filter(lambda t: t.strip("\n") == t and "\n\n" not in t and t.strip()),
                min_size=1, max_size=5))
def test_any_text_body_comes_back_as_sent(bodies: list[str]) -> None:
    p = parser()
    p.command_started('AT+CMGL="ALL"', answer=entries("+CMGL", "text"))
    events = p.feed(text_listing(bodies))
    assert events[-1] == OK
    found = listing_entries([e for e in events if isinstance(e, InfoLine)], "+CMGL")
    assert [parse_entry_text(e).body for e in found] == bodies


def test_a_text_cmt_takes_its_body_by_length() -> None:
    body = "OK\n+CMTI: \"SM\",3"
    head = ('+CMT: "+4915112345678",,"26/11/25,10:00:00+04",145,4,0,0,"+491710760000",145,'
            f"{len(body)}")
    lines = body.replace("\n", "\r\n")
    events = parser().feed(f"\r\n{head}\r\n{lines}\r\n".encode())
    assert events == [Urc("+CMT", head.split(": ", 1)[1], body)]

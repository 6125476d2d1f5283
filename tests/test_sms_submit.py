"""SMS-SUBMIT encoding: real PDUs from public projects re-encoded byte for byte, part counts
users expect, and hypothesis round trips through modemd's own decoder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modemd.sms import SmsStatusReport, SmsSubmit, decode_pdu
from modemd.sms.gsm7_tables import LOCKING_SHIFT, SINGLE_SHIFT
from modemd.sms.model import Ports
from modemd.sms.submit import (
    encode_status_report,
    encode_submit,
    encode_submit_parts,
    validity_octet,
)

CORPUS = Path(__file__).parent / "data" / "corpus"


def submit_vectors() -> list[dict[str, object]]:
    vectors = []
    for path in sorted(CORPUS.glob("*/pdu_vectors.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            vector = json.loads(line)
            if vector.get("expect_decode") == "error":
                continue
            try:
                message = decode_pdu(vector["pdu"], strict=True)
            except Exception:
                continue
            # absolute validity periods are decoded (tests/test_sms_corpus.py), never sent
            if isinstance(message, SmsSubmit) and not isinstance(message.validity, datetime):
                vectors.append(vector)
    return vectors


VECTORS = submit_vectors()


def test_the_corpus_has_submit_pdus_from_several_projects() -> None:
    sources = {str(v["id"]).split("/")[0] for v in VECTORS}
    assert len(VECTORS) >= 30 and {"gammu", "gsmmodem", "messaging"} <= sources


# Where a real PDU carries something modemd never sends, the content must still agree.
NOT_BYTE_EXACT = {
    "gammu/at-sms/02": "non-zero padding bits after the last septet",
    "gammu/at-sms/14": "DCS 0xF9 says GSM 7 bit but the payload is UCS-2",
    "gammu/at-sms/19": "an empty UDH (UDHL 0)",
    "gammu/at-sms/20": "TP-RP (reply path) and an empty UDH",
    "gsmmodem/test_pdu.py:356": "national type of number (0xA1) for SMSC and recipient",
}


@pytest.mark.parametrize("vector", VECTORS, ids=[str(v["id"]) for v in VECTORS])
def test_real_submit_pdus_re_encode_byte_for_byte(vector: dict[str, object]) -> None:
    message = decode_pdu(str(vector["pdu"]), strict=True)
    assert isinstance(message, SmsSubmit)
    first = message.tpdu[0]
    pdu = encode_submit(
        recipient=message.recipient.number, text=message.text, data=message.data,
        encoding=message.encoding, udh=message.udh.elements if message.udh else (),
        validity=message.validity if (first >> 3) & 0b11 == 0b10 else None,
        status_report=bool(first & 0x20), reject_duplicates=bool(first & 0x04),
        message_reference=message.message_reference, pid=message.pid, dcs=message.dcs.raw,
        smsc=message.smsc.number if message.smsc else None)
    if vector["id"] in NOT_BYTE_EXACT:
        again = decode_pdu(pdu.pdu, strict=True)
        assert isinstance(again, SmsSubmit)
        assert (again.text, again.data) == (message.text, message.data)
        return
    assert pdu.hex == str(vector["pdu"]).upper()
    assert pdu.tpdu_length == len(message.tpdu)


def test_python_gsmmodem_and_python_messaging_submit_outputs() -> None:
    # Built with each project's encoder (test_pdu.py:353, test_sms.py:84): modemd agrees.
    assert encode_submit(recipient="+27820001111", text="Hello World!").hex == (
        "0001000B917228001011F100000CC8329BFD065DDF72363904")
    assert encode_submit(recipient="+34616585119", text="hola",
                         validity=timedelta(days=4)).hex == (
        "0011000B914316565811F90000AA04E8373B0C")


@pytest.mark.parametrize(
    ("text", "parts"),
    [("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("€" * 80, 1),
     ("€" * 81, 2), ("ж" * 70, 1), ("ж" * 71, 2), ("ж" * 134, 2), ("ж" * 135, 3),
     ("😀" * 35, 1), ("😀" * 36, 2)],
)
def test_part_counts_users_expect(text: str, parts: int) -> None:
    assert len(encode_submit_parts(recipient="+4915112345678", text=text)) == parts


def test_parts_are_full_153_septets_and_67_units() -> None:
    gsm = encode_submit_parts(recipient="+4915112345678", text="x" * 400)
    assert [len(decode_pdu(p.pdu).text or "") for p in gsm] == [153, 153, 94]
    ucs = encode_submit_parts(recipient="+4915112345678", text="ж" * 150)
    assert [len(decode_pdu(p.pdu).text or "") for p in ucs] == [67, 67, 16]
    wide = encode_submit_parts(recipient="+4915112345678", text="x" * 400, ref_bits=16)
    assert [len(decode_pdu(p.pdu).text or "") for p in wide] == [152, 152, 96]


def test_flash_validity_and_report_request() -> None:
    (pdu,) = encode_submit_parts(recipient="+4915112345678", text="ALARM", flash=True,
                                 validity=timedelta(hours=1), status_report=True)
    message = decode_pdu(pdu.pdu)
    assert isinstance(message, SmsSubmit)
    assert message.message_class == 0 and message.validity == timedelta(hours=1)
    assert message.tpdu[0] == 0x31


@pytest.mark.parametrize(
    ("period", "octet"),
    [(timedelta(minutes=1), 0), (timedelta(minutes=5), 0), (timedelta(minutes=6), 1),
     (timedelta(hours=12), 143), (timedelta(hours=12, minutes=1), 144),
     (timedelta(days=1), 167), (timedelta(days=2), 168), (timedelta(days=30), 196),
     (timedelta(days=31), 197), (timedelta(weeks=63), 255), (timedelta(weeks=100), 255)],
)
def test_validity_octets(period: timedelta, octet: int) -> None:
    assert validity_octet(period) == octet


def test_port_addressed_data_in_parts() -> None:
    data = bytes(range(256)) * 2
    pdus = encode_submit_parts(recipient="+4915112345678", data=data,
                               ports=Ports(2948, 9200, 16), reference=300, ref_bits=16)
    decoded = [decode_pdu(p.pdu) for p in pdus]
    assert all(isinstance(m, SmsSubmit) and m.ports == Ports(2948, 9200, 16) for m in decoded)
    assert b"".join(m.data or b"" for m in decoded if isinstance(m, SmsSubmit)) == data
    assert {m.concat.reference for m in decoded if isinstance(m, SmsSubmit) and m.concat} == {300}


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError):
        encode_submit(recipient="+4915112345678", text="x" * 161)
    with pytest.raises(ValueError):
        encode_submit_parts(recipient="+4915112345678", text="x", reference=256)
    with pytest.raises(ValueError):
        encode_submit_parts(recipient="+4915112345678", text="x", ports=Ports(1, 1, 8))


def test_status_report_round_trip() -> None:
    moment = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
    pdu = encode_status_report(message_reference=77, recipient="+4915112345678", scts=moment,
                               discharge_time=moment + timedelta(seconds=3), status=0x00,
                               smsc="+491710760000")
    report = decode_pdu(pdu)
    assert isinstance(report, SmsStatusReport)
    assert (report.message_reference, report.recipient.number, report.status) == (
        77, "+4915112345678", 0)
    assert report.discharge_time == moment + timedelta(seconds=3) and report.delivered


# --- hypothesis round trips -------------------------------------------------------------------

_DEFAULT = "".join(ch for ch in LOCKING_SHIFT[0] if ch is not None and ch != "\x1b")
_EXTENSION = "".join(ch for ch in SINGLE_SHIFT[0] if ch is not None and ch not in _DEFAULT
                     and ch != "\x1b")
gsm_texts = st.text(alphabet=st.sampled_from(_DEFAULT + _EXTENSION), min_size=1, max_size=700)
any_texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=400)
astral = st.text(alphabet=st.one_of(st.sampled_from("😀🚨💧👍𝄞🀄"), st.sampled_from(_DEFAULT)),
                 min_size=1, max_size=300)


def _round_trip(text: str, ref_bits: int) -> list[SmsSubmit]:
    pdus = encode_submit_parts(recipient="+4915112345678", text=text, reference=1,
                               ref_bits=ref_bits)
    decoded = [decode_pdu(p.pdu, strict=True) for p in pdus]
    assert all(isinstance(m, SmsSubmit) for m in decoded)
    messages = [m for m in decoded if isinstance(m, SmsSubmit)]
    assert "".join(m.text or "" for m in messages) == text
    assert all(m.warnings == () for m in messages)
    for index, (pdu, message) in enumerate(zip(pdus, messages, strict=True), start=1):
        assert pdu.tpdu_length == len(message.tpdu) <= 140 + 1 + 12 + 1 + 1
        if len(pdus) > 1:
            assert message.concat is not None
            assert (message.concat.sequence, message.concat.total) == (index, len(pdus))
    return messages


@settings(max_examples=150, deadline=None)
@given(gsm_texts, st.sampled_from([8, 16]))
def test_gsm7_texts_with_the_extension_table_round_trip(text: str, ref_bits: int) -> None:
    messages = _round_trip(text, ref_bits)
    assert all(m.encoding == "gsm7" for m in messages)


@settings(max_examples=150, deadline=None)
@given(astral, st.sampled_from([8, 16]))
def test_surrogate_pairs_are_never_split(text: str, ref_bits: int) -> None:
    _round_trip(text, ref_bits)


@settings(max_examples=150, deadline=None)
@given(any_texts)
def test_any_text_round_trips(text: str) -> None:
    _round_trip(text, 8)

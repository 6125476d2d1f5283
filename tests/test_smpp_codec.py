"""deliver_sm records (built by smpplib) read as SmsDeliver or SmppReceipt; the framer; ids."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modemd.errors import DecodeError
from modemd.sms import SmsDeliver, assemble
from modemd.sms.smpp import (
    Alphabets,
    SmppReceipt,
    decode_deliver_sm,
    deliver_fields,
    parse_receipt_text,
)
from modemd.sources.smpp.framing import Framer, FramingError
from modemd.sources.smpp.session import build_pdu
from modemd.store.journal import raw_id_for

NOW = 1_796_000_000.0


def deliver(sequence: int = 1, **fields: Any) -> bytes:
    base: dict[str, Any] = {"source_addr_ton": 1, "source_addr": "4915112345678",
                            "destination_addr": "22222", "short_message": b"hello"}
    return build_pdu("deliver_sm", sequence, **{**base, **fields})


def message(raw: bytes, **kw: Any) -> SmsDeliver:
    decoded = decode_deliver_sm(raw, received_at=NOW, **kw)
    assert isinstance(decoded, SmsDeliver)
    return decoded


@pytest.mark.parametrize(("data_coding", "octets", "text", "encoding"), [
    (3, "Grüße".encode("latin-1"), "Grüße", "latin1"),
    (1, b"plain ascii", "plain ascii", "ascii"),
    (8, "Привет 😀".encode("utf-16-be"), "Привет 😀", "ucs2"),
    (0, bytes([0x00, 0x01, 0x02, 0x1B, 0x65]), "@£$€", "gsm7"),
    (6, "Привет".encode("iso8859_5"), "Привет", "iso-8859-5"),
    (0xF0, bytes([0x48, 0x69]), "Hi", "gsm7"),  # TS 23.038 class 0, GSM default alphabet
    (0x18, "ß".encode("utf-16-be"), "ß", "ucs2"),
])
def test_data_coding(data_coding: int, octets: bytes, text: str, encoding: str) -> None:
    raw = deliver(data_coding=data_coding, short_message=octets)
    assert message(raw).text == text
    assert deliver_fields(raw).encoding == encoding


def test_smsc_default_alphabet_is_configurable() -> None:
    raw = deliver(data_coding=0, short_message="é@".encode("latin-1"))
    assert message(raw, alphabets=Alphabets("latin1")).text == "é@"
    assert deliver_fields(raw, alphabets=Alphabets("latin1")).encoding == "latin1"
    assert message(deliver(data_coding=0, short_message=b"\x00"),
                   alphabets=Alphabets("gsm7")).text == "@"
    assert Alphabets.from_stored(Alphabets("latin1", "gsm7").stored()) == Alphabets("latin1",
                                                                                   "gsm7")
    assert Alphabets.from_stored(None) == Alphabets() == Alphabets.from_stored("junk")


def test_data_coding_1_is_ascii_unless_the_octets_can_only_be_gsm7() -> None:
    ascii_json = deliver(data_coding=1, short_message=b'{"id":"PUMP_01","v":3}')
    assert message(ascii_json).text == '{"id":"PUMP_01","v":3}'
    assert deliver_fields(ascii_json).encoding == "ascii"
    # what npm's smpp sends for "Grüße {1}": GSM 7-bit septets (0x1E, ESC pairs) under dc 1
    gsm = deliver(data_coding=1, short_message=bytes.fromhex("47727e1e6520" "1b28" "31" "1b29"))
    assert message(gsm).text == "Grüße {1}"
    assert deliver_fields(gsm).encoding == "gsm7"
    forced = deliver(data_coding=1, short_message=b"J\x7ergen")
    assert message(forced).text == "J~rgen"
    assert message(forced, alphabets=Alphabets(ia5="gsm7")).text == "Jürgen"


def test_8bit_is_data_and_unknown_codings_are_kept_as_bytes() -> None:
    assert message(deliver(data_coding=4, short_message=b"\x00\xff")).data == b"\x00\xff"
    odd = message(deliver(data_coding=0x0B, short_message=b"\x01\x02"))
    assert odd.data == b"\x01\x02" and odd.warnings


def test_addresses() -> None:
    msg = message(deliver(source_addr_ton=5, source_addr="ACME Ltd"))
    assert msg.sender.number == "ACME Ltd" and msg.sender.kind == "alphanumeric"
    assert message(deliver()).sender.number == "+4915112345678"
    assert message(deliver(source_addr_ton=0, source_addr="0151123")).sender.number == "0151123"
    assert deliver_fields(deliver()).destination == "22222"


def test_udh_and_sar_both_give_a_concat() -> None:
    udh = message(deliver(esm_class=0x40, data_coding=3,
                          short_message=bytes([5, 0, 3, 0x2A, 2, 1]) + b"part one"))
    assert udh.concat is not None and (udh.concat.reference, udh.concat.total,
                                       udh.concat.sequence) == (0x2A, 2, 1)
    assert udh.text == "part one"
    sar = message(deliver(data_coding=3, short_message=b"two", sar_msg_ref_num=0x1234,
                          sar_total_segments=2, sar_segment_seqnum=2))
    assert sar.concat is not None and (sar.concat.reference, sar.concat.ref_bits) == (0x1234, 16)


def test_ucs2_surrogate_pair_split_between_sar_parts_is_rejoined() -> None:
    octets = "a😀b".encode("utf-16-be")
    parts = [message(deliver(data_coding=8, short_message=chunk, sar_msg_ref_num=9,
                             sar_total_segments=2, sar_segment_seqnum=seq))
             for seq, chunk in ((2, octets[4:]), (1, octets[:4]))]
    assert assemble(parts).text == "a😀b"


def test_message_payload_carries_long_text() -> None:
    text = "long " * 100
    raw = deliver(data_coding=3, short_message=b"", message_payload=text.encode())
    assert message(raw).text == text


def test_receipts_by_esm_class_tlvs_and_text() -> None:
    by_tlv = decode_deliver_sm(deliver(esm_class=0x04, receipted_message_id="X1",
                                       message_state=2, short_message=b""), received_at=NOW)
    assert isinstance(by_tlv, SmppReceipt) and by_tlv.message_id == "X1" and by_tlv.delivered
    by_text = decode_deliver_sm(deliver(short_message=b"id:42 sub:001 dlvrd:001 submit date:"
                                                      b"2612011200 done date:2612011201 "
                                                      b"stat:EXPIRED err:000 text:hi"),
                                received_at=NOW)
    assert isinstance(by_text, SmppReceipt)
    assert (by_text.message_id, by_text.state, by_text.stat) == ("42", "expired", "EXPIRED")
    # a person writing "id:" is not a receipt without a receipt's stat: word
    assert isinstance(message(deliver(short_message=b"id:me stat:happy")), SmsDeliver)
    assert parse_receipt_text("hello") == {}


def test_id_ignores_the_sequence_number_but_not_the_content() -> None:
    first, resent = deliver(1, short_message=b"same"), deliver(77, short_message=b"same")
    assert raw_id_for("smpp", first) == raw_id_for("smpp", resent)
    assert raw_id_for("smpp", first) != raw_id_for("smpp", deliver(1, short_message=b"other"))
    assert raw_id_for("smpp", first) != raw_id_for(
        "smpp", deliver(1, short_message=b"same", source_addr="4915100000000"))


def test_not_a_deliver_sm() -> None:
    with pytest.raises(DecodeError):
        decode_deliver_sm(build_pdu("enquire_link", 1), received_at=NOW)
    with pytest.raises(DecodeError):
        decode_deliver_sm(b"\x00\x00", received_at=NOW)
    with pytest.raises(DecodeError):  # UDH flag with a header longer than the message
        decode_deliver_sm(deliver(esm_class=0x40, short_message=b"\x09ab"), received_at=NOW)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300), command=st.sampled_from([5, 0x80000005, 4, 0x15]))
def test_any_bytes_decode_or_raise_decode_error(body: bytes, command: int) -> None:
    raw = (16 + len(body)).to_bytes(4, "big") + command.to_bytes(4, "big") + bytes(8) + body
    try:
        decode_deliver_sm(raw, received_at=NOW)
        deliver_fields(raw)
    except DecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(fields=st.fixed_dictionaries({
    "data_coding": st.sampled_from([0, 1, 3, 4, 8, 0xF0]),
    "esm_class": st.sampled_from([0, 0x40, 0x04]),
    "short_message": st.binary(max_size=140),
}))
def test_any_deliver_sm_fields_decode_or_raise_decode_error(fields: dict[str, Any]) -> None:
    with contextlib.suppress(DecodeError):
        decode_deliver_sm(deliver(**fields), received_at=NOW)


def test_framer_whole_halved_and_byte_by_byte() -> None:
    stream = deliver(1) + build_pdu("enquire_link", 2) + deliver(3, short_message=b"x" * 100)
    for size in (len(stream), len(stream) // 2 + 1, 1):
        framer = Framer()
        frames = []
        for start in range(0, len(stream), size):
            frames += framer.feed(stream[start:start + size])
        assert [f.sequence for f in frames] == [1, 2, 3]
        assert b"".join(f.raw for f in frames) == stream
        assert framer.buffered == 0


def test_framer_refuses_impossible_lengths() -> None:
    with pytest.raises(FramingError):
        Framer().feed(b"\x00\x00\x00\x04" + bytes(12))


def test_an_unreadable_deliver_sm_is_a_dead_letter_with_its_hex(tmp_path: Any) -> None:
    from modemd.pipeline import Pipeline, Route
    from modemd.store import Store

    store = Store(tmp_path / "state")
    try:
        # a deliver_sm whose UDH flag promises a header longer than the message
        bad = deliver(esm_class=0x40, short_message=b"\x09ab")
        good = deliver(data_coding=3, short_message=b"fine")
        for raw in (bad, good):
            store.journal.commit_raw(modem="agg", mode="smpp", raw=raw, storage="gsm7/auto")
        pipeline = Pipeline(store, routes=[Route("mqtt", frozenset({"sms", "deadletter"}))])
        pipeline.run_once()
        rows = {row.kind: row.body for row in store.outbox.fetch("mqtt", limit=10)}
        assert rows["deadletter"]["raw"] == bad.hex().upper()
        assert "undecodable deliver_sm" in rows["deadletter"]["reason"]
        assert rows["deadletter"]["modem"] == "agg"
        assert rows["sms"]["text"] == "fine" and rows["sms"]["source"] == "agg"
    finally:
        store.close()

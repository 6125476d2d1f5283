"""Queued SMS-SUBMIT parts read back as submit_sm (modemd.send.smpp.submit_sm_fields).

What the SMSC is handed must be what a modem would have sent: the same recipient, the same
parts with the same UDH, the same text. The property tests split any text with modemd's
SUBMIT encoder and read every part back from the submit_sm fields alone.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modemd.send.smpp import relative_validity, submit_sm_fields
from modemd.sms.gsm7 import decode_gsm7
from modemd.sms.model import Ports
from modemd.sms.submit import encode_submit_parts
from tests.helpers import unique_pdus

TO = "+4915112345678"


def tpdus(**kwargs: object) -> list[bytes]:
    parts = encode_submit_parts(recipient=TO, **kwargs)  # type: ignore[arg-type]
    return [p.pdu[-p.tpdu_length:] for p in parts]


def split_udh(fields: dict[str, object]) -> tuple[bytes, bytes]:
    message = fields["short_message"]
    assert isinstance(message, bytes)
    if not int(fields["esm_class"]) & 0x40:  # type: ignore[call-overload]
        return b"", message
    return message[: message[0] + 1], message[message[0] + 1:]


def text_of(fields: dict[str, object]) -> str:
    _, body = split_udh(fields)
    if fields["data_coding"] == 0x08:
        return body.decode("utf-16-be", "surrogatepass")
    assert fields["data_coding"] == 0x00
    return decode_gsm7(body)


def test_a_short_text_is_one_plain_submit_sm() -> None:
    (tpdu,) = tpdus(text="STATUS? [ok] 5€", status_report=True)
    fields = submit_sm_fields(tpdu)
    assert fields["destination_addr"] == "4915112345678"
    assert (fields["dest_addr_ton"], fields["dest_addr_npi"]) == (1, 1)
    assert fields["esm_class"] == 0 and fields["data_coding"] == 0
    assert fields["registered_delivery"] == 1
    # unpacked GSM septets, the extension characters as escape + code
    assert fields["short_message"] == b"STATUS? \x1b<ok\x1b> 5\x1be"
    assert text_of(fields) == "STATUS? [ok] 5€"
    assert "validity_period" not in fields and "dest_addr_subunit" not in fields


def test_no_status_report_asks_for_no_receipt() -> None:
    (tpdu,) = tpdus(text="hi", status_report=False)
    assert submit_sm_fields(tpdu)["registered_delivery"] == 0


def test_a_long_text_keeps_each_parts_udh_and_text() -> None:
    text = "0123456789" * 20
    parts = [submit_sm_fields(t) for t in tpdus(text=text, reference=0x42)]
    assert len(parts) == 2
    headers = [split_udh(f)[0] for f in parts]
    assert headers == [bytes.fromhex("0500034202" "01"), bytes.fromhex("0500034202" "02")]
    assert all(f["esm_class"] == 0x40 for f in parts)
    assert "".join(text_of(f) for f in parts) == text
    assert all(len(f["short_message"]) <= 254 for f in parts)  # type: ignore[arg-type]


def test_ucs2_keeps_a_surrogate_pair_whole_and_16_bit_references() -> None:
    text = "Привет 👋 " * 12
    parts = [submit_sm_fields(t) for t in tpdus(text=text, reference=0x1234, ref_bits=16)]
    assert len(parts) > 1 and all(f["data_coding"] == 0x08 for f in parts)
    assert split_udh(parts[0])[0][:5] == bytes.fromhex("0608041234")
    assert "".join(text_of(f) for f in parts) == text


def test_port_addressed_data_is_binary_with_its_port_header() -> None:
    (tpdu,) = tpdus(data=b"\x01\x02\xff", ports=Ports(2948, 0, 16))
    fields = submit_sm_fields(tpdu)
    assert fields["data_coding"] == 0x04 and fields["esm_class"] == 0x40
    header, body = split_udh(fields)
    assert header == bytes.fromhex("0605040B840000") and body == b"\x01\x02\xff"


def test_flash_validity_and_sender_addresses() -> None:
    (tpdu,) = tpdus(text="now", flash=True, validity=timedelta(hours=2))
    fields = submit_sm_fields(tpdu, source_addr="Pumpwerk")
    assert fields["dest_addr_subunit"] == 1  # MS display: class 0
    assert fields["validity_period"] == "000000020000000R"
    assert (fields["source_addr_ton"], fields["source_addr_npi"],
            fields["source_addr"]) == (5, 0, "Pumpwerk")
    assert submit_sm_fields(tpdu, source_addr="+4930123")["source_addr"] == "4930123"
    assert submit_sm_fields(tpdu, source_addr="+4930123")["source_addr_ton"] == 1
    assert submit_sm_fields(tpdu)["source_addr"] == ""  # the SMSC puts the account's own


@pytest.mark.parametrize(("period", "written"), [
    (timedelta(minutes=5), "000000000500000R"),
    (timedelta(days=1, hours=3), "000001030000000R"),
    (timedelta(days=99), "000099000000000R"),
    (timedelta(weeks=63), "010216000000000R"),  # TP-VP's longest: 441 days
])
def test_relative_validity(period: timedelta, written: str) -> None:
    assert relative_validity(period) == written


def test_a_latin1_smsc_takes_latin1_and_refuses_what_it_cannot_write() -> None:
    (tpdu,) = tpdus(text="Grüße")
    assert submit_sm_fields(tpdu, alphabet="latin1")["short_message"] == "Grüße".encode(
        "latin-1")
    (euro,) = tpdus(text="5 €")
    with pytest.raises(ValueError, match="default alphabet"):
        submit_sm_fields(euro, alphabet="latin1")
    with pytest.raises(ValueError, match="default alphabet"):
        submit_sm_fields(tpdus(text="Grüße")[0], alphabet="ascii")


def test_a_part_that_is_not_a_submit_is_refused() -> None:
    (deliver,) = unique_pdus(1)
    with pytest.raises(ValueError, match="not an SMS-SUBMIT"):
        submit_sm_fields(deliver[deliver[0] + 1:])
    with pytest.raises(ValueError, match="unreadable"):
        submit_sm_fields(b"\x01\x00")


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1, max_size=600), bits=st.sampled_from([8, 16]))
def test_any_text_survives_the_trip_through_submit_sm(text: str, bits: int) -> None:
    parts = [submit_sm_fields(t) for t in tpdus(text=text, reference=7, ref_bits=bits)]
    assert "".join(text_of(f) for f in parts) == text
    assert all(len(f["short_message"]) <= 254 for f in parts)  # type: ignore[arg-type]
    if len(parts) > 1:
        totals = {split_udh(f)[0][-2] for f in parts}
        assert totals == {len(parts)}

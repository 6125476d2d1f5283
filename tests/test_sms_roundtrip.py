"""Round trips: decode(encode(x)) == x for every alphabet, header length and multipart split."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modemd.sms import (
    InformationElement,
    Ports,
    SmsDeliver,
    assemble,
    decode_pdu,
    encode_deliver,
    encode_deliver_parts,
)
from modemd.sms.gsm7 import encode_gsm7, septet_lengths
from modemd.sms.gsm7_tables import LOCKING_SHIFT, SINGLE_SHIFT

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEDIUM = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WHEN = datetime(2024, 2, 29, 23, 59, 58, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
HEADER_LENGTHS = [0, *range(2, 11)]  # octets of IEs; a lone octet cannot be an IE


def _table_chars(*tables: tuple[str | None, ...]) -> list[str]:
    return sorted({char for table in tables for char in table if char is not None})


GSM7_CHARS = _table_chars(LOCKING_SHIFT[0], SINGLE_SHIFT[0])
gsm7_text = st.text(alphabet=st.sampled_from(GSM7_CHARS), max_size=170)
any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
emoji_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), st.sampled_from("aж€ 😀")
    ),
    max_size=80,
)
sender = st.one_of(
    st.from_regex(r"\+[1-9][0-9]{4,14}", fullmatch=True),
    st.from_regex(r"[0-9*#]{1,20}", fullmatch=True),
    st.text(
        alphabet=string.ascii_letters + string.digits + " .-@€", min_size=1, max_size=11
    ).filter(
        lambda name: (
            any(char in string.ascii_letters for char in name) and len(encode_gsm7(name)) <= 11
        )
    ),
)


@st.composite
def header_elements(draw: st.DrawFn, octets: int) -> list[InformationElement]:
    """IEs (of SME-specific IEIs, which decoders keep but ignore) filling exactly ``octets``."""
    elements: list[InformationElement] = []
    remaining = octets
    while remaining >= 2:
        size = draw(st.integers(0, remaining - 2))
        if remaining - 2 - size == 1:
            size += 1
        elements.append(
            InformationElement(
                draw(st.integers(0x80, 0x9F)), draw(st.binary(min_size=size, max_size=size))
            )
        )
        remaining -= 2 + size
    assert remaining == 0
    return elements


def _header_cost(elements: list[InformationElement]) -> int:
    return 1 + sum(2 + len(element.data) for element in elements) if elements else 0


def _fit_septets(text: str, capacity: int) -> str:
    used = 0
    for index, cost in enumerate(septet_lengths(text)):
        if used + cost > capacity:
            return text[:index]
        used += cost
    return text


def _fit_units(text: str, capacity: int) -> str:
    used = 0
    for index, char in enumerate(text):
        cost = 2 if ord(char) > 0xFFFF else 1
        if used + cost > capacity:
            return text[:index]
        used += cost
    return text


def _decode(pdu: bytes) -> SmsDeliver:
    message = decode_pdu(pdu)
    assert isinstance(message, SmsDeliver)
    assert not message.warnings, message.warnings
    return message


def _check_header(message: SmsDeliver, elements: list[InformationElement]) -> None:
    if elements:
        assert message.udh is not None and message.udh.elements == tuple(elements)
    else:
        assert message.udh is None


@pytest.mark.parametrize("octets", HEADER_LENGTHS)
@FAST
@given(data=st.data(), text=gsm7_text)
def test_gsm7_round_trip(octets: int, data: st.DataObject, text: str) -> None:
    elements = data.draw(header_elements(octets))
    cost = _header_cost(elements)
    text = _fit_septets(text, 160 - (8 * cost + 6) // 7)
    pdu = encode_deliver(sender="+441234567890", text=text, scts=WHEN, udh=elements)
    message = _decode(pdu)
    assert message.encoding == "gsm7" and message.text == text
    _check_header(message, elements)


@pytest.mark.parametrize("octets", HEADER_LENGTHS)
@FAST
@given(data=st.data(), text=st.one_of(any_text, emoji_text))
def test_ucs2_round_trip(octets: int, data: st.DataObject, text: str) -> None:
    elements = data.draw(header_elements(octets))
    text = _fit_units(text, (140 - _header_cost(elements)) // 2)
    pdu = encode_deliver(
        sender="+441234567890", text=text, encoding="ucs2", scts=WHEN, udh=elements
    )
    message = _decode(pdu)
    assert message.encoding == "ucs2" and message.text == text
    _check_header(message, elements)


@pytest.mark.parametrize("octets", HEADER_LENGTHS)
@FAST
@given(data=st.data(), payload=st.binary(max_size=140))
def test_8bit_round_trip(octets: int, data: st.DataObject, payload: bytes) -> None:
    elements = data.draw(header_elements(octets))
    payload = payload[: 140 - _header_cost(elements)]
    pdu = encode_deliver(sender="+441234567890", data=payload, scts=WHEN, udh=elements)
    message = _decode(pdu)
    assert message.encoding == "8bit" and message.text is None and message.data == payload
    _check_header(message, elements)


@MEDIUM
@given(
    who=sender,
    text=st.one_of(gsm7_text, any_text),
    moment=st.datetimes(datetime(1980, 1, 1), datetime(2079, 12, 31, 23, 59, 59)),
    quarters=st.integers(-79, 79),
    smsc=st.one_of(st.none(), st.from_regex(r"\+?[0-9]{3,15}", fullmatch=True)),
    pid=st.integers(0, 255),
    message_class=st.one_of(st.none(), st.integers(0, 3)),
)
def test_envelope_round_trip(
    who: str,
    text: str,
    moment: datetime,
    quarters: int,
    smsc: str | None,
    pid: int,
    message_class: int | None,
) -> None:
    scts = moment.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=15 * quarters)))
    text = _fit_units(_fit_septets(text, 160) if all(c in GSM7_CHARS for c in text) else text, 70)
    pdu = encode_deliver(
        sender=who, text=text, scts=scts, smsc=smsc, pid=pid, message_class=message_class
    )
    message = _decode(pdu)
    assert message.sender.number == who
    assert message.text == text
    assert message.scts == scts and message.scts.utcoffset() == scts.utcoffset()
    assert (message.smsc.number if message.smsc else None) == smsc
    assert (message.pid, message.message_class) == (pid, message_class)
    assert message.tpdu == pdu[pdu[0] + 1 :]


NATIONAL = sorted(SINGLE_SHIFT)


@pytest.mark.parametrize("language", NATIONAL)
@FAST
@given(data=st.data())
def test_national_language_round_trip(language: int, data: st.DataObject) -> None:
    locking = language if language in LOCKING_SHIFT else 0
    alphabet = _table_chars(LOCKING_SHIFT[locking], SINGLE_SHIFT[language])
    text = data.draw(st.text(alphabet=st.sampled_from(alphabet), max_size=150))
    elements = [InformationElement(0x24, bytes([language]))]
    if locking:
        elements.append(InformationElement(0x25, bytes([locking])))
    text = _fit_septets_in(text, 160 - (8 * _header_cost(elements) + 6) // 7, locking, language)
    pdu = encode_deliver(sender="+911234567890", text=text, scts=WHEN, udh=elements)
    message = _decode(pdu)
    assert message.text == text


def _fit_septets_in(text: str, capacity: int, locking: int, single: int) -> str:
    used = 0
    for index, cost in enumerate(septet_lengths(text, locking, single)):
        if used + cost > capacity:
            return text[:index]
        used += cost
    return text


@MEDIUM
@given(
    content=st.one_of(
        st.text(alphabet=st.sampled_from(GSM7_CHARS), min_size=150, max_size=700),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=60, max_size=300),
        emoji_text.map(lambda text: "😀" * 40 + text),
        st.binary(min_size=120, max_size=600),
    ),
    reference=st.integers(0, 0xFFFF),
    ref_bits=st.sampled_from([8, 16]),
    ports=st.one_of(
        st.none(),
        st.builds(Ports, st.integers(0, 255), st.integers(0, 255), st.just(8)),
        st.builds(Ports, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.just(16)),
    ),
    shuffle=st.randoms(use_true_random=False),
    duplicates=st.integers(0, 2),
)
def test_multipart_round_trip_in_any_order(
    content: str | bytes,
    reference: int,
    ref_bits: int,
    ports: Ports | None,
    shuffle: random.Random,
    duplicates: int,
) -> None:
    reference %= 1 << ref_bits
    text = content if isinstance(content, str) else None
    payload = content if isinstance(content, bytes) else None
    pdus = encode_deliver_parts(
        sender="Alerts",
        text=text,
        data=payload,
        scts=WHEN.astimezone(UTC),
        reference=reference,
        ref_bits=ref_bits,
        ports=ports,
    )
    parts = [_decode(pdu) for pdu in pdus]
    for part in parts:
        udl_index = 3 + (part.tpdu[1] + 1) // 2 + 2 + 7  # after MTI, OA, PID, DCS, SCTS
        assert len(part.tpdu) - udl_index - 1 <= 140
        if len(parts) > 1:
            assert part.concat is not None and part.concat.total == len(parts)
        assert part.ports == ports
    jumbled = parts + parts[:duplicates]
    shuffle.shuffle(jumbled)
    result = assemble(jumbled)
    assert result.complete and result.missing == () and result.total == len(parts)
    assert result.text == text and result.data == payload

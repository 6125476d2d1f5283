"""Fuzzing: random and mutated input never makes the codec raise anything but DecodeError.

10,000 generated PDUs (the max_examples below), each decoded strictly and leniently, with and
without the SMSC field; and 1,000 text-mode headers.
"""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modemd.errors import DecodeError
from modemd.sms import (
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    assemble,
    decode_pdu,
    decode_text_record,
)

CORPUS = Path(__file__).parent / "data" / "corpus"
PDU_FILES = (
    "gammu/pdu_vectors.jsonl",
    "gammu/atgen_inline_pdus.jsonl",
    "python-gsmmodem/pdu_vectors.jsonl",
    "python-messaging/pdu_vectors.jsonl",
    "smspdudecoder/pdu_vectors.jsonl",
    "tutorials/pdu_vectors.jsonl",
)
TEXT_FILES = ("gammu/text_mode.jsonl", "gammu/atgen_text_mode.jsonl")


def _seeds() -> list[bytes]:
    seeds: list[bytes] = []
    for name in PDU_FILES:
        for line in (CORPUS / name).read_text("utf-8").splitlines():
            hexed = "".join(json.loads(line)["pdu"].split())
            try:
                seeds.append(bytes.fromhex(hexed))
            except ValueError:
                continue  # odd-length or junk: the mutations start from valid hex only
    return seeds


SEEDS = _seeds()
HEADERS = [
    json.loads(line)["at_header"]
    for name in TEXT_FILES
    for line in (CORPUS / name).read_text("utf-8").splitlines()
]

PDU_BUDGET = {"random_bytes": 2500, "mutated_pdus": 6500, "hex_strings": 1000}
BUDGET = {**PDU_BUDGET, "text_records": 1000}


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def check_decodes(data: bytes | str) -> None:
    """Only DecodeError may escape; what decodes must be well-formed and agree across modes."""
    for with_smsc in (True, False):
        strict_result = None
        with contextlib.suppress(DecodeError):
            strict_result = decode_pdu(data, with_smsc=with_smsc, strict=True)
        try:
            lenient_result = decode_pdu(data, with_smsc=with_smsc, strict=False)
        except DecodeError:
            assert strict_result is None, "lenient mode failed where strict mode did not"
            continue
        assert isinstance(lenient_result, SmsDeliver | SmsSubmit | SmsStatusReport)
        assert all(isinstance(warning, str) for warning in lenient_result.warnings)
        if not isinstance(lenient_result, SmsStatusReport):
            if lenient_result.text is not None:
                lenient_result.text.encode("utf-8")  # never a lone surrogate
            assert lenient_result.text is not None or lenient_result.data is not None
        if strict_result is not None:
            assert strict_result == lenient_result
            if isinstance(strict_result, SmsDeliver) and strict_result.concat is not None:
                assemble([strict_result])


def mutate(seed: bytes, rng: random.Random) -> bytes:
    """A corpus PDU with a few bytes flipped, inserted, deleted, overwritten or cut off."""
    data = bytearray(seed)
    for _ in range(rng.randint(1, 6)):
        operation = rng.choice(("flip", "insert", "delete", "set", "truncate"))
        position = rng.randrange(len(data)) if data else 0
        if operation == "flip" and data:
            data[position] ^= 1 << rng.randrange(8)
        elif operation == "insert":
            data.insert(position, rng.randrange(256))
        elif operation == "delete" and data:
            del data[position]
        elif operation == "set" and data:
            data[position] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, 0x1B, 0x40))
        elif operation == "truncate":
            del data[position:]
    return bytes(data)


@fuzz_settings(BUDGET["random_bytes"])
@given(data=st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    check_decodes(data)


@fuzz_settings(BUDGET["mutated_pdus"])
@given(seed=st.sampled_from(SEEDS), rng=st.randoms(use_true_random=True))
def test_mutated_corpus_pdus(seed: bytes, rng: random.Random) -> None:
    check_decodes(mutate(seed, rng))


@fuzz_settings(BUDGET["hex_strings"])
@given(data=st.text(alphabet="0123456789abcdefABCDEF \r\n\tx+", max_size=240))
def test_random_hex_strings(data: str) -> None:
    check_decodes(data)


@fuzz_settings(BUDGET["text_records"])
@given(
    header=st.one_of(
        st.text(max_size=120),
        st.text(alphabet='0123456789",/:+-REC READSTO UNSENT ', max_size=120),
        st.from_regex(
            r'"REC READ","\+?[0-9]{0,4}",,"[0-9]{1,4}/[0-9]{1,2}/[0-9]{1,2},'
            r'[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}([+-][0-9]{1,2})?"(,[0-9]{1,3}){0,8}',
            fullmatch=True,
        ),
        st.builds(
            lambda header, cut, junk: header[:cut] + junk + header[cut:],
            st.sampled_from(HEADERS),
            st.integers(0, 120),
            st.text(alphabet='",0+/:', max_size=3),
        ),
    ),
    body=st.one_of(st.none(), st.text(max_size=40)),
    status_report=st.booleans(),
)
def test_text_records(header: str, body: str | None, status_report: bool) -> None:
    try:
        record = decode_text_record(header, body, status_report=status_report)
    except DecodeError:
        return
    assert isinstance(record, SmsDeliver | SmsSubmit | SmsStatusReport)
    assert isinstance(record.tpdu, bytes)


def test_fuzz_budget_is_ten_thousand() -> None:
    assert sum(PDU_BUDGET.values()) == 10_000
    assert len(SEEDS) > 100 and len(HEADERS) == 10

"""E.164 normalisation, sender globs and the per-modem allow-list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modemd.payload.senders import (
    AllowList,
    SenderPatterns,
    normalise_country_code,
    normalise_e164,
    normalise_pattern,
)


@pytest.mark.parametrize(
    ("number", "cc", "expected"),
    [
        ("+4915112345678", None, "+4915112345678"),
        ("+4915112345678", "49", "+4915112345678"),
        ("004915112345678", None, "+4915112345678"),
        ("004915112345678", "33", "+4915112345678"),
        ("015112345678", "49", "+4915112345678"),
        ("015112345678", "+49", "+4915112345678"),
        ("015112345678", "0049", "+4915112345678"),
        ("015112345678", None, "015112345678"),
        ("+49 151 1234-5678", None, "+4915112345678"),
        ("(0151) 123.456", "49", "+49151123456"),
        ("  +4915112345678\t", None, "+4915112345678"),
        ("22222", "49", "22222"),
        ("ACME", "49", "ACME"),
        ("DHL Info", "49", "DHL Info"),
        ("Vodafone", None, "Vodafone"),
        ("", "49", ""),
        ("+", "49", "+"),
        ("0", "49", "0"),
        ("00", "49", "00"),
        ("+49١٢٣", None, "+49١٢٣"),  # non-ASCII digits are not a number
    ],
)
def test_normalise_e164(number: str, cc: str | None, expected: str) -> None:
    assert normalise_e164(number, cc) == expected


@given(st.text(max_size=30), st.sampled_from([None, "49", "1", "352"]))
def test_normalise_is_idempotent(number: str, cc: str | None) -> None:
    once = normalise_e164(number, cc)
    assert normalise_e164(once, cc) == once


@pytest.mark.parametrize("cc", ["", "0", "1234", "abc", "+", "4 9"])
def test_bad_country_code(cc: str) -> None:
    if cc == "":
        assert normalise_country_code(cc) is None
        return
    with pytest.raises(ValueError):
        normalise_country_code(cc)


@pytest.mark.parametrize(
    ("pattern", "cc", "expected"),
    [
        ("+49151*", None, "+49151*"),
        ("0049151*", None, "+49151*"),
        ("0151*", "49", "+49151*"),
        ("0151*", None, "0151*"),
        ("+49 151 *", None, "+49151*"),
        ("*", "49", "*"),
        ("ACME*", "49", "ACME*"),
        ("+4915[01]*", None, "+4915[01]*"),
    ],
)
def test_normalise_pattern(pattern: str, cc: str | None, expected: str) -> None:
    assert normalise_pattern(pattern, cc) == expected


def test_sender_patterns() -> None:
    patterns = SenderPatterns(["+49151*", "0170123", "acme"], default_country_code="49")
    assert patterns.matches("+4915112345678")
    assert patterns.matches("004915112345678")
    assert patterns.matches("015112345678")
    assert patterns.matches("+49170123")
    assert patterns.matches("ACME")  # case-insensitive for alphanumeric senders
    assert not patterns.matches("+4916012345678")
    assert not patterns.matches("+491701234")  # exact numbers are exact
    assert not patterns.matches("ACME Corp")
    assert not SenderPatterns([]).matches("+49151")
    assert not SenderPatterns([])


def test_question_mark_and_classes() -> None:
    patterns = SenderPatterns(["+49151?????", "+4916[02]*"])
    assert patterns.matches("+4915112345")
    assert not patterns.matches("+49151123456")
    assert patterns.matches("+49160999")
    assert patterns.matches("+49162999")
    assert not patterns.matches("+49161999")


def test_allow_list() -> None:
    allow = AllowList(
        {"modem1": ["+49151*", "+4917012345678"], "modem2": None, "modem3": []},
        default_country_code="49",
    )
    assert allow.allows("modem1", "+4915112345678")
    assert allow.allows("modem1", "015112345678")
    assert allow.allows("modem1", "+4917012345678")
    assert not allow.allows("modem1", "+4917012345679")
    assert not allow.allows("modem1", "ACME")
    assert allow.allows("modem2", "anything")
    assert allow.allows("unlisted", "anything")
    assert not allow.allows("modem3", "+4915112345678")
    assert allow.patterns_for("modem1") == ("+49151*", "+4917012345678")
    assert allow.patterns_for("modem2") is None


def test_allow_list_single_string_and_bad_pattern() -> None:
    assert AllowList({"m": "+49*"}).allows("m", "+491")
    with pytest.raises(ValueError, match="modem 'm'"):
        AllowList({"m": [""]})

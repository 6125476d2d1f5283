"""What kind of address a sender is, national numbers read with their country's numbering
plan (phonenumbers), and numeric patterns that never let an alphanumeric sender through."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modemd.payload.config import DeviceSpec, ParserRule
from modemd.payload.engine import PayloadEngine
from modemd.payload.model import InboundMessage
from modemd.payload.senders import AllowList, SenderPatterns, normalise_e164, sender_type
from modemd.pipeline import Pipeline, Route
from modemd.sms import decode_pdu
from modemd.sms.encode import encode_address, encode_deliver
from modemd.sms.gsm7 import encode_gsm7, pack_septets
from modemd.store import Store

SCTS = datetime(2026, 11, 25, 9, 30, 15, tzinfo=UTC)
ROUTES = [Route("mqtt", frozenset({"sms", "reading", "deadletter"}))]


# --- national numbers, real numbering plans -------------------------------------------------

@pytest.mark.parametrize(("number", "cc", "expected"), [
    # Germany: trunk prefix 0
    ("015112345678", "49", "+4915112345678"),
    ("030 1234567", "49", "+49301234567"),
    # Italy: no trunk prefix; the 0 of a fixed line is part of the number
    ("3331234567", "39", "+393331234567"),
    ("333 123 4567", "39", "+393331234567"),
    ("0612345678", "39", "+390612345678"),
    ("02 1234 5678", "39", "+390212345678"),
    # US: ten digits, trunk prefix 1
    ("2125551234", "1", "+12125551234"),
    ("(212) 555-1234", "1", "+12125551234"),
    ("12125551234", "1", "+12125551234"),
    # Russia: trunk prefix 8
    ("89161234567", "7", "+79161234567"),
    ("8 (495) 123-45-67", "7", "+74951234567"),
    # the UK: trunk prefix 0
    ("07400123456", "44", "+447400123456"),
    # short codes stay what they are
    ("22222", "49", "22222"),
    ("80888", "44", "80888"),
    ("4242", "39", "4242"),
])
def test_national_numbers_with_the_country_numbering_plan(number: str, cc: str,
                                                          expected: str) -> None:
    assert normalise_e164(number, cc) == expected


def test_a_number_typed_international_without_plus_is_international() -> None:
    assert normalise_e164("4915112345678", "49", kind="international") == "+4915112345678"
    assert normalise_e164("393331234567", None, kind="international") == "+393331234567"
    assert sender_type("4915112345678", "international") == "international"
    # and in a PDU: TON international puts the '+' in front
    pdu = encode_deliver(sender="+393331234567", text="x", scts=SCTS)
    msg = decode_pdu(pdu, with_smsc=True)
    assert msg.sender.number == "+393331234567"  # type: ignore[union-attr]


@pytest.mark.parametrize(("number", "kind", "expected"), [
    ("+4915112345678", "international", "international"),
    ("+4915112345678", None, "international"),
    ("004915112345678", None, "international"),
    ("015112345678", "national", "national"),
    ("015112345678", "unknown", "national"),
    ("3331234567", None, "national"),
    ("22222", "unknown", "short_code"),
    ("4242", None, "short_code"),
    ("1234567", "abbreviated", "short_code"),
    ("ACME", "alphanumeric", "alphanumeric"),
    ("0151 1234", "alphanumeric", "alphanumeric"),
    ("01511234", "alphanumeric", "alphanumeric"),
    ("+49151ABC", None, "alphanumeric"),
    ("DHL Info", None, "alphanumeric"),
])
def test_sender_type(number: str, kind: str | None, expected: str) -> None:
    assert sender_type(number, kind) == expected


# --- patterns and [devices] numbers against alphanumeric senders -------------------------

@pytest.mark.parametrize(("sender", "kind"), [
    ("+49151ABC", None), ("+49151ABC", "alphanumeric"), ("0151 1234", "alphanumeric"),
    ("01511234", "alphanumeric"), ("+4915112345678", "alphanumeric"),
])
def test_numeric_patterns_never_match_an_alphanumeric_sender(sender: str,
                                                             kind: str | None) -> None:
    patterns = SenderPatterns(["+49151*"], default_country_code="49")
    assert not patterns.matches(sender, kind=kind)
    allow = AllowList({"m1": ["+49151*", "0151*"]}, default_country_code="49")
    assert not allow.allows("m1", sender, kind=kind)


def test_named_patterns_still_match_alphanumeric_senders() -> None:
    patterns = SenderPatterns(["ACME*", "+49151*"])
    assert patterns.matches("ACME Alerts", kind="alphanumeric")
    assert patterns.matches("+4915112345678", kind="international")
    assert SenderPatterns(["*"]).matches("ACME", kind="alphanumeric")


@pytest.mark.parametrize(("pattern", "cc", "sender"), [
    ("06*", "39", "+390612345678"),
    ("333*", "39", "+393331234567"),
    ("+39333*", "39", "3331234567"),
    ("8916*", "7", "+79161234567"),
    ("+7916*", "7", "89161234567"),
    ("212*", "1", "+12125551234"),
    ("+1212*", "1", "2125551234"),
    ("0151*", "49", "+4915112345678"),
])
def test_national_patterns_match_in_every_form(pattern: str, cc: str, sender: str) -> None:
    assert SenderPatterns([pattern], default_country_code=cc).matches(sender)


def rule(**extra: Any) -> ParserRule:
    return ParserRule.model_validate({
        "name": "r", "format": "kv", "device_from": "sender",
        "fields": {"L": {"name": "level", "type": "float"}}, **extra})


def inbound(sender: str, sender_type: str | None = None) -> InboundMessage:
    return InboundMessage(msg_id="x", modem="m1", sender=sender, sender_type=sender_type,
                          text="L=1.5", sent_at=SCTS)


def test_device_numbers_never_match_an_alphanumeric_sender() -> None:
    devices = {"TANK1": DeviceSpec.model_validate({"numbers": ["+4915112345678"]})}
    engine = PayloadEngine([rule()], devices, default_country_code="49")
    assert engine.parse(inbound("015112345678", "national")).device == "TANK1"
    spoofed = engine.parse(inbound("015112345678", "alphanumeric"))
    assert spoofed.device != "TANK1"
    assert engine.device_for_sender("015112345678", kind="alphanumeric") is None
    assert engine.device_for_sender("015112345678") == "TANK1"


def test_a_rule_for_numbers_skips_alphanumeric_senders() -> None:
    engine = PayloadEngine([rule(match={"sender": "+49151*"})], {}, default_country_code="49")
    assert engine.match(inbound("+4915112345678", "international")) is not None
    assert engine.match(inbound("+49151ABC")) is None
    assert engine.match(inbound("0151 1234", "alphanumeric")) is None


# --- end to end: the /sms document and the allow-list in the pipeline ---------------------

def alphanumeric_pdu(text: str, sender: str) -> bytes:
    """An SMS-DELIVER whose sender is the alphanumeric address *sender* (TON 101), even
    when it is all digits (encode_deliver would make digits a number)."""
    stand_in = "X" * len(sender)
    pdu = encode_deliver(sender=stand_in, text=text, scts=SCTS, smsc="+491710760000")
    septets = encode_gsm7(sender)
    real = bytes(((7 * len(septets) + 3) // 4, 0xD0)) + pack_septets(septets)
    assert encode_address(stand_in) in pdu and len(real) == len(encode_address(stand_in))
    return pdu.replace(encode_address(stand_in), real)


def national_pdu(text: str, number: str) -> bytes:
    pdu = encode_deliver(sender=number, text=text, scts=SCTS, smsc="+491710760000")
    return pdu.replace(encode_address(number), bytes((len(number), 0xA1))
                       + encode_address(number)[2:])


def run_pipeline(tmp_path: Path, pdus: list[bytes],
                 allow: AllowList | None = None) -> tuple[list[dict[str, Any]],
                                                          list[dict[str, Any]]]:
    store = Store(tmp_path)
    pipeline = Pipeline(store, routes=ROUTES, senders=allow)
    for pdu in pdus:
        store.journal.commit_raw(modem="m1", mode="pdu", raw=pdu)
    while pipeline.run_once():
        pass
    rows = store.outbox.fetch("mqtt", limit=100)
    store.close()
    return ([r.body for r in rows if r.kind == "sms"],
            [r.body for r in rows if r.kind == "deadletter"])


def test_the_sms_document_says_what_kind_of_sender(tmp_path: Path) -> None:
    sms, _ = run_pipeline(tmp_path, [
        encode_deliver(sender="+4915112345678", text="a", scts=SCTS),
        national_pdu("b", "015112345678"),
        encode_deliver(sender="22222", text="c", scts=SCTS),
        encode_deliver(sender="ACME", text="d", scts=SCTS),
        alphanumeric_pdu("e", "01511234"),
    ])
    kinds = {doc["text"]: (doc["sender"], doc["sender_type"]) for doc in sms}
    assert kinds == {"a": ("+4915112345678", "international"),
                     "b": ("015112345678", "national"),
                     "c": ("22222", "short_code"),
                     "d": ("ACME", "alphanumeric"),
                     "e": ("01511234", "alphanumeric")}


def test_the_allow_list_refuses_alphanumeric_look_alikes(tmp_path: Path) -> None:
    """Found: `+49151ABC` and `0151 1234` passed `+49151*`."""
    allow = AllowList({"m1": ["+49151*"]}, default_country_code="49")
    sms, dead = run_pipeline(tmp_path, [
        encode_deliver(sender="+4915112345678", text="real", scts=SCTS),
        alphanumeric_pdu("spoof 1", "+49151ABC"),
        alphanumeric_pdu("spoof 2", "0151 1234"),
        alphanumeric_pdu("spoof 3", "01511234"),
    ], allow)
    assert [doc["text"] for doc in sms] == ["real"]
    assert len(dead) == 3 and all("is not allowed" in d["reason"] for d in dead)


def test_a_plus_before_the_international_prefix_is_dropped() -> None:
    assert normalise_e164("+004915112345678") == "+4915112345678"
    assert normalise_e164("004915112345678", kind="international") == "+4915112345678"


def test_an_alphanumeric_sender_named_like_a_device_is_not_that_device() -> None:
    from modemd.errors import PayloadError

    devices = {"TANK1": DeviceSpec.model_validate({"numbers": ["+4915112345678"]})}
    engine = PayloadEngine([rule()], devices, default_country_code="49")
    with pytest.raises(PayloadError, match="not one of the numbers of device"):
        engine.parse(inbound("TANK1", "alphanumeric"))
    assert engine.parse(inbound("+4915112345678", "international")).device == "TANK1"
    assert engine.parse(inbound("ACME", "alphanumeric")).device == "ACME"

"""The verifier on its own: challenges, matching, every security rule, with a driven clock.

The store is real (SQLite in tmp_path); results are read back from the outbox as the MQTT
sink would publish them. End-to-end tests over the pty and mosquitto are in
test_verify_e2e.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modemd.store import Store
from modemd.verify import Verifier, VerifySettings, codes
from modemd.verify.service import KIND

SECRET = b"0123456789abcdef0123456789abcdef"
NUMBER = "+4915112345678"
T0 = 1_796_000_000.0  # 2026-11-30


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(store: Store, clock: Clock, **overrides: Any) -> Verifier:
    settings = VerifySettings(secret=SECRET, result_topic="modemd/gw1/verify/result",
                              **overrides)
    return Verifier(store, settings, clock=clock)


def results(store: Store, verifier: Verifier) -> list[dict[str, Any]]:
    """What the MQTT sink would publish on the result topic, in order (and acks it)."""
    rows = store.outbox.fetch("mqtt", limit=1000)
    store.outbox.ack("mqtt", [r.seq for r in rows])
    out = []
    for row in rows:
        assert row.kind == KIND
        topic, doc, _ = verifier.render(row.body)
        if topic == "modemd/gw1/verify/result":
            out.append(doc)
    return out


def ask(verifier: Verifier, **doc: Any) -> None:
    verifier.request(json.dumps(doc).encode())


def sms(store: Store, verifier: Verifier, text: str, *, msg_id: str, sender: str = NUMBER,
        sent: float | None = None, received: float | None = None,
        kind: str = "international") -> Any:
    now = verifier.clock()
    with store.db.transaction() as conn:
        return verifier.screen(
            conn, msg_id=msg_id, sender=sender, sender_kind=kind, text=text,
            scts=datetime.fromtimestamp(now if sent is None else sent, UTC),
            received_at=now if received is None else received,
            document={"id": msg_id, "sender": sender, "text": text})


def test_a_code_sent_after_the_challenge_verifies_it(store: Store) -> None:
    clock = Clock()
    v = make(store, clock)
    ask(v, id="login-42", number=NUMBER, code="482913", ttl="5m")
    (pending,) = results(store, v)
    assert pending["state"] == "pending" and pending["id"] == "login-42"
    assert pending["number"] == NUMBER and "code" not in pending  # the caller knows it
    clock.now += 30
    screened = sms(store, v, "My code is 482913, thanks", msg_id="m1")
    assert screened is not None and not screened.publish
    assert screened.document["text"] == "My code is ******, thanks"
    (verified,) = results(store, v)
    assert verified == {"id": "login-42", "number": NUMBER, "state": "verified",
                        "at": verified["at"], "msg_id": "m1"}


def test_generated_code_is_returned_once_and_kept_only_sealed(store: Store,
                                                              tmp_path: Path) -> None:
    clock = Clock()
    v = make(store, clock, code_length=8)
    ask(v, id="gen", number=NUMBER)
    row = store.outbox.fetch("mqtt", limit=10)[0]
    _topic, doc, _ = v.render(row.body)
    code = doc["code"]
    assert len(code) == 8 and code.isdigit()
    assert code not in json.dumps(row.body)  # sealed while it waits in the outbox
    store.outbox.ack("mqtt", [row.seq])
    clock.now += 5
    assert sms(store, v, code, msg_id="m1") is not None
    assert results(store, v)[-1]["state"] == "verified"


@pytest.mark.parametrize(("mode", "keyword", "text", "verifies"), [
    ("token", "", "482913", True),
    ("token", "", "  code: 482913!", True),
    ("token", "", "482 913", True),          # typed in two groups
    ("token", "", "4829130", False),         # a longer number is not the code
    ("token", "", "x482913", False),
    ("exact", "", " 482913 \n", True),
    ("exact", "", "code 482913", False),
    ("keyword", "VERIFY", "verify 482913", True),
    ("keyword", "VERIFY", "482913", False),
    ("keyword", "VERIFY", "hello verify 482913", False),
])
def test_matching_modes(store: Store, mode: Any, keyword: str, text: str,
                        verifies: bool) -> None:
    clock = Clock()
    v = make(store, clock, match=mode, keyword=keyword)
    ask(v, id="c", number=NUMBER, code="482913")
    results(store, v)
    clock.now += 1
    sms(store, v, text, msg_id="m1")
    states = [r["state"] for r in results(store, v)]
    assert states == (["verified"] if verifies else [])


def test_letters_in_a_code_match_whatever_their_case(store: Store) -> None:
    clock = Clock()
    v = make(store, clock)
    ask(v, id="c", number=NUMBER, code="AB12CD")
    results(store, v)
    clock.now += 1
    sms(store, v, "ab12cd", msg_id="m1")
    assert [r["state"] for r in results(store, v)] == ["verified"]


def test_a_challenge_verifies_once(store: Store) -> None:
    clock = Clock()
    v = make(store, clock)
    ask(v, id="c", number=NUMBER, code="482913")
    clock.now += 1
    sms(store, v, "482913", msg_id="m1")
    clock.now += 1
    # the same code again in a new SMS: nothing pending any more, published as usual
    assert sms(store, v, "482913", msg_id="m2") is None
    assert [r["state"] for r in results(store, v)] == ["pending", "verified"]


def test_the_same_sms_replayed_never_counts_twice(store: Store) -> None:
    clock = Clock()
    v = make(store, clock, max_attempts=2)
    ask(v, id="c", number=NUMBER, code="482913")
    clock.now += 1
    for _ in range(3):  # one wrong SMS read three times (a re-read, a replay)
        assert sms(store, v, "111111", msg_id="wrong") is not None
    assert [r["state"] for r in results(store, v)] == ["pending"]  # one attempt, not three
    clock.now += 1
    sms(store, v, "482913", msg_id="right")
    assert results(store, v)[-1]["state"] == "verified"


def test_one_sms_verifies_at_most_one_challenge(store: Store) -> None:
    clock = Clock()
    v = make(store, clock)
    ask(v, id="a", number=NUMBER, code="482913")
    clock.now += 1
    ask(v, id="b", number=NUMBER, code="482913")  # a second challenge for the same number
    clock.now += 1
    sms(store, v, "482913", msg_id="m1")
    done = [r for r in results(store, v) if r["state"] == "verified"]
    assert [r["id"] for r in done] == ["a"]  # the older one; b still waits
    clock.now += 1
    sms(store, v, "482913", msg_id="m2")
    assert [r["id"] for r in results(store, v)] == ["b"]


def test_second_challenge_with_another_code(store: Store) -> None:
    clock = Clock()
    v = make(store, clock)
    ask(v, id="a", number=NUMBER, code="111111")
    ask(v, id="b", number=NUMBER, code="222222")
    results(store, v)
    clock.now += 1
    sms(store, v, "222222", msg_id="m1")
    assert [(r["id"], r["state"]) for r in results(store, v)] == [("b", "verified")]
    from modemd.verify.store import ChallengeStore
    pending = ChallengeStore(store.db).listing()
    assert [(c.id, c.attempts) for c in pending] == [("a", 0)]  # a right code is no guess


def test_an_sms_sent_before_the_challenge_never_counts(store: Store) -> None:
    clock = Clock()
    v = make(store, clock)
    ask(v, id="c", number=NUMBER, code="482913")
    results(store, v)
    clock.now += 60
    # sent (SCTS) a minute before the challenge, e.g. left on the SIM and swept in now
    assert sms(store, v, "482913", msg_id="old", sent=T0 - 60) is None
    # or on the gateway already before the challenge, processed only now
    assert sms(store, v, "482913", msg_id="early", sent=T0 + 1, received=T0 - 1) is None
    assert results(store, v) == []
    sms(store, v, "482913", msg_id="new", sent=T0 + 30)
    assert [r["state"] for r in results(store, v)] == ["verified"]


def test_sent_in_the_same_second_as_the_challenge_counts(store: Store) -> None:
    clock = Clock(T0 + 0.7)
    v = make(store, clock)
    ask(v, id="c", number=NUMBER, code="482913")
    results(store, v)
    sms(store, v, "482913", msg_id="m1", sent=T0, received=T0 + 0.9)  # SCTS has seconds only
    assert [r["state"] for r in results(store, v)] == ["verified"]


def test_wrong_codes_fail_the_challenge_at_the_limit(store: Store) -> None:
    clock = Clock()
    v = make(store, clock, max_attempts=3)
    ask(v, id="c", number=NUMBER, code="482913")
    results(store, v)
    for i in range(3):
        clock.now += 1
        assert sms(store, v, f"00000{i}", msg_id=f"w{i}") is not None
    (failed,) = results(store, v)
    assert failed["state"] == "failed" and failed["error"] == "too many wrong codes"
    clock.now += 1
    assert sms(store, v, "482913", msg_id="late") is None  # failed for good


def test_an_sms_without_anything_like_a_code_is_no_attempt(store: Store) -> None:
    clock = Clock()
    v = make(store, clock, max_attempts=1)
    ask(v, id="c", number=NUMBER, code="482913")
    results(store, v)
    clock.now += 1
    assert sms(store, v, "ok!", msg_id="m1") is None
    assert results(store, v) == []


def test_challenge_expires(store: Store) -> None:
    clock = Clock()
    v = make(store, clock)
    ask(v, id="c", number=NUMBER, code="482913", ttl=60)
    results(store, v)
    clock.now += 59
    assert v.expire_due() == 0
    clock.now += 2
    assert v.expire_due() == 1
    (expired,) = results(store, v)
    assert expired["state"] == "expired"
    assert sms(store, v, "482913", msg_id="m1") is None


def test_alphanumeric_senders_never_verify(store: Store) -> None:
    clock = Clock()
    v = make(store, clock)
    ask(v, id="c", number=NUMBER, code="482913")
    results(store, v)
    clock.now += 1
    assert sms(store, v, "482913", msg_id="m1", sender=NUMBER, kind="alphanumeric") is None
    assert sms(store, v, "482913", msg_id="m2", sender="BANK") is None
    assert results(store, v) == []


@pytest.mark.parametrize(("request_doc", "error"), [
    ({"id": "x", "code": "123456"}, "number is required"),
    ({"id": "x", "number": "BANK", "code": "123456"}, "E.164"),
    ({"id": "x", "number": "12345", "code": "123456"}, "E.164"),
    ({"id": "x", "number": NUMBER, "code": "12"}, "4-12"),
    ({"id": "x", "number": NUMBER, "code": "12 34 56"}, "4-12"),
    ({"id": "x", "number": NUMBER, "ttl": "2h"}, "at most"),
    ({"id": "x", "number": NUMBER, "ttl": "soon"}, "ttl"),
    ({"id": "x" * 65, "number": NUMBER}, "id must be"),
    ({"id": "x", "number": NUMBER, "prompt": True}, "prompt needs sending"),
])
def test_bad_requests_are_rejected_with_a_reason(store: Store, request_doc: dict[str, Any],
                                                 error: str) -> None:
    v = make(store, Clock())
    ask(v, **request_doc)
    (result,) = results(store, v)
    assert result["state"] == "rejected" and error in result["error"], result


def test_a_request_that_is_not_json_is_rejected(store: Store) -> None:
    v = make(store, Clock())
    v.request(b"\xff{not json")
    (result,) = results(store, v)
    assert result["state"] == "rejected" and result["id"] is None


def test_rate_limit_per_number(store: Store) -> None:
    clock = Clock()
    v = make(store, clock, max_per_number=2)
    for i in range(3):
        ask(v, id=f"c{i}", number=NUMBER, code="482913")
    states = [r["state"] for r in results(store, v)]
    assert states == ["pending", "pending", "rejected"]
    ask(v, id="other", number="+4915199999999", code="482913")  # another number is fine
    assert results(store, v)[0]["state"] == "pending"
    clock.now += 3601
    ask(v, id="c9", number=NUMBER, code="482913")
    assert results(store, v)[0]["state"] == "pending"


def test_a_redelivered_request_is_answered_not_doubled(store: Store) -> None:
    v = make(store, Clock())
    ask(v, id="c", number=NUMBER, code="482913")
    ask(v, id="c", number=NUMBER, code="482913")  # QoS 1 redelivery
    assert [r["state"] for r in results(store, v)] == ["pending", "pending"]
    ask(v, id="c", number="+4915199999999", code="482913")  # another request, same id
    (result,) = results(store, v)
    assert result["state"] == "rejected" and "already used" in result["error"]


def test_national_numbers_are_normalised_with_the_country(store: Store) -> None:
    clock = Clock()
    v = make(store, clock, default_country_code="49")
    ask(v, id="c", number="0151 12345678", code="482913")
    (pending,) = results(store, v)
    assert pending["number"] == "+4915112345678"
    clock.now += 1
    sms(store, v, "482913", msg_id="m1", sender="015112345678", kind="national")
    assert results(store, v)[0]["state"] == "verified"


def test_response_topic_gets_the_result_with_correlation_data(store: Store) -> None:
    v = make(store, Clock())
    v.request(json.dumps({"id": "c", "number": NUMBER, "code": "482913"}).encode(),
              response_topic="app/replies/7", correlation=b"\x00corr")
    rendered = [v.render(r.body) for r in store.outbox.fetch("mqtt", limit=10)]
    assert [(t, d["state"], c) for t, d, c in rendered] == [
        ("modemd/gw1/verify/result", "pending", None),
        ("app/replies/7", "pending", b"\x00corr")]


def test_no_code_in_clear_in_the_store_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = Store(state)
    clock = Clock()
    v = make(store, clock, answers="masked")
    ask(v, id="c", number=NUMBER, code="739154")
    ask(v, id="g", number="+4915199999999")
    row = store.outbox.fetch("mqtt", limit=10)[1]
    generated = v.render(row.body)[1]["code"]
    store.outbox.ack("mqtt", [r.seq for r in store.outbox.fetch("mqtt", limit=10)])
    clock.now += 1
    screened = sms(store, v, "739154", msg_id="m1")
    assert screened is not None and "739154" not in json.dumps(screened.document)
    store.close()
    blob = b"".join(p.read_bytes() for p in state.iterdir() if p.is_file())
    for code in ("739154", generated):
        assert code.encode() not in blob
        assert code.encode("utf-16-be") not in blob


@given(st.text(max_size=80), st.sampled_from(["token", "exact", "keyword"]))
def test_candidates_never_raise_and_mask_hides_them(text: str, mode: Any) -> None:
    found = codes.candidates(text, mode=mode, keyword="VERIFY")
    masked = codes.mask(text, found.spans)
    assert len(masked) == len(text)
    for value in found.values:
        assert codes.CODE_RE.match(value)
    for start, end in found.spans:
        assert all(c in "* \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029" or c.isspace()
                   for c in masked[start:end])


@given(st.text(alphabet="0123456789abcdefXYZ", min_size=4, max_size=12), st.binary(min_size=16,
                                                                                   max_size=16))
def test_seal_round_trips_and_hides(code: str, salt: bytes) -> None:
    sealed = codes.seal(SECRET, salt, code)
    assert codes.unseal(SECRET, salt, sealed) == code
    assert code not in sealed or len(code) < 4


@given(st.from_regex(r"[A-Za-z0-9]{4,12}", fullmatch=True), st.text(max_size=30),
       st.text(max_size=30))
def test_a_code_anywhere_as_a_whole_word_matches(code: str, before: str, after: str) -> None:
    text = f"{before} {code} {after}"
    salt = codes.new_salt()
    stored = codes.code_hash(SECRET, salt, code)
    found = codes.candidates(text, mode="token")
    span = codes.matching_span(SECRET, salt, stored, found)
    assert span is not None
    assert "".join(text[span[0]:span[1]].split()).casefold() == code.casefold()

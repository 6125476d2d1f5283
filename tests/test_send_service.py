"""The send domain without a modem: request checks, safety rules, the queue's state machine,
report matching and reply linking, the +CMS ERROR classification."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modemd.config import SendConfig
from modemd.errors import CommandFailed
from modemd.modem.sending import SubmitError, classify
from modemd.send.policy import costly_kind
from modemd.send.request import RequestRefused, parse_request
from modemd.send.service import SendService, same_number
from modemd.sms import SmsStatusReport, decode_pdu
from modemd.sms.submit import encode_status_report
from modemd.store import Store

TO = "+4915112345678"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(tmp_path)
    yield s
    s.close()


def service(store: Store, clock: Clock | None = None, **config: Any) -> SendService:
    cfg = SendConfig(**{"enabled": True, "allowed_destinations": ["+49*"], **config})
    return SendService(store, cfg, modems=["m1"], status_sinks=["mqtt"],
                       clock=clock or Clock())


def report(mr: int, status: int = 0, to: str = TO) -> SmsStatusReport:
    now = datetime.now(UTC).replace(microsecond=0)
    decoded = decode_pdu(encode_status_report(message_reference=mr, recipient=to, scts=now,
                                              discharge_time=now, status=status))
    assert isinstance(decoded, SmsStatusReport)
    return decoded


def published(store: Store, request_id: str) -> list[str]:
    rows = store.outbox.fetch("mqtt", limit=1000)
    return [r.body["state"] for r in rows if r.kind == "send_status" and r.msg_id == request_id]


def send_all(svc: SendService, mrs: list[int]) -> None:
    for mr in mrs:
        job = svc.next_job("m1")
        assert job is not None
        svc.begin(job, "m1")
        svc.sent(job, "m1", mr)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"to": TO}, "either text or data_b64"),
        ({"to": TO, "text": "a", "data_b64": "AA=="}, "either text or data_b64"),
        ({"to": "+49 151 abc", "text": "a"}, "not a phone number"),
        ({"to": "+123", "text": "a"}, "7-15 digits"),
        ({"text": "a"}, "destination number is required"),
        ({"to": TO, "text": ""}, "non-empty"),
        ({"to": TO, "data_b64": "!!"}, "not valid base64"),
        ({"to": TO, "data_b64": "AA==", "port": 70000}, "0-65535"),
        ({"to": TO, "text": "a", "port": 5}, "only with data_b64"),
        ({"to": TO, "text": "a", "valid_for": "1m"}, "between 5m"),
        ({"to": TO, "text": "a", "flash": "yes"}, "true or false"),
        ({"to": TO, "text": "a", "colour": "red"}, "unknown key"),
        ({"id": "x" * 65, "to": TO, "text": "a"}, "1-64 characters"),
        ({"to": TO, "text": "a\ud800"}, "lone surrogate"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(doc: Any, reason: str) -> None:
    with pytest.raises(RequestRefused, match=reason):
        parse_request(doc)


def test_request_normalises_numbers_and_keeps_the_caller_id() -> None:
    request = parse_request({"id": "c1", "to": "0151 12345678", "text": "hi",
                             "valid_for": "1d"}, default_country_code="49")
    assert (request.id, request.to, request.valid_for) == ("c1", TO, 86400.0)
    assert parse_request({"to": TO, "text": "x"}).id.startswith("sms-")
    data = parse_request({"to": TO, "data_b64": base64.b64encode(b"\x01").decode(),
                          "port": 9200})
    assert (data.data, data.port) == (b"\x01", 9200)


def test_premium_and_shared_cost_ranges() -> None:
    assert costly_kind("+499001234567") == "a premium-rate number"
    assert costly_kind("+4918012345") == "a shared-cost number"
    assert costly_kind("+19002345678") == "a premium-rate number"
    assert costly_kind(TO) is None


def test_classification_of_cms_errors() -> None:
    def of(code: int | None) -> SubmitError:
        return classify(CommandFailed("AT+CMGS=20", "+CMS ERROR", code))

    assert of(331).transient and of(42).transient and of(500).transient
    assert not of(21).transient and not of(1).transient and not of(304).transient
    assert of(1).meaning == "unassigned (unallocated) number"
    assert of(None).transient and of(600).transient and not of(260).transient


def test_same_number_across_national_and_international_forms() -> None:
    assert same_number(TO, "015112345678") and same_number(TO, "4915112345678")
    assert not same_number(TO, "+4915112345679") and not same_number("123", "+4915100000123")


def test_queue_state_machine_through_delivered(store: Store) -> None:
    svc = service(store)
    doc = svc.accept({"id": "a", "to": TO, "text": "x" * 200})
    assert (doc["state"], doc["parts"]) == ("queued", 2)
    send_all(svc, [10, 11])
    assert svc.queue.get("a").state == "sent"  # type: ignore[union-attr]
    conn = store.db.connection()
    assert svc.on_status_report(conn, report(10), svc.clock()) == "a"
    assert svc.queue.get("a").state == "sent"  # type: ignore[union-attr]  # one of two
    assert svc.on_status_report(conn, report(11), svc.clock()) == "a"
    assert svc.queue.get("a").state == "delivered"  # type: ignore[union-attr]
    assert published(store, "a") == ["queued", "sent", "delivered"]


def test_pending_report_keeps_sent_and_a_failed_part_fails_the_set(store: Store) -> None:
    svc = service(store)
    svc.accept({"id": "b", "to": TO, "text": "y" * 200})
    send_all(svc, [20, 21])
    conn = store.db.connection()
    svc.on_status_report(conn, report(20, status=0x21), svc.clock())  # SME busy, still trying
    assert svc.queue.get("b").state == "sent"  # type: ignore[union-attr]
    svc.on_status_report(conn, report(20, status=0x00), svc.clock())
    svc.on_status_report(conn, report(21, status=0x41), svc.clock())
    row = svc.queue.get("b")
    assert row is not None and row.state == "failed"
    assert row.error == "failed: incompatible destination"


def test_report_for_another_recipient_or_mr_matches_nothing(store: Store) -> None:
    svc = service(store)
    svc.accept({"id": "c", "to": TO, "text": "z"})
    send_all(svc, [30])
    conn = store.db.connection()
    assert svc.on_status_report(conn, report(31), svc.clock()) is None
    assert svc.on_status_report(conn, report(30, to="+4917099999999"), svc.clock()) is None
    assert svc.on_status_report(conn, report(30, to="015112345678"), svc.clock()) == "c"


def test_interrupted_send_becomes_unknown_and_is_never_offered_again(store: Store) -> None:
    svc = service(store)
    svc.accept({"id": "d", "to": TO, "text": "x" * 200})
    job = svc.next_job("m1")
    assert job is not None
    svc.begin(job, "m1")
    # the daemon dies here; a new one starts over the same store
    again = service(store)
    assert again.recover_interrupted() == 1
    row = again.queue.get("d")
    assert row is not None and row.state == "unknown" and "not sent again" in str(row.error)
    assert again.next_job("m1") is None
    assert published(store, "d") == ["queued", "unknown"]


def test_transient_errors_back_off_then_fail(store: Store) -> None:
    clock = Clock()
    svc = service(store, clock, retry_attempts=3, retry_backoff=10)
    svc.accept({"id": "e", "to": TO, "text": "x"})
    for expected_delay in (10, 20):
        job = svc.next_job("m1")
        assert job is not None
        svc.begin(job, "m1")
        svc.failed(job, "m1", SubmitError(331, "no network service", transient=True))
        assert svc.next_job("m1") is None  # not due yet
        clock.now += expected_delay
    job = svc.next_job("m1")
    assert job is not None
    svc.begin(job, "m1")
    svc.failed(job, "m1", SubmitError(331, "no network service", transient=True))
    row = svc.queue.get("e")
    assert row is not None and row.state == "failed" and "gave up after 3" in str(row.error)


def test_a_request_not_sent_within_queue_timeout_fails(store: Store) -> None:
    clock = Clock()
    svc = service(store, clock, queue_timeout=60)
    svc.accept({"id": "f", "to": TO, "text": "old"})
    clock.now += 61
    assert svc.next_job("m1") is None
    row = svc.queue.get("f")
    assert row is not None and row.state == "failed" and "queue_timeout" in str(row.error)


def test_rate_limit_counts_accepted_requests_per_hour(store: Store) -> None:
    clock = Clock()
    svc = service(store, clock, max_per_hour=2)
    assert [svc.accept({"to": TO, "text": str(i)})["state"] for i in range(3)] == [
        "queued", "queued", "failed"]
    svc.accept({"to": "+4412345678901", "text": "refused, not counted"})
    clock.now += 3601
    assert svc.accept({"to": TO, "text": "later"})["state"] == "queued"


def test_replies_link_within_the_window(store: Store) -> None:
    clock = Clock()
    svc = service(store, clock, reply_window=600)
    svc.accept({"id": "g", "to": TO, "text": "?"})
    send_all(svc, [1])
    conn = store.db.connection()
    assert svc.in_reply_to(conn, TO, clock.now + 10) == "g"
    assert svc.in_reply_to(conn, TO, clock.now + 601) is None
    assert svc.in_reply_to(conn, "+4917000000000", clock.now + 10) is None


def test_too_many_parts_refused(store: Store) -> None:
    svc = service(store, max_parts=2)
    doc = svc.accept({"to": TO, "text": "x" * 400})
    assert doc["state"] == "failed" and "3 parts" in doc["error"]


def test_two_modems_never_take_the_same_part_and_a_set_stays_on_one(store: Store) -> None:
    svc = SendService(store, SendConfig(enabled=True, allowed_destinations=["+49*"]),
                      modems=["m1", "m2"], clock=Clock())
    svc.accept({"id": "two", "to": TO, "text": "x" * 200})
    first = svc.next_job("m1")
    same = svc.next_job("m2")
    assert first is not None and same is not None and same.sequence == first.sequence
    assert svc.begin(first, "m1") and not svc.begin(same, "m2")
    assert svc.next_job("m2") is None  # part 2 waits for part 1, on m1
    svc.sent(first, "m1", 1)
    assert svc.next_job("m2") is None
    second = svc.next_job("m1")
    assert second is not None and second.sequence == 2


# --- fuzz: whatever arrives on the request topic, only a refusal or a request comes out -----

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)
request_like = st.fixed_dictionaries(
    {}, optional={"id": json_values | st.text(max_size=70), "to": json_values | st.just(TO),
                  "text": json_values | st.text(), "data_b64": json_values,
                  "port": json_values, "flash": json_values, "valid_for": json_values,
                  "modem": json_values})


@settings(max_examples=300, deadline=None)
@given(st.one_of(request_like, json_values, st.binary(max_size=200)))
def test_parse_request_raises_nothing_but_a_refusal(payload: Any) -> None:
    try:
        request = parse_request(payload if isinstance(payload, bytes | dict) else
                                json.dumps(payload))
    except RequestRefused as exc:
        assert exc.reason
    else:
        assert request.to.lstrip("+").isdigit()
        assert (request.text is None) != (request.data is None)


@settings(max_examples=60, deadline=None)
@given(request_like)
def test_accept_always_answers_with_a_status(tmp_path_factory: Any, payload: Any) -> None:
    store = Store(tmp_path_factory.mktemp("fuzz"))
    try:
        doc = service(store).accept(payload)
        assert doc["state"] in ("queued", "failed")
        assert doc["state"] == "queued" or doc["error"]
    finally:
        store.close()


def test_finished_requests_are_forgotten_after_30_days(store: Store) -> None:
    clock = Clock()
    svc = service(store, clock)
    svc.accept({"id": "old", "to": TO, "text": "x"})
    send_all(svc, [5])
    conn = store.db.connection()
    svc.on_status_report(conn, report(5), clock.now)
    svc.accept({"id": "waiting", "to": TO, "text": "y"})
    assert svc.queue.prune(conn, older_than=clock.now - 1) == 0
    assert svc.queue.prune(conn, older_than=clock.now + 10**9) == 1  # only the finished one
    assert svc.queue.get("old") is None and svc.queue.parts("old") == []
    assert svc.queue.get("waiting") is not None


def test_one_senders_empty_look_does_not_hide_work_pinned_to_another(store: Store) -> None:
    # two senders (a modem and a transceiver bind) share the service: a request for the bind
    # must reach it however often the modem looks first and finds nothing for itself
    cfg = SendConfig(enabled=True, allowed_destinations=["+49*"])
    svc = SendService(store, cfg, modems=["m1", "agg"], clock=Clock())
    for sender in ("m1", "agg"):  # both idle: the first look after start finds nothing
        assert svc.wanted(sender) and svc.next_job(sender) is None
    svc.accept({"id": "for-agg", "to": TO, "text": "hi", "modem": "agg"})
    assert svc.wanted("m1") and svc.next_job("m1") is None
    assert svc.wanted("agg"), "the bind's sender was told of nothing"
    job = svc.next_job("agg")
    assert job is not None and job.request_id == "for-agg"

"""The time-series sink against a real VictoriaMetrics (each test starts its own server).

Written through the outbox, read back through VictoriaMetrics' export API: values, the
gateway/modem/device tags, and timestamps equal to the SMS service-centre time.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modemd.sinks.base import Backoff
from modemd.sinks.influx import InfluxSink, build_point, check_influx, line_of
from modemd.store import Store
from tests.helpers import wait_until
from tests.victoriametrics import Sample, VictoriaMetrics, free_port

pytestmark = pytest.mark.integration

GATEWAY = "gw-test"
SINK = "influx"


def epoch(*utc: int) -> int:
    """Seconds since the epoch of a UTC wall-clock time (independent of the sink's code)."""
    return calendar.timegm((*utc, 0, 0, 0))


def offset_ms(msg_id: str) -> int:
    """The sub-second offset of a message id, in ms: sha256, first 8 bytes, modulo 1000."""
    return int.from_bytes(hashlib.sha256(msg_id.encode()).digest()[:8], "big") % 1000


def stamp(device: str, sent_at: str, *utc: int) -> int:
    """The timestamp (ms) of ``reading(device, sent_at=sent_at)`` at the UTC second ``utc``."""
    return epoch(*utc) * 1000 + offset_ms(f"{device}-{sent_at}")


def reading(
    device: str = "PUMP01",
    *,
    sent_at: str = "2026-11-25T10:00:00+01:00",
    modem: str = "modem1",
    tags: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "device": device,
        "modem": modem,
        "measurement": "device_status",
        "fields": fields or {"battery": 3.71, "temperature": 21.5},
        "tags": tags or {},
        "units": {"battery": "V", "temperature": "°C"},
        "sent_at": sent_at,
        "msg_id": f"{device}-{sent_at}",
        "rule": "pump-controller",
    }


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    with VictoriaMetrics(tmp_path / "vm") as server:
        yield server


def make_sink(store: Store, url: str, **kwargs: Any) -> InfluxSink:
    kwargs.setdefault("token", None)
    return InfluxSink(store, url=url, org="modemd", bucket="modemd", gateway_id=GATEWAY, **kwargs)


def put(store: Store, body: dict[str, Any], kind: str = "reading") -> None:
    store.outbox.put(sink=SINK, kind=kind, msg_id=body.get("msg_id"), body=body)


def stats(store: Store) -> Any:
    (result,) = store.outbox.stats([SINK])
    return result


def rows(store: Store) -> list[tuple[int, str, int, str | None]]:
    """(seq, state, attempts, error) of every influx outbox row."""
    return [
        (int(seq), state, int(attempts), error)
        for seq, state, attempts, error in store.db.connection().execute(
            "SELECT seq, state, attempts, error FROM outbox WHERE sink = ? ORDER BY seq", (SINK,)
        )
    ]


def drain(sink: InfluxSink) -> None:
    """Run the sink on this thread until it has nothing more to do right away."""
    for _ in range(100):
        if not sink.run_once():
            return
    raise AssertionError("run_once kept asking for more")


def by_name(samples: list[Sample]) -> dict[str, list[Sample]]:
    result: dict[str, list[Sample]] = {}
    for sample in samples:
        result.setdefault(sample.name, []).append(sample)
    return result


# --- values, tags, timestamps ------------------------------------------------------------------


def test_readings_arrive_with_values_tags_and_sent_at_timestamps(
    vm: VictoriaMetrics, store: Store
) -> None:
    put(store, reading("PUMP01", battery=3.71, temperature=21.5, tags={"site": "north"}))
    put(store, reading("PUMP01", sent_at="2026-11-25T10:05:07+01:00", battery=3.69,
                       temperature=21.0, tags={"site": "north"}))
    put(store, reading("PUMP02", modem="modem2", sent_at="2026-11-25T08:59:59Z", battery=4.1))
    # Sub-second service-centre times (some text-mode modems) land on their whole second.
    put(store, reading("PUMP03", sent_at="2026-11-24T23:30:00.900-05:00", battery=2.5))
    sink = make_sink(store, vm.url)
    try:
        drain(sink)
    finally:
        sink.close()

    assert stats(store).pending == 0
    assert stats(store).delivered == 4
    got = by_name(vm.export('{__name__=~"device_status_.*"}'))
    assert set(got) == {"device_status_battery", "device_status_temperature"}
    north = {"gateway": GATEWAY, "modem": "modem1", "device": "PUMP01", "site": "north"}
    first = stamp("PUMP01", "2026-11-25T10:00:00+01:00", 2026, 11, 25, 9, 0, 0)
    second = stamp("PUMP01", "2026-11-25T10:05:07+01:00", 2026, 11, 25, 9, 5, 7)
    assert got["device_status_battery"] == [
        Sample("device_status_battery", north, 3.71, first),
        Sample("device_status_battery", north, 3.69, second),
        Sample("device_status_battery", {"gateway": GATEWAY, "modem": "modem2",
                                         "device": "PUMP02"},
               4.1, stamp("PUMP02", "2026-11-25T08:59:59Z", 2026, 11, 25, 8, 59, 59)),
        Sample("device_status_battery", {"gateway": GATEWAY, "modem": "modem1",
                                         "device": "PUMP03"},
               2.5, stamp("PUMP03", "2026-11-24T23:30:00.900-05:00", 2026, 11, 25, 4, 30, 0)),
    ]
    assert [(s.labels["device"], s.value, s.timestamp_ms)
            for s in got["device_status_temperature"]] == [
        ("PUMP01", 21.5, first),
        ("PUMP01", 21.0, second),
    ]


def test_field_types_are_kept_and_text_never_becomes_a_number(
    vm: VictoriaMetrics, store: Store
) -> None:
    body = reading(count=7, battery=3.71, whole=3.0, running=True, stopped=False, mode="auto",
                   note="first line\nsecond line", error="overheat")
    body["enum_codes"] = {"error": 3}  # an enum label and its code
    line = line_of(build_point("reading", body, gateway_id=GATEWAY)).decode()
    # What the server is told: int stays int (i suffix), a float without fraction stays a
    # float (no suffix), bools as such, an enum label as its code; plain text is left out
    # (VictoriaMetrics would store it as 0, a value nobody sent).
    nanos = stamp("PUMP01", "2026-11-25T10:00:00+01:00", 2026, 11, 25, 9, 0, 0) * 1_000_000
    assert line == (
        f"device_status,device=PUMP01,gateway={GATEWAY},modem=modem1 battery=3.71,count=7i,"
        f"error=3i,running=true,stopped=false,whole=3 {nanos}"
    )

    put(store, body)
    sink = make_sink(store, vm.url)
    try:
        drain(sink)
    finally:
        sink.close()
    got = {s.name: s.value for s in vm.export('{__name__=~"device_status_.*"}')}
    # VictoriaMetrics stores numbers only: bool as 1/0, the enum as its code, no text at all.
    assert got == {
        "device_status_count": 7.0,
        "device_status_battery": 3.71,
        "device_status_whole": 3.0,
        "device_status_running": 1.0,
        "device_status_stopped": 0.0,
        "device_status_error": 3.0,
    }


def test_modem_health_is_written_as_measurement_modem(vm: VictoriaMetrics, store: Store) -> None:
    put(store, {"modem": "modem1", "imei": "356938035643809", "rssi_dbm": -71, "ber": 0,
                "registration": "registered_home", "operator": "26201", "storage_used": 3,
                "storage_total": 30, "updated_at": "2026-11-25T09:15:00+00:00"},
        kind="modem_health")
    # The nested shape of the modem state document is understood as well.
    put(store, {"modem": "modem2", "signal": {"rssi": -95, "ber": 99},
                "registration": "registered_roaming", "operator": "Telekom.de",
                "storage": {"used": 0, "total": 50}, "updated_at": "2026-11-25T10:15:00+01:00"},
        kind="modem_health")
    sink = make_sink(store, vm.url)
    try:
        drain(sink)
    finally:
        sink.close()
    assert stats(store).pending == 0
    got = {(s.name, s.labels["modem"]): (s.value, s.timestamp_ms, s.labels)
           for s in vm.export('{__name__=~"modem_.*"}')}
    ts = epoch(2026, 11, 25, 9, 15, 0) * 1000
    one = {"gateway": GATEWAY, "modem": "modem1"}
    assert got[("modem_rssi_dbm", "modem1")] == (-71.0, ts, one)
    assert got[("modem_ber", "modem1")] == (0.0, ts, one)
    assert got[("modem_storage_used", "modem1")] == (3.0, ts, one)
    assert got[("modem_storage_total", "modem1")] == (30.0, ts, one)
    # registration as its 3GPP TS 27.007 <stat> number; the operator name is text: left out
    assert got[("modem_registration", "modem1")] == (1.0, ts, one)
    assert got[("modem_registration", "modem2")][:2] == (5.0, ts)
    assert ("modem_operator", "modem1") not in got
    assert got[("modem_rssi_dbm", "modem2")][:2] == (-95.0, ts)
    assert got[("modem_storage_total", "modem2")][:2] == (50.0, ts)
    assert ("modem_operator", "modem2") not in got


# --- outage ------------------------------------------------------------------------------


def test_outage_is_ridden_out_and_every_point_arrives(
    vm: VictoriaMetrics, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="modemd")
    sink = make_sink(store, vm.url, backoff=Backoff(base=0.2, cap=1.0), timeout_s=2.0)
    sink.idle_wait = 0.2
    sink.start()
    try:
        put(store, reading("PUMP00", sent_at="2026-11-25T09:00:00+00:00"))
        sink.wake()
        wait_until(lambda: stats(store).pending == 0, 10, what="the first reading")

        vm.stop()
        outage_started = time.monotonic()
        for i in range(20):
            put(store, reading(f"PUMP{i + 1:02d}", sent_at=f"2026-11-25T09:01:{i:02d}+00:00",
                               battery=3.0 + i / 100))
            sink.wake()
            time.sleep(0.1)
        time.sleep(max(0.0, 5.0 - (time.monotonic() - outage_started)))

        during = rows(store)
        assert len(during) == 20
        assert all(state == "pending" for _, state, _, _ in during)  # nothing parked
        assert all(attempts >= 1 for _, _, attempts, _ in during), during
        assert max(attempts for _, _, attempts, _ in during) >= 2
        assert all(error and "cannot reach" in error for _, _, _, error in during)

        vm.start()  # same port, same data directory
        wait_until(lambda: stats(store).pending == 0, 15, what="the backlog after the restart")
    finally:
        sink.stop()
    assert sink._thread is not None and not sink._thread.is_alive()

    assert stats(store).delivered == 21
    assert stats(store).poisoned == 0
    battery = vm.export('{__name__="device_status_battery"}')
    assert len(battery) == 21
    assert {s.labels["device"] for s in battery} == {f"PUMP{i:02d}" for i in range(21)}
    expected = {f"PUMP{i + 1:02d}": (3.0 + i / 100, epoch(2026, 11, 25, 9, 1, i) * 1000)
                for i in range(20)}
    for s in battery:
        if s.labels["device"] != "PUMP00":
            assert (s.value, s.timestamp_ms) == pytest.approx(expected[s.labels["device"]])

    # One warning when the outage starts, one when it ends: not one per row or per attempt.
    messages = [r.getMessage() for r in caplog.records
                if r.name == "modemd.sinks.influx" and r.levelno >= logging.WARNING]
    assert len([m for m in messages if "cannot deliver" in m]) == 1, messages
    assert len([m for m in messages if "again after" in m]) == 1, messages


# --- refused rows ------------------------------------------------------------------------


def test_refused_and_malformed_rows_are_parked_without_blocking_the_rest(
    vm: VictoriaMetrics, store: Store
) -> None:
    put(store, reading("GOOD1", battery=1.1))
    # VictoriaMetrics refuses a line longer than -influx.maxLineSize (256 KiB) with HTTP 400.
    put(store, reading("HUGE", battery=9.9, tags={"log": "x" * 1_000_000}))
    put(store, reading("GOOD2", battery=2.2))
    put(store, {**reading("NOFIELDS"), "fields": {}})
    put(store, {k: v for k, v in reading("NOTIME").items() if k != "sent_at"})
    put(store, reading("NAIVE", sent_at="2026-11-25T10:00:00"))
    put(store, reading("NANONLY", battery=float("nan")))
    put(store, reading("ANCIENT", sent_at="1969-07-20T20:17:40Z"))  # VM would drop it silently
    put(store, reading("GOOD3", battery=3.3, spare=float("inf")))  # inf dropped, battery kept
    put(store, reading("GOOD4", battery=4.4))
    sink = make_sink(store, vm.url, batch_size=100)
    try:
        sink.run_once()  # one pass: the good rows must not wait behind the bad ones
        assert stats(store).pending == 0
        parked = {json.loads(body)["device"]: error for body, error in store.db.connection()
                  .execute("SELECT body, error FROM outbox WHERE state = 'poisoned'")}
        assert set(parked) == {"HUGE", "NOFIELDS", "NOTIME", "NAIVE", "NANONLY", "ANCIENT"}
        assert parked["HUGE"].startswith("HTTP 400: ")
        assert "too long line" in parked["HUGE"]  # the server's own words
        assert "fields" in parked["NOFIELDS"]
        assert "sent_at" in parked["NOTIME"] and "missing" in parked["NOTIME"]
        assert "offset" in parked["NAIVE"]
        assert "battery" in parked["NANONLY"]
        assert "1970" in parked["ANCIENT"]
        # Bisection, not one request per row: 1 + about 2·log2(n) requests.
        assert sink.requests <= 1 + 2 * 3

        put(store, reading("GOOD5", battery=5.5))  # and later rows keep flowing
        drain(sink)
    finally:
        sink.close()
    assert stats(store).pending == 0
    assert stats(store).poisoned == 6
    battery = {s.labels["device"]: s.value for s in vm.export('{__name__="device_status_battery"}')}
    assert battery == {"GOOD1": 1.1, "GOOD2": 2.2, "GOOD3": 3.3, "GOOD4": 4.4, "GOOD5": 5.5}
    assert vm.export('{__name__="device_status_spare"}') == []


def test_replay_leaves_one_sample_per_timestamp(vm: VictoriaMetrics, store: Store) -> None:
    body = reading("PUMP01", battery=3.71, temperature=21.5)
    sink = make_sink(store, vm.url)
    try:
        put(store, body)
        drain(sink)
        time.sleep(1.1)  # a later second: a sink stamping "now" would make a second sample
        put(store, body)  # the same SMS processed again (e.g. after a crash)
        drain(sink)
    finally:
        sink.close()
    assert stats(store).delivered == 2
    got = vm.export('{__name__=~"device_status_.*"}')
    ts = stamp("PUMP01", "2026-11-25T10:00:00+01:00", 2026, 11, 25, 9, 0, 0)
    assert [(s.name, s.value, s.timestamp_ms) for s in got] == [
        ("device_status_battery", 3.71, ts),
        ("device_status_temperature", 21.5, ts),
    ]


# --- answers that are not the rows' fault, and the configuration check ----------------------


class _Fake:
    """A tiny HTTP server answering every request with one status and body."""

    def __init__(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                fake.requests.append(("POST", self.path, dict(self.headers)))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def fake_server() -> Iterator[Callable[..., _Fake]]:
    started: list[_Fake] = []

    def start(status: int, body: bytes, content_type: str = "text/plain") -> _Fake:
        started.append(_Fake(status, body, content_type))
        return started[-1]

    yield start
    for fake in started:
        fake.close()


TOKEN = "s3cr3t-t0ken-never-shown"


@pytest.mark.parametrize(
    ("status", "body", "expect"),
    [
        (401, b'{"code":"unauthorized","message":"unauthorized access"}', "token"),
        (403, b'{"code":"forbidden","message":"insufficient permissions for write"}', "token"),
        (404, b'{"code":"not found","message":"bucket \\"modemd\\" not found"}', "bucket"),
        (404, b"404 page not found\n", "InfluxDB 1.6"),
        (429, b"slow down", "rate limiting"),
        (503, b"service unavailable", "HTTP 503"),
    ],
)
def test_server_trouble_keeps_rows_waiting_and_never_shows_the_token(
    fake_server: Callable[..., _Fake], store: Store, caplog: pytest.LogCaptureFixture,
    status: int, body: bytes, expect: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = fake_server(status, body.replace(b"access", f"access for Token {TOKEN}".encode()))
    for i in range(3):
        put(store, reading(f"PUMP{i}"))
    sink = make_sink(store, fake.url, token=TOKEN, backoff=Backoff(base=30.0, cap=60.0))
    try:
        assert sink.run_once() is False
        assert sink.run_once() is False  # backing off: no new request yet
    finally:
        sink.close()
    assert len(fake.requests) == 1  # the batch, not one request per row, and no bisection
    assert fake.requests[0][2].get("Authorization") == f"Token {TOKEN}"
    state = rows(store)
    assert [(s, a) for _, s, a, _ in state] == [("pending", 1)] * 3
    error = state[0][3] or ""
    assert expect in error
    assert TOKEN not in error
    assert TOKEN not in caplog.text
    warnings = [r for r in caplog.records
                if r.name == "modemd.sinks.influx" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and expect in warnings[0].getMessage()


def test_a_single_refused_row_is_parked_with_the_servers_message(
    fake_server: Callable[..., _Fake], store: Store
) -> None:
    fake = fake_server(400, b'{"code":"invalid","message":"partial write: field type conflict:'
                            b' input field \\"battery\\" is type string, already exists as'
                            b' type float dropped=1"}', "application/json")
    put(store, reading("PUMP01"))
    sink = make_sink(store, fake.url)
    try:
        sink.run_once()
    finally:
        sink.close()
    ((_, state, attempts, error),) = rows(store)
    assert (state, attempts) == ("poisoned", 1)
    assert error == ('HTTP 400: partial write: field type conflict: input field "battery" is '
                     'type string, already exists as type float dropped=1')


def test_check_influx(vm: VictoriaMetrics, fake_server: Callable[..., _Fake]) -> None:
    assert check_influx(vm.url, token=None, org="modemd") is None
    assert check_influx(vm.url, token=TOKEN, org="modemd", bucket="modemd") is None
    assert vm.export() == []  # the check writes nothing

    old = fake_server(404, b"404 page not found\n")  # what InfluxDB 1.6 answers
    problem = check_influx(old.url, token=None, org="modemd")
    assert problem is not None
    assert problem.startswith(
        "this server does not offer the InfluxDB v2 write API (/api/v2/write answered 404): "
        "InfluxDB 1.6 (Debian's) lacks it; use InfluxDB 1.8+, 2.x, 3.x, VictoriaMetrics or QuestDB"
    )
    assert old.requests[0][1].startswith("/api/v2/write?")

    denied = fake_server(401, b'{"code":"unauthorized","message":"unauthorized access"}')
    problem = check_influx(denied.url, token=TOKEN, org="modemd")
    assert problem is not None and "token" in problem and TOKEN not in problem

    nobody = f"http://127.0.0.1:{free_port()}"
    problem = check_influx(nobody, token=TOKEN, org="modemd", timeout_s=2.0)
    assert problem is not None and "cannot reach" in problem and TOKEN not in problem

    problem = check_influx("localhost:8086", token=None, org="modemd")
    assert problem is not None and "http" in problem


def test_a_server_that_never_answers_is_a_timeout_not_a_refusal(store: Store) -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        put(store, reading("PUMP01"))
        sink = make_sink(store, f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=0.5)
        started = time.monotonic()
        try:
            assert sink.run_once() is False
        finally:
            sink.close()
        assert time.monotonic() - started < 5
    ((_, state, attempts, error),) = rows(store)
    assert (state, attempts) == ("pending", 1)
    assert error is not None and "did not answer" in error

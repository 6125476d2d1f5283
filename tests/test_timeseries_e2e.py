"""Issue 6 end to end: SMS into the simulated modem → daemon → a real VictoriaMetrics.

The sink-level tests (test_influx_sink.py) feed the outbox by hand; these go through the whole
daemon: modem, journal, payload rules (config/devices-pump.toml), outbox and the time-series
sink, and read the points back through VictoriaMetrics' export API. Covered: values, tags and
SMS-time timestamps, modem health, a 20 s server outage, a SIGKILL between "the server stored
the batch" and "the outbox row was acked", and a reading the server refuses.
"""

from __future__ import annotations

import calendar
import gzip
import http.client
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest

from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.sms.encode import encode_deliver
from modemd.store import Store
from tests.helpers import REPO, DaemonProcess, load, on_sim, wait_until, write_config
from tests.victoriametrics import Sample, VictoriaMetrics

pytestmark = pytest.mark.integration

GATEWAY = "gw1"
MODEM = "m1"
SENDER = "+4915112345678"  # PUMP01 in config/devices-pump.toml
SCTS = datetime(2026, 11, 25, 8, 15, 0, tzinfo=UTC)
PUMP_FIELDS = ("battery", "temperature", "pressure", "running")
PUMP_TAGS = {"gateway": GATEWAY, "modem": MODEM, "device": "PUMP01"}
PUMP_RULES = (REPO / "config" / "devices-pump.toml").read_text(encoding="utf-8")

# A newer firmware that reports the pressure in whole units: the rule makes it an int field of
# the same measurement, which InfluxDB refuses ("field type conflict") once it is a float.
V3_SENDER = "+4917100000001"
V3_RULE = f"""
[[parser]]
name = "pump-controller-v3"
match = {{ sender = "{V3_SENDER}", text = "^ID=PUMP" }}
format = "kv"
pair_separator = ";"
kv_separator = "="
device_field = "ID"
measurement = "pump_status"

[parser.fields]
BAT = {{ name = "battery", type = "float", unit = "V" }}
P   = {{ name = "pressure", type = "int" }}
"""
TYPE_CONFLICT = (
    'partial write: field type conflict: input field "pressure" on measurement "pump_status" '
    "is type integer, already exists as type float dropped=1"
)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware time, whole seconds (not the sink's code)."""
    return calendar.timegm(moment.astimezone(UTC).timetuple()) * 1000


def pump_sms(scts: datetime, *, bat: float = 3.71, temp: float = 21.5, pressure: float = 2.4,
             running: float = 1) -> bytes:
    return encode_deliver(sender=SENDER, scts=scts,
                          text=f"ID=PUMP01;BAT={bat:.2f};T={temp};P={pressure};RUN={running:.0f}")


def pump_points(vm: VictoriaMetrics, device: str = "PUMP01") -> dict[str, list[Sample]]:
    """field → samples of ``pump_status_<field>`` for ``device``, oldest first."""
    result: dict[str, list[Sample]] = {}
    for sample in vm.export(f'{{__name__=~"pump_status_.*",device="{device}"}}'):
        result.setdefault(sample.name.removeprefix("pump_status_"), []).append(sample)
    return result


def second(ms: int) -> int:
    """The SCTS second (ms) of a sample: points carry a sub-second offset from the msg id."""
    return ms // 1000 * 1000


def timestamps(vm: VictoriaMetrics, field: str = "battery") -> set[int]:
    return {second(s.timestamp_ms) for s in pump_points(vm).get(field, [])}


def one_sample_per_timestamp(samples: list[Sample]) -> bool:
    return all(n == 1 for n in Counter(s.timestamp_ms for s in samples).values())


def make_config(tmp_path: Path, sim: SimulatedModem, url: str, *,
                gateway: dict[str, Any] | None = None, influx: dict[str, Any] | None = None,
                rules: str = "") -> Path:
    return write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                        modems=[{"name": MODEM, "port": sim.port}], gateway=gateway,
                        influx={"url": url, "org": "", "bucket": "modemd", **(influx or {})},
                        extra="\n" + PUMP_RULES + rules)


class OutboxRow(NamedTuple):
    kind: str
    state: str
    attempts: int
    error: str | None
    body: dict[str, Any]


def influx_rows(state_dir: Path) -> list[OutboxRow]:
    """The influx outbox, read from the side (the daemon may be another process)."""
    store = Store(state_dir)
    try:
        return [OutboxRow(kind, state, int(attempts), error, json.loads(body))
                for kind, state, attempts, error, body in store.db.connection().execute(
                    "SELECT kind, state, attempts, error, body FROM outbox WHERE sink = 'influx'"
                    " ORDER BY seq")]
    finally:
        store.close()


def influx_stats(state_dir: Path) -> Any:
    store = Store(state_dir)
    try:
        (stats,) = store.outbox.stats(["influx"])
        return stats
    finally:
        store.close()


def poisoned(state_dir: Path) -> list[tuple[int, str, str | None]]:
    store = Store(state_dir)
    try:
        return store.outbox.poisoned("influx")
    finally:
        store.close()


# --- a reverse proxy in front of VictoriaMetrics ---------------------------------------------


class Write(NamedTuple):
    status: int  # what the daemon was answered (or would have been, for a held answer)
    lines: tuple[bytes, ...]


class InfluxFront:
    """An HTTP reverse proxy (think nginx) between modemd and VictoriaMetrics.

    Forwards every write and answers what VictoriaMetrics answered (502 when it is down), and
    records it. Two switches: ``refuse`` answers 400 with InfluxDB's message, without
    forwarding, for a body with a line it matches (what InfluxDB does with a field type
    conflict, which VictoriaMetrics has no notion of); :meth:`hold_success` forwards the n-th
    successful write from now but keeps its answer back until :meth:`release` (``held`` is set
    meanwhile): the points are stored while the daemon still waits to ack them.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.refuse: Callable[[bytes], bool] | None = None
        self.writes: list[Write] = []
        self.held = threading.Event()
        self._release = threading.Event()
        self._hold_at: int | None = None
        self._successes = 0
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                front._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       name="influx-front", daemon=True)
        self.thread.start()

    def hold_success(self, n: int) -> None:
        with self._lock:
            self._successes = 0
            self._hold_at = n

    def release(self) -> None:
        with self._lock:
            self._hold_at = None
        self._release.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def accepted_lines(self) -> list[bytes]:
        with self._lock:
            return [line for w in self.writes if 200 <= w.status < 300 for line in w.lines]

    def _forward(self, path: str, body: bytes, headers: Any) -> tuple[int, bytes, str]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=10)
        try:
            conn.request("POST", path, body=body, headers={
                k: headers[k] for k in ("Content-Type", "Content-Encoding", "Authorization")
                if headers.get(k)})
            response = conn.getresponse()
            return response.status, response.read(), response.getheader("Content-Type") or ""
        except OSError:
            return 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"
        finally:
            conn.close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        text = gzip.decompress(body) if handler.headers.get("Content-Encoding") == "gzip" else body
        lines = tuple(text.splitlines())
        refuse = self.refuse
        if refuse is not None and any(refuse(line) for line in lines):
            status, answer, content_type = 400, json.dumps(
                {"code": "invalid", "message": TYPE_CONFLICT}).encode(), "application/json"
        else:
            status, answer, content_type = self._forward(handler.path, body, handler.headers)
        hold = False
        with self._lock:
            self.writes.append(Write(status, lines))
            if 200 <= status < 300:
                self._successes += 1
                hold = self._successes == self._hold_at
        if hold:
            self.held.set()
            self._release.wait(30)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(answer)))
            handler.end_headers()
            handler.wfile.write(answer)
        except OSError:
            pass  # the daemon is gone (SIGKILL while we held its answer)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    with VictoriaMetrics(tmp_path / "vm") as server:
        yield server


@pytest.fixture
def front(vm: VictoriaMetrics) -> Iterator[InfluxFront]:
    proxy = InfluxFront(vm.url)
    yield proxy
    proxy.close()


@pytest.fixture
def daemon_for() -> Iterator[Callable[[Path], Daemon]]:
    """An in-process daemon for a config, stopped at the end of the test."""
    started: list[Daemon] = []

    def start(cfg: Path) -> Daemon:
        daemon = Daemon(load(cfg))
        started.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


# --- 1. values, tags, timestamps; modem health -------------------------------------------------


def test_readings_and_modem_health_arrive_as_points(
        tmp_path: Path, vm: VictoriaMetrics, sim: SimulatedModem,
        daemon_for: Callable[[Path], Daemon]) -> None:
    sim.set_signal(20, 0)  # -73 dBm
    daemon_for(make_config(tmp_path, sim, vm.url, gateway={"health_interval": 1}))
    sent = [
        (SCTS, dict(bat=3.71, temp=21.5, pressure=2.4, running=1)),
        (datetime(2026, 11, 25, 9, 20, 7, tzinfo=timezone(timedelta(hours=1))),
         dict(bat=3.69, temp=-4.5, pressure=0.0, running=0)),
        (datetime(2026, 11, 24, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
         dict(bat=4.02, temp=30.25, pressure=15.9, running=1)),
    ]
    for scts, values in sent:
        sim.deliver(pump_sms(scts, **values))

    wait_until(lambda: all(len(pump_points(vm).get(f, [])) == 3 for f in PUMP_FIELDS),
               timeout=20, what="3 points of each pump field")
    got = pump_points(vm)
    assert set(got) == set(PUMP_FIELDS)  # ERR is optional and was not sent: no such field
    keys = {"battery": "bat", "temperature": "temp", "pressure": "pressure", "running": "running"}
    for field in PUMP_FIELDS:
        expected = sorted((epoch_ms(scts), float(values[keys[field]])) for scts, values in sent)
        assert [(second(s.timestamp_ms), s.value) for s in got[field]] == expected, field
        assert all(s.labels == PUMP_TAGS for s in got[field]), got[field]
    # The rule's measurement, not the [influx] default one; nothing else was written.
    assert vm.export('{__name__=~"device_status_.*"}') == []
    assert sorted(epoch_ms(scts) for scts, _ in sent) == [
        calendar.timegm((2026, 11, 25, 4, 59, 59, 0, 0, 0)) * 1000,
        calendar.timegm((2026, 11, 25, 8, 15, 0, 0, 0, 0)) * 1000,
        calendar.timegm((2026, 11, 25, 8, 20, 7, 0, 0, 0)) * 1000,
    ]

    # Modem health: measurement "modem", tagged gateway and modem, stamped at the poll.
    def health(rssi: float) -> list[Sample]:
        return [s for s in vm.export('{__name__=~"modem_.*"}')
                if s.name == "modem_rssi_dbm" and s.value == rssi]

    (first, *_) = wait_until(lambda: health(-73.0), timeout=20, what="a health point")
    assert first.labels == {"gateway": GATEWAY, "modem": MODEM}
    assert abs(first.timestamp_ms / 1000 - time.time()) < 60
    names = {s.name for s in vm.export('{__name__=~"modem_.*"}')}
    assert {"modem_rssi_dbm", "modem_ber", "modem_storage_used", "modem_storage_total",
            "modem_registration"} <= names
    total = [s for s in vm.export('{__name__="modem_storage_total"}')]
    assert total and all(s.value == 200.0 and s.labels == first.labels for s in total)
    # Polled again and again: a changed signal shows up as a new point.
    sim.set_signal(25, 1)  # -63 dBm
    wait_until(lambda: health(-63.0), timeout=20, what="a health point after the signal changed")


# --- 2. a 20 s outage ------------------------------------------------------------------------


def test_server_down_for_20s_while_30_messages_arrive(
        tmp_path: Path, vm: VictoriaMetrics, sim: SimulatedModem,
        daemon_for: Callable[[Path], Daemon]) -> None:
    daemon = daemon_for(make_config(tmp_path, sim, vm.url))
    state_dir = tmp_path / "state"
    sim.deliver(pump_sms(SCTS - timedelta(minutes=1)))
    wait_until(lambda: timestamps(vm), timeout=20, what="the first point (server is up)")
    wait_until(lambda: influx_stats(state_dir).pending == 0, timeout=20, what="its row acked")

    vm.stop()
    outage_started = time.monotonic()
    sent = [SCTS + timedelta(seconds=i) for i in range(30)]
    for i, scts in enumerate(sent):
        sim.deliver(pump_sms(scts, bat=3.0 + i / 100, running=i % 2))
        time.sleep(max(0.0, outage_started + (i + 1) * 19.0 / 30 - time.monotonic()))

    # Off the SIM and waiting on disk, retried, nothing parked.
    wait_until(lambda: not on_sim(sim), timeout=20, what="every message taken off the SIM")
    waiting = [r for r in influx_rows(state_dir) if r.kind == "reading"]
    assert len(waiting) == 30
    assert all(r.state == "pending" for r in waiting)
    assert any(r.attempts >= 2 for r in waiting), waiting
    assert all(r.error and "cannot reach" in r.error for r in waiting if r.attempts), waiting
    time.sleep(max(0.0, 20.0 - (time.monotonic() - outage_started)))

    vm.start()  # same port, same data directory
    expected = {epoch_ms(SCTS - timedelta(minutes=1))} | {epoch_ms(s) for s in sent}
    # The sink's backoff is capped at 30 s: after 20 s down, the next try may be ~12 s away.
    wait_until(lambda: timestamps(vm) == expected, timeout=60, interval=0.5,
               what="31 distinct PUMP01 timestamps after the restart")
    wait_until(lambda: influx_stats(state_dir).pending == 0, timeout=20, what="outbox empty")
    assert influx_stats(state_dir).poisoned == 0
    assert daemon.healthy()

    got = pump_points(vm)
    for field in PUMP_FIELDS:
        assert len(got[field]) == 31 and one_sample_per_timestamp(got[field]), field
    battery = {second(s.timestamp_ms): s.value for s in got["battery"]}
    running = {second(s.timestamp_ms): s.value for s in got["running"]}
    for i, scts in enumerate(sent):
        assert battery[epoch_ms(scts)] == pytest.approx(3.0 + i / 100)
        assert running[epoch_ms(scts)] == i % 2


# --- 3. SIGKILL between "stored by the server" and "acked in the outbox" -------------------------


def test_sigkill_mid_batch_loses_nothing_and_duplicates_nothing(
        tmp_path: Path, vm: VictoriaMetrics, sim: SimulatedModem, front: InfluxFront) -> None:
    state_dir = tmp_path / "state"
    cfg = make_config(tmp_path, sim, front.url, influx={"batch_size": 5})
    daemon = DaemonProcess(cfg).start()
    try:
        wait_until(lambda: vm.export('{__name__="modem_rssi_dbm"}'), timeout=30,
                   what=f"the daemon's first health point\n{daemon.output()}")

        vm.stop()  # the proxy answers 502 now
        sent = [SCTS + timedelta(seconds=i) for i in range(40)]
        for i, scts in enumerate(sent):
            sim.deliver(pump_sms(scts, bat=3.0 + i / 100, running=i % 2))
        wait_until(lambda: len([r for r in influx_rows(state_dir) if r.kind == "reading"]) == 40,
                   timeout=30, what=f"40 readings in the outbox\n{daemon.output()}")

        # Let two batches through, then keep the answer to the third back: its points are
        # stored, its rows are not acked. That is when the daemon dies.
        front.hold_success(3)
        vm.start()
        assert front.held.wait(45), f"the daemon did not write again\n{daemon.output()}"
        daemon.kill()
        front.release()

        on_server = timestamps(vm)
        queued = {epoch_ms(datetime.fromisoformat(r.body["sent_at"]))
                  for r in influx_rows(state_dir) if r.kind == "reading"}
        assert 0 < len(on_server) < 40 and queued, (on_server, queued)
        assert on_server | queued == {epoch_ms(s) for s in sent}
        assert on_server & queued, "the kill did not fall between storing and acking a batch"

        daemon = DaemonProcess(cfg).start()
        wait_until(lambda: len(timestamps(vm)) == 40, timeout=30,
                   what=f"all 40 timestamps after the restart\n{daemon.output()}")
        wait_until(lambda: influx_stats(state_dir).pending == 0, timeout=20,
                   what="the outbox empty after the restart")
    finally:
        daemon.stop()

    # The held batch really went to the server twice (readings by their timestamp, the last
    # word of a line) ...
    written = Counter(line.rsplit(b" ", 1)[-1] for line in front.accepted_lines()
                      if line.startswith(b"pump_status,"))
    assert any(n > 1 for n in written.values()), "no reading written twice: crash window missed"
    # ... and still every timestamp has exactly one sample per field, with its own values.
    got = pump_points(vm)
    assert set(got) == set(PUMP_FIELDS)
    for field in PUMP_FIELDS:
        assert [second(s.timestamp_ms) for s in got[field]] == sorted(
            epoch_ms(s) for s in sent), field
        assert one_sample_per_timestamp(got[field]), field
        assert all(s.labels == PUMP_TAGS for s in got[field])
    battery = {second(s.timestamp_ms): s.value for s in got["battery"]}
    assert battery == {epoch_ms(s): pytest.approx(3.0 + i / 100) for i, s in enumerate(sent)}
    assert influx_stats(state_dir).poisoned == 0


# --- 4. a reading the server refuses is parked, the rest flows -------------------------------


def test_a_refused_reading_is_parked_and_later_readings_still_arrive(
        tmp_path: Path, vm: VictoriaMetrics, sim: SimulatedModem, front: InfluxFront,
        daemon_for: Callable[[Path], Daemon]) -> None:
    front.refuse = lambda line: re.search(rb"pressure=\d+i", line) is not None  # int, not float
    state_dir = tmp_path / "state"
    daemon_for(make_config(tmp_path, sim, front.url, rules=V3_RULE))
    sim.deliver_many([
        pump_sms(SCTS, bat=3.1),
        encode_deliver(sender=V3_SENDER, text="ID=PUMP03;BAT=3.5;P=3",
                       scts=SCTS + timedelta(seconds=1)),
        pump_sms(SCTS + timedelta(seconds=2), bat=3.2),
    ])
    wait_until(lambda: poisoned(state_dir), timeout=20, what="the refused reading parked")
    sim.deliver(pump_sms(SCTS + timedelta(seconds=3), bat=3.3))

    expected = {epoch_ms(SCTS + timedelta(seconds=i)): b for i, b in ((0, 3.1), (2, 3.2),
                                                                       (3, 3.3))}
    wait_until(lambda: timestamps(vm) == set(expected), timeout=20,
               what="the readings around the refused one")
    wait_until(lambda: influx_stats(state_dir).pending == 0, timeout=20, what="outbox empty")

    ((_, kind, reason),) = poisoned(state_dir)
    assert (kind, reason) == ("reading", f"HTTP 400: {TYPE_CONFLICT}")
    (row,) = [r for r in influx_rows(state_dir) if r.state == "poisoned"]
    assert row.body["device"] == "PUMP03" and row.body["fields"]["pressure"] == 3
    assert any(w.status == 400 for w in front.writes)  # the server's refusal, not the sink's
    battery = {second(s.timestamp_ms): s.value for s in pump_points(vm)["battery"]}
    assert battery == pytest.approx(expected)
    assert pump_points(vm, "PUMP03") == {}

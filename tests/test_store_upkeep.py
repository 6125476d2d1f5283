"""Store upkeep: cheap opens and lookups, bounded housekeeping, clock steps, retention,
a store file that vanishes, privacy and read-only views."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import modemd.store.database as database
import modemd.store.outbox as outbox_module
from modemd.daemon import open_store
from modemd.store import STORE_FILENAME, Store
from modemd.store.clock import StoreClock
from modemd.store.database import Database, StoreVanished
from modemd.store.retention import Retention
from tests.helpers import REPO, unique_pdus, write_config


class FakeTime:
    """A monotonic and a wall clock that tests move, separately."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_000_000.0  # a Pi without an RTC: 1970

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    clock = FakeTime()
    monkeypatch.setattr(database, "now", clock.time)
    monkeypatch.setattr(outbox_module, "now", clock.time)
    monkeypatch.setattr("modemd.store.journal.now", clock.time)
    return clock


def store_with_clock(path: Path, clock: FakeTime) -> Store:
    store = Store(path)
    store.db.clock = StoreClock(StoreClock.load(store.db.connection()),
                                monotonic=clock.monotonic, wall=clock.time, interval=10.0)
    return store


def enqueue(store: Store, n: int, sink: str = "mqtt", start: int = 0) -> None:
    with store.db.transaction() as conn:
        for i in range(start, start + n):
            store.outbox.enqueue(conn, sink=sink, kind="sms", msg_id=f"m{i}", body={"i": i})


def tick(store: Store) -> None:
    """What the maintenance thread does each wake: a mark when one is due."""
    with store.db.transaction() as conn:
        store.db.clock.mark_if_due(conn)


# --- opening and looking up at any size --------------------------------------------------------


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement the store's connections run."""
    seen: list[str] = []
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = real(*args, **kwargs)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    yield seen


def test_opening_the_store_runs_no_full_check(tmp_path: Path, statements: list[str]) -> None:
    Store(tmp_path).close()  # create
    statements.clear()
    store = Store(tmp_path)
    store.journal.recent_messages()
    store.outbox.stats(["mqtt", "influx"])
    store.close()
    text = "\n".join(statements).lower()
    assert "quick_check" not in text and "integrity_check" not in text
    assert "count(*)" not in text


def plan(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> str:
    return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def test_what_the_cli_looks_up_uses_indexes(tmp_path: Path, statements: list[str]) -> None:
    store = Store(tmp_path)
    enqueue(store, 50)
    statements.clear()
    store.journal.recent_messages(limit=5)
    store.outbox.stats(["mqtt"])
    store.outbox.fetch("mqtt", limit=10)
    store.outbox.enforce_bounds(max_rows=1000, max_age=3600)
    conn = store.db.connection()
    queries = {s for s in statements if s.lstrip().upper().startswith("SELECT")}
    assert queries
    for sql in queries:
        shown = plan(conn, sql.replace("?", "NULL"), ()) if "?" in sql else plan(conn, sql, ())
        for table in ("outbox", "journal", "messages", "deliveries"):
            # "SCAN outbox" alone is a full scan; "... USING INDEX ..." is not
            assert not any(part.strip() == f"SCAN {table}" for part in shown.split("|")), \
                (sql, shown)
    store.close()


def test_a_truncated_or_overwritten_file_is_still_moved_aside(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for pdu in unique_pdus(300):
        store.journal.commit_raw(modem="m1", mode="pdu", raw=pdu)
    store.db.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    path = tmp_path / STORE_FILENAME
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    fresh = open_store(tmp_path)
    assert fresh.journal.count() == 0
    fresh.close()
    assert list(tmp_path.glob(f"{STORE_FILENAME}.corrupt-*"))


# --- housekeeping in chunks, counts kept by triggers -------------------------------------------


def test_outbox_counts_stay_exact_through_every_operation(tmp_path: Path) -> None:
    store = Store(tmp_path)
    enqueue(store, 40)
    enqueue(store, 7, sink="influx")
    rows = store.outbox.fetch("mqtt", limit=10)
    store.outbox.ack("mqtt", [r.seq for r in rows[:3]])
    store.outbox.poison("mqtt", [rows[3].seq, rows[4].seq], reason="bad")
    store.outbox.retry("mqtt", [rows[5].seq], delay=5, error="later")
    store.outbox.enforce_bounds(max_rows=100, max_age=3600)
    store.outbox.purge("influx", poisoned_only=True)
    conn = store.db.connection()

    def truth() -> dict[tuple[str, str], int]:
        return {(s, st): n for s, st, n in conn.execute(
            "SELECT sink, state, COUNT(*) FROM outbox GROUP BY sink, state")}

    assert store.outbox._counts(conn) == truth() == {
        ("mqtt", "pending"): 35, ("mqtt", "poisoned"): 2, ("influx", "pending"): 7}
    store.outbox.replay("mqtt")
    store.outbox.purge("influx")
    assert store.outbox._counts(conn) == truth() == {("mqtt", "pending"): 37}
    store.close()


def test_the_row_bound_drops_in_short_transactions(tmp_path: Path, statements: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "CHUNK", 100)
    store = Store(tmp_path)
    enqueue(store, 1450)
    statements.clear()
    assert store.outbox.enforce_bounds(max_rows=1000, max_age=3600) == {"mqtt": 450}
    deletes = {s for s in statements if s.startswith("DELETE FROM outbox")}
    assert len(deletes) == 5  # 100 + 100 + 100 + 100 + 50, each in its own transaction
    assert statements.count("BEGIN IMMEDIATE") >= 6
    remaining = store.outbox.fetch("mqtt", limit=2000)
    assert [r.body["i"] for r in remaining] == list(range(450, 1450))
    assert store.db.counters()["outbox.mqtt.dropped"] == 450
    store.close()


# --- clock steps -------------------------------------------------------------------------------


def test_a_forward_clock_step_drops_nothing_from_the_outbox(tmp_path: Path,
                                                            fake_time: FakeTime) -> None:
    store = store_with_clock(tmp_path, fake_time)
    enqueue(store, 11)
    tick(store)
    fake_time.mono += 30
    fake_time.wall += 56 * 365 * 86400.0  # NTP sync: 1970 -> 2026
    assert store.outbox.enforce_bounds(max_rows=1000, max_age=3600) == {}
    assert len(store.outbox.fetch("mqtt", limit=100)) == 11
    # the age bound still works in time modemd observed
    fake_time.mono += 3600
    tick(store)
    enqueue(store, 2, start=11)
    assert store.outbox.enforce_bounds(max_rows=1000, max_age=3600) == {"mqtt": 11}
    assert [r.body["i"] for r in store.outbox.fetch("mqtt", limit=100)] == [11, 12]
    store.close()


def test_a_store_reopened_after_a_clock_step_drops_nothing(tmp_path: Path,
                                                           fake_time: FakeTime) -> None:
    store = store_with_clock(tmp_path, fake_time)
    enqueue(store, 11)
    fake_time.mono += 600
    tick(store)
    store.close()
    fake_time.wall += 56 * 365 * 86400.0  # rebooted, the clock synced
    fake_time.mono = 5.0  # a new boot
    again = store_with_clock(tmp_path, fake_time)
    assert 600 <= again.db.clock.now() < 700  # the store clock went on where it was
    assert again.outbox.enforce_bounds(max_rows=1000, max_age=3600) == {}
    assert len(again.outbox.fetch("mqtt", limit=100)) == 11
    again.close()


def test_a_backward_clock_step_does_not_stall_retries(tmp_path: Path,
                                                      fake_time: FakeTime) -> None:
    fake_time.wall = 1_796_000_000.0  # 2026
    store = store_with_clock(tmp_path, fake_time)
    enqueue(store, 3)
    rows = store.outbox.fetch("mqtt", limit=10)
    store.outbox.retry("mqtt", [r.seq for r in rows], delay=30, error="broker down")
    assert store.outbox.fetch("mqtt", limit=10) == []
    fake_time.wall -= 365 * 86400.0  # stepped back a year
    assert len(store.outbox.fetch("mqtt", limit=10)) == 3  # due now, not in a year
    store.close()


# --- retention -------------------------------------------------------------------------------


def deliver_messages(store: Store, n: int, start: int = 0) -> list[str]:
    ids = []
    for i, pdu in enumerate(unique_pdus(n, start=start)):
        result = store.journal.commit_raw(modem="m1", mode="pdu", raw=pdu)
        msg_id = result.raw_id
        with store.db.transaction() as conn:
            store.journal.mark(conn, msg_id, state="done", msg_id=msg_id)
            store.journal.record_message(conn, msg_id=msg_id, modem="m1", sender="+49",
                                         sent_at=None, status="ok", reason=None,
                                         document={"text": f"t{start + i}"})
            store.outbox.enqueue(conn, sink="mqtt", kind="sms", msg_id=msg_id, body={})
            store.outbox.enqueue(conn, sink="influx", kind="reading", msg_id=msg_id, body={})
        ids.append(msg_id)
    return ids


def test_retention_prunes_only_what_every_sink_has(tmp_path: Path, fake_time: FakeTime) -> None:
    store = store_with_clock(tmp_path, fake_time)
    ids = deliver_messages(store, 6)
    rows = {r.msg_id: r.seq for r in store.outbox.fetch("mqtt", limit=100)}
    influx = {r.msg_id: r.seq for r in store.outbox.fetch("influx", limit=100)}
    store.outbox.ack("mqtt", [rows[i] for i in ids[:4]])
    store.outbox.ack("influx", [influx[i] for i in ids[:3]])
    store.outbox.poison("influx", [influx[ids[3]]], reason="400")  # parked: kept
    store.journal.commit_raw(modem="m1", mode="pdu", raw=unique_pdus(1, start=50)[0])  # new
    fake_time.mono += 11  # the store clock's marks are 10 s apart here
    tick(store)
    fake_time.wall += 86400 * 365  # a wall-clock step prunes nothing
    retention = Retention(store.db, retention=3600)
    assert not retention.prune()
    fake_time.mono += 3600 + 20
    tick(store)
    result = retention.prune()
    assert (result.journal, result.messages) == (3, 3)
    kept = {m["id"] for m in store.journal.recent_messages(limit=100)}
    assert kept == set(ids[3:])
    assert store.journal.count() == 4  # three waiting in an outbox, one not processed yet
    conn = store.db.connection()
    assert conn.execute("SELECT COUNT(*) FROM deliveries WHERE msg_id IN (?, ?, ?)",
                        ids[:3]).fetchone()[0] == 0
    assert store.db.counters()["retention.messages"] == 3
    store.close()


def test_freed_pages_go_back_to_the_disk(tmp_path: Path, fake_time: FakeTime) -> None:
    store = store_with_clock(tmp_path, fake_time)
    with store.db.transaction() as conn:
        for i in range(3000):
            conn.execute("INSERT INTO messages(id, modem, received_at, status, document)"
                         " VALUES (?, 'm1', 0, 'ok', ?)", (f"id{i}", "x" * 2000))
    fake_time.mono += 11
    tick(store)
    fake_time.mono += 100
    tick(store)
    conn = store.db.connection()
    pages_before = conn.execute("PRAGMA page_count").fetchone()[0]
    result = Retention(store.db, retention=50).prune()
    assert result.messages == 3000 and result.pages_freed > 1000
    assert conn.execute("PRAGMA page_count").fetchone()[0] <= pages_before - result.pages_freed
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] <= 256
    store.close()


# --- a store that vanishes ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_commit_into_a_vanished_file_is_refused(tmp_path: Path, how: str) -> None:
    store = Store(tmp_path)
    (first, second, third) = unique_pdus(3)
    store.journal.commit_raw(modem="m1", mode="pdu", raw=first)
    path = tmp_path / STORE_FILENAME
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    if how == "replaced":
        Store(tmp_path).close()
    with pytest.raises(StoreVanished, match=how):
        store.journal.commit_raw(modem="m1", mode="pdu", raw=second)
    with pytest.raises(StoreVanished):  # and every commit after
        store.journal.commit_raw(modem="m1", mode="pdu", raw=third)
    assert store.db.vanished() is not None
    store.close()


# --- privacy and read-only views ----------------------------------------------------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        state = tmp_path / "a" / "state"
        store = Store(state)
        store.journal.commit_raw(modem="m1", mode="pdu", raw=unique_pdus(1)[0])
        assert mode_of(state) == 0o700
        for suffix in ("", "-wal", "-shm"):
            assert mode_of(Path(f"{state / STORE_FILENAME}{suffix}")) == 0o600, suffix
        store.close()
        shared = tmp_path / "shared"
        shared.mkdir()
        os.chmod(shared, 0o750)  # StateDirectoryMode=0750: the unit's group may read
        store = Store(shared)
        store.journal.commit_raw(modem="m1", mode="pdu", raw=unique_pdus(1)[0])
        assert mode_of(shared) == 0o750
        for suffix in ("", "-wal", "-shm"):
            assert mode_of(Path(f"{shared / STORE_FILENAME}{suffix}")) == 0o640, suffix
        store.close()
        open_dir = tmp_path / "open"
        open_dir.mkdir()
        os.chmod(open_dir, 0o777)
        (open_dir / STORE_FILENAME).touch(mode=0o666)
        Store(open_dir).close()
        assert mode_of(open_dir) == 0o700 and mode_of(open_dir / STORE_FILENAME) == 0o600
    finally:
        os.umask(old)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory another user can reach (pytest's own are 0700)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="modemd-ro-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_other_user(argv: list[str]) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] \
        if os.geteuid() == 0 else []
    return subprocess.run([*prefix, sys.executable, "-m", "modemd", *argv], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env={**os.environ, "HOME": "/tmp"},
                          check=False)


@pytest.mark.parametrize("daemon_running", [False, True])
def test_messages_and_outbox_work_on_a_read_only_store(shared_tmp: Path,
                                                       daemon_running: bool) -> None:
    tmp_path = shared_tmp
    state = tmp_path / "state"
    store = Store(state)
    deliver_messages(store, 3)
    if not daemon_running:
        store.close()
    # readable, not writable, by the user running the CLI (file and directory)
    os.chmod(state, 0o555)
    for path in state.iterdir():
        os.chmod(path, 0o444)
    if os.geteuid() != 0:
        assert not os.access(state, os.W_OK)
    before = sorted(p.name for p in state.iterdir())
    config = write_config(tmp_path / "modemd.toml", state_dir=state,
                          modems=[{"name": "m1", "port": "/dev/ttyUSB2"}],
                          mqtt={"host": "127.0.0.1"}, influx={"url": "http://127.0.0.1:1",
                                                              "bucket": "b"})
    os.chmod(config, 0o644)
    try:
        shown = as_other_user(["messages", "-c", str(config)])
        assert shown.returncode == 0, shown.stderr
        assert "Traceback" not in shown.stderr
        assert sorted(line.split()[-1] for line in shown.stdout.splitlines()) == \
            ["t0", "t1", "t2"], shown.stdout
        queued = as_other_user(["outbox", "-c", str(config)])
        assert queued.returncode == 0, queued.stderr
        lines = {line.split()[0]: line.split() for line in queued.stdout.splitlines()[1:]}
        assert lines["mqtt"][1] == "3" and lines["influx"][1] == "3"
        assert sorted(p.name for p in state.iterdir()) == before
    finally:
        os.chmod(state, 0o700)
        for path in state.iterdir():
            os.chmod(path, 0o600)
        if daemon_running:
            store.close()


def test_a_read_only_open_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    deliver_messages(store, 2)
    store.db.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    path = tmp_path / STORE_FILENAME
    before = path.read_bytes()
    view = Database(path, readonly=True)
    with pytest.raises(sqlite3.OperationalError):
        view.connection().execute("DELETE FROM journal")
    view.close()
    assert path.read_bytes() == before


def test_store_section_of_the_config(tmp_path: Path) -> None:
    from modemd.config import config_from_dict
    from modemd.errors import ConfigError

    cfg = config_from_dict({"store": {"retention": "7d", "check_interval": 0}})
    assert cfg.store.retention == 7 * 86400 and cfg.store.check_interval == 0
    assert config_from_dict({}).store.retention == 30 * 86400
    with pytest.raises(ConfigError, match=r"store\.retention"):
        config_from_dict({"store": {"retention": "10s"}})


def test_store_check_verb(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = Store(state)
    deliver_messages(store, 20)
    store.close()
    config = write_config(tmp_path / "modemd.toml", state_dir=state,
                          modems=[{"name": "m1", "port": "/dev/ttyUSB2"}])

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "modemd", "store", "check", "-c",
                               str(config)], capture_output=True, text=True, timeout=60,
                              cwd=REPO, check=False)

    done = check()
    assert done.returncode == 0 and ": ok (quick_check" in done.stdout, done.stdout
    # damage one page in the middle of the messages table
    path = state / STORE_FILENAME
    conn = sqlite3.connect(path)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'messages'").fetchone()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    start = (root[0] - 1) * page_size
    data[start + 8: start + page_size] = b"\xff" * (page_size - 8)
    path.write_bytes(bytes(data))
    done = check()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "problem" in done.stdout and "Traceback" not in done.stdout + done.stderr
    missing = subprocess.run([sys.executable, "-m", "modemd", "store", "check", "-c",
                              str(write_config(tmp_path / "other.toml",
                                               state_dir=tmp_path / "none", modems=[]))],
                             capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert missing.returncode == 2 and "no store" in missing.stderr


def test_the_scheduled_check_logs_and_records_a_failure_and_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import modemd.store.maintenance as maintenance_module
    from modemd.store.maintenance import CheckResult, StoreMaintenance, last_check

    store = Store(tmp_path)
    upkeep = StoreMaintenance(store.db, retention=3600, keep_marks=3600, check_interval=60,
                              first_check_after=0)
    upkeep.run_once()
    result = last_check(store.db)
    assert result is not None and result.ok
    monkeypatch.setattr(maintenance_module, "integrity_check", lambda path: CheckResult(
        ok=False, problems=("Tree 7 page 9 cell 0: invalid page number",), seconds=0.1, at=0.0))
    upkeep._next_check = 0.0
    upkeep.run_once()  # does not raise
    result = last_check(store.db)
    assert result is not None and not result.ok and "invalid page number" in result.problems[0]
    assert store.db.counters()["store.check_failed"] == 1
    assert any(r.levelname == "ERROR" and "integrity check found problems" in r.getMessage()
               for r in caplog.records)
    store.journal.commit_raw(modem="m1", mode="pdu", raw=unique_pdus(1)[0])  # still taking
    upkeep.stop()
    store.close()


def test_replay_and_purge_work_in_short_transactions(tmp_path: Path, statements: list[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "CHUNK", 100)
    store = Store(tmp_path)
    enqueue(store, 450)
    enqueue(store, 30, sink="influx", start=450)
    rows = store.outbox.fetch("mqtt", limit=500)
    store.outbox.poison("mqtt", [r.seq for r in rows[::2]], reason="400")
    statements.clear()
    assert store.outbox.replay("mqtt") == 450
    assert len(store.outbox.fetch("mqtt", limit=1000)) == 450
    assert statements.count("BEGIN IMMEDIATE") == 5
    store.outbox.poison("mqtt", [r.seq for r in rows[:10]], reason="400")
    assert store.outbox.purge("mqtt", poisoned_only=True) == 10
    assert store.outbox.purge() == 470
    assert store.outbox.stats() == [] and store.db.counters()["outbox.purged"] == 480
    store.close()

"""Schema versions: a store of today's schema upgrades with its data; a newer one is refused."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from modemd.store import STORE_FILENAME, Store
from modemd.store.migrations import (
    MIGRATIONS,
    Migration,
    StoreVersionError,
    latest_version,
    migrate,
    stored_version,
)
from tests.helpers import REPO, unique_pdus, write_config

FIXTURE = REPO / "tests" / "data" / "stores" / "v1.sqlite3"


def v1_store(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    shutil.copy(FIXTURE, state / STORE_FILENAME)
    return state


def schema_of(path: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return {(name, " ".join(sql.split())) for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    finally:
        conn.close()


def test_a_version_1_store_upgrades_and_keeps_every_row(tmp_path: Path) -> None:
    state = v1_store(tmp_path)
    conn = sqlite3.connect(state / STORE_FILENAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0  # as schema 1 left it
    conn.close()

    store = Store(state)
    try:
        assert store.db.version == latest_version() >= 2
        records = sorted(store.journal.records(limit=100), key=lambda r: r.seq)
        pdus = unique_pdus(6)
        assert [r.raw for r in records] == [*pdus, b"ZZ"]
        assert [r.state for r in records] == ["done"] * 6 + ["failed"]
        assert [r.received_at for r in records[:6]] == [1764582000.0 + i for i in range(6)]
        messages = store.journal.recent_messages(limit=100)
        texts = sorted(m["message"].get("text") or "" for m in messages)
        assert texts == ["", *(f"status {i}" for i in range(6))]
        delivered = [m for m in messages if m["deliveries"].get("mqtt") == "delivered"]
        assert len(delivered) == 3
        stats = {s.sink: s for s in store.outbox.stats(["mqtt"])}
        assert stats["mqtt"].pending == 4 and stats["mqtt"].delivered == 3
        waiting = store.outbox.fetch("mqtt", limit=100)
        assert len(waiting) == 4 and all(r.body for r in waiting)
        assert store.announced.load() == {
            "rule:meter/dev1": frozenset({"homeassistant/sensor/x/config"})}
        # the upgraded store works: a new message, an ack, counts kept by the triggers
        store.journal.commit_raw(modem="m1", mode="pdu", raw=unique_pdus(1, start=9)[0])
        store.outbox.ack("mqtt", [waiting[0].seq])
        assert {s.sink: s.pending for s in store.outbox.stats()} == {"mqtt": 3}
    finally:
        store.close()
    assert sqlite3.connect(state / STORE_FILENAME).execute(
        "PRAGMA integrity_check").fetchone()[0] == "ok"
    # opened again: nothing left to do, same version
    again = Store(state)
    assert again.db.version == latest_version() and again.journal.count() == 8
    again.close()


def test_a_new_store_and_an_upgraded_one_have_the_same_schema(tmp_path: Path) -> None:
    upgraded = v1_store(tmp_path)
    Store(upgraded).close()
    fresh = tmp_path / "fresh"
    Store(fresh).close()
    assert schema_of(upgraded / STORE_FILENAME) == schema_of(fresh / STORE_FILENAME)


def test_a_store_from_a_newer_modemd_is_refused_and_not_touched(tmp_path: Path) -> None:
    state = v1_store(tmp_path)
    path = state / STORE_FILENAME
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {latest_version() + 3}")
    conn.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StoreVersionError) as caught:
        Store(state)
    message = str(caught.value)
    assert f"version {latest_version() + 3}" in message
    assert f"up to {latest_version()}" in message
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    with pytest.raises(StoreVersionError):
        Store(state, readonly=True)

    config = write_config(tmp_path / "modemd.toml", state_dir=state,
                          modems=[{"name": "m1", "port": "/dev/null-modem"}])
    for argv in (["messages"], ["outbox"], ["run"]):
        done = subprocess.run([sys.executable, "-m", "modemd", *argv, "-c", str(config)],
                              capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout
        assert f"schema version {latest_version() + 3}" in done.stderr, done.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_failing_step_leaves_the_store_at_its_old_version(tmp_path: Path) -> None:
    state = v1_store(tmp_path)
    path = state / STORE_FILENAME
    Store(state).close()
    version = latest_version()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("step failed")

    ladder = [*MIGRATIONS, Migration(version + 1, "adds x", "ALTER TABLE journal ADD x;"),
              Migration(version + 2, "breaks", broken)]
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(RuntimeError):
        migrate(conn, path=path, migrations=ladder)
    assert stored_version(conn) == version
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() \
        is None
    columns = [row[1] for row in conn.execute("PRAGMA table_info(journal)")]
    assert "x" not in columns
    # an appended step that works is applied once
    good = [*MIGRATIONS, Migration(version + 1, "adds x", "ALTER TABLE journal ADD x;")]
    assert migrate(conn, path=path, migrations=good) == (version, version + 1)
    assert migrate(conn, path=path, migrations=good) == (version + 1, version + 1)
    conn.close()


def test_the_ladder_has_one_step_per_version() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    conn = sqlite3.connect(":memory:", isolation_level=None)
    with pytest.raises(RuntimeError, match="ladder broken"):
        migrate(conn, path=":memory:", migrations=[*MIGRATIONS, Migration(9, "gap", "")])

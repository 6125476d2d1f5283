"""The journal and the outbox on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from modemd.daemon import open_store
from modemd.store import Store
from modemd.store.journal import raw_id_for


def test_the_same_pdu_is_journalled_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    pdu = bytes.fromhex(
        "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07")
    first = store.journal.commit_raw(modem="m1", mode="pdu", raw=pdu, storage="SM", sim_index=3)
    again = store.journal.commit_raw(modem="m1", mode="pdu", raw=pdu, storage="SM", sim_index=7)
    assert first.inserted and not again.inserted
    assert first.raw_id == again.raw_id == raw_id_for("pdu", pdu)
    assert store.journal.count() == 1
    assert store.db.counters()["journal.duplicates"] == 1
    store.close()


def test_the_id_ignores_the_smsc_field(tmp_path: Path) -> None:
    tpdu = bytes.fromhex("040B911346610089F60000208062917314080CC8F71D14969741F977FD07")
    with_smsc = bytes.fromhex("07911326040000F0") + tpdu
    without = b"\x00" + tpdu
    assert raw_id_for("pdu", with_smsc) == raw_id_for("pdu", without)


def test_the_ingest_commit_is_durable_wal_and_full_sync(tmp_path: Path) -> None:
    store = Store(tmp_path)
    conn = store.db.connection(durable=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_the_opening_thread_keeps_the_opening_connection(tmp_path: Path) -> None:
    """A connection is about 150 KiB: the one that opened (and migrated) the store becomes the
    opening thread's durable one, and a read-only view's its only one."""
    store = Store(tmp_path)
    with store.db.transaction(durable=True) as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    normal = store.db.connection()
    assert normal.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert len(store.db._connections) == 2
    store.close()
    view = Store(tmp_path, readonly=True)
    view.db.connection().execute("SELECT count(*) FROM messages").fetchone()
    assert len(view.db._connections) == 1
    view.close()


def enqueue(store: Store, n: int, sink: str = "mqtt") -> None:
    with store.db.transaction() as conn:
        for i in range(n):
            store.outbox.enqueue(conn, sink=sink, kind="sms", msg_id=f"m{i}", body={"i": i})


def test_rows_leave_the_outbox_only_when_acked(tmp_path: Path) -> None:
    store = Store(tmp_path)
    enqueue(store, 5)
    rows = store.outbox.fetch("mqtt", limit=10)
    assert [r.body["i"] for r in rows] == [0, 1, 2, 3, 4]
    store.outbox.ack("mqtt", [rows[0].seq, rows[1].seq])
    assert [r.body["i"] for r in store.outbox.fetch("mqtt", limit=10)] == [2, 3, 4]
    store.outbox.retry("mqtt", [rows[2].seq], delay=60, error="broker down")
    assert [r.body["i"] for r in store.outbox.fetch("mqtt", limit=10)] == [3, 4]
    assert store.outbox.fetch("influx", limit=10) == []
    stats = {s.sink: s for s in store.outbox.stats(["mqtt"])}
    assert stats["mqtt"].pending == 3 and stats["mqtt"].delivered == 2
    store.close()


def test_poisoned_rows_are_parked_with_the_reason_and_can_be_replayed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    enqueue(store, 3, sink="influx")
    rows = store.outbox.fetch("influx", limit=10)
    store.outbox.poison("influx", [rows[1].seq], reason="400: field type conflict")
    assert [r.body["i"] for r in store.outbox.fetch("influx", limit=10)] == [0, 2]
    assert store.outbox.poisoned("influx") == [(rows[1].seq, "sms", "400: field type conflict")]
    assert store.outbox.replay("influx") == 3
    assert len(store.outbox.fetch("influx", limit=10)) == 3
    store.close()


def test_the_bound_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    enqueue(store, 150)
    dropped = store.outbox.enforce_bounds(max_rows=100, max_age=3600)
    assert dropped == {"mqtt": 50}
    remaining = store.outbox.fetch("mqtt", limit=1000)
    assert [r.body["i"] for r in remaining] == list(range(50, 150))
    (stats,) = store.outbox.stats(["mqtt"])
    assert stats.dropped == 50
    messages = {row[0]: row[1] for row in store.db.connection().execute(
        "SELECT msg_id, state FROM deliveries")}
    assert messages["m0"] == "dropped" and "m50" not in messages
    store.close()


def test_a_corrupt_store_is_moved_aside_and_a_new_one_made(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.journal.commit_raw(modem="m1", mode="pdu", raw=b"\x00\x04")
    store.close()
    path = tmp_path / "modemd.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    fresh = open_store(tmp_path)
    assert fresh.journal.count() == 0
    fresh.journal.commit_raw(modem="m1", mode="pdu", raw=b"\x00\x05")
    assert fresh.journal.count() == 1
    aside = list(tmp_path.glob("modemd.sqlite3.corrupt-*"))
    assert aside and aside[0].read_bytes().startswith(b"this is not a database")
    fresh.close()
    # And a healthy file is never moved.
    again = open_store(tmp_path)
    assert again.journal.count() == 1
    again.close()
    assert sqlite3.connect(path).execute("PRAGMA quick_check").fetchone()[0] == "ok"


def test_a_text_record_id_ignores_what_differs_between_reads() -> None:
    body = b"\nPUMP01 OK"
    cmgr = b'"REC UNREAD","+4915112345678",,"26/11/25,10:00:00+04",145,4,0,0,"+4917",145,9'
    cmgl = b'"REC READ","+4915112345678",,"26/11/25,10:00:00+04",145,9'
    plain = b'"REC READ","+4915112345678",,"26/11/25,10:00:00+04"'
    ids = {raw_id_for("text", header + body) for header in (cmgr, cmgl, plain)}
    assert len(ids) == 1
    assert raw_id_for("text", cmgl + b"\nPUMP01 FAULT") not in ids
    assert raw_id_for("text", cmgl.replace(b"10:00:00", b"10:00:01") + body) not in ids
    # a record that does not decode still gets a stable id from its bytes
    junk = b'"REC READ","+49\nunbalanced'
    assert raw_id_for("text", junk) == raw_id_for("text", junk) != raw_id_for("text", junk + b"!")

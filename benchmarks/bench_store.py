"""Store cost at any size: start-up, CLI and ingest latency with 1M messages stored; ingest
latency while 200k rows wait in the outbox with housekeeping running; a retention soak.

    .venv/bin/python benchmarks/bench_store.py size --messages 1000000
    .venv/bin/python benchmarks/bench_store.py outbox --rows 200000
    .venv/bin/python benchmarks/bench_store.py soak --messages 100000 --retention 10000
    .venv/bin/python benchmarks/bench_store.py prune --messages 200000

``size`` prefills a store quickly (direct SQL inserts in one transaction, rows shaped like the
pipeline's), then times opening it and ``modemd messages`` / ``modemd outbox`` in fresh
processes, and ``journal.commit_raw`` (the fsync'd ingest commit) at 0 and N stored.
``outbox`` times ingest commits while a housekeeping thread runs the outbox bounds, stats and
retention back to back (the daemon runs them every 5 s / 60 s). ``soak`` pushes messages
through the real pipeline with a store clock advanced one second per message, so retention
acts during the run, and prints the file size as it goes. ``prune`` times ingest while
retention works off a backlog of delivered messages all older than the retention.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modemd.store import STORE_FILENAME, Store  # noqa: E402
from modemd.store.clock import StoreClock  # noqa: E402
from modemd.store.maintenance import StoreMaintenance  # noqa: E402
from tests.helpers import unique_pdus, write_config  # noqa: E402

PDU = unique_pdus(1)[0]
DOCUMENT = json.dumps({"id": "", "modem": "m1", "sender": "+491511234567",
                       "sent_at": "2026-11-25T10:00:00+00:00", "text": "status 12345 " * 4,
                       "encoding": "gsm7", "parts": 1, "complete": True})


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float]) -> str:
    return (f"p50 {statistics.median(values) * 1e3:.2f} ms, p95 {pct(values, 0.95) * 1e3:.2f} ms,"
            f" p99 {pct(values, 0.99) * 1e3:.2f} ms, max {max(values) * 1e3:.2f} ms")


def prefill(state: Path, messages: int, *, outbox_rows: int = 0) -> None:
    store = Store(state)
    conn = store.db.connection()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO journal(raw_id, modem, imei, storage, sim_index, mode, raw, received_at,"
        " state, msg_id) VALUES (?, 'm1', '356938035643809', 'SM', 1, 'pdu', ?, ?, 'done', ?)",
        ((f"{i:032x}", PDU, 1.7e9 + i, f"{i:032x}") for i in range(messages)))
    conn.executemany(
        "INSERT INTO messages(id, modem, sender, sent_at, received_at, status, document)"
        " VALUES (?, 'm1', '+491511234567', '2026-11-25T10:00:00+00:00', ?, 'ok', ?)",
        ((f"{i:032x}", 1.7e9 + i, DOCUMENT) for i in range(messages)))
    conn.executemany(
        "INSERT INTO deliveries(msg_id, sink, state, at) VALUES (?, 'mqtt', 'delivered', ?)",
        ((f"{i:032x}", 1.7e9 + i) for i in range(messages)))
    conn.executemany(
        "INSERT INTO outbox(sink, kind, msg_id, body, created_at) VALUES ('mqtt', 'sms', ?, ?, ?)",
        ((f"{i:032x}", DOCUMENT, 1.7e9 + i) for i in range(messages, messages + outbox_rows)))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def ingest(store: Store, n: int, *, start: int, gap: float = 0.0) -> list[float]:
    pdus = unique_pdus(n, start=start, text="ingest {i}")
    times = []
    for pdu in pdus:
        t0 = time.perf_counter()
        store.journal.commit_raw(modem="m1", mode="pdu", raw=pdu)
        times.append(time.perf_counter() - t0)
        if gap:
            time.sleep(gap)
    return times


def timed_process(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - t0


def bench_size(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.dir))
    empty = Store(work / "empty")
    print(f"ingest commit_raw, 0 stored:        {ms(ingest(empty, args.commits, start=0))}")
    empty.close()
    state = work / "big"
    t0 = time.perf_counter()
    prefill(state, args.messages)
    size = (state / STORE_FILENAME).stat().st_size
    print(f"prefill {args.messages} messages: {time.perf_counter() - t0:.1f} s, "
          f"{size / 2**20:.0f} MiB")
    config = write_config(work / "modemd.toml", state_dir=state,
                          modems=[{"name": "m1", "port": "/dev/ttyUSB2"}],
                          mqtt={"host": "127.0.0.1"})
    python = sys.executable
    open_code = ("import time,sys; t=time.perf_counter(); from modemd.store import Store; "
                 f"s=Store(__import__('pathlib').Path({str(state)!r})); "
                 "print(time.perf_counter()-t)")
    bare = timed_process([python, "-c", "pass"])
    opens = [float(subprocess.run([python, "-c", open_code], check=True, capture_output=True,
                                  text=True, cwd=ROOT).stdout) for _ in range(3)]
    print(f"open the store (import + open, in a fresh process): {min(opens) * 1e3:.0f} ms best "
          f"of 3 (python start-up alone {bare * 1e3:.0f} ms)")
    for verb in ("messages", "outbox"):
        runs = [timed_process([python, "-m", "modemd", verb, "-c", str(config)])
                for _ in range(3)]
        print(f"modemd {verb:<8} (whole process):   {min(runs) * 1e3:.0f} ms best of 3")
    store = Store(state)
    print(f"ingest commit_raw, {args.messages} stored: "
          f"{ms(ingest(store, args.commits, start=10**6))}")
    store.close()


class TimedLock:
    """The store's write lock, recording how long each holder kept it, per thread name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.holds: dict[str, list[float]] = {}
        self._since = 0.0

    def __enter__(self) -> None:
        self._lock.acquire()
        self._since = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        held = time.perf_counter() - self._since
        self.holds.setdefault(threading.current_thread().name, []).append(held)
        self._lock.release()


def bench_outbox(args: argparse.Namespace) -> None:
    import logging

    logging.getLogger("modemd.store.outbox").setLevel(logging.ERROR)  # one warning per drop
    work = Path(tempfile.mkdtemp(prefix="bench-outbox-", dir=args.dir))
    state = work / "state"
    prefill(state, 0, outbox_rows=args.rows)
    store = Store(state)
    lock = TimedLock()
    store.db._write_lock = lock  # type: ignore[assignment]
    print(f"outbox: {args.rows} rows waiting")
    quiet = ingest(store, args.commits, start=0, gap=0.002)
    print(f"ingest commit_raw, no housekeeping:             {ms(quiet)}")
    maintenance = StoreMaintenance(store.db, retention=3600, keep_marks=3600, check_interval=0)
    for at_bound in (False, True):
        stop = threading.Event()
        passes = [0]

        def housekeeping(at_bound: bool = at_bound, stop: threading.Event = stop,
                         passes: list[int] = passes) -> None:
            # every 0.1 s (the daemon: bounds every 5 s, the rest every 60 s)
            while not stop.is_set():
                if at_bound:  # refill what the last pass dropped (as ~250 messages would)
                    me = threading.current_thread()
                    me.name = "refill"  # its lock hold is not housekeeping's
                    with store.db.transaction() as conn:
                        for i in range(500):
                            store.outbox.enqueue(conn, sink="mqtt", kind="sms", msg_id=None,
                                                 body={"i": i})
                    me.name = "housekeeping"
                max_rows = args.rows - 500 if at_bound else args.rows
                store.outbox.enforce_bounds(max_rows=max_rows, max_age=30 * 86400)
                store.outbox.stats(["mqtt"])
                maintenance.run_once()
                passes[0] += 1
                stop.wait(0.1)

        worker = threading.Thread(target=housekeeping, name="housekeeping")
        lock.holds.clear()
        worker.start()
        try:
            busy = ingest(store, args.commits, start=10**6 * (1 + at_bound), gap=0.002)
        finally:
            stop.set()
            worker.join()
        label = ("at its bound (drops 500 per pass)" if at_bound else "under its bound")
        print(f"ingest commit_raw, housekeeping, {label}: {ms(busy)} "
              f"({passes[0]} passes)")
        held = lock.holds.get("housekeeping", [0.0])
        print(f"    write lock held per housekeeping transaction: {ms(held)} "
              f"({len(held)} transactions)")
    t0 = time.perf_counter()
    store.outbox.stats(["mqtt"])
    print(f"outbox stats (what `modemd outbox` reads): {(time.perf_counter() - t0) * 1e3:.2f} ms")
    t0 = time.perf_counter()
    store.journal.recent_messages(limit=20)
    print(f"recent messages (`modemd messages`):       {(time.perf_counter() - t0) * 1e3:.2f} ms")
    store.close()


def bench_prune(args: argparse.Namespace) -> None:
    """Retention pruning a big backlog (every message delivered, all older than retention)
    while messages come in."""
    from modemd.store.retention import Retention

    work = Path(tempfile.mkdtemp(prefix="bench-prune-", dir=args.dir))
    state = work / "state"
    prefill(state, args.messages)
    store = Store(state)
    lock = TimedLock()
    store.db._write_lock = lock  # type: ignore[assignment]
    mono = SteppedClock()
    store.db.clock = StoreClock(0.0, monotonic=mono)
    with store.db.transaction() as conn:  # the rows are all under the clock-0 mark; age it
        conn.execute("UPDATE clock_marks SET journal_seq = ?, message_rowid = ? WHERE clock = 0",
                     (args.messages, args.messages))
    mono.t = 7200.0
    result: list[object] = []
    pruner = threading.Thread(name="retention", target=lambda: result.append(
        Retention(store.db, retention=3600).prune()))
    t0 = time.perf_counter()
    pruner.start()
    times: list[float] = []
    start = 0
    while pruner.is_alive():
        times += ingest(store, 50, start=start, gap=0.002)
        start += 50
    pruner.join()
    print(f"retention pruned {result[0]} in {time.perf_counter() - t0:.1f} s")
    print(f"ingest commit_raw meanwhile: {ms(times)} ({len(times)} commits)")
    held = lock.holds.get("retention", [0.0])
    print(f"write lock held per retention transaction: {ms(held)} ({len(held)} transactions)")
    store.close()


class SteppedClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def bench_soak(args: argparse.Namespace) -> None:
    from modemd.pipeline import Pipeline, Route

    work = Path(tempfile.mkdtemp(prefix="bench-soak-", dir=args.dir))
    store = Store(work)
    mono = SteppedClock()
    store.db.clock = StoreClock(0.0, monotonic=mono)
    pipeline = Pipeline(store, routes=[Route("mqtt", frozenset({"sms", "reading", "deadletter"}))])
    maintenance = StoreMaintenance(store.db, retention=args.retention, keep_marks=args.retention,
                                   check_interval=0)
    path = work / STORE_FILENAME
    started = time.perf_counter()
    print(f"soak: {args.messages} messages, one store-clock second each, retention "
          f"{args.retention:.0f} s")
    print(f"{'messages':>9} {'journal':>8} {'kept msgs':>9} {'file MiB':>9} {'wal MiB':>8}")
    for done, pdu in enumerate(unique_pdus(args.messages, text="soak {i}"), start=1):
        store.journal.commit_raw(modem="m1", mode="pdu", raw=pdu)
        pipeline.run_once()
        rows = store.outbox.fetch("mqtt", limit=100)
        store.outbox.ack("mqtt", [r.seq for r in rows])
        mono.t += 1.0
        if done % 1000 == 0:
            maintenance.run_once()
        if done % (args.messages // 10) == 0:
            conn = store.db.connection()
            kept = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            wal = Path(f"{path}-wal")
            print(f"{done:>9} {store.journal.count():>8} {kept:>9} "
                  f"{path.stat().st_size / 2**20:>9.2f} "
                  f"{(wal.stat().st_size if wal.exists() else 0) / 2**20:>8.2f}")
    print(f"{time.perf_counter() - started:.0f} s")
    store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=os.environ.get("TMPDIR"), help="Where to work.")
    sub = parser.add_subparsers(dest="what", required=True)
    size = sub.add_parser("size")
    size.add_argument("--messages", type=int, default=1_000_000)
    size.add_argument("--commits", type=int, default=500)
    outbox = sub.add_parser("outbox")
    outbox.add_argument("--rows", type=int, default=200_000)
    outbox.add_argument("--commits", type=int, default=1000)
    soak = sub.add_parser("soak")
    soak.add_argument("--messages", type=int, default=100_000)
    soak.add_argument("--retention", type=float, default=10_000)
    prune = sub.add_parser("prune")
    prune.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args(argv)
    {"size": bench_size, "outbox": bench_outbox, "soak": bench_soak,
     "prune": bench_prune}[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

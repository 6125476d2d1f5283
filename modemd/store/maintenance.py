"""Store upkeep off the hot path: clock marks, retention, and the scheduled integrity check.

One thread, waking once a minute (nothing faster: idle CPU). Every write it makes is a short
transaction (a mark, a chunk of pruning), so ingest never waits on it for more than a few
milliseconds. The integrity check reads on a connection of its own and takes no write lock;
a failure is logged and recorded (``modemd store check`` shows it), never fatal: the daemon
keeps taking messages while a person looks.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from modemd.errors import StoreError
from modemd.store.database import Database
from modemd.store.retention import Retention

log = logging.getLogger(__name__)

WAKE_INTERVAL = 60.0
CHECK_LAST_KEY = "check.last"


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    problems: tuple[str, ...]
    seconds: float
    at: float  # wall clock, for display

    def summary(self) -> str:
        if self.ok:
            return f"ok ({self.seconds:.1f} s)"
        return f"{len(self.problems)} problem(s): " + "; ".join(self.problems[:5])


def integrity_check(path: Path, *, full: bool = False, max_problems: int = 100) -> CheckResult:
    """``PRAGMA quick_check`` (or ``integrity_check``) of the store file, read-only.

    Runs on a connection of its own opened ``mode=ro``: no write lock, no schema change.
    """
    started = time.monotonic()
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    pragma = "integrity_check" if full else "quick_check"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
        try:
            rows = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}({int(max_problems)})")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        rows = [f"cannot read the store: {exc}"]
    ok = rows == ["ok"]
    return CheckResult(ok=ok, problems=() if ok else tuple(rows),
                       seconds=time.monotonic() - started, at=time.time())


def record_check(db: Database, result: CheckResult) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (
            CHECK_LAST_KEY, json.dumps({"ok": result.ok, "problems": list(result.problems),
                                        "seconds": round(result.seconds, 3),
                                        "at": result.at})))
        if not result.ok:
            db.bump(conn, "store.check_failed")


def last_check(db: Database) -> CheckResult | None:
    raw = db.meta(CHECK_LAST_KEY)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return CheckResult(ok=bool(data["ok"]), problems=tuple(data["problems"]),
                           seconds=float(data["seconds"]), at=float(data["at"]))
    except (ValueError, KeyError, TypeError):
        return None


class StoreMaintenance:
    """The upkeep thread. ``check_interval`` 0 turns the scheduled check off."""

    def __init__(self, db: Database, *, retention: float, keep_marks: float,
                 check_interval: float = 86400.0, first_check_after: float = 3600.0,
                 wake_interval: float = WAKE_INTERVAL) -> None:
        self.db = db
        self.retention = Retention(db, retention=retention)
        self.keep_marks = max(keep_marks, retention)
        self.check_interval = check_interval
        self.wake_interval = wake_interval
        self._next_check = time.monotonic() + min(first_check_after, check_interval or 1e18)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_check: CheckResult | None = None
        self.passes = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-maintenance",
                                        daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            with self.db.transaction() as conn:
                self.db.clock.persist(conn)
        except StoreError as exc:
            log.warning("store: cannot save the store clock: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except StoreError as exc:
                log.warning("store maintenance: %s; trying again later", exc)
            except Exception:
                log.exception("store maintenance: unexpected error; trying again later")
            self._stop.wait(self.wake_interval)

    def run_once(self) -> None:
        with self.db.transaction() as conn:
            self.db.clock.mark_if_due(conn)
            self.db.clock.forget_marks(conn, keep=self.keep_marks)
        self.retention.prune(should_stop=self._stop.is_set)
        if self.check_interval and time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.check_interval
            self.check()
        self.passes += 1

    def check(self) -> CheckResult:
        result = integrity_check(self.db.path)
        self.last_check = result
        if result.ok:
            log.info("store %s: integrity check ok (%.1f s)", self.db.path, result.seconds)
        else:
            log.error("store %s: integrity check found problems: %s; the daemon goes on. "
                      "Stop it, copy the file and run `sqlite3 %s .recover`", self.db.path,
                      result.summary(), self.db.path)
        record_check(self.db, result)
        return result

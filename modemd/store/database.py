"""The SQLite file that holds the journal, multipart parts, messages and the outbox.

WAL mode so readers (CLI, sinks) never block the writer. One connection per thread. The
ingest connection runs with ``synchronous=FULL``: its commit is the durability promise that
allows deleting the message from the modem. A modem worker instead commits without the
fsync, hands the row on, and only then makes it durable (:meth:`Database.sync_through`, one
fsync of the WAL that callers waiting meanwhile share) before it deletes the message: the
modem still holds the message until then, so a power loss in between repeats a message
(same id), never loses one, and the fsync is off the path to the sinks. Everything
downstream of the journal (messages, outbox, acks) can be rebuilt from the journal, so those
connections use ``NORMAL``: a power loss may roll back their last transactions, which re-runs
processing and at worst repeats a delivery that carries the same id.

Opening costs the same at any size: the schema is brought to the latest version by the
migration ladder (nothing to do once it is), and the file gets a structural probe that reads
each table's first and last page, not a full check (``modemd store check`` and the daemon's
scheduled check do that). The file and its directory are private whatever the umask (see
:func:`private_modes`). The durable commit checks that the file it wrote is still the one at
the store's path: a store deleted or replaced under the daemon is :class:`StoreVanished`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from modemd.errors import StoreError
from modemd.store.clock import StoreClock
from modemd.store.migrations import (
    StoreVersionError,
    latest_version,
    migrate,
    refuse_newer,
    stored_version,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = latest_version()
WAL_SUFFIXES = ("-wal", "-shm")
# SQLite checkpoints by itself at 1000 pages (4 MiB); bulk work checkpoints before that.
WAL_CHECKPOINT_BYTES = 1 << 20


class StoreVanished(StoreError):
    """The store file was deleted or replaced while the store was open."""


def private_modes(directory: Path) -> tuple[int, int]:
    """(directory mode, file mode) for the state directory and the store files.

    Private (0700/0600) unless the directory was deliberately shared with its group and no
    one else (group r-x, others nothing: the systemd unit's ``StateDirectoryMode=0750``, a
    ``chmod 750``): then its group may read (0750/0640), never write. Others never get any
    access; a directory open to others (0755 from a default umask) is made 0700.
    """
    try:
        mode = stat.S_IMODE(directory.stat().st_mode)
    except OSError:
        mode = 0o700
    group_rx = stat.S_IRGRP | stat.S_IXGRP
    if mode & group_rx == group_rx and not mode & stat.S_IRWXO:
        return 0o750, 0o640
    return 0o700, 0o600


def _tighten(path: Path, mode: int) -> None:
    """Set *path* to at most *mode* (never widen an owner's stricter choice)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        wanted = current & mode | (mode & stat.S_IRWXU)
        if wanted != current:
            os.chmod(path, wanted)
    except FileNotFoundError:
        pass
    except PermissionError as exc:  # not the owner: say so once, the store still works
        log.warning("cannot make %s private (mode %o): %s", path, mode, exc.strerror)


def _secure_files(path: Path) -> None:
    """Create the state directory and the store file private, whatever the umask."""
    directory = path.parent
    if not directory.exists():
        old = os.umask(0o077)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        finally:
            os.umask(old)
    dir_mode, file_mode = private_modes(directory)
    _tighten(directory, dir_mode)
    if not path.exists():
        fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode)
        try:
            os.fchmod(fd, file_mode)  # umask-proof; SQLite gives -wal/-shm this file's mode
        finally:
            os.close(fd)
    for name in (path, *(path.with_name(path.name + s) for s in WAL_SUFFIXES)):
        _tighten(name, file_mode)


def writable(path: Path) -> bool:
    """Can this process write the store at *path* (and create its -wal/-shm)?"""
    directory = path.parent
    if not directory.exists():
        parent = next((p for p in directory.parents if p.exists()), None)
        return parent is not None and os.access(parent, os.W_OK | os.X_OK)
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    return not path.exists() or os.access(path, os.R_OK | os.W_OK)


class Database:
    """Opens the store file, brings its schema up to date, and hands each thread its own
    connection. ``readonly``: open with ``mode=ro`` and write nothing (CLI views on a store
    this user may only read)."""

    def __init__(self, path: Path, *, readonly: bool = False,
                 clock: StoreClock | None = None) -> None:
        self.path = path
        self.readonly = readonly
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        # commits counted under the write lock; sync_through makes those up to a count durable
        self._commits = 0
        self._synced = 0
        self._sync_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._uri: str | None = None
        self._identity: tuple[int, int] | None = None
        self._vanished: str | None = None
        self.on_vanished: Callable[[], None] = lambda: None  # called once, when first seen
        self.version = 0
        try:
            conn = self._open_readonly() if readonly else self._open_writable()
            self.clock = clock or StoreClock(StoreClock.load(conn))
            self._identity = self._stat_identity()
            # from here on this thread's (a connection costs about 150 KiB): the writable one
            # was configured durable, and the daemon's start sweeps durably on this thread
            setattr(self._local, "normal" if readonly else "durable", conn)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc
        except BaseException:
            self.close()
            raise

    # --- opening ---------------------------------------------------------------------------

    def _open_writable(self) -> sqlite3.Connection:
        try:
            _secure_files(self.path)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the store: {exc.strerror}") from exc
        conn = self._connect(self.path, uri=False)
        version = stored_version(conn)  # before any write: a newer file stays untouched
        refuse_newer(version, path=self.path)
        if version == 0:  # a new file: space freed by retention goes back to the disk
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        self._configure(conn, durable=True)
        probe(conn, self.path)
        before, self.version = migrate(conn, path=self.path)
        if before != self.version:
            log.info("store %s: schema upgraded from version %d to %d", self.path, before,
                     self.version)
        return conn

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise StoreError(f"{self.path}: no store here yet (modemd has not run with this "
                             "state_dir)")
        quoted = urllib.parse.quote(str(self.path.resolve()))
        conn: sqlite3.Connection | None = None
        for uri in (f"file:{quoted}?mode=ro", f"file:{quoted}?mode=ro&immutable=1"):
            # immutable: no -wal/-shm can be made in a read-only directory, and none exists,
            # so no writer is active; this snapshot is all there is.
            try:
                conn = self._connect(uri, uri=True)
                conn.execute("PRAGMA query_only=ON")
                self.version = stored_version(conn)
                self._uri = uri
                break
            except sqlite3.OperationalError:
                if conn is not None:
                    conn.close()
                    with self._lock:
                        self._connections.remove(conn)
                conn = None
                if uri.endswith("immutable=1"):
                    raise
        assert conn is not None
        refuse_newer(self.version, path=self.path)
        if self.version < SCHEMA_VERSION:
            raise StoreVersionError(
                f"{self.path}: the store has schema version {self.version} and needs "
                f"upgrading to {SCHEMA_VERSION}, which a read-only view cannot do; run modemd "
                "(or this command as the store's owner) once")
        return conn

    def _connect(self, target: Path | str, *, uri: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            target, timeout=30.0, isolation_level=None, check_same_thread=False, uri=uri
        )
        with self._lock:
            self._connections.append(conn)
        return conn

    @staticmethod
    def _configure(conn: sqlite3.Connection, *, durable: bool) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys=ON")
        # Deleted and rewritten content is zeroed, not left in free space: rows that held a
        # verification code or a published sealed code leave no trace in the file.
        conn.execute("PRAGMA secure_delete=ON")

    def _open(self, *, durable: bool) -> sqlite3.Connection:
        if self._uri is not None:
            conn = self._connect(self._uri, uri=True)
            conn.execute("PRAGMA query_only=ON")
            return conn
        conn = self._connect(self.path, uri=False)
        self._configure(conn, durable=durable)
        return conn

    def connection(self, *, durable: bool = False) -> sqlite3.Connection:
        """This thread's connection; ``durable`` ones fsync every commit."""
        attr = "durable" if durable else "normal"
        conn: sqlite3.Connection | None = getattr(self._local, attr, None)
        if conn is None:
            try:
                conn = self._open(durable=durable)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: {exc}") from exc
            setattr(self._local, attr, conn)
        return conn

    # --- the file under the store's path ------------------------------------------------------

    def _stat_identity(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return st.st_dev, st.st_ino

    def vanished(self) -> str | None:
        """Why the open file is no longer the store at its path (deleted, replaced), or None.

        One stat(2): cheap enough for every durable commit and a periodic look.
        """
        if self._vanished is None and self._identity is not None:
            try:
                identity = self._stat_identity()
            except FileNotFoundError:
                self._vanished = f"{self.path} was deleted while modemd had it open"
            except OSError as exc:
                log.debug("cannot stat %s: %s", self.path, exc)
            else:
                if identity != self._identity:
                    self._vanished = (f"{self.path} was replaced by another file while "
                                      "modemd had it open")
            if self._vanished is not None:
                self.on_vanished()
        return self._vanished

    # --- writing -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT on this thread's connection; rolls back on error.

        Writers of this process take turns on a lock rather than in SQLite's busy handler,
        which sleeps 1, 2, 5, 10 … ms between tries and made the latency tail with several
        modems. Any SQLite failure (disk full, I/O error) comes out as StoreError. A durable
        commit into a file that is no longer the store (deleted, replaced) is StoreVanished:
        its caller must not act on it (the modem keeps the message).
        """
        if durable and self._vanished is not None:
            raise StoreVanished(self._vanished)
        conn = self.connection(durable=durable)
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: {exc}") from exc
            try:
                yield conn
            except sqlite3.DatabaseError as exc:
                _rollback(conn)
                raise StoreError(f"{self.path}: {exc}") from exc
            except BaseException:
                _rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                _rollback(conn)
                raise StoreError(f"{self.path}: commit failed: {exc}") from exc
            self._commits += 1
        if durable and self.vanished() is not None:
            raise StoreVanished(str(self._vanished))

    @property
    def commits(self) -> int:
        """How many transactions this process has committed: the ticket for sync_through."""
        return self._commits

    def sync_through(self, ticket: int) -> None:
        """Make every transaction up to *ticket* (a :attr:`commits` read after them) durable.

        One fsync of the WAL, where a ``synchronous=NORMAL`` commit wrote its frames without
        one; that is what ``FULL`` does inside the commit. Callers that come while an fsync
        runs wait for it and share the next one, so modems receiving at once pay one fsync,
        and none of them holds the write lock meanwhile. A checkpoint in between has synced
        the frames it moved (SQLite syncs the WAL before and the file after a checkpoint).
        Raises StoreVanished when the file is no longer the store at its path.
        """
        if self._vanished is not None:
            raise StoreVanished(self._vanished)
        if self._synced < ticket:
            with self._sync_lock:
                if self._synced < ticket:
                    through = self._commits  # each counted commit has written its frames
                    try:
                        self._fsync_wal()
                    except StoreError:
                        if self.vanished() is not None:
                            raise StoreVanished(str(self._vanished)) from None
                        raise
                    self._synced = through
        if self.vanished() is not None:
            raise StoreVanished(str(self._vanished))

    def _fsync_wal(self) -> None:
        try:
            try:
                fd = os.open(f"{self.path}-wal", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:  # not in WAL mode (or checkpointed away): the file
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot sync the journal: {exc.strerror}") from exc

    def run_alone(self, statement: str) -> None:
        """Run one statement that must step to its end in a transaction of its own (such as
        ``PRAGMA incremental_vacuum(N)``, which frees one page per step), holding this
        process's write lock like :meth:`transaction`."""
        conn = self.connection()
        with self._write_lock:
            try:
                conn.executescript(statement)
            except sqlite3.DatabaseError as exc:
                _rollback(conn)
                raise StoreError(f"{self.path}: {exc}") from exc

    def checkpoint_if_big(self, *, over: int = WAL_CHECKPOINT_BYTES) -> bool:
        """A passive WAL checkpoint when the WAL has grown past *over* bytes, run WITHOUT
        the write lock (writers go on appending meanwhile). Bulk work (retention, bounds)
        calls this between chunks, so SQLite's automatic checkpoint, which runs inside a
        commit and so inside the write lock, does not fall on an ingest commit."""
        if self._uri is not None:
            return False
        try:
            size = os.stat(f"{self.path}-wal").st_size
        except OSError:
            return False
        if size <= over:
            return False
        try:
            self.connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.DatabaseError as exc:
            log.debug("checkpoint of %s failed: %s", self.path, exc)
            return False
        return True

    def bump(self, conn: sqlite3.Connection, name: str, by: int = 1) -> None:
        """Add to a named counter inside the caller's transaction."""
        conn.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def counters(self) -> dict[str, int]:
        rows = self.connection().execute("SELECT name, value FROM counters ORDER BY name")
        return {name: int(value) for name, value in rows}

    def meta(self, key: str) -> str | None:
        row = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


def probe(conn: sqlite3.Connection, path: Path) -> None:
    """A structural look at the file that costs the same at any size.

    Reads the schema, each table's first and last row (so its root page and both edges of its
    b-tree) and compares the file's length with the page count its header claims. Catches a
    file overwritten or truncated; damage in the middle of a table is for the full check.
    """
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    for table in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        conn.execute(f"SELECT * FROM {quoted} LIMIT 1").fetchall()
        conn.execute(f"SELECT MAX(rowid) FROM {quoted}").fetchall()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    wal = path.with_name(path.name + "-wal")
    wal_size = wal.stat().st_size if wal.exists() else 0
    size = path.stat().st_size
    if wal_size == 0 and size < int(pages) * int(page_size):
        raise StoreError(f"{path}: the file is truncated ({size} bytes, its header says "
                         f"{int(pages) * int(page_size)}): corrupt")


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: SQLite has already rolled back after some
    failures (SQLITE_FULL on COMMIT), and a second ROLLBACK would raise over the real error."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            log.debug("rollback failed: %s", exc)


def now() -> float:
    return time.time()

"""Group commit: records of many callers journalled in one durable transaction (one fsync).

An SMPP bind receives a thousand deliver_sm a second; an fsync per message would cap it at
the disk's sync rate. One committer thread takes whatever has been submitted, writes it in
one ``synchronous=FULL`` transaction and then tells each caller its result. It never waits
for a batch to fill: a lone record is committed at once (its latency is one commit), and
records that arrive while a commit is syncing form the next batch. So the batch size follows
the load by itself, and a caller's answer (deliver_sm_resp) goes out only after its record
is durable.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from modemd.errors import StoreError
from modemd.store.journal import CommitResult, Journal, RawEntry

log = logging.getLogger(__name__)

Done = Callable[[CommitResult | None, StoreError | None], None]


@dataclass(frozen=True, slots=True)
class _Pending:
    entry: RawEntry
    done: Done


class GroupCommitter:
    """One thread that journals submitted records in batches, then calls each ``done``.

    ``done(result, None)`` after the batch's commit returned (the record is durable), or
    ``done(None, error)`` if the commit failed (nothing of the batch was written). ``done``
    runs on the committer thread: keep it short (queue a response, set an event).
    """

    def __init__(
        self,
        journal: Journal,
        *,
        max_batch: int = 2000,
        on_committed: Callable[[], None] = lambda: None,
        name: str = "committer",
    ) -> None:
        self.journal = journal
        self.max_batch = max_batch
        self.on_committed = on_committed
        self.name = name
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.batches = 0
        self.records = 0
        self.largest_batch = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Commit what was submitted, then end the thread."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, entry: RawEntry, done: Done) -> None:
        """Queue *entry*; *done* is called once it is durable (or its commit failed)."""
        if self._stopping.is_set():
            done(None, StoreError("the committer is stopping"))
            return
        self._queue.put(_Pending(entry, done))

    def commit(self, entry: RawEntry, timeout: float | None = 30.0) -> CommitResult:
        """Submit and wait: for callers that want the group's throughput but block anyway."""
        future: Future[CommitResult] = Future()

        def done(result: CommitResult | None, error: StoreError | None) -> None:
            if result is not None:
                future.set_result(result)
            else:
                future.set_exception(error or StoreError("commit failed"))

        self.submit(entry, done)
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise StoreError(f"{self.name}: no commit within {timeout} s") from None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                if self._stopping.is_set() and self._queue.empty():
                    return
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = self.journal.commit_many([p.entry for p in batch])
        except StoreError as exc:
            log.error("%s: journal commit of %d record(s) failed: %s", self.name, len(batch),
                      exc)
            self._fail(batch, exc)
            return
        except Exception as exc:  # a bug: fail this batch (its senders retry), keep going
            log.exception("%s: journal commit of %d record(s) failed", self.name, len(batch))
            self._fail(batch, StoreError(f"journal commit failed: {exc!r}"))
            return
        self.batches += 1
        self.records += len(batch)
        self.largest_batch = max(self.largest_batch, len(batch))
        for pending, result in zip(batch, results, strict=True):
            self._call(pending.done, result, None)
        self.on_committed()

    def _fail(self, batch: list[_Pending], error: StoreError) -> None:
        for pending in batch:
            self._call(pending.done, None, error)

    def _call(self, done: Done, result: CommitResult | None, error: StoreError | None) -> None:
        try:
            done(result, error)
        except Exception:  # a caller's bug must not stop everyone's commits
            log.exception("%s: a commit callback failed", self.name)

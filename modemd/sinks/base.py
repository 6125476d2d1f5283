"""What every sink shares: a worker thread draining its outbox queue, with capped backoff."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence

from modemd.backoff import Backoff
from modemd.store import Store
from modemd.store.outbox import OutboxRow

log = logging.getLogger(__name__)

__all__ = ["Backoff", "Sink"]


class Sink(ABC):
    """A consumer of one outbox queue, named ``name``, taking the outbox kinds in ``kinds``.

    Subclasses implement :meth:`run_once`; the base runs it on a thread of its own until
    :meth:`stop`, and :meth:`wake` cuts the idle wait short when new rows arrive, so a message
    goes out within milliseconds of its commit instead of at the next poll.
    """

    name: str
    kinds: frozenset[str]

    def __init__(self, store: Store, *, idle_wait: float = 1.0) -> None:
        # idle_wait bounds the idle sleep: rows written by another process (the CLI) wake
        # no one, and next_wait() may know of something due sooner.
        self.store = store
        self.idle_wait = idle_wait
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def offer(self, rows: Sequence[OutboxRow]) -> None:
        """Rows of this sink the pipeline has just committed (the caller's thread). A sink
        that can deliver them at once without a thread hop may; the default wakes its thread,
        which reads them from the outbox."""
        self.wake()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> None:
        """Sleep until woken, stopped or ``seconds`` pass."""
        self._wake.wait(seconds)

    def _run(self) -> None:
        try:
            self.preflight()
        except Exception:
            log.exception("sink %s: start-up check failed", self.name)
        while not self._stop.is_set():
            self._wake.clear()  # before the work: a wake during it is not lost
            try:
                busy = self.run_once()
            except Exception:
                # A sink bug must not kill delivery for good: log it, pause, go on.
                log.exception("sink %s: unexpected error; retrying", self.name)
                busy = False
                self._stop.wait(1.0)
            if not busy:
                self.wait(self.next_wait())

    def next_wait(self) -> float:
        """How long the idle sink may sleep before something falls due unasked (in-process
        writers wake it; a subclass knows its retry and expiry times)."""
        return self.idle_wait

    def preflight(self) -> None:  # noqa: B027 - optional hook
        """A start-up check on the sink's own thread (never delays the daemon's start)."""

    @abstractmethod
    def run_once(self) -> bool:
        """Deliver what is due; True if there may be more to do right away."""

    def close(self) -> None:  # noqa: B027 - optional hook, most sinks hold nothing to close
        """Release connections (called after the thread stopped)."""

"""The pump between the simulated modem's AT engine and its host: a pty or a loopback.

The engine (``modem.py`` with the handler table in ``handlers.py`` and the personalities in
``profiles.py``) only says "these bytes go to the host" and is fed what the host wrote; a
pump moves the bytes. :class:`PtyPump` writes them to a pseudo-terminal's master (paced to a
line speed when asked, buffering while the host does not read); :class:`LoopbackPump` hands
them to an in-process :class:`~modemd.transport.LoopbackTransport` (no file descriptor).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from modemd.simulator.pty_port import PtyPort
from modemd.transport.base import LoopbackTransport

__all__ = ["LoopbackPump", "PtyPump", "Pump"]

log = logging.getLogger(__name__)

_MAX_OUTPUT = 1 << 20  # bytes kept for a host that does not read (a real UART would drop)


class Pump(Protocol):
    path: str  # what a host opens

    def write(self, data: bytes) -> None: ...
    def flush(self) -> None: ...
    def read(self) -> bytes: ...
    def close(self) -> None: ...
    def select_fds(self) -> tuple[int | None, bool]: ...
    @property
    def pending(self) -> bool: ...


class PtyPump:
    """Bytes to and from a pty master; ``baud()`` > 0 paces the output (10 bits a byte)."""

    def __init__(self, port: PtyPort, *, baud: Callable[[], int]) -> None:
        self.port = port
        self.path = port.slave_path
        self._baud = baud
        self._outbuf = bytearray()
        self._paced_at = 0.0

    @property
    def pending(self) -> bool:
        return bool(self._outbuf)

    def select_fds(self) -> tuple[int | None, bool]:
        """The fd to wait on for reading, and whether to wait for it to be writable (never
        while paced: the pacing clock, not the tty, says when the next bytes may go)."""
        return self.port.master_fd, bool(self._outbuf) and not self._baud()

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._outbuf:
            self._paced_at = time.monotonic()
        self._outbuf += data
        if len(self._outbuf) > _MAX_OUTPUT:
            del self._outbuf[: len(self._outbuf) - _MAX_OUTPUT]
        self.flush()

    def flush(self) -> None:
        master = self.port.master_fd
        if master is None:
            self._outbuf.clear()
            return
        while self._outbuf:
            budget = self._budget()
            if budget <= 0:
                return  # a slow line: the engine's thread sends the rest as time passes
            try:
                written = os.write(master, self._outbuf[:budget])
            except BlockingIOError:
                return  # the host is not reading; retried when writable
            except OSError:
                self._outbuf.clear()
                return
            del self._outbuf[:written]

    def _budget(self) -> int:
        baud = self._baud()
        if not baud:
            return len(self._outbuf)
        now = time.monotonic()
        budget = int((now - self._paced_at) * baud / 10)
        if budget > 0:
            self._paced_at = now
        return min(budget, len(self._outbuf))

    def read(self) -> bytes:
        master = self.port.master_fd
        if master is None:
            return b""
        try:
            return os.read(master, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:
            log.debug("pty master read failed: %s", exc)
            return b""

    def close(self) -> None:
        self._outbuf.clear()
        self.port.close()


class LoopbackPump:
    """The engine's bytes straight into a LoopbackTransport; the host's writes call
    ``on_host_bytes`` in the writing thread."""

    def __init__(self, on_host_bytes: Callable[[bytes], None], *, path: str) -> None:
        self.path = path
        self.transport = LoopbackTransport(on_host_bytes, port=path)

    @property
    def pending(self) -> bool:
        return False

    def select_fds(self) -> tuple[int | None, bool]:
        return None, False

    def write(self, data: bytes) -> None:
        if data:
            self.transport.deliver(data)

    def flush(self) -> None:
        """Nothing waits: delivered at once."""

    def read(self) -> bytes:
        return b""

    def close(self) -> None:
        self.transport.vanish()

"""The transport interface the AT session needs, and an in-process loopback for tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from modemd.errors import TransportError

__all__ = ["LoopbackTransport", "Transport"]


class Transport(Protocol):
    """Bytes in and out of one modem port."""

    port: str

    def open(self) -> None: ...
    def read(self, timeout: float | None = None) -> bytes:
        """What arrived, waiting at most ``timeout`` s (None: the transport's own read
        timeout); b"" if nothing did. Raises TransportError when the port is gone."""
        ...

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class LoopbackTransport:
    """An in-process port: what the host writes goes to ``peer``; what the modem says is
    handed in with :meth:`deliver` and comes out of :meth:`read`. No pty, no file descriptor.

    :meth:`vanish` makes the next read and write fail as an unplugged USB device does;
    :meth:`interrupt` makes the read waiting (or the next one) return b"" at once.
    """

    def __init__(self, peer: Callable[[bytes], None] | None = None, *, port: str = "loopback",
                 read_timeout: float = 0.05) -> None:
        self.port = port
        self.read_timeout = read_timeout
        self._peer = peer
        self._inbox = bytearray()
        self._cond = threading.Condition()
        self._open = False
        self._gone = False
        self._interrupted = False
        self.written = bytearray()  # everything the host wrote, for assertions

    def connect(self, peer: Callable[[bytes], None]) -> None:
        self._peer = peer

    def open(self) -> None:
        if self._gone:
            raise TransportError("no such device (loopback vanished)", port=self.port)
        self._open = True

    def deliver(self, data: bytes) -> None:
        """The modem side speaks."""
        with self._cond:
            self._inbox += data
            self._cond.notify_all()

    def read(self, timeout: float | None = None) -> bytes:
        with self._cond:
            self._check()
            if not self._inbox and not self._interrupted:
                self._cond.wait(self.read_timeout if timeout is None else timeout)
                self._check()
            self._interrupted = False
            data = bytes(self._inbox)
            self._inbox.clear()
            return data

    def write(self, data: bytes) -> None:
        with self._cond:
            self._check()
            self.written += data
        if self._peer is not None:
            self._peer(bytes(data))

    def interrupt(self) -> None:
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._open = False
            self._cond.notify_all()

    def vanish(self) -> None:
        with self._cond:
            self._gone = True
            self._cond.notify_all()

    def _check(self) -> None:
        if self._gone:
            raise TransportError("read failed: device vanished", port=self.port)
        if not self._open:
            raise TransportError("port is not open", port=self.port)

"""What systemd listens on, played by the tests: the $NOTIFY_SOCKET datagram socket."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket; collects every message."""

    def __init__(self) -> None:
        # A short path: sun_path holds 108 bytes, pytest's tmp_path can be longer.
        self.dir = tempfile.mkdtemp(prefix="modemd-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, predicate_text: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for when, text in self.messages:
                if predicate_text in text.split("\n"):
                    return when
            self.poll(0.1)
        raise AssertionError(f"no {predicate_text} within {timeout}s; got {self.messages}")

    def count(self, line: str, after: float = 0.0) -> int:
        return sum(1 for when, text in self.messages if when >= after and line in text.split("\n"))

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

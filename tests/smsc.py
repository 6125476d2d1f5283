"""A third-party SMSC per test: the npm `smpp` package's server, run by node (tests/smsc/).

``scripts/test`` installs the node packages (npm ci in tests/smsc). The script only wires
the library: bind authentication, deliver_sm on command, responses recorded, connections
dropped on command, unanswered deliver_sm sent again after a reconnect (as SMSCs do).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

HARNESS = Path(__file__).resolve().parent / "smsc"


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed: apt-get install nodejs npm")
    if not (HARNESS / "node_modules" / "smpp").is_dir():
        raise RuntimeError("the test SMSC's packages are missing: run scripts/test, or "
                           "npm ci --no-audit --no-fund in tests/smsc")
    return node


class Smsc:
    """Start the SMSC on a free port; ``events`` holds what it reported, in order."""

    def __init__(self, *, system_id: str = "modemd", password: str = "secret",
                 resend: bool = True, window: int = 0, key: Path | None = None,
                 cert: Path | None = None) -> None:
        options: dict[str, Any] = {"system_id": system_id, "password": password,
                                   "resend": resend}
        if window:
            options["window"] = window
        if key and cert:
            options["key"], options["cert"] = str(key), str(cert)
        self.options = options
        self.events: list[dict[str, Any]] = []
        self.output: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> Smsc:
        self.proc = subprocess.Popen(
            [node_binary(), str(HARNESS / "server.js"), json.dumps(self.options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1)
        threading.Thread(target=self._reader, name="smsc-reader", daemon=True).start()
        listening = self.wait_event(lambda e: e["event"] == "listening", timeout=20)
        self.port = int(listening["port"])
        return self

    def _reader(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self.output.append(line.rstrip())  # node's own messages (a crash, a warning)
                continue
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def command(self, **cmd: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def deliver(self, key: str, *, via: int = 0, command: str = "deliver_sm",
                **pdu: Any) -> None:
        """Queue one deliver_sm (or a data_sm, *command*) on the *via*-th bound session;
        bytes values (short_message, message_payload) go as is."""
        fields = {k: ({"hex": v.hex()} if isinstance(v, bytes) else v) for k, v in pdu.items()}
        fields.setdefault("source_addr_ton", 1)
        fields.setdefault("source_addr_npi", 1)
        fields.setdefault("source_addr", "4915112345678")
        fields.setdefault("destination_addr", "22222")
        self.command(cmd="deliver", key=key, pdu=fields, via=via, command=command)

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0,
                   after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[after:]:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"SMSC: no such event within {timeout}s; last events: "
                                         f"{self.events[-8:]}; output: {self.output[-20:]}")
                self._cond.wait(left)

    def responses(self) -> dict[str, dict[str, Any]]:
        """The deliver_sm answers so far, by key (the last answer of each)."""
        with self._cond:
            return {e["key"]: e for e in self.events if e["event"] == "resp"}

    def wait_responses(self, keys: list[str], timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.responses()
            if all(k in got for k in keys):
                return got
            if time.monotonic() > deadline:
                missing = [k for k in keys if k not in got]
                raise AssertionError(f"SMSC: no deliver_sm_resp for {missing[:10]} "
                                     f"({len(missing)} of {len(keys)}) within {timeout}s; "
                                     f"events: {self.events[-8:]}; output: {self.output[-20:]}")
            with self._cond:
                self._cond.wait(0.1)

    def submits(self) -> list[dict[str, Any]]:
        """The submit_sm taken so far, in order (with their fields and decoded text)."""
        with self._cond:
            return [e for e in self.events if e["event"] == "submit_sm"]

    def count(self, name: str) -> int:
        with self._cond:
            return sum(1 for e in self.events if e["event"] == name)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ValueError, OSError):
                proc.stdin.write('{"cmd": "exit"}\n')
                proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Smsc:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

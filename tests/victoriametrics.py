"""A real VictoriaMetrics server for tests and benchmarks, on a free port of 127.0.0.1.

    with VictoriaMetrics(tmp_path / "vm") as vm:
        ... write to vm.url (InfluxDB v2 write API at vm.url + "/api/v2/write") ...
        vm.stop()          # an outage; data written so far is flushed to disk
        vm.start()         # the same port and data directory again
        samples = vm.export('{__name__=~"device_status_.*"}')

Flags that matter for reading back what was just written:

* ``-search.latencyOffset=0s``: by default the last 30 s are hidden from queries;
* ``-search.disableCache``: no response cache that could serve an older answer;
* ``-dedup.minScrapeInterval=1ms``: one sample per series and timestamp, which is what the
  InfluxDB data model (and modemd's "a replay overwrites, not duplicates") relies on. Without
  it VictoriaMetrics keeps every copy of a re-written point;
* ``/internal/force_flush`` (called by :meth:`export`) makes buffered rows searchable now
  instead of within about a second.

An InfluxDB line becomes one metric per field, ``<measurement>_<field>``, with the tags as
labels; bools are 1/0 and strings are stored as 0 (VictoriaMetrics keeps numbers only).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

BINARY_ENV = "VICTORIA_METRICS_BIN"
MISSING = (
    "victoria-metrics is not installed (Debian package 'victoria-metrics', binary "
    "/usr/bin/victoria-metrics). Run scripts/ensure-servers (as root or with sudo) to "
    f"install it, or point ${BINARY_ENV} at the binary."
)


class VictoriaMetricsMissing(RuntimeError):
    """The victoria-metrics binary is not there: install it with scripts/ensure-servers."""


class Sample(NamedTuple):
    name: str  # metric name: <measurement>_<field>
    labels: dict[str, str]  # tags, without __name__
    value: float
    timestamp_ms: int  # exact, milliseconds since the epoch


def binary() -> str:
    """The victoria-metrics executable, or :class:`VictoriaMetricsMissing`."""
    candidates = [os.environ.get(BINARY_ENV), shutil.which("victoria-metrics"),
                  "/usr/bin/victoria-metrics"]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise VictoriaMetricsMissing(MISSING)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VictoriaMetrics:
    """One victoria-metrics process; :meth:`stop` and :meth:`start` keep port and data."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 20.0,
    ) -> None:
        self.binary = binary()
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.log_path = self.data_dir.with_name(self.data_dir.name + ".log")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data_dir}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-dedup.minScrapeInterval=1ms",
            "-loggerLevel=WARN",
            *self.extra_args,
        ]

    def start(self) -> VictoriaMetrics:
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self._proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"victoria-metrics exited with {self._proc.returncode} at start-up "
                    f"(port {self.port}):\n{self.log_tail()}"
                )
            if self._healthy():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"victoria-metrics did not answer /health within {self.start_timeout:.0f} s:\n"
            f"{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (VictoriaMetrics flushes to disk), wait, SIGKILL if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> VictoriaMetrics:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- HTTP ------------------------------------------------------------------------------

    def _get(self, path: str, timeout: float = 10.0) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            data: bytes = response.read()
            return data

    def _healthy(self) -> bool:
        try:
            return self._get("/health", timeout=1.0).strip() == b"OK"
        except (OSError, urllib.error.URLError):
            return False

    def flush(self) -> None:
        """Make every row received so far visible to queries."""
        self._get("/internal/force_flush")

    def export(self, match: str = '{__name__!=""}') -> list[Sample]:
        """Every stored sample of the series matching ``match``, via /api/v1/export."""
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        samples: list[Sample] = []
        for line in self._get(f"/api/v1/export?{query}").splitlines():
            if not line.strip():
                continue
            series = json.loads(line)
            labels = dict(series["metric"])
            name = labels.pop("__name__")
            for value, ts in zip(series["values"], series["timestamps"], strict=True):
                samples.append(Sample(name, labels, float(value), int(ts)))
        samples.sort(key=lambda s: (s.name, sorted(s.labels.items()), s.timestamp_ms))
        return samples

    def wait_for(self, match: str, count: int, timeout: float = 10.0) -> list[Sample]:
        """:meth:`export` until at least ``count`` samples match (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.export(match)
            if len(samples) >= count or time.monotonic() > deadline:
                return samples
            time.sleep(0.1)

"""What the end-to-end benchmark and the soak share: the daemon as a child process (with a
NOTIFY_SOCKET the script binds), its CPU time, memory and file descriptors from /proc, an
MQTT subscriber that timestamps every arrival, percentiles and a description of the machine.

Servers: mosquitto from ``tests/mosquitto.py`` (a private broker on a free port); the simulated
modems run in the benchmark's own process, on ptys the daemon opens like hardware.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402

from modemd.simulator import SimulatedModem  # noqa: E402
from tests.helpers import write_config  # noqa: E402

SMS_TOPIC = "modemd/gw1/sms"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


# --- the machine --------------------------------------------------------------------------------


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def wait(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll until ``predicate()`` is true; exit the benchmark with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 2),
        "p95_ms": round(percentile(seconds, 95) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2) if seconds else float("nan"),
    }


# --- the daemon process -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # user + system
    rss_kib: int
    hwm_kib: int  # peak RSS so far
    fds: int
    threads: int
    system_s: float = 0.0  # the kernel's part of cpu_s
    switches: int = 0  # context switches of all its threads, voluntary or not


def sample(pid: int) -> ProcSample:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    return ProcSample(
        cpu_s=(utime + stime) / CLOCK_TICK,
        rss_kib=int(status["VmRSS"].split()[0]),
        hwm_kib=int(status["VmHWM"].split()[0]),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(status["Threads"]),
        system_s=stime / CLOCK_TICK,
        switches=_context_switches(pid),
    )


def _context_switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            lines = (task / "status").read_text().splitlines()
        except OSError:  # the thread ended meanwhile
            continue
        total += sum(int(line.split()[1]) for line in lines if "ctxt_switches" in line)
    return total


class NotifySocket:
    """A datagram socket standing in for systemd's: what the daemon sends, with times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []

    def wait_for(self, field: str, timeout: float) -> float | None:
        """perf_counter() when a datagram carrying ``field`` (e.g. READY=1) arrived."""
        for at, text in self.messages:
            if field in text.split("\n"):
                return at
        deadline = time.perf_counter() + timeout
        while (left := deadline - time.perf_counter()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return None
            at = time.perf_counter()
            text = data.decode("utf-8", "replace")
            self.messages.append((at, text))
            if field in text.split("\n"):
                return at
        return None

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


class Daemon:
    """``modemd run`` as systemd would run it: a child process with NOTIFY_SOCKET set."""

    def __init__(self, config: Path, workdir: Path, *, log_level: str = "INFO") -> None:
        self.config = config
        self.notify = NotifySocket(workdir / f"notify-{time.monotonic_ns()}.sock")
        self.log = workdir / "modemd.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": str(self.notify.path)}
        self.started = time.perf_counter()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modemd", "run", "-c", str(config),
                 "--log-level", log_level],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from the start of the process to READY=1."""
        at = self.notify.wait_for("READY=1", timeout)
        if at is None:
            self.stop()
            raise RuntimeError(f"no READY=1 within {timeout} s:\n{self.output()[-3000:]}")
        return at - self.started

    def sample(self) -> ProcSample:
        return sample(self.proc.pid)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.notify.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def config_for(path: Path, *, state_dir: Path, sims: Sequence[SimulatedModem], broker_port: int,
               gateway: dict[str, Any] | None = None, command_timeout: float = 3) -> Path:
    return write_config(
        path, state_dir=state_dir,
        modems=[{"name": f"m{i + 1}", "port": sim.port, "command_timeout": command_timeout}
                for i, sim in enumerate(sims)],
        mqtt={"host": "127.0.0.1", "port": broker_port, "keepalive": 10},
        gateway={"sweep_interval": 60, "health_interval": 60, **(gateway or {})})


def run_from_bytecode() -> None:
    """modemd loads .pyc files, as installed: PYTHONDONTWRITEBYTECODE (set in some shells and
    CI) would make it compile its code from source at every start, which leaves about 0.5-2
    MiB more resident than loading compiled code (the bridge is one small script)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "modemd")],
                   check=True)



# --- the subscriber ------------------------------------------------------------------------------


class Arrivals:
    """A QoS 1 subscriber (persistent session) that keeps the first arrival time of every id
    and counts every copy."""

    def __init__(self, port: int, *, topic: str = SMS_TOPIC) -> None:
        self.first: dict[str, float] = {}
        self.copies: dict[str, int] = {}
        self.status: list[bytes] = []
        self._cond = threading.Condition()
        self._topic = topic
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"bench-{os.getpid()}-{time.monotonic_ns()}",
                                  clean_session=False, protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = lambda c, *a: c.subscribe(
            [(topic, 1), ("modemd/gw1/status", 1)])
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not subscribed.wait(10):
            self.close()
            raise RuntimeError("the benchmark subscriber could not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        at = time.perf_counter()
        if msg.topic != self._topic:
            with self._cond:
                self.status.append(bytes(msg.payload))
                self._cond.notify_all()
            return
        msg_id = str(json.loads(msg.payload)["id"])
        with self._cond:
            self.first.setdefault(msg_id, at)
            self.copies[msg_id] = self.copies.get(msg_id, 0) + 1
            self._cond.notify_all()

    def wait_ids(self, ids: Iterable[str], timeout: float) -> bool:
        wanted = set(ids)
        deadline = time.perf_counter() + timeout
        with self._cond:
            while not wanted <= self.first.keys():
                left = deadline - time.perf_counter()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    def wait_status(self, payload: bytes, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        with self._cond:
            while not self.status or self.status[-1] != payload:
                left = deadline - time.perf_counter()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def duplicates(self, ids: Iterable[str]) -> int:
        with self._cond:
            return sum(1 for i in ids if self.copies.get(i, 0) > 1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def print_json(path: Path | None, results: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(results, indent=2) + "\n", "utf-8")

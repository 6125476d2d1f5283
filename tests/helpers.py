"""Helpers shared by the integration tests: configs, unique PDUs, waiting, daemon processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from modemd.config import Config, load_config
from modemd.config_view import freeze
from modemd.sms.encode import encode_deliver
from modemd.store import Store

REPO = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def unique_pdus(count: int, *, sender: str = "+491511234567", text: str = "status {i}",
                start: int = 0) -> list[bytes]:
    """Distinct SMS-DELIVER PDUs (distinct text and service-centre time)."""
    base = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
    return [
        encode_deliver(sender=sender, text=text.format(i=i), scts=base + timedelta(seconds=i),
                       smsc="+491710760000")
        for i in range(start, start + count)
    ]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, *, state_dir: Path, modems: Sequence[dict[str, Any]],
                 mqtt: dict[str, Any] | None = None, influx: dict[str, Any] | None = None,
                 gateway: dict[str, Any] | None = None, extra: str = "") -> Path:
    lines = ["[gateway]", 'id = "gw1"', f"state_dir = {toml_value(str(state_dir))}"]
    gw = {"sweep_interval": 30, "health_interval": 30, **(gateway or {})}
    lines += [f"{k} = {toml_value(v)}" for k, v in gw.items()]
    for modem in modems:
        lines += ["", "[[modem]]"]
        settings = {"command_timeout": 3, **modem}
        lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()]
    for section, values in (("mqtt", mqtt), ("influx", influx)):
        if values is not None:
            lines += ["", f"[{section}]"]
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()
                      if not isinstance(v, dict)]
            for k, v in values.items():
                if isinstance(v, dict):
                    lines += [f"[{section}.{k}]"] + [f"{kk} = {toml_value(vv)}"
                                                     for kk, vv in v.items()]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def load(path: Path) -> Config:
    """The config at *path* as `modemd run` runs on it: views of the validated models
    (modemd.config_view), so the daemons the tests build run the daemon's own code path."""
    return cast("Config", freeze(load_config(path)))


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """*code* in a fresh interpreter in the repository: what a new process loads and does."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


def journal_rows(state_dir: Path) -> list[Any]:
    store = Store(state_dir)
    try:
        return store.journal.records(limit=100_000)
    finally:
        store.close()


def message_rows(state_dir: Path) -> list[dict[str, Any]]:
    store = Store(state_dir)
    try:
        return store.journal.recent_messages(limit=100_000)
    finally:
        store.close()


class DaemonProcess:
    """`modemd run -c CONFIG` in a child process, as systemd would run it."""

    def __init__(self, config: Path, *, env: dict[str, str] | None = None,
                 log: Path | None = None) -> None:
        self.config = config
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log = log or config.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modemd", "run", "-c", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=REPO)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                return proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                raise AssertionError("modemd did not stop on SIGTERM within 15 s") from None
        return proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def on_sim(sim: Any) -> list[bytes]:
    """Every message left in any storage of a simulated modem (whatever <mem1> is now)."""
    return [pdu for name in sim.profile.all_storages() for pdu in sim.messages(name).values()]

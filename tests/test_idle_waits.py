"""An idle daemon wakes only when something is due (issue 18); `modemd run` without the CLI.

Counted turns, not timings: an idle worker whose hook is due in an hour does not run it
again until woken, and a blocking serial read ends when the session closes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from modemd.config import DEFAULT_CONFIG_PATH
from modemd.launch import parse_run
from modemd.modem.driver import ModemDriver
from tests.helpers import unique_pdus, wait_until
from tests.test_driver_loopback import journalled, loopback, running


@pytest.mark.parametrize("over", ["loopback", "pty"])
def test_an_idle_worker_runs_a_hook_when_due_or_woken_not_on_a_timer(
        tmp_path: Path, over: str) -> None:
    sim = loopback(over=over)
    turns: list[float] = []
    due = [time.monotonic() + 3600.0]

    def hook(driver: ModemDriver) -> None:
        turns.append(time.monotonic())

    try:
        with running(tmp_path, sim) as (driver, store):
            driver.add_worker_hook(hook, next_due=lambda: due[0])
            wait_until(driver.ready.is_set, what="ready")
            driver.wake()
            wait_until(lambda: turns, what="a turn on wake()")
            settled = len(turns)
            time.sleep(1.5)  # the old loop turned every 0.25 s: six more turns
            assert len(turns) - settled <= 1, turns
            due[0] = time.monotonic()  # due now: it runs at the next wake
            driver.wake()
            wait_until(lambda: len(turns) > settled + 1, what="the due hook")
            sim.deliver(unique_pdus(1)[0])
            wait_until(lambda: journalled(store), what="still receiving")
    finally:
        sim.stop()


def test_a_blocking_read_ends_when_the_driver_stops(tmp_path: Path) -> None:
    sim = loopback(over="pty")
    try:
        with running(tmp_path, sim) as (driver, _store):
            wait_until(driver.ready.is_set, what="ready")
            before = set(threading.enumerate())
        stopped_at = time.monotonic()
        # running() stopped the driver: its reader (blocked in select) and worker are gone
        assert not [t for t in before if t.is_alive() and t.name.startswith(("at-reader",
                                                                              "modem-"))]
        assert time.monotonic() - stopped_at < 1.0
    finally:
        sim.stop()


@pytest.mark.parametrize(("argv", "expected"), [
    (["run"], (DEFAULT_CONFIG_PATH, "INFO")),
    (["run", "-c", "/x.toml"], (Path("/x.toml"), "INFO")),
    (["--debug", "run", "--config=/x.toml", "--log-level", "DEBUG"], (Path("/x.toml"), "DEBUG")),
    (["run", "--log-level=warning", "--config", "a b.toml"], (Path("a b.toml"), "warning")),
])
def test_a_plain_run_command_line_is_read_without_the_cli(
        argv: list[str], expected: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEMD_CONFIG", raising=False)
    assert parse_run(argv) == expected


@pytest.mark.parametrize("argv", [
    [], ["config", "check"], ["run", "--help"], ["run", "-c"], ["run", "--bogus"],
    ["run", "-c", "--log-level"], ["--version", "run"], ["run", "extra"], ["run", "-c="],
])
def test_anything_else_goes_to_the_full_cli(argv: list[str]) -> None:
    assert parse_run(argv) is None


def test_the_config_comes_from_modemd_config_as_the_cli_reads_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEMD_CONFIG", "/etc/other.toml")
    assert parse_run(["run"]) == (Path("/etc/other.toml"), "INFO")
    assert parse_run(["run", "-c", "/x.toml"]) == (Path("/x.toml"), "INFO")

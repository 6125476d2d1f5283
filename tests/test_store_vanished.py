"""The store file deleted or replaced under a running daemon: nothing more leaves the SIM,
the reason is logged and the daemon exits non-zero (systemd restarts it on a new store)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modemd.simulator import SimulatedModem
from modemd.store import STORE_FILENAME
from tests.helpers import DaemonProcess, journal_rows, on_sim, unique_pdus, wait_until, write_config


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_vanished_store_stops_the_daemon_and_leaves_messages_on_the_sim(
        tmp_path: Path, sim: SimulatedModem, how: str) -> None:
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "modemd.toml", state_dir=state,
                       modems=[{"name": "m1", "port": sim.port}])
    first, *later = unique_pdus(7)
    daemon = DaemonProcess(cfg).start()
    try:
        sim.deliver(first)
        wait_until(lambda: not on_sim(sim), what="the first message taken", timeout=30)
        wait_until(lambda: journal_rows(state), what="journalled", timeout=10)
        path = state / STORE_FILENAME
        if how == "replaced":
            shutil.copy(path, tmp_path / "copy")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        if how == "replaced":
            shutil.copy(tmp_path / "copy", path)
        for pdu in later:
            sim.deliver(pdu)
        proc = daemon.proc
        assert proc is not None
        wait_until(lambda: proc.poll() is not None, what="the daemon to exit", timeout=30)
        assert proc.returncode not in (0, None)
        assert sorted(on_sim(sim)) == sorted(later)  # all six still on the SIM
        log = daemon.output()
        assert f"was {how}" in log and "messages stay on the modem" in log, log[-2000:]
        assert "Traceback" not in log
    finally:
        daemon.stop()

"""Sending through `modemd run` in a child process: the CLI path, and SIGKILL at each step.

At most once: a request is sent exactly once however the daemon dies, except that a death
between AT+CMGS and its answer leaves it ``unknown`` and never sends it again. Nothing is lost:
every request reaches a final state, and a late delivery report still settles it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modemd.simulator import SimulatedModem
from modemd.simulator.sending import inject_status_report
from modemd.sms import SmsSubmit, decode_pdu
from modemd.sms.submit import encode_status_report
from modemd.store import Store
from tests.helpers import REPO, DaemonProcess, toml_value, wait_until, write_config
from tests.mosquitto import Mosquitto
from tests.mqtt_client import Recorder

TO = "+4915112345678"


def config(tmp_path: Path, sim: SimulatedModem, *, broker: Mosquitto | None = None,
           **send: Any) -> Path:
    values = {"enabled": True, "allowed_destinations": ["+49151*"], "retry_backoff": 0.2,
              **send}
    section = "\n[send]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())
    mqtt = {"host": "127.0.0.1", "port": broker.port, "keepalive": 5} if broker else None
    return write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                        modems=[{"name": "m1", "port": sim.port}], mqtt=mqtt, extra=section)


def cli(cfg: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modemd", "sms", *args, "-c", str(cfg)],
                          check=False, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def request(tmp_path: Path, request_id: str) -> dict[str, Any]:
    store = Store(tmp_path / "state")
    try:
        row = store.sendq.get(request_id)
        assert row is not None
        parts = store.sendq.parts(request_id)
        return {"state": row.state, "error": row.error, "mr": [p.mr for p in parts],
                "parts": [p.state for p in parts]}
    finally:
        store.close()


def test_cli_send_wait_follows_to_delivered_without_a_broker(tmp_path: Path,
                                                             sim: SimulatedModem) -> None:
    cfg = config(tmp_path, sim)
    daemon = DaemonProcess(cfg).start()
    try:
        result = cli(cfg, "send", "--to", TO, "--text", "STATUS?", "--id", "cli-1", "--wait",
                     "--timeout", "30")
        assert result.returncode == 0, result.stdout + result.stderr + daemon.output()
        states = [line.split()[1] for line in result.stdout.splitlines()]
        # every state it saw, in order ("sent" may pass between two looks at the store)
        assert states[0] == "queued" and states[-1] == "delivered"
        assert states in (["queued", "sent", "delivered"], ["queued", "delivered"])
        assert [s.destination for s in sim.sending.sent] == [TO]
        listed = json.loads(cli(cfg, "list", "--json").stdout)
        assert [(d["id"], d["state"]) for d in listed] == [("cli-1", "delivered")]
    finally:
        daemon.stop()


def test_cli_refusal_exits_1_with_the_reason(tmp_path: Path, sim: SimulatedModem) -> None:
    cfg = config(tmp_path, sim)
    result = cli(cfg, "send", "--to", "+4412345678901", "--text", "hi")
    assert result.returncode == 1
    assert "not in [send] allowed_destinations" in result.stdout
    disabled = config(tmp_path, sim, enabled=False)
    assert "disabled" in cli(disabled, "send", "--to", TO, "--text", "hi").stdout


def test_queued_while_the_daemon_is_down_is_sent_once_when_it_starts(
        tmp_path: Path, sim: SimulatedModem) -> None:
    cfg = config(tmp_path, sim)
    assert cli(cfg, "send", "--to", TO, "--text", "later", "--id", "q1").returncode == 0
    assert request(tmp_path, "q1")["state"] == "queued"
    daemon = DaemonProcess(cfg).start()
    try:
        wait_until(lambda: request(tmp_path, "q1")["state"] == "delivered", timeout=30,
                   what="delivered")
        assert [s.pdu is not None for s in sim.sending.sent] == [True]
    finally:
        daemon.stop()


def test_sigkill_while_waiting_to_retry_sends_once_after_restart(
        tmp_path: Path, sim: SimulatedModem) -> None:
    cfg = config(tmp_path, sim, retry_backoff=2)
    sim.sending.fail_next(331)
    daemon = DaemonProcess(cfg).start()
    try:
        assert cli(cfg, "send", "--to", TO, "--text", "retry me", "--id", "r1").returncode == 0
        wait_until(lambda: request(tmp_path, "r1")["error"], timeout=30, what="first attempt")
        daemon.kill()
        assert request(tmp_path, "r1")["state"] == "queued"
        daemon = DaemonProcess(cfg).start()
        wait_until(lambda: request(tmp_path, "r1")["state"] == "delivered", timeout=30,
                   what="delivered after restart")
        assert len(sim.sending.sent) == 1
    finally:
        daemon.stop()


def test_sigkill_between_cmgs_and_its_answer_leaves_unknown_never_resent(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto) -> None:
    recorder = Recorder(broker.port, ["modemd/gw1/sms/status"])
    cfg = config(tmp_path, sim, broker=broker)
    sim.sending.stall = True  # takes the PDU, never answers
    daemon = DaemonProcess(cfg).start()
    try:
        assert cli(cfg, "send", "--to", TO, "--text", "once", "--id", "k1").returncode == 0
        wait_until(lambda: len(sim.sending.sent) == 1, timeout=30, what="PDU written")
        daemon.kill()
        sim.sending.stall = False
        sim.set_quirk("hang", False)
        daemon = DaemonProcess(cfg).start()
        wait_until(lambda: request(tmp_path, "k1")["state"] == "unknown", timeout=30,
                   what="unknown after restart")
        assert "not sent again" in str(request(tmp_path, "k1")["error"])
        unknown = recorder.wait_for(lambda msgs: any(
            m.json()["state"] == "unknown" for m in msgs))
        assert [m.json()["state"] for m in unknown] == ["queued", "unknown"]
        # the daemon goes on sending other requests; k1 is never written again
        assert cli(cfg, "send", "--to", TO, "--text", "next", "--id", "k2", "--wait",
                   "--timeout", "30").returncode == 0
        assert [s.pdu is not None for s in sim.sending.sent] == [True, True]
        assert request(tmp_path, "k1")["state"] == "unknown"
    finally:
        daemon.stop()
        recorder.close()


def test_sigkill_after_sent_then_a_late_report_settles_it(tmp_path: Path,
                                                          sim: SimulatedModem) -> None:
    cfg = config(tmp_path, sim)
    sim.sending.report_status = None  # the network's report comes later
    daemon = DaemonProcess(cfg).start()
    try:
        assert cli(cfg, "send", "--to", TO, "--text", "report later", "--id",
                   "s1").returncode == 0
        wait_until(lambda: request(tmp_path, "s1")["state"] == "sent", timeout=30,
                   what="sent")
        daemon.kill()
        before = len(sim.command_log)
        daemon = DaemonProcess(cfg).start()
        wait_until(lambda: any(c.startswith("AT+CMGL") for c in sim.command_log[before:]),
                   timeout=30, what="the restarted daemon's first sweep")
        (mr,) = request(tmp_path, "s1")["mr"]
        now = datetime.now(UTC).replace(microsecond=0)
        inject_status_report(sim, encode_status_report(
            message_reference=mr, recipient=TO, scts=now, discharge_time=now, status=0))
        wait_until(lambda: request(tmp_path, "s1")["state"] == "delivered", timeout=30,
                   what="delivered by the late report")
        assert len(sim.sending.sent) == 1
    finally:
        daemon.stop()


def test_sigkill_between_the_parts_of_a_set_sends_each_part_once(
        tmp_path: Path, sim: SimulatedModem) -> None:
    cfg = config(tmp_path, sim, retry_backoff=2)
    sim.sending.fail_next(None, 331)  # part 1 goes, part 2 meets "no network service"
    daemon = DaemonProcess(cfg).start()
    try:
        assert cli(cfg, "send", "--to", TO, "--text", "x" * 200, "--id", "p1").returncode == 0
        wait_until(lambda: request(tmp_path, "p1")["error"] and request(tmp_path, "p1")[
            "parts"] == ["delivered", "pending"], timeout=30,
            what="part 1 delivered, part 2 waiting to retry")
        assert len(sim.sending.sent) == 1
        daemon.kill()
        daemon = DaemonProcess(cfg).start()
        wait_until(lambda: request(tmp_path, "p1")["state"] == "delivered", timeout=30,
                   what="delivered after restart")
        decoded = [decode_pdu(s.pdu or b"") for s in sim.sending.sent]
        assert [m.concat.sequence for m in decoded
                if isinstance(m, SmsSubmit) and m.concat] == [1, 2]
    finally:
        daemon.stop()

"""The CLI verbs a field engineer uses, run as a person would (typer runner or subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modemd.cli import app
from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from tests.helpers import REPO, load, unique_pdus, wait_until, write_config
from tests.mosquitto import Mosquitto, free_port
from tests.mqtt_client import Recorder

runner = CliRunner()
HOW_ARE_YOU = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"


def test_pdu_decode_prints_what_the_daemon_would_publish() -> None:
    result = runner.invoke(app, ["pdu", "decode", HOW_ARE_YOU, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["text"] == "How are you?"
    assert doc["sender"] == "+31641600986"
    assert doc["smsc"] == "+31624000000"
    assert doc["encoding"] == "gsm7"
    assert doc["sent_at"] == "2002-08-26T19:37:41+00:00"  # TZ octet 08: minus zero


def test_pdu_decode_reports_a_malformed_pdu_clearly() -> None:
    result = runner.invoke(app, ["pdu", "decode", HOW_ARE_YOU[:40]])
    assert result.exit_code == 1
    assert "cannot decode" in result.output and "TP-" in result.output


def test_parse_shows_the_rule_and_the_reading() -> None:
    config = REPO / "config" / "devices-pump.toml"
    result = runner.invoke(app, ["parse", "ID=PUMP01;BAT=3.71;T=21.5;P=2.4;RUN=1",
                                 "--sender", "+4915112345678", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["rule"] == "pump-controller" and doc["device"] == "PUMP01"
    assert doc["state"]["battery"] == 3.71 and doc["state"]["running"] is True
    bad = runner.invoke(app, ["parse", "ID=PUMP01;BAT=9.9;T=21.5;P=2.4;RUN=1",
                              "--sender", "+4915112345678", "-c", str(config)])
    assert bad.exit_code == 1 and "battery" in bad.output


def test_messages_and_outbox_show_the_store(tmp_path: Path) -> None:
    sim = SimulatedModem()
    sim.start()
    port = free_port()  # nothing listens: rows wait in the outbox
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}],
                       mqtt={"host": "127.0.0.1", "port": port})
    daemon = Daemon(load(cfg))
    daemon.start()
    try:
        for pdu in unique_pdus(3, text="reading {i}"):
            sim.deliver(pdu)
        assert daemon.store is not None
        store = daemon.store
        wait_until(lambda: len(store.journal.recent_messages()) == 3, what="3 messages")
    finally:
        daemon.stop()
        sim.stop()
    listed = runner.invoke(app, ["messages", "-c", str(cfg), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert sorted(r["message"]["text"] for r in rows) == ["reading 0", "reading 1", "reading 2"]
    assert all(r["deliveries"] == {"mqtt": "pending"} for r in rows)
    text = runner.invoke(app, ["messages", "-c", str(cfg)])
    assert "reading 2" in text.output and "mqtt:pending" in text.output

    outbox = runner.invoke(app, ["outbox", "-c", str(cfg), "--json"])
    (mqtt,) = [s for s in json.loads(outbox.output) if s["sink"] == "mqtt"]
    assert mqtt["pending"] >= 3  # the three messages (and modem state)
    purged = runner.invoke(app, ["outbox", "-c", str(cfg), "--purge", "--sink", "mqtt"])
    assert purged.exit_code == 0 and "purged" in purged.output
    after = json.loads(runner.invoke(app, ["outbox", "-c", str(cfg), "--json"]).output)
    assert [s["pending"] for s in after if s["sink"] == "mqtt"] == [0]


def test_simulate_takes_commands_on_stdin() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "modemd", "simulate"],
        input="sms +4915112345678 hello from the field\nlist\nquirk echo off\n",
        capture_output=True, text=True, timeout=30, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr
    first, *answers = proc.stdout.strip().splitlines()
    assert first.startswith("simulated generic modem on /dev/pts/")
    assert len(answers) == 3
    assert "hello from the field" in answers[1] or "1" in answers[1]


@pytest.mark.integration
@pytest.mark.parametrize("with_broker", [False, True])
def test_demo_shows_messages_within_seconds(tmp_path: Path, with_broker: bool) -> None:
    broker = Mosquitto(tmp_path / "broker")
    recorder = None
    if with_broker:
        broker.start()
        recorder = Recorder(broker.port, ["modemd/demo/#"])
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "modemd", "demo", "--duration", "8", "--interval", "0.5",
             "--mqtt-port", str(broker.port)],
            capture_output=True, text=True, timeout=90, cwd=REPO, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = proc.stdout
        assert "← +4915112345678" in out or "← +4916098765432" in out
        assert "ID=PUMP0" in out
        assert "Störung" in out  # the UCS-2 alarm, decoded
        assert "message(s) received" in out
        if recorder is not None:
            assert "publishing to localhost" in out
            recorder.wait_count("modemd/demo/sms", 5)
            states = recorder.wait_count("modemd/demo/device/+/state", 1)
            assert states[0].json()["device"] in {"PUMP01", "PUMP02", "TRK7", "WM-0042"}
        else:
            assert "no broker" in out
    finally:
        if recorder is not None:
            recorder.close()
        broker.stop()

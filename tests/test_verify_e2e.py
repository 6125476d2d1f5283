"""Verification end to end: a request over MQTT 5, the user's SMS into the simulated modem on a
pty, the result on the result topic and the request's response topic, through a restart."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.sms.encode import encode_deliver
from tests.helpers import REPO, DaemonProcess, load, message_rows, on_sim, wait_until, write_config
from tests.mosquitto import Mosquitto
from tests.mqtt_client import Recorder

pytestmark = pytest.mark.integration
NUMBER = "+4915112345678"
REQUEST = "modemd/gw1/verify/request"
RESULT = "modemd/gw1/verify/result"
VERIFY = '\n[verify]\nenabled = true\nmax_attempts = 2\n'


def config(tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, extra: str = VERIFY) -> Path:
    return write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                        modems=[{"name": "m1", "port": sim.port}],
                        mqtt={"host": "127.0.0.1", "port": broker.port}, extra=extra)


def sms_from(number: str, text: str, *, sent: datetime | None = None) -> bytes:
    return encode_deliver(sender=number, text=text, scts=sent or datetime.now(UTC),
                          smsc="+491710760000")


def wait_online(recorder: Recorder) -> None:
    wait_until(lambda: recorder.on("modemd/gw1/status")
               and recorder.on("modemd/gw1/status")[-1].payload == b"online", timeout=30,
               what="modemd online (subscribed to its request topics)")


def states(recorder: Recorder, topic: str = RESULT) -> list[tuple[str, str]]:
    return [(m.json()["id"], m.json()["state"]) for m in recorder.on(topic)]


@pytest.fixture
def running(tmp_path: Path, sim: SimulatedModem,
            broker: Mosquitto) -> Iterator[tuple[Daemon, Recorder]]:
    recorder = Recorder(broker.port, ["modemd/#", "app/#"], v5=True)
    daemon = Daemon(load(config(tmp_path, sim, broker)))
    daemon.start()
    try:
        wait_until(daemon.drivers[0].ready.is_set, what="modem ready")
        wait_online(recorder)
        yield daemon, recorder
    finally:
        daemon.stop()
        recorder.close()


def test_request_sms_verified_with_response_topic(running: tuple[Daemon, Recorder],
                                                  sim: SimulatedModem) -> None:
    _, recorder = running
    recorder.publish(REQUEST, {"id": "login-42", "number": NUMBER, "ttl": "5m"},
                     response_topic="app/replies/login-42", correlation=b"\x01req-7")
    recorder.wait_for(lambda _: len(recorder.on("app/replies/login-42")) == 1)
    (pending,) = recorder.on("app/replies/login-42")
    assert pending.correlation == b"\x01req-7"
    code = pending.json()["code"]
    assert pending.json()["state"] == "pending" and len(code) == 6
    assert states(recorder) == [("login-42", "pending")]

    sim.deliver(sms_from(NUMBER, f"Code {code}"))
    recorder.wait_for(lambda _: ("login-42", "verified") in states(recorder)
                      and len(recorder.on("app/replies/login-42")) == 2)
    verified = [m for m in recorder.on("app/replies/login-42") if m.json()["state"] == "verified"]
    assert len(verified) == 1 and verified[0].correlation == b"\x01req-7"
    assert verified[0].json()["msg_id"]
    # the answering SMS is withheld from /sms by default, and nothing holds its code
    wait_until(lambda: not on_sim(sim), what="SMS taken off the SIM")
    sim.deliver(sms_from("+4917000000000", "an ordinary message"))
    recorder.wait_for(lambda _: len(recorder.on("modemd/gw1/sms")) == 1)
    (published,) = recorder.on("modemd/gw1/sms")
    assert published.json()["text"] == "an ordinary message"


def test_wrong_codes_fail_and_masked_answers(tmp_path: Path, sim: SimulatedModem,
                                             broker: Mosquitto) -> None:
    recorder = Recorder(broker.port, ["modemd/#"], v5=True)
    cfg = config(tmp_path, sim, broker, extra=VERIFY + 'answers = "masked"\n')
    daemon = Daemon(load(cfg))
    daemon.start()
    try:
        wait_online(recorder)
        recorder.publish(REQUEST, {"id": "c1", "number": NUMBER, "code": "739154"})
        recorder.wait_for(lambda _: states(recorder) == [("c1", "pending")])
        sim.deliver(sms_from(NUMBER, "is it 111111?"))
        recorder.wait_for(lambda _: len(recorder.on("modemd/gw1/sms")) == 1)
        assert recorder.on("modemd/gw1/sms")[0].json()["text"] == "is it ******?"
        sim.deliver(sms_from(NUMBER, "222222", sent=datetime.now(UTC) + timedelta(seconds=1)))
        recorder.wait_for(lambda _: ("c1", "failed") in states(recorder))
        assert [m.json().get("error") for m in recorder.on(RESULT)][-1] == "too many wrong codes"
        # the right code after the challenge failed verifies nothing, and is not masked
        sim.deliver(sms_from(NUMBER, "739154", sent=datetime.now(UTC) + timedelta(seconds=2)))
        recorder.wait_for(lambda _: len(recorder.on("modemd/gw1/sms")) == 3)
        assert states(recorder) == [("c1", "pending"), ("c1", "failed")]
    finally:
        daemon.stop()
        recorder.close()


def test_restart_mid_challenge_and_no_code_in_the_store(tmp_path: Path, sim: SimulatedModem,
                                                        broker: Mosquitto) -> None:
    cfg = config(tmp_path, sim, broker)
    recorder = Recorder(broker.port, ["modemd/#"], v5=True)
    daemon = DaemonProcess(cfg).start()
    try:
        wait_online(recorder)
        recorder.publish(REQUEST, {"id": "c1", "number": NUMBER, "code": "583920",
                                   "ttl": "10m"})
        recorder.wait_for(lambda _: states(recorder) == [("c1", "pending")])
        listing = subprocess.run([sys.executable, "-m", "modemd", "verify", "list", "-c",
                                  str(cfg), "--json"], capture_output=True, text=True,
                                 cwd=REPO, timeout=60, check=True)
        (shown,) = json.loads(listing.stdout)
        assert shown["id"] == "c1" and shown["state"] == "pending"
        assert "583920" not in listing.stdout
        daemon.kill()  # SIGKILL mid-challenge
        # a request published while modemd is down waits at the broker (persistent session)
        recorder.publish(REQUEST, {"id": "c2", "number": "+4915199999999", "code": "111111"})

        daemon = DaemonProcess(cfg).start()
        sim.deliver(sms_from(NUMBER, "583920"))
        recorder.wait_for(lambda _: ("c2", "pending") in states(recorder), timeout=30)
        recorder.wait_for(lambda _: ("c1", "verified") in states(recorder), timeout=30)
        wait_until(lambda: message_rows(tmp_path / "state"), what="message recorded")
        assert daemon.stop() == 0
        blob = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir() if p.is_file())
        assert b"583920" not in blob and "583920".encode("utf-16-be") not in blob
        assert "583920" not in daemon.output()
        # the SMS that answered is recorded (masked) but was never published on /sms
        assert recorder.on("modemd/gw1/sms") == []
        (row,) = message_rows(tmp_path / "state")
        assert row["message"]["text"] == "******" and row["message"]["verification"] is True
    finally:
        daemon.stop()
        recorder.close()


def test_expiry_is_published(running: tuple[Daemon, Recorder], sim: SimulatedModem) -> None:
    _, recorder = running
    recorder.publish(REQUEST, {"id": "short", "number": NUMBER, "code": "123456", "ttl": 1})
    recorder.wait_for(lambda _: ("short", "expired") in states(recorder), timeout=10)
    expired: Any = [m.json() for m in recorder.on(RESULT) if m.json()["state"] == "expired"]
    assert len(expired) == 1 and expired[0]["msg_id"] is None


def test_prompt_sms_is_sent_without_the_code(tmp_path: Path, sim: SimulatedModem,
                                             broker: Mosquitto) -> None:
    from modemd.sms import decode_pdu
    from modemd.sms.model import SmsSubmit

    extra = VERIFY + ('\n[send]\nenabled = true\nallowed_destinations = ["+49151*"]\n'
                      'status_reports = false\n')
    recorder = Recorder(broker.port, ["modemd/#"], v5=True)
    daemon = Daemon(load(config(tmp_path, sim, broker, extra=extra)))
    daemon.start()
    try:
        wait_online(recorder)
        recorder.publish(REQUEST, {"id": "p1", "number": NUMBER, "code": "640213",
                                   "prompt": True})
        recorder.wait_for(lambda _: states(recorder) == [("p1", "pending")])
        wait_until(lambda: sim.sending.sent, what="the prompt SMS at the modem")
        (sent,) = sim.sending.sent
        submit = decode_pdu(sent.pdu, with_smsc=True, strict=True)
        assert isinstance(submit, SmsSubmit)
        assert submit.recipient.number == NUMBER
        assert "reply" in (submit.text or "") and "640213" not in (submit.text or "")
        status = recorder.wait_count("modemd/gw1/sms/status", 1)
        assert status[0].json()["id"] == "verify-p1"
        sim.deliver(sms_from(NUMBER, "640213"))
        recorder.wait_for(lambda _: ("p1", "verified") in states(recorder))
    finally:
        daemon.stop()
        recorder.close()
    blob = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir() if p.is_file())
    assert b"640213" not in blob

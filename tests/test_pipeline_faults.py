"""One bad item never stops the rest: the issue-11 findings, end to end.

Simulated modem on a pty → the daemon's real serial code → journal → pipeline → a real
mosquitto. Each test reproduces a field finding (an odd-length UCS-2 part, a reused multipart
reference, a catastrophic user regex) and checks what arrives, and that what came after it
arrives too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.sms.encode import encode_deliver, encode_deliver_parts
from tests.helpers import DaemonProcess, journal_rows, load, on_sim, wait_until, write_config
from tests.mosquitto import Mosquitto
from tests.mqtt_client import Recorder

pytestmark = pytest.mark.integration

SENDER = "+4915112345678"
SCTS = datetime(2026, 11, 30, 10, 0, 1, tzinfo=UTC)
# Part 1 of 2 (reference 0x42), UCS-2 with 9 octets of text: the odd octet made assemble()
# raise UnicodeDecodeError and the pipeline retry the row for ever (issue 11).
ODD_PART_1 = ("0791947101670000440D91945111325476F80008621103010010000F"
              "05000342020100490044003D005800")
ODD_PART_2 = ("0791947101670000440D91945111325476F8000862110301001000"
              "0C050003420202003100320033")


@pytest.fixture
def recorder(broker: Mosquitto) -> Iterator[Recorder]:
    rec = Recorder(broker.port, ["modemd/#"])
    yield rec
    rec.close()


def config(tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, *, extra: str = "",
           gateway: dict[str, object] | None = None) -> Path:
    return write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                        modems=[{"name": "m1", "port": sim.port}],
                        mqtt={"host": "127.0.0.1", "port": broker.port},
                        gateway=gateway, extra=extra)


def sms_docs(recorder: Recorder) -> list[dict[str, object]]:
    return [m.json() for m in recorder.on("modemd/gw1/sms")]


def test_an_odd_length_ucs2_set_does_not_stop_the_messages_behind_it(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, recorder: Recorder) -> None:
    daemon = Daemon(load(config(tmp_path, sim, broker)))
    daemon.start()
    try:
        wait_until(daemon.drivers[0].ready.is_set, what="modem ready")
        sim.deliver(ODD_PART_1)
        sim.deliver(ODD_PART_2)
        sim.deliver(encode_deliver(sender=SENDER, text="after the odd one", scts=SCTS))
        recorder.wait_count("modemd/gw1/sms", 2, timeout=30)
        docs = sms_docs(recorder)
        odd = next(d for d in docs if d["parts"] == 2)
        # decoded leniently: the odd octet dropped, said so, both parts joined
        assert odd["text"] == "ID=X123" and odd["complete"] is True
        assert any("odd trailing octet" in w for w in odd["warnings"])  # type: ignore[attr-defined]
        assert [d["text"] for d in docs if d["parts"] == 1] == ["after the odd one"]
        wait_until(lambda: not on_sim(sim), what="SIM emptied")
        wait_until(lambda: all(r.state in ("done", "failed")
                               for r in journal_rows(tmp_path / "state")), what="rows ended")
    finally:
        daemon.stop()


def test_a_reused_reference_starts_a_new_set(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, recorder: Recorder) -> None:
    a_text = "A" * 153 + "B" * 153 + "C" * 20
    b_text = "x" * 153 + "y" * 153 + "z" * 20
    a = encode_deliver_parts(sender=SENDER, text=a_text, scts=SCTS, reference=77)
    # the device rebooted and numbers from 77 again, a few minutes later
    b = encode_deliver_parts(sender=SENDER, text=b_text, scts=SCTS + timedelta(minutes=5),
                             reference=77)
    assert len(a) == len(b) == 3
    daemon = Daemon(load(config(tmp_path, sim, broker, gateway={"multipart_timeout": 3})))
    daemon.start()
    try:
        wait_until(daemon.drivers[0].ready.is_set, what="modem ready")
        for pdu in (a[0], a[1], b[0], b[1], b[2]):  # A's third part never comes
            sim.deliver(pdu)
        recorder.wait_count("modemd/gw1/sms", 2, timeout=30)
        docs = sms_docs(recorder)
        whole = [d for d in docs if d["complete"]]
        assert [d["text"] for d in whole] == [b_text]
        (partial,) = [d for d in docs if not d["complete"]]
        assert partial["text"] == a_text[:306] and partial["missing"] == [3]
    finally:
        daemon.stop()


RULES = """
[[parser]]
name = "freeze"
format = "kv"
device_field = "ID"
[parser.match]
text = "^R(a+)+$"
[parser.fields.T]
name = "t"
type = "float"

[[parser]]
name = "slow"
format = "kv"
device_field = "ID"
[parser.match]
text = "^(a|aa)+$"
[parser.fields.T]
name = "t"
type = "float"

[[parser]]
name = "meter"
format = "kv"
device_field = "ID"
[parser.match]
text = "^ID="
[parser.fields.T]
name = "t"
type = "float"
"""


def test_a_catastrophic_regex_neither_freezes_the_daemon_nor_stops_messages(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, recorder: Recorder) -> None:
    cfg = config(tmp_path, sim, broker, extra=RULES)
    daemon = DaemonProcess(cfg).start()
    try:
        wait_until(lambda: "ready" in daemon.output(), timeout=30, what="daemon ready")
        base = SCTS
        sim.deliver(encode_deliver(sender=SENDER, text="R" + "a" * 60 + "!", scts=base))
        sim.deliver(encode_deliver(sender=SENDER, text="a" * 100 + "!",
                                   scts=base + timedelta(seconds=1)))
        sim.deliver(encode_deliver(sender=SENDER, text="ID=M1;T=21.5",
                                   scts=base + timedelta(seconds=2)))
        (state,) = recorder.wait_count("modemd/gw1/device/M1/state", 1, timeout=60)
        assert state.json()["t"] == 21.5
        dead = recorder.wait_count("modemd/gw1/deadletter", 2, timeout=30)
        reasons = [json.loads(m.payload)["reason"] for m in dead]
        assert any("time budget" in r for r in reasons), reasons
        assert len(sms_docs(recorder)) == 3
    finally:
        code = daemon.stop()  # raises if SIGTERM is not obeyed within 15 s
    assert code == 0, daemon.output()

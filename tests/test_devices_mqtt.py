"""Field-device payloads end to end: SMS into the simulated modem → device state and Home
Assistant discovery on a real mosquitto; bad payloads to the dead-letter topic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modemd.daemon import Daemon
from modemd.payload.discovery import value_template
from modemd.simulator import SimulatedModem
from modemd.sms.encode import encode_deliver
from modemd.sms.model import InformationElement
from tests.helpers import REPO, load, write_config
from tests.mosquitto import Mosquitto
from tests.mqtt_client import Recorder

pytestmark = pytest.mark.integration
SCTS = datetime(2026, 11, 25, 8, 15, 0, tzinfo=UTC)


@pytest.fixture
def running(tmp_path: Path, broker: Mosquitto) -> Iterator[tuple[SimulatedModem, Recorder]]:
    sim = SimulatedModem(profile="quectel_ec25")
    sim.start()
    rules = "".join((REPO / "config" / name).read_text(encoding="utf-8")
                    for name in ("devices-pump.toml", "devices-watermeter.toml"))
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}],
                       mqtt={"host": "127.0.0.1", "port": broker.port, "homeassistant": True},
                       extra="\n" + rules)
    recorder = Recorder(broker.port, ["modemd/#", "homeassistant/#"])
    daemon = Daemon(load(cfg))
    daemon.start()
    try:
        yield sim, recorder
    finally:
        daemon.stop()
        recorder.close()
        sim.stop()


def test_a_status_sms_becomes_device_state_and_discovery(
        running: tuple[SimulatedModem, Recorder]) -> None:
    sim, recorder = running
    sim.deliver(encode_deliver(sender="+4915112345678",
                               text="ID=PUMP01;BAT=3.71;T=21.5;P=2.4;RUN=1", scts=SCTS))
    (state,) = recorder.wait_count("modemd/gw1/device/PUMP01/state", 1)
    doc = state.json()
    assert doc == {"device": "PUMP01", "battery": 3.71, "temperature": 21.5, "pressure": 2.4,
                   "running": True, "sent_at": "2026-11-25T08:15:00+00:00",
                   "msg_id": doc["msg_id"]}
    (sms,) = recorder.wait_count("modemd/gw1/sms", 1)
    assert sms.json()["id"] == doc["msg_id"]

    recorder.wait_for(lambda msgs: len({m.topic for m in msgs if "/gw1_PUMP01/" in m.topic}) == 5)
    configs = {m.topic: m.json() for m in recorder.on("homeassistant/+/+/+/config")}
    battery = configs["homeassistant/sensor/gw1_PUMP01/battery/config"]
    assert battery["state_topic"] == "modemd/gw1/device/PUMP01/state"
    assert battery["value_template"] == value_template("battery")
    assert battery["unique_id"] == "modemd/gw1/PUMP01/battery"
    assert battery["device_class"] == "voltage" and battery["unit_of_measurement"] == "V"
    assert battery["state_class"] == "measurement"
    assert battery["expire_after"] == 7200
    assert battery["availability"][0]["topic"] == "modemd/gw1/status"
    assert battery["device"]["name"] == "Borehole pump 1"
    assert battery["device"]["identifiers"] == ["modemd_gw1_PUMP01"]
    running_cfg = configs["homeassistant/binary_sensor/gw1_PUMP01/running/config"]
    assert running_cfg["device_class"] == "running"
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(unique_ids) == len(set(unique_ids))
    # Retained: a Home Assistant that connects later still gets state and discovery.
    late = Recorder(recorder.port, ["homeassistant/#", "modemd/gw1/device/#"])
    try:
        pump_topics = {t for t in configs if "/gw1_PUMP01/" in t}
        assert len(pump_topics) == 5  # battery, temperature, pressure, running, error
        late.wait_for(lambda msgs: pump_topics <= {m.topic for m in msgs})
        first_copies = {}
        for m in late.on("homeassistant/#"):
            first_copies.setdefault(m.topic, m)
        assert all(first_copies[t].retain for t in pump_topics)
        (retained_state,) = late.wait_count("modemd/gw1/device/PUMP01/state", 1)
        assert retained_state.retain and retained_state.json() == doc
    finally:
        late.close()

    # Home Assistant restarts: discovery is announced again.
    before = len(recorder.on("homeassistant/sensor/gw1_PUMP01/battery/config"))
    recorder.client.publish("homeassistant/status", "online", qos=1)
    recorder.wait_for(lambda _: len(recorder.on(
        "homeassistant/sensor/gw1_PUMP01/battery/config")) > before)


def test_binary_meter_data_on_a_port_is_parsed(running: tuple[SimulatedModem, Recorder]) -> None:
    sim, recorder = running
    payload = bytes.fromhex("393000007800650" "85a01")
    port = InformationElement(0x05, bytes.fromhex("12671267"))  # 16-bit ports 4711 → 4711
    sim.deliver(encode_deliver(sender="+4917012345678", data=payload, udh=[port], scts=SCTS))
    (state,) = recorder.wait_count("modemd/gw1/device/WM-0042/state", 1)
    doc = state.json()
    assert doc["volume"] == 12345 and doc["flow"] == 120
    assert doc["temperature"] == pytest.approx(21.49)
    assert doc["battery"] == 90 and doc["flags"] == 1
    assert doc["leak"] is True and doc["tamper"] is False and doc["reverse_flow"] is False
    (leak,) = recorder.wait_count("homeassistant/binary_sensor/gw1_WM-0042/leak/config", 1)
    assert leak.json()["device_class"] == "moisture"
    (sms,) = recorder.wait_count("modemd/gw1/sms", 1)
    assert sms.json()["encoding"] == "8bit" and sms.json()["port"] == 4711
    assert "text" not in sms.json()


def test_bad_payloads_go_to_the_dead_letter_topic(
        running: tuple[SimulatedModem, Recorder]) -> None:
    sim, recorder = running
    sim.deliver(encode_deliver(sender="+4915112345678", text="ID=PUMP01;BAT=99;T=21.5;P=2;RUN=1",
                               scts=SCTS))
    sim.deliver(encode_deliver(sender="+4915112345678", text="hello, is this the pump?",
                               scts=SCTS.replace(second=5)))
    dead = [m.json() for m in recorder.wait_count("modemd/gw1/deadletter", 2)]
    reasons = sorted(d["reason"] for d in dead)
    assert any("battery" in r for r in reasons), reasons
    assert any("no parser rule" in r.lower() or "no rule" in r.lower() for r in reasons), reasons
    assert {d["raw"] for d in dead} == {"ID=PUMP01;BAT=99;T=21.5;P=2;RUN=1",
                                        "hello, is this the pump?"}
    assert recorder.on("modemd/gw1/device/#") == []
    assert len(recorder.wait_count("modemd/gw1/sms", 2)) == 2


def test_entities_no_longer_configured_are_removed_from_home_assistant(
        tmp_path: Path, broker: Mosquitto) -> None:
    """A field dropped from a rule, and a rule dropped from the config, after a restart:
    their retained discovery configs are cleared (an empty retained payload), the rest stay."""
    pump = (REPO / "config" / "devices-pump.toml").read_text(encoding="utf-8")
    meter = (REPO / "config" / "devices-watermeter.toml").read_text(encoding="utf-8")
    sim = SimulatedModem(profile="quectel_ec25")
    sim.start()
    recorder = Recorder(broker.port, ["homeassistant/#"])

    def run_daemon(rules: str, modem: str) -> Daemon:
        cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                           modems=[{"name": modem, "port": sim.port}],
                           mqtt={"host": "127.0.0.1", "port": broker.port,
                                 "homeassistant": True},
                           extra="\n" + rules)
        daemon = Daemon(load(cfg))
        daemon.start()
        return daemon

    pump_sms = encode_deliver(sender="+4915112345678", text="ID=PUMP01;BAT=3.71;T=21.5;P=2.4;RUN=1",
                              scts=SCTS)
    meter_sms = encode_deliver(sender="+4917012345678", scts=SCTS,
                               data=bytes.fromhex("39300000780065085a01"),
                               udh=[InformationElement(0x05, bytes.fromhex("12671267"))])
    pressure = "homeassistant/sensor/gw1_PUMP01/pressure/config"
    battery = "homeassistant/sensor/gw1_PUMP01/battery/config"
    modem_signal = "homeassistant/sensor/gw1_modem_m1/signal/config"
    try:
        daemon = run_daemon(pump + meter, "m1")
        try:
            sim.deliver(pump_sms)
            sim.deliver(meter_sms)
            recorder.wait_for(lambda msgs: {pressure, battery, modem_signal} <= {
                m.topic for m in msgs} and any("/gw1_WM-0042/" in m.topic for m in msgs))
        finally:
            daemon.stop()
        meter_topics = {m.topic for m in recorder.on("homeassistant/#")
                        if "/gw1_WM-0042/" in m.topic}
        assert len(meter_topics) == 8  # 5 fields and 3 flags

        without_pressure = "\n".join(line for line in pump.splitlines()
                                     if not line.startswith("P "))
        daemon = run_daemon(without_pressure, "north")  # the modem renamed, too
        try:
            # the meter rule is gone: its entities are removed as soon as the broker answers
            recorder.wait_for(lambda msgs: meter_topics <= {
                m.topic for m in msgs if m.payload == b""})
            # the next reading (P= is now an unknown key, dropped) has no pressure entity
            sim.deliver(encode_deliver(sender="+4915112345678", scts=SCTS.replace(hour=9),
                                       text="ID=PUMP01;BAT=3.70;T=21.0;P=2.3;RUN=1"))
            recorder.wait_for(lambda msgs: any(
                m.topic == pressure and m.payload == b"" for m in msgs))
            recorder.wait_for(lambda msgs: any(
                m.topic == "homeassistant/sensor/gw1_modem_north/signal/config" for m in msgs))
        finally:
            daemon.stop()
        cleared = {m.topic for m in recorder.on("homeassistant/#") if m.payload == b""}
        old_modem = {f"homeassistant/sensor/gw1_modem_m1/{name}/config"
                     for name in ("signal", "registration", "last_error", "storage_used")}
        old_modem.add("homeassistant/binary_sensor/gw1_modem_m1/online/config")
        # PUMP02 ([devices], matched by the pump rule's senders) is announced at every
        # connection without a reading, so its pressure entity goes too
        pump02_pressure = "homeassistant/sensor/gw1_PUMP02/pressure/config"
        assert cleared == meter_topics | {pressure, pump02_pressure} | old_modem

        # What Home Assistant finds when it connects now: the pump without pressure.
        late = Recorder(broker.port, ["homeassistant/#"])
        try:
            late.wait_for(lambda msgs: battery in {m.topic for m in msgs})
            time.sleep(0.5)  # every retained message arrives at once; give them a moment
            retained = {m.topic for m in late.on("homeassistant/#")}
        finally:
            late.close()
        assert pressure not in retained and not retained & (meter_topics | old_modem)
        assert "homeassistant/sensor/gw1_modem_north/signal/config" in retained
        assert {t for t in retained if "/gw1_PUMP01/" in t} == {
            f"homeassistant/{kind}/gw1_PUMP01/{field}/config"
            for kind, field in (("sensor", "battery"), ("sensor", "temperature"),
                                ("binary_sensor", "running"), ("sensor", "error"))}
    finally:
        recorder.close()
        sim.stop()

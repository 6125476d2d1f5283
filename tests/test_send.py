"""Sending over the pty with a real broker: request → SUBMIT PDUs at the modem → statuses.

Each test runs the daemon's own code (MQTT sink, send service, modem worker, AT session,
pyserial on the simulator's pty) and checks both ends: the PDUs the simulated modem took,
decoded with modemd's decoder, and the status documents on the broker.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.sinks.mqtt import MqttSink
from modemd.sms import SmsSubmit, decode_pdu
from tests.helpers import REPO, DaemonProcess, load, unique_pdus, wait_until, write_config
from tests.mosquitto import Mosquitto
from tests.mqtt_client import SEND, STATUS, TO, Recorder, publish, states_of, wait_state

SEND_DEFAULTS: dict[str, Any] = {
    "enabled": True, "allowed_destinations": ["+49151*"], "max_per_hour": 60,
    "retry_backoff": 0.2,
}


def send_section(**overrides: Any) -> str:
    from tests.helpers import toml_value

    values = {**SEND_DEFAULTS, **overrides}
    return "\n[send]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())


def start(tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, *, extra: str = "",
          **send: Any) -> Daemon:
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}],
                       mqtt={"host": "127.0.0.1", "port": broker.port, "keepalive": 5},
                       extra=send_section(**send) + extra)
    daemon = Daemon(load(cfg))
    daemon.start()
    wait_until(daemon.drivers[0].ready.is_set, what="modem ready")
    sink = daemon.sinks[0]
    assert isinstance(sink, MqttSink)
    wait_until(sink.connected.is_set, what="mqtt connected")
    return daemon


def submits(sim: SimulatedModem) -> list[SmsSubmit]:
    decoded = []
    for sent in sim.sending.sent:
        assert sent.pdu is not None
        message = decode_pdu(sent.pdu, with_smsc=True, strict=True)
        assert isinstance(message, SmsSubmit)
        decoded.append(message)
    return decoded


def test_short_text_is_sent_once_and_reported_delivered(tmp_path: Path, sim: SimulatedModem,
                                                        broker: Mosquitto,
                                                        statuses: Recorder) -> None:
    daemon = start(tmp_path, sim, broker)
    try:
        publish(broker, {"id": "cmd-17", "to": TO, "text": "STATUS?"})
        delivered = wait_state(statuses, "cmd-17", "delivered")
        assert states_of(statuses, "cmd-17") == ["queued", "sent", "delivered"]
        (submit,) = submits(sim)
        assert submit.recipient.number == TO and submit.text == "STATUS?"
        assert submit.encoding == "gsm7" and submit.udh is None
        assert submit.tpdu[0] & 0x20, "TP-SRR: a status report was requested"
        assert delivered["mr"] == [sim.sending.sent[0].mr]
        assert delivered["parts"] == 1 and delivered["error"] is None
        assert delivered["to"] == TO and delivered["modem"] == "m1"
        assert set(delivered) >= {"id", "to", "state", "parts", "mr", "error", "at"}
        # The report is journalled and published like any message, linked to the send.
        report = statuses.wait_for(lambda msgs: any(
            m.topic == "modemd/gw1/sms" and m.json().get("type") == "status_report"
            for m in msgs))
        (doc,) = [m.json() for m in report if m.topic == "modemd/gw1/sms"]
        assert doc["send_id"] == "cmd-17" and doc["recipient"] == TO
        cmgs = [c for c in sim.command_log if c.upper().startswith("AT+CMGS")]
        assert cmgs == [f"AT+CMGS={len(submit.tpdu)}"]
    finally:
        daemon.stop()


def test_300_characters_go_as_two_parts_delivered_when_both_are(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, statuses: Recorder) -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(296)) + " {€}"
    assert len(text) == 300  # 303 septets: the extension characters take two each
    sim.sending.report_delay = 0.5  # both parts are sent before the first report comes
    daemon = start(tmp_path, sim, broker)
    try:
        publish(broker, {"id": "long", "to": TO, "text": text})
        delivered = wait_state(statuses, "long", "delivered")
        assert states_of(statuses, "long") == ["queued", "sent", "delivered"]
        parts = submits(sim)
        assert len(parts) == 2 == delivered["parts"]
        concats = [p.concat for p in parts]
        assert [c.sequence for c in concats if c] == [1, 2]
        assert len({(c.reference, c.total) for c in concats if c}) == 1
        # 153 septets in the first part (the extension characters take two each)
        assert parts[0].dcs.alphabet == "gsm7" and len(parts[0].text or "") == 153
        joined = "".join(p.text or "" for p in parts)
        assert joined == text
        assert delivered["mr"] == [s.mr for s in sim.sending.sent]
    finally:
        daemon.stop()


def test_emoji_text_goes_as_ucs2_with_surrogate_pairs_kept(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, statuses: Recorder) -> None:
    text = "Pump alarm 🚨 level 💧💧 ok? 👍" * 3
    daemon = start(tmp_path, sim, broker)
    try:
        publish(broker, {"id": "emoji", "to": TO, "text": text})
        doc = wait_state(statuses, "emoji", "delivered")
        parts = submits(sim)
        assert doc["parts"] == len(parts) == 2
        assert all(p.encoding == "ucs2" for p in parts)
        assert "".join(p.text or "" for p in parts) == text
        assert all("\ufffd" not in (p.text or "") for p in parts)
    finally:
        daemon.stop()


def test_8bit_data_with_a_port(tmp_path: Path, sim: SimulatedModem, broker: Mosquitto,
                               statuses: Recorder) -> None:
    payload = bytes(range(200))  # 128 octets per part with concat and 16-bit ports
    daemon = start(tmp_path, sim, broker)
    try:
        publish(broker, {"id": "bin", "to": TO,
                         "data_b64": base64.b64encode(payload).decode(), "port": 2948})
        wait_state(statuses, "bin", "delivered")
        parts = submits(sim)
        assert all(p.encoding == "8bit" for p in parts)
        assert all(p.ports is not None and p.ports.destination == 2948 for p in parts)
        assert b"".join(p.data or b"" for p in parts) == payload
        assert len(parts) == 2
    finally:
        daemon.stop()


def test_refusals_are_published_with_their_reason(tmp_path: Path, sim: SimulatedModem,
                                                  broker: Mosquitto,
                                                  statuses: Recorder) -> None:
    daemon = start(tmp_path, sim, broker, max_per_hour=2, allowed_destinations=["+49*", "22*"])
    try:
        publish(broker, {"id": "other", "to": "+4412345678901", "text": "hi"})
        publish(broker, {"id": "premium", "to": "+499001234567", "text": "hi"})
        publish(broker, {"id": "short", "to": "22222", "text": "hi"})
        publish(broker, {"id": "bad", "to": TO})
        publish(broker, "not json")
        publish(broker, {"id": "ok1", "to": TO, "text": "one"})
        publish(broker, {"id": "ok2", "to": TO, "text": "two"})
        publish(broker, {"id": "over", "to": TO, "text": "three"})
        reasons = {}
        for request_id in ("other", "premium", "short", "bad", "over"):
            doc = wait_state(statuses, request_id, "failed")
            assert doc.get("refused") is True
            reasons[request_id] = doc["error"]
        assert "not in [send] allowed_destinations" in reasons["other"]
        assert "premium" in reasons["premium"]
        assert "short code" in reasons["short"]
        assert "text or data_b64" in reasons["bad"]
        assert "rate limit" in reasons["over"]
        statuses.wait_for(lambda msgs: any(m.json().get("id") is None and "JSON" in str(
            m.json().get("error")) for m in msgs if m.topic == STATUS))
        wait_state(statuses, "ok2", "delivered")
        assert [s.text for s in submits(sim)] == ["one", "two"]
    finally:
        daemon.stop()


def test_sending_disabled_refuses(tmp_path: Path, sim: SimulatedModem, broker: Mosquitto,
                                  statuses: Recorder) -> None:
    daemon = start(tmp_path, sim, broker, enabled=False)
    try:
        publish(broker, {"id": "x", "to": TO, "text": "hi"})
        doc = wait_state(statuses, "x", "failed")
        assert "disabled" in doc["error"]
        time.sleep(0.5)
        assert sim.sending.sent == []
    finally:
        daemon.stop()


def test_transient_error_is_retried_then_sent(tmp_path: Path, sim: SimulatedModem,
                                             broker: Mosquitto, statuses: Recorder) -> None:
    sim.sending.fail_next(331, 42)  # no network service, then congestion
    daemon = start(tmp_path, sim, broker)
    try:
        publish(broker, {"id": "retry", "to": TO, "text": "again"})
        wait_state(statuses, "retry", "delivered")
        docs = [m.json() for m in statuses.on(STATUS) if m.json()["id"] == "retry"]
        retries = [d for d in docs if d["state"] == "queued" and d["error"]]
        assert [d["error_code"] for d in retries] == [331, 42]
        assert "no network service" in retries[0]["error"]
        assert len(sim.sending.sent) == 1  # the failed attempts were not sent
    finally:
        daemon.stop()


def test_permanent_error_fails_with_code_and_meaning(tmp_path: Path, sim: SimulatedModem,
                                                     broker: Mosquitto,
                                                     statuses: Recorder) -> None:
    sim.sending.fail_next(21)
    daemon = start(tmp_path, sim, broker)
    try:
        publish(broker, {"id": "rejected", "to": TO, "text": "no"})
        doc = wait_state(statuses, "rejected", "failed")
        assert doc["error_code"] == 21
        assert "short message transfer rejected" in doc["error"]
        assert states_of(statuses, "rejected") == ["queued", "failed"]
    finally:
        daemon.stop()


def test_response_topic_gets_statuses_with_correlation_data(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, statuses: Recorder) -> None:
    got: list[tuple[str, bytes | None, dict[str, Any]]] = []
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="asker",
                           protocol=mqtt.MQTTv5)
    listener.on_message = lambda c, u, m: got.append(
        (m.topic, getattr(m.properties, "CorrelationData", None), json.loads(m.payload)))
    listener.connect("127.0.0.1", broker.port)
    listener.subscribe("app/replies/#", qos=1)
    listener.loop_start()
    daemon = start(tmp_path, sim, broker)
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "app/replies/42"
        props.CorrelationData = b"\x00corr-42"
        publish(broker, {"id": "rr", "to": TO, "text": "hello"}, properties=props)
        wait_until(lambda: [g[2]["state"] for g in got] == ["queued", "sent", "delivered"],
                   what="statuses on the response topic")
        assert all(g[0] == "app/replies/42" and g[1] == b"\x00corr-42" for g in got)
        # a response topic inside modemd's own tree is not honoured
        props.ResponseTopic = "modemd/gw1/device/x/state"
        publish(broker, {"id": "rr2", "to": TO, "text": "hello"}, properties=props)
        wait_state(statuses, "rr2", "delivered")
        assert len(got) == 3
    finally:
        daemon.stop()
        listener.disconnect()
        listener.loop_stop()


def test_redelivered_request_id_is_not_sent_twice(tmp_path: Path, sim: SimulatedModem,
                                                  broker: Mosquitto,
                                                  statuses: Recorder) -> None:
    daemon = start(tmp_path, sim, broker)
    try:
        publish(broker, {"id": "dup", "to": TO, "text": "once"})
        wait_state(statuses, "dup", "delivered")
        publish(broker, {"id": "dup", "to": TO, "text": "once"})
        publish(broker, {"id": "after", "to": TO, "text": "next"})
        wait_state(statuses, "after", "delivered")
        assert [s.text for s in submits(sim)] == ["once", "next"]
        assert states_of(statuses, "dup") == ["queued", "sent", "delivered"]
    finally:
        daemon.stop()


def test_a_reply_carries_in_reply_to(tmp_path: Path, sim: SimulatedModem, broker: Mosquitto,
                                     statuses: Recorder) -> None:
    daemon = start(tmp_path, sim, broker)
    try:
        publish(broker, {"id": "ask", "to": TO, "text": "STATUS?"})
        wait_state(statuses, "ask", "delivered")
        (reply,) = unique_pdus(1, sender=TO, text="OK BAT=3.7")
        (other,) = unique_pdus(1, sender="+4917099999999", text="unrelated", start=5)
        sim.deliver(reply)
        sim.deliver(other)
        received = statuses.wait_for(lambda msgs: len([
            m for m in msgs if m.topic == "modemd/gw1/sms" and m.json()["type"] == "deliver"
        ]) == 2)
        docs = {m.json()["sender"]: m.json() for m in received
                if m.topic == "modemd/gw1/sms" and m.json()["type"] == "deliver"}
        assert docs[TO]["in_reply_to"] == "ask"
        assert "in_reply_to" not in docs["+4917099999999"]
    finally:
        daemon.stop()


def test_status_reports_from_sr_storage_via_cdsi(tmp_path: Path, broker: Mosquitto,
                                                 statuses: Recorder) -> None:
    import dataclasses

    from modemd.simulator.profiles import sim_profile

    base = sim_profile("simcom_sim7600")
    profile = dataclasses.replace(base, cnmi_test="+CNMI: (0-2),(0-3),(0,2),(0,2),(0,1)")
    with SimulatedModem(profile=profile, capacity=50) as sim:
        daemon = start(tmp_path, sim, broker)
        try:
            publish(broker, {"id": "sr", "to": TO, "text": "via SR"})
            wait_state(statuses, "sr", "delivered")
            assert any(c.upper().startswith('AT+CPMS="SR"') for c in sim.command_log)
            wait_until(lambda: sim.messages("SR") == {}, what="report deleted from SR")
        finally:
            daemon.stop()


def test_failed_delivery_report_fails_the_send(tmp_path: Path, sim: SimulatedModem,
                                               broker: Mosquitto, statuses: Recorder) -> None:
    sim.sending.report_status = 0x46  # validity period expired
    daemon = start(tmp_path, sim, broker)
    try:
        publish(broker, {"id": "exp", "to": TO, "text": "late", "valid_for": "1h"})
        doc = wait_state(statuses, "exp", "expired")
        assert "validity period expired" in doc["error"]
        (submit,) = submits(sim)
        assert submit.validity is not None and submit.validity.total_seconds() == 3600
    finally:
        daemon.stop()


def test_flash_message_is_class_0(tmp_path: Path, sim: SimulatedModem, broker: Mosquitto,
                                  statuses: Recorder) -> None:
    daemon = start(tmp_path, sim, broker)
    try:
        publish(broker, {"id": "fl", "to": TO, "text": "ALARM", "flash": True})
        wait_state(statuses, "fl", "delivered")
        (submit,) = submits(sim)
        assert submit.message_class == 0
    finally:
        daemon.stop()


def test_burst_received_while_sending_is_not_starved(tmp_path: Path, sim: SimulatedModem,
                                                     broker: Mosquitto,
                                                     statuses: Recorder) -> None:
    sim.sending.report_delay = 60.0  # no report within the test: the reads are the burst's
    daemon = start(tmp_path, sim, broker, max_per_hour=100)
    try:
        sim.set_quirk("slow", 0.03)  # every answer takes a while, as on a real line
        for i in range(10):
            publish(broker, {"id": f"b{i}", "to": TO, "text": f"cmd {i}"})
        wait_until(lambda: len(sim.sending.sent) >= 1, what="sending under way")
        sim.deliver_many(unique_pdus(20, sender="+4917011111111"))
        statuses.wait_for(lambda msgs: len([
            m for m in msgs if m.topic == "modemd/gw1/sms" and m.json()["type"] == "deliver"
        ]) == 20, timeout=30)
        for i in range(10):
            wait_state(statuses, f"b{i}", "sent", timeout=30)
        assert len(sim.sending.sent) == 10
        # Receiving has priority: while the burst's reads were waiting, no submit ran (the
        # one in flight when the burst came may end inside the window), and the sends
        # went on after it.
        log = [c.upper() for c in sim.command_log]
        reads = [i for i, c in enumerate(log) if c.startswith(("AT+CMGR", "AT+CMGD"))]
        assert len(reads) == 40
        window = log[reads[0]:reads[-1]]
        assert sum(c.startswith("AT+CMGS") for c in window) <= 1
        assert any(c.startswith("AT+CMGS") for c in log[reads[-1]:])
    finally:
        daemon.stop()



def test_text_mode_modem_sends_with_csmp_and_refuses_what_needs_pdu_mode(
        tmp_path: Path, broker: Mosquitto, statuses: Recorder) -> None:
    with SimulatedModem(quirks={"cms_error": {"+CMGF=0": 303}}) as sim:
        daemon = start(tmp_path, sim, broker)
        try:
            assert daemon.drivers[0].state.mode == "text"
            publish(broker, {"id": "t1", "to": TO, "text": "STATUS?", "flash": True})
            wait_state(statuses, "t1", "delivered")
            (sent,) = sim.sending.sent
            assert (sent.text, sent.destination, sent.pdu) == ("STATUS?", TO, None)
            assert sim.sending.csmp == (49, 167, 0, 16)  # SRR + relative VP; class 0
            assert f'AT+CMGS="{TO}"' in sim.command_log
            publish(broker, {"id": "t2", "to": TO, "text": "Grüße ✓"})
            doc = wait_state(statuses, "t2", "failed")
            assert "needs PDU mode" in doc["error"]
            assert len(sim.sending.sent) == 1
        finally:
            daemon.stop()


def test_home_assistant_notify_and_command_buttons(tmp_path: Path, sim: SimulatedModem,
                                                   broker: Mosquitto,
                                                   statuses: Recorder) -> None:
    devices = ('\n[devices.pump1]\nnumbers = ["+4915112345678"]\nname = "Pump 1"\n'
               '[devices.pump1.commands]\nrequest_status = "STATUS?"\n'
               'set_interval = "INTERVAL=15"\n')
    ha = Recorder(broker.port, ["homeassistant/#"])
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}],
                       mqtt={"host": "127.0.0.1", "port": broker.port, "keepalive": 5,
                             "homeassistant": True},
                       extra=send_section(notify_to=TO) + devices)
    daemon = Daemon(load(cfg))
    daemon.start()
    try:
        configs = ha.wait_for(lambda msgs: len([
            m for m in msgs if "/notify/" in m.topic or "/button/" in m.topic]) >= 3)
        by_topic = {m.topic: m.json() for m in configs if m.payload}
        notify = by_topic["homeassistant/notify/gw1/sms/config"]
        assert notify["command_topic"] == SEND and notify["unique_id"] == "modemd_gw1_sms"
        assert notify["device"]["identifiers"] == ["modemd_gw1"]
        button = by_topic["homeassistant/button/gw1_pump1/request_status/config"]
        assert button["command_topic"] == SEND
        assert button["device"]["identifiers"] == ["modemd_gw1_pump1"]
        assert json.loads(button["payload_press"]) == {"to": TO, "text": "STATUS?"}
        # What Home Assistant publishes: the button's payload as is, the notify template
        # rendered with the message ({{ value | tojson }}).
        publish(broker, button["payload_press"])
        message = 'Tank "north" low'
        rendered = notify["command_template"].replace("{{ value | tojson }}",
                                                      json.dumps(message))
        publish(broker, rendered)
        statuses.wait_for(lambda msgs: len([
            m for m in msgs if m.topic == STATUS and m.json()["state"] == "delivered"]) == 2)
        assert sorted(s.text for s in submits(sim)) == sorted(["STATUS?", message])
    finally:
        daemon.stop()
        ha.close()


def test_the_documented_mosquitto_acl_lets_only_named_clients_send(
        tmp_path: Path, sim: SimulatedModem) -> None:
    acl = (REPO / "config" / "mosquitto-acl.example").read_text().replace("pi-north", "gw1")
    (tmp_path / "acl").write_text(acl)
    passwd = tmp_path / "passwd"
    for user in ("modemd", "dispatcher", "dashboard"):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if user == "modemd" else []),
                        str(passwd), user, f"{user}-secret"], check=True)
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.conf.write_text(broker.conf.read_text().replace(
        "allow_anonymous true",
        f"allow_anonymous false\npassword_file {passwd}\nacl_file {tmp_path / 'acl'}"))
    (tmp_path / "mqtt-password").write_text("modemd-secret\n")
    with broker:
        cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                           modems=[{"name": "m1", "port": sim.port}],
                           mqtt={"host": "127.0.0.1", "port": broker.port, "keepalive": 5,
                                 "username": "modemd",
                                 "password_file": str(tmp_path / "mqtt-password")},
                           extra=send_section())
        daemon = Daemon(load(cfg))
        daemon.start()
        try:
            sink = daemon.sinks[0]
            assert isinstance(sink, MqttSink)
            wait_until(sink.connected.is_set, what="modemd logged in")
            got: list[dict[str, Any]] = []
            reader = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dispatcher-r")
            reader.username_pw_set("dispatcher", "dispatcher-secret")
            reader.on_message = lambda c, u, m: got.append(json.loads(m.payload))
            reader.connect("127.0.0.1", broker.port)
            reader.subscribe(STATUS, qos=1)
            reader.loop_start()
            time.sleep(0.3)
            for user, request_id in (("dashboard", "from-dashboard"),
                                     ("dispatcher", "from-dispatcher")):
                client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user,
                                     protocol=mqtt.MQTTv5)
                client.username_pw_set(user, f"{user}-secret")
                client.connect("127.0.0.1", broker.port)
                client.loop_start()
                client.publish(SEND, json.dumps({"id": request_id, "to": TO, "text": user}),
                               qos=1).wait_for_publish(10)
                client.disconnect()
                client.loop_stop()
            wait_until(lambda: any(d["id"] == "from-dispatcher" and d["state"] == "delivered"
                                   for d in got), what="the dispatcher's SMS delivered")
            reader.disconnect()
            reader.loop_stop()
            assert {d["id"] for d in got} == {"from-dispatcher"}
            assert [s.destination for s in sim.sending.sent] == [TO]
        finally:
            daemon.stop()


def test_a_request_published_while_modemd_restarts_is_sent_after(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, statuses: Recorder) -> None:
    daemon = start(tmp_path, sim, broker)
    daemon.stop()  # its session stays on the broker
    publish(broker, {"id": "meanwhile", "to": TO, "text": "while you were out"})
    daemon = start(tmp_path, sim, broker)
    try:
        wait_state(statuses, "meanwhile", "delivered")
        assert [s.text for s in submits(sim)] == ["while you were out"]
    finally:
        daemon.stop()


def test_an_error_instead_of_the_prompt_is_a_failure_not_unknown(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, statuses: Recorder) -> None:
    # Many modems answer AT+CMGS=<n> at once with +CMS ERROR (no network, SIM busy), never
    # giving the "> " prompt: nothing was written, so it is retried, not "unknown".
    sim.set_quirk("cms_error", {"+CMGS": 331})
    daemon = start(tmp_path, sim, broker)
    try:
        publish(broker, {"id": "noprompt", "to": TO, "text": "try again"})
        statuses.wait_for(lambda msgs: any(
            m.json().get("error_code") == 331 for m in msgs if m.topic == STATUS))
        sim.set_quirk("cms_error", {})
        wait_state(statuses, "noprompt", "delivered")
        assert "unknown" not in states_of(statuses, "noprompt")
        assert daemon.drivers[0].state.recoveries.get("timeout", 0) == 0
    finally:
        daemon.stop()


def test_a_report_stored_in_sr_while_modemd_was_down_is_swept(
        tmp_path: Path, broker: Mosquitto, statuses: Recorder) -> None:
    import dataclasses
    from datetime import UTC, datetime

    from modemd.simulator.profiles import sim_profile
    from modemd.simulator.sending import inject_status_report
    from modemd.sms.submit import encode_status_report

    profile = dataclasses.replace(sim_profile("simcom_sim7600"),
                                  cnmi_test="+CNMI: (0-2),(0-3),(0,2),(0,2),(0,1)")
    with SimulatedModem(profile=profile, capacity=50) as sim:
        sim.sending.report_status = None  # the report comes while modemd is away
        daemon = start(tmp_path, sim, broker)
        try:
            publish(broker, {"id": "away", "to": TO, "text": "report later"})
            sent = wait_state(statuses, "away", "sent")
        finally:
            daemon.stop()
        now = datetime.now(UTC).replace(microsecond=0)
        inject_status_report(sim, encode_status_report(
            message_reference=sent["mr"][0], recipient=TO, scts=now, discharge_time=now,
            status=0))
        assert len(sim.messages("SR")) == 1
        daemon = start(tmp_path, sim, broker)
        try:
            wait_state(statuses, "away", "delivered")
            wait_until(lambda: sim.messages("SR") == {}, what="SR swept and emptied")
        finally:
            daemon.stop()


@pytest.mark.parametrize("stop", ["graceful", "sigkill"])
def test_a_report_that_comes_while_modemd_is_down_is_read_at_the_next_start(
        tmp_path: Path, sim: SimulatedModem, broker: Mosquitto, statuses: Recorder,
        stop: str) -> None:
    """Found: reports were asked for as +CDS (AT+CNMI <ds> 1), which the modem hands to
    whoever listens and forgets; one that came while modemd was stopped (or dead) was lost
    and the request stayed 'sent'. With sending on, reports are stored (SR, +CDSI) and read
    like messages, so the sweep at the next start finds them."""
    sim.sending.report_delay = 2.0
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}],
                       mqtt={"host": "127.0.0.1", "port": broker.port, "keepalive": 5},
                       extra=send_section())
    process = DaemonProcess(cfg).start()
    try:
        online = Recorder(broker.port, ["modemd/gw1/status"])
        try:
            online.wait_for(lambda msgs: any(m.payload == b"online" for m in msgs), 30)
        finally:
            online.close()
        publish(broker, {"id": "late", "to": TO, "text": "STATUS?"})
        wait_state(statuses, "late", "sent")
        time.sleep(0.5)  # its PUBACK recorded: a kill now does not publish it again
    finally:
        if stop == "graceful":
            process.stop()
        else:
            process.kill()
    wait_until(lambda: sim.sending.reports_sent == 1, what="the report, while modemd is down")
    daemon = start(tmp_path, sim, broker)
    try:
        wait_state(statuses, "late", "delivered")
        assert states_of(statuses, "late") == ["queued", "sent", "delivered"]
    finally:
        daemon.stop()

"""[send] through an [[smpp]] transceiver bind, against a third-party SMSC (npm's smpp server).

The daemon's own code end to end: a request on MQTT (or queued by the CLI's code) becomes
submit_sm at the SMSC, once; the SMSC's answer and its delivery receipt (a deliver_sm through
the journal and pipeline) become the statuses on the broker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modemd.config import config_from_dict
from modemd.daemon import Daemon
from modemd.send.wiring import send_service
from modemd.sinks.mqtt import MqttSink
from modemd.store import Store
from tests.helpers import toml_value, wait_until
from tests.mosquitto import Mosquitto
from tests.mqtt_client import TO, Recorder, publish, states_of, wait_state
from tests.smsc import Smsc

pytestmark = pytest.mark.integration

SEND = {"enabled": True, "allowed_destinations": ["+49151*"], "max_per_hour": 60,
        "retry_backoff": 0.2, "modem": "agg"}


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    with Smsc() as server:
        yield server


def config_for(tmp_path: Path, smsc: Smsc, broker: Mosquitto, *, send: dict[str, Any] | None = None,
               **bind: Any) -> dict[str, Any]:
    password = tmp_path / "smpp-password"
    password.write_text("secret\n")
    return {
        "gateway": {"id": "gw1", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "keepalive": 5},
        "smpp": [{"name": "agg", "host": "127.0.0.1", "port": smsc.port, "system_id": "modemd",
                  "password_file": str(password), "bind": "transceiver",
                  "reconnect_min": 0.2, "reconnect_max": 1.0, "response_timeout": 2.0,
                  **bind}],
        "send": {**SEND, **(send or {})},
    }


@pytest.fixture
def gateway(tmp_path: Path, smsc: Smsc, broker: Mosquitto) -> Iterator[Daemon]:
    yield from running(config_for(tmp_path, smsc, broker))


def running(settings: dict[str, Any]) -> Iterator[Daemon]:
    daemon = Daemon(config_from_dict(settings))
    daemon.start()
    try:
        wait_until(daemon.binds[0].bound.is_set, what="bound")
        sink = daemon.sinks[0]
        assert isinstance(sink, MqttSink)
        wait_until(sink.connected.is_set, what="mqtt connected")
        yield daemon
    finally:
        daemon.stop()


def receipt(smsc: Smsc, key: str, message_id: str, *, stat: str = "DELIVRD",
            err: str = "000") -> None:
    """The SMSC's delivery receipt (SMPP 3.4 Appendix B), from the handset to us."""
    text = (f"id:{message_id} sub:001 dlvrd:001 submit date:2612011200 done date:2612011201 "
            f"stat:{stat} err:{err} text:STATUS?")
    smsc.deliver(key, esm_class=0x04, data_coding=0, short_message=text.encode("ascii"))


def test_a_text_goes_out_once_and_its_receipt_makes_it_delivered(
        gateway: Daemon, smsc: Smsc, broker: Mosquitto, statuses: Recorder) -> None:
    publish(broker, {"id": "cmd-17", "to": TO, "text": "STATUS? 5€"})
    sent = wait_state(statuses, "cmd-17", "sent")
    (submit,) = smsc.submits()
    fields = submit["fields"]
    assert fields["destination_addr"] == "4915112345678"
    assert (fields["dest_addr_ton"], fields["dest_addr_npi"]) == (1, 1)
    assert fields["data_coding"] == 0 and fields["esm_class"] == 0
    assert fields["registered_delivery"] == 1
    assert submit["text"] == "STATUS? 5€"  # the SMSC read our GSM septets as GSM 03.38
    assert sent["message_ids"] == [submit["message_id"]] and sent["mr"] == []
    assert sent["modem"] == "agg" and sent["parts"] == 1

    receipt(smsc, "r1", submit["message_id"])
    assert smsc.wait_responses(["r1"])["r1"]["status"] == 0
    delivered = wait_state(statuses, "cmd-17", "delivered")
    assert delivered["error"] is None
    assert states_of(statuses, "cmd-17") == ["queued", "sent", "delivered"]
    assert len(smsc.submits()) == 1
    # the receipt itself is on /sms as a report, not as a device message
    reports = [m.json() for m in statuses.wait_count("modemd/gw1/sms", 1)]
    assert [r["type"] for r in reports] == ["status_report"], reports
    assert reports[0]["send_id"] == "cmd-17"


def test_a_long_text_leaves_as_parts_with_their_headers(
        gateway: Daemon, smsc: Smsc, broker: Mosquitto, statuses: Recorder) -> None:
    text = "".join(f"line {i:03d}; " for i in range(30))  # 300 characters: 2 parts
    publish(broker, {"id": "long", "to": TO, "text": text})
    sent = wait_state(statuses, "long", "sent")
    submits = smsc.submits()
    assert len(submits) == 2 and sent["parts"] == 2
    # the IEs as the SMSC read them: concatenation, 8-bit reference, 2 parts, this one
    headers = [bytes.fromhex(s["udh_hex"]) for s in submits]
    reference = headers[0][2]
    assert headers == [bytes([0x00, 0x03, reference, 2, 1]), bytes([0x00, 0x03, reference, 2, 2])]
    assert all(s["fields"]["esm_class"] & 0x40 for s in submits)
    assert "".join(s["text"] for s in submits) == text
    assert sent["message_ids"] == [s["message_id"] for s in submits]
    # both receipts are needed for delivered
    receipt(smsc, "r1", submits[0]["message_id"])
    smsc.wait_responses(["r1"])
    receipt(smsc, "r2", submits[1]["message_id"])
    wait_state(statuses, "long", "delivered")


def test_ucs2_text_is_data_coding_8(gateway: Daemon, smsc: Smsc, broker: Mosquitto,
                                    statuses: Recorder) -> None:
    publish(broker, {"id": "ru", "to": TO, "text": "Привет, насос 👋"})
    wait_state(statuses, "ru", "sent")
    (submit,) = smsc.submits()
    assert submit["fields"]["data_coding"] == 8
    assert submit["text"] == "Привет, насос 👋"


def test_a_failed_receipt_fails_the_request_with_the_smscs_word(
        gateway: Daemon, smsc: Smsc, broker: Mosquitto, statuses: Recorder) -> None:
    publish(broker, {"id": "gone", "to": TO, "text": "hello"})
    wait_state(statuses, "gone", "sent")
    (submit,) = smsc.submits()
    receipt(smsc, "r1", submit["message_id"], stat="UNDELIV", err="001")
    failed = wait_state(statuses, "gone", "failed")
    assert "UNDELIV" in failed["error"] and "001" in failed["error"]


def test_hex_message_ids_match_receipts_written_in_decimal(
        gateway: Daemon, smsc: Smsc, broker: Mosquitto, statuses: Recorder) -> None:
    smsc.command(cmd="submit_ids", prefix="", base=16, start=0x1F4A2)
    publish(broker, {"id": "hex", "to": TO, "text": "hello"})
    sent = wait_state(statuses, "hex", "sent")
    assert sent["message_ids"] == ["1f4a3"]
    receipt(smsc, "r1", str(0x1F4A3))
    wait_state(statuses, "hex", "delivered")


def test_a_throttled_submit_is_retried_and_a_refused_one_fails(
        gateway: Daemon, smsc: Smsc, broker: Mosquitto, statuses: Recorder) -> None:
    smsc.command(cmd="submit_status", status=0x58)  # ESME_RTHROTTLED: not now
    publish(broker, {"id": "later", "to": TO, "text": "hello"})
    smsc.wait_event(lambda e: e["event"] == "submit_sm")
    smsc.command(cmd="submit_status", status=0)
    sent = wait_state(statuses, "later", "sent")
    assert len(smsc.submits()) == 2 and sent["attempts"] == 1

    smsc.command(cmd="submit_status", status=0x0B)  # ESME_RINVDSTADR: never
    publish(broker, {"id": "never", "to": TO, "text": "hello"})
    failed = wait_state(statuses, "never", "failed")
    assert "0x0000000B" in failed["error"]
    assert len(smsc.submits()) == 3  # not retried


def test_no_answer_and_a_lost_connection_make_it_unknown_never_sent_again(
        gateway: Daemon, smsc: Smsc, broker: Mosquitto, statuses: Recorder) -> None:
    smsc.command(cmd="hold_submits", on=True)
    publish(broker, {"id": "lost", "to": TO, "text": "hello"})
    smsc.wait_event(lambda e: e["event"] == "submit_sm")
    before_drop = len(smsc.events)
    smsc.command(cmd="drop")
    unknown = wait_state(statuses, "lost", "unknown")
    assert "not sent again" in unknown["error"]
    smsc.command(cmd="hold_submits", on=False)
    smsc.wait_event(lambda e: e["event"] == "bind" and e["ok"], after=before_drop)
    publish(broker, {"id": "next", "to": TO, "text": "after"})
    wait_state(statuses, "next", "sent")
    assert [s["text"] for s in smsc.submits()] == ["hello", "after"]


def test_a_request_the_cli_queues_leaves_through_the_bind(
        tmp_path: Path, gateway: Daemon, smsc: Smsc, statuses: Recorder) -> None:
    # the CLI's code: its own service over the same store file, another connection
    cli_store = Store(tmp_path / "state")
    try:
        doc = send_service(gateway.config, cli_store).accept(
            {"id": "from-cli", "to": TO, "text": "via cli"}, origin="cli")
        assert doc["state"] == "queued"
        wait_until(lambda: len(smsc.submits()) == 1, what="submit_sm from the CLI's request")
    finally:
        cli_store.close()
    assert smsc.submits()[0]["text"] == "via cli"
    wait_state(statuses, "from-cli", "sent")


def test_auto_sends_over_the_only_transceiver(tmp_path: Path, smsc: Smsc, broker: Mosquitto,
                                              statuses: Recorder) -> None:
    settings = config_for(tmp_path, smsc, broker, send={"modem": "auto"}, source_addr="Pumpwerk")
    for _ in running(settings):
        publish(broker, {"id": "auto", "to": TO, "text": "hi"})
        wait_state(statuses, "auto", "sent")
    (submit,) = smsc.submits()
    assert submit["fields"]["source_addr"] == "Pumpwerk"
    assert submit["fields"]["source_addr_ton"] == 5


def test_a_receiver_bind_cannot_be_the_send_modem(tmp_path: Path, smsc: Smsc,
                                                  broker: Mosquitto) -> None:
    from modemd.errors import ConfigError

    settings = config_for(tmp_path, smsc, broker, bind="receiver")
    with pytest.raises((ConfigError, ValueError), match='bind = "transceiver"'):
        config_from_dict(settings)


def test_a_stop_with_a_part_in_flight_leaves_it_unknown_and_the_restart_sends_nothing(
        tmp_path: Path, smsc: Smsc, broker: Mosquitto, statuses: Recorder) -> None:
    settings = config_for(tmp_path, smsc, broker)
    smsc.command(cmd="hold_submits", on=True)
    for daemon in running(settings):
        senders = daemon.smpp_senders
        publish(broker, {"id": "mid", "to": TO, "text": "hello"})
        smsc.wait_event(lambda e: e["event"] == "submit_sm")
        wait_state(statuses, "mid", "queued")
    # stopped (the generator's finally): the answer never came before the goodbye
    store = Store(tmp_path / "state")
    try:
        row = store.sendq.get("mid")
        assert row is not None and row.state == "unknown", row
    finally:
        store.close()
    assert not senders[0].alive
    smsc.command(cmd="hold_submits", on=False)
    for _ in running(settings):
        wait_state(statuses, "mid", "unknown")
        publish(broker, {"id": "after", "to": TO, "text": "after"})
        wait_state(statuses, "after", "sent")
    assert [s["text"] for s in smsc.submits()] == ["hello", "after"]


def test_requests_share_the_submit_window_and_a_sets_parts_go_one_by_one(
        gateway: Daemon, smsc: Smsc, broker: Mosquitto, statuses: Recorder) -> None:
    smsc.command(cmd="hold_submits", on=True)  # nothing is answered: all stay in flight
    for name in ("a", "b", "c"):
        publish(broker, {"id": name, "to": TO, "text": f"to {name}"})
    publish(broker, {"id": "long", "to": TO, "text": "x" * 300})
    wait_until(lambda: len(smsc.submits()) == 4, what="four submit_sm in flight at once")
    time.sleep(1.0)  # the long text's second part waits for its first part's answer
    texts = sorted(s["text"] for s in smsc.submits())
    assert texts == sorted(["to a", "to b", "to c", "x" * 153]), texts
    smsc.command(cmd="drop")
    for name in ("a", "b", "c", "long"):
        wait_state(statuses, name, "unknown")
    assert len(smsc.submits()) == 4  # none written again


def test_sms_list_shows_which_bind_sent_and_the_smscs_ids(
        tmp_path: Path, gateway: Daemon, smsc: Smsc, broker: Mosquitto,
        statuses: Recorder) -> None:
    from typer.testing import CliRunner

    from modemd.cli import app

    publish(broker, {"id": "listed", "to": TO, "text": "hello"})
    wait_state(statuses, "listed", "sent")
    (submit,) = smsc.submits()
    settings = config_for(tmp_path, smsc, broker)
    lines = []
    for section in ("gateway", "mqtt", "send"):
        lines += [f"[{section}]"] + [f"{k} = {toml_value(v)}" for k, v in
                                     settings[section].items()]
    lines += ["[[smpp]]"] + [f"{k} = {toml_value(v)}" for k, v in settings["smpp"][0].items()]
    path = tmp_path / "modemd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["sms", "list", "-c", str(path)])
    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    assert line.startswith("listed  sent") and "via agg" in line
    assert f"smsc id {submit['message_id']}" in line

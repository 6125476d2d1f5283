"""[[smpp]] binds against a third-party SMSC (npm's smpp server, run by node), through the
journal and pipeline to a real mosquitto."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modemd.config import config_from_dict
from modemd.daemon import Daemon
from modemd.store import Store
from tests.helpers import DaemonProcess, journal_rows, message_rows, toml_value, wait_until
from tests.mosquitto import Mosquitto
from tests.mqtt_client import Recorder
from tests.smsc import Smsc

pytestmark = pytest.mark.integration

UDH_CONCAT_8 = bytes([0x05, 0x00, 0x03])


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    with Smsc() as server:
        yield server


def bind_settings(tmp_path: Path, smsc: Smsc, **extra: Any) -> dict[str, Any]:
    password = tmp_path / "smpp-password"
    password.write_text("secret\n")
    return {"name": "agg", "host": "127.0.0.1", "port": smsc.port, "system_id": "modemd",
            "password_file": str(password), "reconnect_min": 0.2, "reconnect_max": 1.0,
            **extra}


@pytest.fixture
def gateway(tmp_path: Path, smsc: Smsc, broker: Mosquitto) -> Iterator[tuple[Daemon, Recorder]]:
    config = config_from_dict({
        "gateway": {"id": "gw1", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "smpp": [bind_settings(tmp_path, smsc)],
        "parser": [{"name": "pump", "match": {"text": "^ID="}, "format": "kv",
                    "device_field": "ID",
                    "fields": {"BAT": {"name": "battery", "type": "float"}}}],
    })
    recorder = Recorder(broker.port, ["modemd/gw1/#"])
    daemon = Daemon(config)
    daemon.start()
    try:
        yield daemon, recorder
    finally:
        daemon.stop()
        recorder.close()


def sms_docs(recorder: Recorder, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    return [m.json() for m in recorder.wait_count("modemd/gw1/sms", count, timeout)]


def test_latin1_text_reaches_mqtt_with_its_source(gateway: tuple[Daemon, Recorder],
                                                  smsc: Smsc) -> None:
    daemon, recorder = gateway
    smsc.deliver("m1", data_coding=3, short_message="ID=PUMP01;BAT=3.71;N=Grüße".encode("latin-1"))
    assert smsc.wait_responses(["m1"])["m1"]["status"] == 0
    [doc] = sms_docs(recorder, 1)
    assert doc["text"] == "ID=PUMP01;BAT=3.71;N=Grüße"
    assert doc["source"] == "agg" and doc["via"] == "smpp" and doc["modem"] is None
    assert doc["sender"] == "+4915112345678" and doc["destination"] == "22222"
    assert doc["encoding"] == "latin1" and doc["complete"] is True
    reading = recorder.wait_count("modemd/gw1/device/PUMP01/state", 1)[0].json()
    assert reading["battery"] == 3.71 and reading["msg_id"] == doc["id"]
    [row] = journal_rows(daemon.config.gateway.state_dir)
    assert row.mode == "smpp" and row.modem == "agg"


def test_ucs2_and_default_alphabet(gateway: tuple[Daemon, Recorder], smsc: Smsc) -> None:
    _, recorder = gateway
    smsc.deliver("u", data_coding=8, short_message="Привет 😀".encode("utf-16-be"))
    # GSM 7-bit unpacked: "@£$" are septets 0x00 0x01 0x02, "€" is escape 0x1B 0x65
    smsc.deliver("g", data_coding=0, short_message=bytes([0x00, 0x01, 0x02, 0x1B, 0x65]))
    smsc.wait_responses(["u", "g"])
    docs = {d["encoding"]: d for d in sms_docs(recorder, 2)}
    assert docs["ucs2"]["text"] == "Привет 😀"
    assert docs["gsm7"]["text"] == "@£$€"


def test_text_as_the_smsc_library_encodes_it(gateway: tuple[Daemon, Recorder],
                                             smsc: Smsc) -> None:
    """Strings left to npm's smpp to encode: GSM 7-bit under data_coding 1, or UCS-2."""
    _, recorder = gateway
    smsc.deliver("gsm", short_message="Grüße {1} @home_")
    smsc.deliver("ucs", short_message="Привет")
    smsc.wait_responses(["gsm", "ucs"])
    texts = {d["text"]: d["encoding"] for d in sms_docs(recorder, 2)}
    assert texts == {"Grüße {1} @home_": "gsm7", "Привет": "ucs2"}


def test_long_messages_by_udh_and_by_sar(gateway: tuple[Daemon, Recorder], smsc: Smsc) -> None:
    daemon, recorder = gateway
    text = "x" * 150 + "END"
    halves = [text[:100], text[100:]]
    # UDH (esm_class 0x40), parts in reverse order
    for seq in (2, 1):
        smsc.deliver(f"udh{seq}", esm_class=0x40, data_coding=3,
                     short_message=UDH_CONCAT_8 + bytes([0x2A, 2, seq])
                     + halves[seq - 1].encode("latin-1"))
    # sar_* TLVs, UCS-2 with an emoji split between the parts
    emoji = "ok 😀 done".encode("utf-16-be")
    cut = emoji.index("😀".encode("utf-16-be")) + 2
    for seq, chunk in ((1, emoji[:cut]), (2, emoji[cut:])):
        smsc.deliver(f"sar{seq}", data_coding=8, short_message=chunk, sar_msg_ref_num=0x1234,
                     sar_total_segments=2, sar_segment_seqnum=seq)
    smsc.wait_responses(["udh1", "udh2", "sar1", "sar2"])
    docs = {d["encoding"]: d for d in sms_docs(recorder, 2)}
    assert docs["latin1"]["text"] == text and docs["latin1"]["parts"] == 2
    assert docs["ucs2"]["text"] == "ok 😀 done" and docs["ucs2"]["complete"] is True
    assert len(message_rows(daemon.config.gateway.state_dir)) == 2


def test_receipts_are_status_reports_not_payloads(gateway: tuple[Daemon, Recorder],
                                                  smsc: Smsc) -> None:
    daemon, recorder = gateway
    matched: list[tuple[str, str | None, str]] = []
    assert daemon.pipeline is not None
    daemon.pipeline.on_smpp_receipt = lambda conn, bind, receipt: matched.append(
        (bind, receipt.message_id, receipt.state))
    smsc.deliver("r1", esm_class=0x04, data_coding=0, receipted_message_id="abc123",
                 message_state=2,
                 short_message=b"id:abc123 sub:001 dlvrd:001 submit date:2612011200 "
                               b"done date:2612011201 stat:DELIVRD err:000 text:ID=PUMP01")
    # the text form alone (some SMSCs send no TLVs and no esm_class)
    smsc.deliver("r2", data_coding=1, short_message=b"id:77 sub:001 dlvrd:000 submit date:"
                                                    b"2612011200 done date:2612011300 "
                                                    b"stat:UNDELIV err:005 text:")
    smsc.wait_responses(["r1", "r2"])
    docs = {d["message_id"]: d for d in sms_docs(recorder, 2)}
    assert docs["abc123"]["type"] == "status_report"
    assert docs["abc123"]["status"] == "delivered" and docs["abc123"]["source"] == "agg"
    assert docs["abc123"]["discharged_at"] == "2026-12-01T12:01:00+00:00"
    assert docs["77"]["status"] == "undeliverable" and docs["77"]["error"] == "005"
    assert sorted(matched) == [("agg", "77", "undeliverable"), ("agg", "abc123", "delivered")]
    assert not recorder.on("modemd/gw1/device/#")  # never parsed as a device payload
    assert not recorder.on("modemd/gw1/deadletter")


def test_data_sm_is_received_like_deliver_sm(gateway: tuple[Daemon, Recorder],
                                            smsc: Smsc) -> None:
    # some SMSCs deliver MO (and receipts) as data_sm, the message in message_payload
    _, recorder = gateway
    smsc.deliver("d1", command="data_sm", data_coding=3,
                 message_payload="ID=PUMP02;BAT=3.9;N=Grüße".encode("latin-1"))
    smsc.deliver("d2", command="data_sm", esm_class=0x04, data_coding=0,
                 message_payload=b"id:abc9 sub:001 dlvrd:001 submit date:2612011200 "
                                 b"done date:2612011201 stat:DELIVRD err:000 text:x")
    answers = smsc.wait_responses(["d1", "d2"])
    assert answers["d1"]["status"] == 0 and answers["d2"]["status"] == 0
    docs = sms_docs(recorder, 2)
    by_type = {d["type"]: d for d in docs}
    assert by_type["deliver"]["text"] == "ID=PUMP02;BAT=3.9;N=Grüße"
    assert by_type["deliver"]["sender"] == "+4915112345678"
    assert by_type["status_report"]["message_id"] == "abc9"
    reading = recorder.wait_count("modemd/gw1/device/PUMP02/state", 1)[0].json()
    assert reading["battery"] == 3.9
    assert not recorder.on("modemd/gw1/deadletter")


def test_a_receipt_on_a_gateway_that_does_not_send_is_published_and_done(
        gateway: tuple[Daemon, Recorder], smsc: Smsc) -> None:
    # (no [send]: nobody hooks the pipeline's receipts; once that stopped every receipt)
    daemon, recorder = gateway
    smsc.deliver("r1", esm_class=0x04, data_coding=0,
                 short_message=b"id:abc123 sub:001 dlvrd:001 submit date:2612011200 "
                               b"done date:2612011201 stat:DELIVRD err:000 text:hello")
    smsc.wait_responses(["r1"])
    [doc] = sms_docs(recorder, 1)
    assert doc["type"] == "status_report" and doc["status"] == "delivered"
    assert "send_id" not in doc
    wait_until(lambda: [r.state for r in journal_rows(daemon.config.gateway.state_dir)]
               == ["done"], what="the receipt's journal row done")
    assert not recorder.on("modemd/gw1/deadletter")


def test_smsc_drops_the_connection_nothing_lost(gateway: tuple[Daemon, Recorder],
                                               smsc: Smsc) -> None:
    daemon, recorder = gateway
    smsc.wait_event(lambda e: e["event"] == "bind")
    keys = [f"d{i}" for i in range(60)]
    for key in keys[:30]:
        smsc.deliver(key, data_coding=3, short_message=f"drop test {key}".encode())
    smsc.command(cmd="drop")
    for key in keys[30:]:
        smsc.deliver(key, data_coding=3, short_message=f"drop test {key}".encode())
    answers = smsc.wait_responses(keys, timeout=30)
    assert all(answers[k]["status"] == 0 for k in keys)
    docs = sms_docs(recorder, 60, timeout=30)
    assert sorted(d["text"] for d in docs) == sorted(f"drop test {k}" for k in keys)
    assert smsc.count("bind") >= 2
    assert len(journal_rows(daemon.config.gateway.state_dir)) == 60


def test_the_binds_state_is_retained_and_home_assistant_shows_its_connectivity(
        tmp_path: Path, smsc: Smsc, broker: Mosquitto) -> None:
    ha = Recorder(broker.port, ["homeassistant/#", "modemd/gw1/smpp/#"])
    config = config_from_dict({
        "gateway": {"id": "gw1", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "homeassistant": True},
        "smpp": [bind_settings(tmp_path, smsc)],
    })
    daemon = Daemon(config)
    daemon.start()
    topic = "modemd/gw1/smpp/agg/state"

    def states() -> list[dict[str, Any]]:
        return [m.json() for m in ha.on(topic) if m.payload]

    try:
        ha.wait_for(lambda _: any(s["online"] for s in states()))
        first = states()
        assert first[0]["online"] is False and first[0]["state"] == "connecting"
        bound = next(s for s in first if s["online"])
        assert bound["state"] == "bound" and bound["bind_type"] == "receiver"
        assert bound["last_error"] is None and bound["system_id"] == "modemd"
        late = Recorder(broker.port, [topic])  # a dashboard that starts now sees it bound
        try:
            (retained,) = late.wait_count(topic, 1)
            assert retained.retain and retained.json()["online"] is True
        finally:
            late.close()
        online = ha.wait_count("homeassistant/binary_sensor/gw1_smpp_agg/online/config", 1)
        entity = online[0].json()
        assert entity["device_class"] == "connectivity" and entity["state_topic"] == topic
        assert entity["device"]["via_device"] == "modemd_gw1"
        assert ha.on("homeassistant/sensor/gw1_smpp_agg/last_error/config")

        seen = len(states())
        smsc.command(cmd="drop")
        ha.wait_for(lambda _: any(not s["online"] for s in states()[seen:]))
        lost = next(s for s in states()[seen:] if not s["online"])
        assert lost["last_error"] and lost["reconnects"] == 1 and lost["state"] == "backoff"
        ha.wait_for(lambda _: states()[-1]["online"], timeout=20)  # bound again
    finally:
        daemon.stop()
        ha.close()
    # a retained "connected" must not outlive the daemon's view: the last word is offline
    assert states()[-1]["online"] is False and states()[-1]["state"] == "stopped"


def test_a_bind_removed_from_the_config_loses_its_entities_and_state(
        tmp_path: Path, smsc: Smsc, broker: Mosquitto) -> None:
    base = {"gateway": {"id": "gw1", "state_dir": str(tmp_path / "state")},
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "homeassistant": True}}
    entity = "homeassistant/binary_sensor/gw1_smpp_agg/online/config"
    state = "modemd/gw1/smpp/agg/state"

    def retained() -> set[str]:
        late = Recorder(broker.port, [entity, state])
        try:
            time.sleep(0.5)  # retained messages arrive right after the subscription
            return {m.topic for m in late.messages if m.retain and m.payload}
        finally:
            late.close()

    daemon = Daemon(config_from_dict({**base, "smpp": [bind_settings(tmp_path, smsc)]}))
    daemon.start()
    try:
        wait_until(daemon.binds[0].bound.is_set, what="bound")
        wait_until(lambda: retained() == {entity, state}, what="announced")
    finally:
        daemon.stop()
    # a state row the first run queued and the broker never acknowledged (a stop mid-outage)
    store = Store(tmp_path / "state")
    try:
        store.outbox.put(sink="mqtt", kind="smpp_state", msg_id=None,
                         body={"bind": "agg", "state": "bound", "online": True})
    finally:
        store.close()
    daemon = Daemon(config_from_dict(base))  # the bind is gone from the config
    daemon.start()
    try:
        wait_until(lambda: retained() == set(), what="its entity and state removed")
    finally:
        daemon.stop()


def test_wrong_password_is_refused_and_retried(tmp_path: Path, smsc: Smsc) -> None:
    settings = bind_settings(tmp_path, smsc)
    Path(settings["password_file"]).write_text("wrong\n")
    config = config_from_dict({"gateway": {"state_dir": str(tmp_path / "state")},
                               "smpp": [settings]})
    daemon = Daemon(config)
    daemon.start()
    try:
        wait_until(lambda: smsc.count("bind") >= 2, what="a second bind attempt")
        bind = daemon.binds[0]
        assert bind.last_error is not None and "bind refused" in bind.last_error
        assert "wrong" not in bind.last_error
    finally:
        daemon.stop()


def test_allowed_senders_apply_to_a_bind(tmp_path: Path, smsc: Smsc,
                                         broker: Mosquitto) -> None:
    config = config_from_dict({
        "gateway": {"id": "gw1", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "smpp": [bind_settings(tmp_path, smsc, allowed_senders=["+4930*"])],
    })
    recorder = Recorder(broker.port, ["modemd/gw1/#"])
    daemon = Daemon(config)
    daemon.start()
    try:
        smsc.deliver("no", data_coding=3, short_message=b"from a stranger")
        smsc.deliver("yes", data_coding=3, short_message=b"from Berlin", source_addr="4930123")
        assert {k: v["status"] for k, v in smsc.wait_responses(["no", "yes"]).items()} == {
            "no": 0, "yes": 0}  # journalled either way: refusing is the pipeline's job
        dead = recorder.wait_count("modemd/gw1/deadletter", 1)[0].json()
        assert "+4915112345678 is not allowed" in dead["reason"]
        [doc] = sms_docs(recorder, 1)
        assert doc["text"] == "from Berlin"
    finally:
        daemon.stop()
        recorder.close()


def test_two_binds_one_long_message_split_between_them(tmp_path: Path, smsc: Smsc,
                                                       broker: Mosquitto) -> None:
    config = config_from_dict({
        "gateway": {"id": "gw1", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "smpp": [bind_settings(tmp_path, smsc), {**bind_settings(tmp_path, smsc),
                                                 "name": "agg-2"}],
    })
    recorder = Recorder(broker.port, ["modemd/gw1/sms"])
    daemon = Daemon(config)
    daemon.start()
    try:
        wait_until(lambda: smsc.count("bind") >= 2, what="both binds")
        for seq, via in ((1, 0), (2, 1)):
            smsc.deliver(f"p{seq}", via=via, data_coding=3, sar_msg_ref_num=77,
                         sar_total_segments=2, sar_segment_seqnum=seq,
                         short_message=f"half {seq}.".encode())
        smsc.wait_responses(["p1", "p2"])
        [doc] = sms_docs(recorder, 1)
        assert doc["text"] == "half 1.half 2." and doc["complete"] is True
        assert {r.modem for r in journal_rows(daemon.config.gateway.state_dir)} == {"agg",
                                                                                     "agg-2"}
    finally:
        daemon.stop()
        recorder.close()


def write_smpp_config(path: Path, state_dir: Path, broker: Mosquitto, smpp: dict[str, Any]
                      ) -> Path:
    lines = ["[gateway]", 'id = "gw1"', f"state_dir = {toml_value(str(state_dir))}", "",
             "[mqtt]", 'host = "127.0.0.1"', f"port = {broker.port}", "", "[[smpp]]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in smpp.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sigkill_mid_stream_no_loss_no_duplicate(tmp_path: Path, smsc: Smsc,
                                                 broker: Mosquitto) -> None:
    """modemd killed while deliver_sm stream in; the SMSC resends what it had no answer for
    (new sequence numbers, as after any reconnect): every message once in the store and on
    MQTT, none twice in the store."""
    state = tmp_path / "state"
    config = write_smpp_config(tmp_path / "modemd.toml", state, broker,
                               bind_settings(tmp_path, smsc))
    recorder = Recorder(broker.port, ["modemd/gw1/sms"])
    daemon = DaemonProcess(config).start()
    try:
        count = 3000
        smsc.wait_event(lambda e: e["event"] == "bind", timeout=30)
        smsc.command(cmd="burst", count=count, rate=1500, prefix="k", window=200)
        wait_until(lambda: len(smsc.responses()) >= 600, timeout=30, what="600 answers")
        daemon.kill()
        answered_before = len(smsc.responses())
        assert answered_before < count, "the kill came too late to test anything"
        daemon = DaemonProcess(config).start()
        smsc.wait_event(lambda e: e["event"] == "burst_done", timeout=90)
        keys = [f"k{i}" for i in range(count)]
        smsc.wait_responses(keys, timeout=30)
        resent = sum(1 for e in smsc.responses().values() if e["attempts"] > 1)
        docs = [m.json() for m in recorder.wait_for(
            lambda msgs: len({json.loads(m.payload)["text"] for m in msgs}) >= count,
            timeout=60)]
        assert {d["text"] for d in docs} == set(keys)
        rows = journal_rows(state)
        assert len(rows) == count and len({r.raw_id for r in rows}) == count
        messages = message_rows(state)
        assert len(messages) == count
        assert resent >= 1  # the stream was cut with deliver_sm in flight
    finally:
        daemon.stop()
        recorder.close()

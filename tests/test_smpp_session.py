"""The bind's promise with the store in the way: deliver_sm_resp only after the commit, an
error answer (the SMSC keeps the message) when the commit fails, grouping under load, TLS."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from modemd.errors import StoreError
from modemd.sources.smpp import SessionError, SessionSettings, SmppBind
from modemd.store import Store
from modemd.store.committer import GroupCommitter
from modemd.store.journal import CommitResult, Journal, RawEntry
from tests.helpers import wait_until
from tests.mosquitto import free_port, make_tls_files
from tests.smsc import Smsc

pytestmark = pytest.mark.integration


class GatedJournal(Journal):
    """A journal whose commits wait for ``gate`` (or fail while ``fail`` is set)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.db)
        self.gate = threading.Event()
        self.fail = False
        self.batches: list[int] = []

    def commit_many(self, entries: Sequence[RawEntry]) -> list[CommitResult]:
        self.gate.wait(10)
        if self.fail:
            raise StoreError("disk full (simulated)")
        self.batches.append(len(entries))
        return super().commit_many(entries)


def run_bind(smsc: Smsc, journal: Journal, **settings: object) -> tuple[SmppBind,
                                                                        GroupCommitter]:
    committer = GroupCommitter(journal)
    committer.start()
    base = {"name": "agg", "host": "127.0.0.1", "port": smsc.port, "system_id": "modemd",
            "password": "secret", **settings}
    bind = SmppBind(SessionSettings(**base), committer,  # type: ignore[arg-type]
                    reconnect_min=0.2, reconnect_max=1.0)
    bind.start()
    assert bind.bound.wait(15), bind.last_error
    return bind, committer


def stop(bind: SmppBind, committer: GroupCommitter) -> None:
    bind.stop()
    committer.stop()


def test_deliver_sm_resp_waits_for_the_commit(store: Store) -> None:
    journal = GatedJournal(store)
    with Smsc() as smsc:
        bind, committer = run_bind(smsc, journal)
        try:
            smsc.deliver("held", data_coding=3, short_message=b"wait for me")
            time.sleep(0.5)
            assert "held" not in smsc.responses()  # not durable yet: no answer
            assert store.journal.count() == 0
            journal.gate.set()
            answer = smsc.wait_responses(["held"])["held"]
            assert answer["status"] == 0
            assert store.journal.count() == 1
        finally:
            journal.gate.set()
            stop(bind, committer)


def test_failed_commit_answers_a_temporary_error(store: Store) -> None:
    journal = GatedJournal(store)
    journal.fail = True
    journal.gate.set()
    with Smsc() as smsc:
        bind, committer = run_bind(smsc, journal)
        try:
            smsc.deliver("lost?", data_coding=3, short_message=b"disk is full")
            answer = smsc.wait_responses(["lost?"])["lost?"]
            assert answer["status"] == 0x64  # ESME_RX_T_APPN: the SMSC keeps and retries
            assert store.journal.count() == 0
        finally:
            stop(bind, committer)


def test_commits_are_grouped_under_load(store: Store) -> None:
    journal = GatedJournal(store)
    with Smsc() as smsc:
        bind, committer = run_bind(smsc, journal, window=500)
        try:
            smsc.command(cmd="burst", count=400, rate=0, prefix="b", window=400)
            wait_until(lambda: bind.received >= 0 and committer.records == 0, timeout=2)
            time.sleep(0.3)  # the whole burst arrives while the first commit is held
            journal.gate.set()
            smsc.wait_event(lambda e: e["event"] == "burst_done", timeout=30)
            assert store.journal.count() == 400
            assert len(journal.batches) < 50, journal.batches  # not one fsync per message
            assert max(journal.batches) > 50
        finally:
            journal.gate.set()
            stop(bind, committer)


def test_a_lone_message_is_not_held_for_a_batch(store: Store) -> None:
    with Smsc() as smsc:
        bind, committer = run_bind(smsc, store.journal)
        try:
            smsc.deliver("alone", data_coding=3, short_message=b"just me")
            answer = smsc.wait_responses(["alone"])["alone"]
            assert answer["status"] == 0
            assert answer["latency_us"] < 1_000_000  # one commit, not a batch timer
        finally:
            stop(bind, committer)


def test_tls_bind(store: Store, tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    with Smsc(key=tls.server_key, cert=tls.server_cert) as smsc:
        bind, committer = run_bind(smsc, store.journal, tls=True, tls_ca=str(tls.ca),
                                   host="localhost")
        try:
            smsc.deliver("tls", data_coding=8, short_message="über TLS".encode("utf-16-be"))
            assert smsc.wait_responses(["tls"])["tls"]["status"] == 0
            assert store.journal.count() == 1
        finally:
            stop(bind, committer)


def test_enquire_link_both_ways_and_a_silent_smsc_is_left(store: Store) -> None:
    with Smsc() as smsc:
        bind, committer = run_bind(smsc, store.journal, enquire_link=0.2, response_timeout=0.6)
        try:
            wait_until(lambda: smsc.count("enquire_link") >= 3, timeout=10,
                       what="enquire_link from the bind")
            assert bind.reconnects == 0
            smsc.command(cmd="enquire_link")
            assert smsc.wait_event(lambda e: e["event"] == "enquire_link_resp")["status"] == 0
            smsc.command(cmd="mute", on=True)  # the SMSC hangs: no enquire_link_resp
            wait_until(lambda: bind.reconnects >= 1, timeout=10, what="a reconnect")
            assert "enquire_link_resp" in (bind.last_error or "")
            smsc.command(cmd="mute", on=False)
            wait_until(lambda: smsc.count("bind") >= 2 and bind.bound.is_set(), timeout=10,
                       what="bound again")
            smsc.deliver("after", data_coding=3, short_message=b"still here")
            assert smsc.wait_responses(["after"])["after"]["status"] == 0
        finally:
            stop(bind, committer)


def test_window_limits_deliver_sm_waiting_for_their_commit(store: Store) -> None:
    journal = GatedJournal(store)
    with Smsc() as smsc:
        bind, committer = run_bind(smsc, journal, window=5)
        try:
            smsc.command(cmd="burst", count=60, rate=0, prefix="w", window=60)
            time.sleep(0.8)  # all 60 are on the wire; the commit is held
            session = bind._session
            assert session is not None
            assert session.in_flight == 5 and session.received == 5
            journal.gate.set()
            smsc.wait_event(lambda e: e["event"] == "burst_done", timeout=20)
            assert store.journal.count() == 60
        finally:
            journal.gate.set()
            stop(bind, committer)


def test_transceiver_submit_returns_the_smsc_message_id(store: Store) -> None:
    with Smsc() as smsc:
        bind, committer = run_bind(smsc, store.journal, bind="transceiver")
        try:
            future = bind.submit(source_addr="22222", destination_addr="4915112345678",
                                 dest_addr_ton=1, short_message=b"STATUS?", data_coding=3,
                                 registered_delivery=1)
            result = future.result(10)
            event = smsc.wait_event(lambda e: e["event"] == "submit_sm")
            assert result.message_id == event["message_id"]
            assert event["fields"]["destination_addr"] == "4915112345678"
            assert event["text"] == "STATUS?"
        finally:
            stop(bind, committer)


def test_a_receiver_bind_refuses_to_send(store: Store) -> None:
    with Smsc() as smsc:
        bind, committer = run_bind(smsc, store.journal)
        try:
            with pytest.raises(SessionError, match="receiver"):
                bind.submit(destination_addr="4915112345678", short_message=b"no")
        finally:
            stop(bind, committer)


def test_smsc_unbind_is_answered_and_the_bind_comes_back(store: Store,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    with Smsc() as smsc:
        bind, committer = run_bind(smsc, store.journal)
        try:
            smsc.command(cmd="unbind")
            wait_until(lambda: smsc.count("bind") >= 2 and bind.bound.is_set(), timeout=10,
                       what="a new bind after the SMSC's unbind")
            assert bind.reconnects == 1 and "the SMSC unbound" in caplog.text
            smsc.deliver("back", data_coding=3, short_message=b"after unbind")
            assert smsc.wait_responses(["back"])["back"]["status"] == 0
        finally:
            stop(bind, committer)


def test_clean_stop_unbinds(store: Store) -> None:
    with Smsc() as smsc:
        bind, committer = run_bind(smsc, store.journal)
        stop(bind, committer)
        smsc.wait_event(lambda e: e["event"] == "unbind")
        assert bind.state == "stopped"


def test_reconnect_backoff_doubles_up_to_its_cap(store: Store,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="modemd.sources.smpp.bind")
    committer = GroupCommitter(store.journal)
    committer.start()
    bind = SmppBind(SessionSettings(name="agg", host="127.0.0.1", port=free_port(),
                                    system_id="modemd", password="secret"),
                    committer, reconnect_min=0.1, reconnect_max=0.4)
    bind.start()
    try:
        wait_until(lambda: bind.reconnects >= 6, timeout=10, what="six failed connects")
    finally:
        stop(bind, committer)
    delays = [float(d) for d in re.findall(r"reconnecting in ([\d.]+) s", caplog.text)]
    assert delays[:5] == [0.1, 0.2, 0.4, 0.4, 0.4]
    assert "cannot connect" in (bind.last_error or "")

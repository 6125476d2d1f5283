"""Fault campaign, bad input: poison rows and reused multipart references (issue 11).

Same counting as tests/test_campaign.py (helpers in tests/campaign.py); the rows land in the
results file that ``scripts/campaign`` renders as docs/reliability.md.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modemd.daemon import Daemon
from modemd.simulator import SimulatedModem
from modemd.sms import SmsDeliver, assemble, decode_pdu
from modemd.sms.encode import encode_deliver, encode_deliver_parts
from modemd.store.journal import raw_id_for, set_id_for
from tests.campaign import (  # fixtures: see the next import  # noqa: F401  (fixtures used by name)
    DEADLETTER_TOPIC,
    Injected,
    PersistentBroker,
    SmsLog,
    broker,
    campaign_rng,
    conclude,
    sim,
    smslog,
    tally,
    wait,
)
from tests.helpers import load, unique_pdus, write_config

pytestmark = [pytest.mark.campaign, pytest.mark.integration]

SENDER = "+491519990000"
SCTS = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
RULES = """
[[parser]]
name = "runaway"
format = "kv"
device_field = "ID"
[parser.match]
text = "^(a|aa)+$"
[parser.fields.T]
name = "t"
type = "float"
"""


def run_daemon(tmp_path: Path, sim: SimulatedModem, broker: PersistentBroker, *,
               extra: str = "") -> Daemon:
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                       modems=[{"name": "m1", "port": sim.port}],
                       mqtt={"host": "127.0.0.1", "port": broker.port, "keepalive": 5},
                       extra=extra)
    daemon = Daemon(load(cfg))
    daemon.start()
    return daemon


def odd_ucs2_set(reference: int, second: int) -> list[bytes]:
    """Two UCS-2 parts, the first with an odd number of text octets (the issue-11 PDU)."""
    scts = SCTS + timedelta(seconds=second)
    parts = encode_deliver_parts(sender=SENDER, text="Ж" * 70 + f" {second}", scts=scts,
                                 reference=reference)
    assert len(parts) == 2
    first = parts[0]
    udl_at = first.index(bytes([5, 0, 3, reference, 2, 1])) - 1
    first = first[:udl_at] + bytes([first[udl_at] - 1]) + first[udl_at + 1:-1]
    return [first, parts[1]]


def add_lenient_set(injected: Injected, parts: list[bytes]) -> None:
    """Injected.add_multipart for a set that decodes only leniently (what modemd publishes)."""
    messages = [decode_pdu(pdu, strict=False) for pdu in parts]
    assert all(isinstance(m, SmsDeliver) for m in messages)
    raw_ids = [raw_id_for("pdu", pdu) for pdu in parts]
    msg_id = set_id_for(raw_ids)
    injected.messages[msg_id] = (SENDER, assemble(messages).text)  # type: ignore[arg-type]
    injected.parts[msg_id] = set(raw_ids)


def expected_dead_letters(log: SmsLog, outcome_problems: list[str]) -> tuple[list[str], int]:
    """The payload dead letters this fault expects (a regex over its budget; no rule for the
    plain texts, which are published as SMS all the same) out of the problem list."""
    budget = [a for a in log.on(DEADLETTER_TOPIC) if "time budget" in str(a.doc.get("reason"))]
    rest = [p for p in outcome_problems if not (p.startswith("dead letter:") and (
        "time budget" in p or "no parser rule matched" in p))]
    return rest, len(budget)


def test_poison_rows_among_good_ones(tmp_path: Path, sim: SimulatedModem,
                                     broker: PersistentBroker, smslog: SmsLog) -> None:
    """Good single SMS with poison mixed in: odd-length UCS-2 sets (assemble raised and the
    row was retried for ever) and texts that send a user regex into runaway backtracking."""
    started = time.monotonic()
    rng = campaign_rng("poison")
    injected = Injected()
    daemon = run_daemon(tmp_path, sim, broker, extra=RULES)
    odd_sets = runaway = 0
    try:
        wait(daemon.drivers[0].ready.is_set, 15)
        for n, pdu in enumerate(unique_pdus(40, sender=SENDER, text="good {i}")):
            roll = rng.random()
            if roll < 0.15:
                parts = odd_ucs2_set(reference=n + 1, second=n)
                for part in parts:
                    sim.deliver(part)
                add_lenient_set(injected, parts)
                odd_sets += 1
            elif roll < 0.3:
                bad = encode_deliver(sender=SENDER, text="a" * 100 + "!",
                                     scts=SCTS + timedelta(minutes=5, seconds=n))
                sim.deliver(bad)
                injected.add([bad])
                runaway += 1
            sim.deliver(pdu)
            injected.add([pdu])
        smslog.wait_ids(injected.ids, timeout=60)
        wait(lambda: len([a for a in smslog.on(DEADLETTER_TOPIC)]) >= runaway, 10)
        alive = daemon.healthy()
    finally:
        daemon.stop()
    outcome = tally("poison rows among good ones", trials=odd_sets + runaway,
                    injected=injected, log=smslog, sims=[sim],
                    state_dirs=[tmp_path / "state"], started=started,
                    notes=f"40 good SMS with {odd_sets} odd-length UCS-2 sets and {runaway} "
                          "texts a rule's regex backtracks on without bound mixed in")
    outcome.problems, budget_letters = expected_dead_letters(smslog, outcome.problems)
    outcome.notes += f"; {budget_letters} dead letters for the regex time budget"
    conclude(outcome, (alive, "a daemon thread died or stalled"),
             (budget_letters == runaway,
              f"{budget_letters} of {runaway} regex runaways dead-lettered"))


def test_reused_multipart_references(tmp_path: Path, sim: SimulatedModem,
                                     broker: PersistentBroker, smslog: SmsLog) -> None:
    """A device that reboots numbers its multipart references from the same value again: pairs
    of 3-part messages under one reference, their parts interleaved."""
    started = time.monotonic()
    rng = campaign_rng("reuse")
    injected = Injected()
    daemon = run_daemon(tmp_path, sim, broker)
    pairs = 8
    try:
        wait(daemon.drivers[0].ready.is_set, 15)
        for n in range(pairs):
            reference = rng.randint(0, 255)
            a, b = (encode_deliver_parts(
                sender=SENDER, text=f"report {n}{tag}: " + "0123456789" * 40,
                scts=SCTS + timedelta(hours=n, minutes=15 * k), reference=reference)
                for k, tag in enumerate("ab"))
            order = [*a, *b]
            rng.shuffle(order)
            for pdu in order:
                sim.deliver(pdu)
            injected.add_multipart(a)
            injected.add_multipart(b)
        smslog.wait_ids(injected.ids, timeout=60)
        alive = daemon.healthy()
    finally:
        daemon.stop()
    outcome = tally("reused multipart references", trials=pairs, injected=injected,
                    log=smslog, sims=[sim], state_dirs=[tmp_path / "state"], started=started,
                    notes=f"{pairs} pairs of 3-part SMS, each pair under one reference, sent "
                          "15 min apart, their 6 parts shuffled")
    conclude(outcome, (alive, "a daemon thread died or stalled"))

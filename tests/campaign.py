"""Fault-injection helpers for the reliability campaign (tests/test_campaign.py).

What every fault test shares: a broker whose subscribers survive its restarts, a subscriber
that counts every copy of every message, the bookkeeping of what was injected, and the row
each fault writes to the results file that ``scripts/campaign`` turns into docs/reliability.md.

The counting rules, the same for every fault:

* injected: messages that reached the simulated modem (a delivery the network could not
  store because the SIM was full counts once it finally reaches the SIM);
* journalled: injected messages whose raw PDU is in the journal at the end;
* published: injected messages that arrived at least once at a real subscriber;
* lost: injected but never published;
* duplicated: messages that arrived more than once (each copy must carry the same id, sender
  and text as the injected message: a duplicate under another id could not be de-duplicated).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import random
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from modemd.simulator import SimulatedModem
from modemd.sms import SmsDeliver, decode_pdu
from modemd.store import STORE_FILENAME
from modemd.store.journal import raw_id_for
from tests.helpers import on_sim
from tests.mosquitto import Mosquitto

RESULTS_ENV = "MODEMD_CAMPAIGN_RESULTS"
GATEWAY = "gw1"
SMS_TOPIC = f"modemd/{GATEWAY}/sms"
DEADLETTER_TOPIC = f"modemd/{GATEWAY}/deadletter"


def results_path() -> Path:
    default = Path(tempfile.gettempdir()) / "modemd-campaign-results.json"
    return Path(os.environ.get(RESULTS_ENV) or default)


SEED = os.environ.get("MODEMD_CAMPAIGN_SEED") or str(time.time_ns() % 10**9)


def campaign_rng(fault: str) -> random.Random:
    """A random source per fault; MODEMD_CAMPAIGN_SEED=<SEED> repeats a run's choices."""
    return random.Random(f"{SEED}:{fault}")


# --- the results file ----------------------------------------------------------------------


@dataclass
class Outcome:
    fault: str
    trials: int
    injected: int
    journalled: int
    published: int
    lost: int
    duplicated: int  # messages received more than once
    copies: int  # every extra copy (received - published)
    seconds: float
    notes: str = ""
    problems: list[str] = field(default_factory=list)
    seed: str = SEED


def record(outcome: Outcome) -> None:
    """Add (or replace) this fault's row in the results file (JSON, keyed by fault)."""
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read()
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            data = {}
        rows = data.setdefault("rows", {})
        rows[outcome.fault] = asdict(outcome)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


# --- a broker that keeps its subscribers' sessions across restarts ------------------------------


class PersistentBroker(Mosquitto):
    """mosquitto with persistence on: a subscriber's session (subscriptions and the QoS 1
    messages queued while it was away) survives :meth:`stop` / :meth:`start`, so the counting
    subscriber misses nothing that the daemon had published and got a PUBACK for."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.conf.write_text("\n".join([
            f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1",
            "allow_anonymous true", "persistence true",
            f"persistence_location {workdir}/", "autosave_interval 1",
            "max_queued_messages 100000", "max_inflight_messages 0",
        ]) + "\n")


# --- the counting subscriber ---------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    topic: str
    doc: dict[str, Any]
    at: float  # time.monotonic()


class SmsLog:
    """A QoS 1 subscriber with a persistent session that keeps every copy it receives."""

    def __init__(self, port: int, *, topics: Sequence[str] = (SMS_TOPIC, DEADLETTER_TOPIC),
                 client_id: str | None = None) -> None:
        self.topics = list(topics)
        self.arrivals: list[Arrival] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"campaign-{time.monotonic_ns()}",
                                  clean_session=False, protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise RuntimeError("the campaign subscriber could not subscribe")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            doc = {"unparseable": msg.payload.decode("utf-8", "replace")}
        with self._cond:
            self.arrivals.append(Arrival(msg.topic, doc, time.monotonic()))
            self._cond.notify_all()

    def on(self, topic: str) -> list[Arrival]:
        with self._cond:
            return [a for a in self.arrivals if a.topic == topic]

    def ids(self) -> Counter[str]:
        return Counter(str(a.doc.get("id")) for a in self.on(SMS_TOPIC))

    def wait_ids(self, wanted: Iterable[str], timeout: float) -> bool:
        """True once every id in ``wanted`` arrived; False after ``timeout`` (no raise)."""
        wanted = set(wanted)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                seen = {str(a.doc.get("id")) for a in self.arrivals if a.topic == SMS_TOPIC}
                if wanted <= seen:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- what was injected ----------------------------------------------------------------------------


class Injected:
    """Messages that reached the SIM: id -> (sender, text), in order."""

    def __init__(self) -> None:
        self.messages: dict[str, tuple[str, str | None]] = {}

    def add(self, pdus: Iterable[bytes]) -> None:
        for pdu in pdus:
            message = decode_pdu(pdu, with_smsc=True)
            assert isinstance(message, SmsDeliver)
            self.messages[raw_id_for("pdu", pdu)] = (message.sender.number, message.text)

    @property
    def ids(self) -> set[str]:
        return set(self.messages)

    def __len__(self) -> int:
        return len(self.messages)


def journal_ids(state_dir: Path) -> set[str]:
    """raw_ids in the journal, read without writing (works on a full disk, too)."""
    path = state_dir / STORE_FILENAME
    if not path.exists():
        return set()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute("SELECT raw_id FROM journal")}
    except sqlite3.OperationalError:
        return set()
    finally:
        conn.close()


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of a store file as it is on disk (after WAL recovery)."""
    conn = sqlite3.connect(path, timeout=10)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(str(r[0]) for r in rows)
    finally:
        conn.close()


def tally(fault: str, *, trials: int, injected: Injected, log: SmsLog, state_dirs:
          Sequence[Path], started: float, notes: str = "") -> Outcome:
    """Count, check that every copy is a faithful one, and write the fault's row."""
    counts = log.ids()
    journalled: set[str] = set()
    for state_dir in state_dirs:
        journalled |= journal_ids(state_dir)
    problems: list[str] = []
    for arrival in log.on(SMS_TOPIC):
        doc = arrival.doc
        msg_id = str(doc.get("id"))
        if msg_id not in injected.messages:
            problems.append(f"published under an id nobody injected: {doc}")
            continue
        sender, text = injected.messages[msg_id]
        if doc.get("sender") != sender or doc.get("text") != text:
            problems.append(f"copy of {msg_id} differs: {doc.get('sender')} {doc.get('text')!r}"
                            f" != {sender} {text!r}")
    problems += [f"dead letter: {a.doc}" for a in log.on(DEADLETTER_TOPIC)]
    published = {i for i in counts if i in injected.messages}
    outcome = Outcome(
        fault=fault, trials=trials, injected=len(injected),
        journalled=len(injected.ids & journalled), published=len(published),
        lost=len(injected.ids - published),
        duplicated=sum(1 for i in published if counts[i] > 1),
        copies=sum(counts[i] - 1 for i in published),
        seconds=round(time.monotonic() - started, 1), notes=notes, problems=problems[:10],
    )
    record(outcome)
    return outcome


def check(outcome: Outcome) -> None:
    """The campaign's invariant for one fault."""
    assert not outcome.problems, outcome.problems
    assert outcome.injected > 0, outcome
    assert outcome.lost == 0, f"{outcome.lost} message(s) lost: {outcome}"
    assert outcome.journalled == outcome.injected, outcome
    assert outcome.published == outcome.injected, outcome


# --- the modem side -----------------------------------------------------------------------------


def wait_for_command(sim: SimulatedModem, prefix: str, *, after: int, timeout: float) -> bool:
    """True once the modem received a command starting with ``prefix`` after log index
    ``after`` (e.g. the daemon's first AT+CSQ: init and the start-up sweep are done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.upper().startswith(prefix) for c in sim.command_log[after:]):
            return True
        time.sleep(0.01)
    return False


def left_on_sim(sim: SimulatedModem) -> set[str]:
    return {raw_id_for("pdu", pdu) for pdu in on_sim(sim)}


NOISE = bytes(range(0x80, 0x100)) + b"\x00\x01\x07\x1b\x7f\r\n\t ~#*"
FRAGMENTS = (b'+CMTI: "SM",\x00', b"\x1b[0m", b"+CMT", b'+CMTI: "', b"\xc3\x28", b"\r\r\n")


def noise(rng: random.Random, size: int) -> bytes:
    """Line noise: binary junk and broken URC fragments (never a whole final result code)."""
    out = bytearray()
    while len(out) < size:
        if rng.random() < 0.15:
            out += rng.choice(FRAGMENTS)
        else:
            out.append(rng.choice(NOISE))
    return bytes(out)


# --- the state directory ----------------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (needs root; the sandbox runs the tests as root)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                   check=True, capture_output=True)
    try:
        yield path
    finally:
        for _ in range(50):
            done = subprocess.run(["umount", str(path)], capture_output=True)
            if done.returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_filesystem(directory: Path) -> Path:
    """Write a filler file until the filesystem under ``directory`` is full; its path."""
    filler = directory / "filler"
    with open(filler, "wb") as handle:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            block = b"\0" * chunk
            while True:
                try:
                    handle.write(block)
                    handle.flush()
                except OSError:
                    break
    return filler


def free_bytes(directory: Path) -> int:
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def wait(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> bool:
    """wait_until without the raise: the fault tests record their row before they fail."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)

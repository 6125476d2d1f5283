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
import pytest

from modemd.simulator import SimulatedModem
from modemd.sms import SmsDeliver, assemble, decode_pdu
from modemd.store import STORE_FILENAME
from modemd.store.journal import raw_id_for, set_id_for
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


# --- the results file ----------------------------------------------------------------------------


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
    on_sim: int = 0  # lost ones still on the SIM at the end (not destroyed, not delivered)
    notes: str = ""
    problems: list[str] = field(default_factory=list)
    seed: str = SEED
    verdict: str = "?"


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


# --- a broker that keeps its subscribers' sessions across restarts -------------------------------


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
        self.gave_up = False
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
        """True once every id in ``wanted`` arrived; False after ``timeout`` (no raise).

        After one wait has failed, later ones wait 3 s at most: the fault test goes on to
        count and fail without spending the campaign's time budget on more timeouts."""
        wanted = set(wanted)
        if self.gave_up:
            timeout = min(timeout, 3.0)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                seen = {str(a.doc.get("id")) for a in self.arrivals if a.topic == SMS_TOPIC}
                if wanted <= seen:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    self.gave_up = True
                    return False
                self._cond.wait(min(left, 0.5))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- what was injected ---------------------------------------------------------------------------


class Injected:
    """Messages that reached the SIM: id -> (sender, text), and the raw ids of their parts."""

    def __init__(self) -> None:
        self.messages: dict[str, tuple[str, str | None]] = {}
        self.parts: dict[str, set[str]] = {}

    def add(self, pdus: Iterable[bytes]) -> None:
        """Single-part messages, each its own message."""
        for pdu in pdus:
            message = decode_pdu(pdu, with_smsc=True)
            assert isinstance(message, SmsDeliver)
            raw_id = raw_id_for("pdu", pdu)
            self.messages[raw_id] = (message.sender.number, message.text)
            self.parts[raw_id] = {raw_id}

    def add_multipart(self, pdus: Sequence[bytes]) -> str:
        """The parts of one concatenated message (all on the SIM now); its id."""
        parts: list[tuple[int, bytes, SmsDeliver]] = []
        for pdu in pdus:
            message = decode_pdu(pdu, with_smsc=True)
            assert isinstance(message, SmsDeliver) and message.concat is not None
            parts.append((message.concat.sequence, pdu, message))
        parts.sort(key=lambda part: part[0])
        raw_ids = [raw_id_for("pdu", pdu) for _, pdu, _ in parts]
        msg_id = set_id_for(raw_ids)
        joined = assemble([message for _, _, message in parts])
        self.messages[msg_id] = (parts[0][2].sender.number, joined.text)
        self.parts[msg_id] = set(raw_ids)
        return msg_id

    def journalled(self, raw_ids: set[str]) -> int:
        """How many messages have every part in ``raw_ids``."""
        return sum(1 for parts in self.parts.values() if parts <= raw_ids)

    @property
    def ids(self) -> set[str]:
        return set(self.messages)

    def __len__(self) -> int:
        return len(self.messages)


def multipart_pdus(number: int, *, parts: int = 3, sender: str = "+491519990000") -> list[bytes]:
    """A concatenated SMS of ``parts`` parts (GSM 7 bit, 8-bit reference), distinct per
    ``number``, in sequence order."""
    from datetime import UTC, datetime, timedelta

    from modemd.sms import encode_deliver_parts

    body = f"long message {number}: " + "0123456789" * 50
    text = body[: 153 * (parts - 1) + 40]
    reference = number % 255 + 1
    return encode_deliver_parts(sender=sender, text=text, reference=reference,
                                scts=datetime(2026, 11, 25, 12, tzinfo=UTC) + timedelta(
                                    seconds=number), smsc="+491710760000")


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
          Sequence[Path], started: float, notes: str = "", problems: Sequence[str] = (),
          sims: Sequence[SimulatedModem] = ()) -> Outcome:
    """Count, check that every copy is a faithful one, and write the fault's row."""
    counts = log.ids()
    journalled: set[str] = set()
    for state_dir in state_dirs:
        journalled |= journal_ids(state_dir)
    problems = list(problems)
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
        journalled=injected.journalled(journalled), published=len(published),
        lost=len(injected.ids - published),
        duplicated=sum(1 for i in published if counts[i] > 1),
        copies=sum(counts[i] - 1 for i in published),
        seconds=round(time.monotonic() - started, 1), notes=notes, problems=problems[:10],
    )
    still_there: set[str] = set()
    for sim in sims:
        still_there |= left_on_sim(sim)
    outcome.on_sim = sum(1 for msg_id in injected.ids - published
                         if injected.parts[msg_id] & still_there)
    return outcome


def conclude(outcome: Outcome, *checks: tuple[bool, str]) -> None:
    """Judge one fault: the campaign's invariant (lost == 0, every copy faithful, all
    journalled) and the fault's own ``checks`` ((condition, what failed)); write the row with
    the verdict, then fail the test if anything did not hold."""
    failures = list(outcome.problems)
    if outcome.injected == 0:
        failures.append("nothing was injected")
    if outcome.lost:
        failures.append(f"{outcome.lost} message(s) never published ({outcome.on_sim} of them "
                        "still on the SIM)")
    if outcome.journalled != outcome.injected:
        failures.append(f"only {outcome.journalled} of {outcome.injected} journalled")
    failures += [message for ok, message in checks if not ok]
    outcome.verdict = "FAIL" if failures else "pass"
    outcome.problems = failures
    record(outcome)
    assert not failures, f"{outcome.fault} (seed {outcome.seed}): " + "; ".join(failures)


# --- the modem side ------------------------------------------------------------------------------


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


# --- the state directory -------------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (needs root; the sandbox runs the tests as root)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the disk-full fault needs root to mount a small tmpfs on {path}: "
                           f"{done.stderr.strip()}")
    try:
        yield path
    finally:
        for _ in range(50):
            done = subprocess.run(["umount", str(path)], check=False, capture_output=True)
            if done.returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill_filesystem(directory: Path) -> Path:
    """Write a filler file until the filesystem under ``directory`` is full; its path."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            block = b"\0" * chunk
            while True:
                try:
                    os.write(fd, block)
                except OSError:
                    break
    finally:
        os.close(fd)
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


# --- watching the store file's writes ------------------------------------------------------------

IN_MODIFY = 0x00000002


class WriteWatch:
    """inotify IN_MODIFY on one file: :meth:`wait` returns right after the next write(2) to it,
    so a SIGKILL sent then lands inside the SQLite commit that is writing (before its fsync)."""

    def __init__(self, path: Path) -> None:
        import ctypes

        self._libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self._libc.inotify_add_watch(self.fd, os.fsencode(path), IN_MODIFY) < 0:
            errno = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(errno, f"inotify_add_watch {path}")

    def wait(self, timeout: float) -> bool:
        import select

        readable, _, _ = select.select([self.fd], [], [], timeout)
        if not readable:
            return False
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 4096)
        return True

    def close(self) -> None:
        os.close(self.fd)


# --- fixtures the campaign test modules import (their broker keeps retained state across
# restarts, their simulated modem has a small SIM) ------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PersistentBroker]:
    server = PersistentBroker(tmp_path / "mosquitto")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smslog(broker: PersistentBroker) -> Iterator[SmsLog]:
    log = SmsLog(broker.port)
    try:
        yield log
    finally:
        log.close()


@pytest.fixture
def sim() -> Iterator[SimulatedModem]:
    modem = SimulatedModem(profile="generic", capacity=100)
    modem.start()
    try:
        yield modem
    finally:
        modem.stop()

"""One modem, supervised: open, initialise, receive, sweep, poll health, recover.

The receive rule that the rest of modemd relies on: a message is read, committed to the
journal (fsync), and only then deleted from the modem (+CMTI/sweep) or acknowledged (+CMT,
with AT+CSMS=1 so the modem really waits for the acknowledgement). Nothing depends on one
notification arriving: a CMGL sweep runs at start, after every reconnect, after a storage-full
warning or a modem restart (``RDY``) and every ``sweep_interval`` seconds.

Every command declares its answer (:mod:`modemd.at.answers`): a line that does not fit is
unsolicited and never read as the answer. Each listing entry is read on its own; one that
cannot be read is journalled as an ``invalid`` record (dead-lettered by the pipeline), so it
never stops the rest.

The worker's phases are :class:`~modemd.modem.state.Phase`; initialisation and recovery are
tables of steps (``INIT_STEPS``, ``RECOVERY_LADDER``). Recovery on a command timeout: AT ping
-> re-init -> the profile's reset command -> close and reopen the port with capped backoff.
A vanished port is waited for (the same path, or the same IMEI found on another port) and the
modem is swept when it is back.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from modemd.at import responses as at
from modemd.at.answers import IMEI, IMSI, NOTHING, Answer, prefixed
from modemd.at.events import Garbage, ResultKind, Urc
from modemd.backoff import Backoff
from modemd.errors import (
    ATError,
    CommandFailed,
    CommandTimeout,
    ModemdError,
    StoreError,
    TransportError,
)
from modemd.modem import queries
from modemd.modem.identity import read_iccid, read_imei
from modemd.modem.profiles import (
    ALL_LINE_PREFIX_URCS,
    ALL_URC_PREFIXES,
    GENERIC,
    ModemProfile,
    detect_profile,
    meaning_of,
    pin_retry_queries,
    profile_named,
)
from modemd.modem.reading import PDU_MODE, TEXT_MODE, EntryRecord, ReadMode
from modemd.modem.session import ATSession, Response
from modemd.modem.state import ModemIdentity, ModemState, Phase
from modemd.store.journal import CommitResult, RawWriter, RecordMode
from modemd.transport import SerialTransport, Transport

if TYPE_CHECKING:
    from modemd.config import ModemConfig

log = logging.getLogger(__name__)

# Every vendor URC any profile knows: the parser must recognise them before the profile is
# known (a ^RSSI can arrive in the middle of the very first command).


# Put on the URC queue to end the worker's idle wait at once (a send was queued).
_WAKE = Urc("")
HOOK_POLL = 0.25  # s: how often an idle worker runs hooks that cannot say when they are due
# Messages of a burst journalled before one fsync covers them all and they are deleted: a
# few, so a small SIM does not fill with messages that are already taken.
MAX_UNSYNCED = 4
MAX_IDLE_WAIT = 30.0  # s: the longest idle wait (the stall limit is at least 120 s)

# Broadcast and status-report storages hold no SMS-DELIVER for us to sweep.
_NOT_MESSAGE_STORAGES = frozenset({"BM", "SR"})
_VALID_PIN = re.compile(r"\d{4,8}", re.ASCII)

#: +CME ERROR codes to AT+CPIN? (3GPP TS 27.007 9.2.1) that mean the SIM cannot be used;
#: 14 (SIM busy) is asked again. The verbose forms (AT+CMEE=2) are matched too.
SIM_ERRORS: dict[int, str] = {
    10: "no SIM inserted",
    13: "SIM failure",
    15: "wrong SIM",
}
_SIM_ERROR_TEXT: dict[str, int] = {
    "sim not inserted": 10, "sim failure": 13, "sim busy": 14, "sim wrong": 15,
}
_SIM_BUSY = 14
#: SIM states in which messages are received: PIN2/PUK2 lock only the fixed dialling numbers.
_RECEIVING_SIM_STATES = frozenset({"READY", "SIM PIN2", "SIM PUK2"})


class SimNotReady(ModemdError):
    """The SIM needs a PIN/PUK that the config does not give, or is missing."""


class WrongModem(ModemdError):
    """The port answers with another modem's IMEI/ICCID than the config names."""


class _Stop(Exception):
    """Internal: the driver was asked to stop."""


@dataclass(frozen=True, slots=True)
class RecoveryStep:
    """One rung of the recovery ladder: the method that tries it, and what it counts as."""

    name: str
    method: str


#: Tried in order after a command timeout; the first that works ends the recovery.
RECOVERY_LADDER: tuple[RecoveryStep, ...] = (
    RecoveryStep("ping", "_recover_by_ping"),
    RecoveryStep("reinit", "_recover_by_reinit"),
    RecoveryStep("reset", "_recover_by_reset"),
)

#: The initialisation, in order (each a method of ModemDriver).
INIT_STEPS: tuple[str, ...] = (
    # The modem is identified before the SIM is read: its profile says how slow SIM reads may
    # be and how to read the PIN attempts left.
    "_sync", "_echo_off", "_verbose_errors", "_identify_modem", "_unlock_sim", "_identify_sim",
    "_vendor_init", "_choose_mode", "_choose_storage", "_choose_notifications",
)


class ModemDriver:
    """Runs one configured modem on its own worker thread.

    Other code extends the worker loop with :meth:`add_worker_hook`: a callable run on the
    worker thread once per loop turn (about every 0.25 s, and at once after a URC), with the
    driver, between the URC handling and the periodic sweep (the sender uses it to submit
    queued messages). A hook may issue commands with :meth:`command`; its CommandTimeout
    starts the recovery ladder like any other.
    """

    def __init__(
        self,
        config: ModemConfig,
        *,
        journal: RawWriter,
        on_committed: Callable[[], None] = lambda: None,
        on_state: Callable[[ModemState], None] = lambda state: None,
        sweep_interval: float = 60.0,
        health_interval: float = 60.0,
        port_resolver: Callable[[ModemConfig], str | None] | None = None,
        max_backoff: float = 30.0,
        transport_factory: Callable[[str], Transport] | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.on_committed = on_committed
        self.on_state = on_state
        self.sweep_interval = sweep_interval or 3600.0
        self.health_interval = health_interval or 3600.0
        self.port_resolver = port_resolver
        self.timeout = config.command_timeout
        self.state = ModemState(name=config.name, port=config.port)
        self.profile: ModemProfile = GENERIC
        self._forced_profile = None if config.profile == "auto" else profile_named(config.profile)
        if self._forced_profile is not None:
            self.profile = self._forced_profile
        self._transport_factory = transport_factory or self._serial_transport
        self._urcs: queue.Queue[Urc] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: ATSession | None = None
        self._max_backoff = max_backoff
        self._backoff = Backoff(base=0.5, cap=max_backoff)
        self._reader: ReadMode = PDU_MODE
        self._read_storage: str | None = None
        # journalled, not yet durable: the latest commit and the slots to delete after its fsync
        self._unsynced: CommitResult | None = None
        self._to_delete: list[tuple[str, int]] = []
        self._refused_pin: str | None = None
        self._pin_timed_out = False
        self._wrong_modem = False
        self._primary_storage: str | None = None
        self._sweep_storages: tuple[str, ...] = ()
        self._store_cnmi: str | None = None  # the CNMI setting that stores (for stop)
        self._degraded: str | None = None  # what works, but not as configured
        self._sweep_due = 0.0
        self._health_due = 0.0
        self._beat = time.monotonic()  # the worker's last sign of life (or its idle wait's end)
        self.stall_after: float | None = None  # seconds without progress that mean stuck
        self._first_sync = False  # the sync after opening the port waits for a slow boot
        self._hooks: list[Callable[[ModemDriver], None]] = []
        self._hook_due: list[Callable[[], float] | None] = []
        # set by sending: status reports stored in SR are swept like messages
        self.sweeps_status_reports = False
        self.ready = threading.Event()  # set after the first successful init
        self.garbage_lines = 0  # lines that fit no answer and no known URC
        self.unknown_urcs = 0  # URC names the parser knows but no profile explains
        self.invalid_entries = 0  # listing entries that could not be read
        self.events: dict[str, int] = {}  # vendor events by meaning (call, restarted, ...)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"modem-{self.config.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker; it leaves the modem storing new messages (CNMI store mode)."""
        self._stop.set()
        self.wake()  # an idle worker waits on its port
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(min(timeout, max(2.0, self.timeout / 2)))
        session = self._session
        if session is not None:
            session.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # When the next sweep and health poll are due (monotonic). Another thread moving them
    # wakes the worker so that its idle wait is planned again.
    @property
    def _next_sweep(self) -> float:
        return self._sweep_due

    @_next_sweep.setter
    def _next_sweep(self, due: float) -> None:
        self._sweep_due = due
        self._replan()

    @property
    def _next_health(self) -> float:
        return self._health_due

    @_next_health.setter
    def _next_health(self, due: float) -> None:
        self._health_due = due
        self._replan()

    def _replan(self) -> None:
        if self._thread is not None and threading.current_thread() is not self._thread:
            self.wake()

    def wake(self) -> None:
        """Look for send work now rather than after the idle wait."""
        self._urcs.put(_WAKE)
        session = self._session
        if session is not None and threading.current_thread() is not self._thread:
            session.interrupt()  # the idle worker reads its port (after the put: none lost)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def add_worker_hook(self, hook: Callable[[ModemDriver], None], *,
                        next_due: Callable[[], float] | None = None) -> None:
        """Run ``hook(driver)`` once per worker loop turn (see the class docstring).

        ``next_due()`` says when (monotonic) the hook next needs a turn unasked; without it
        the idle worker turns every HOOK_POLL seconds. :meth:`wake` gives a turn at once.
        """
        self._hooks.append(hook)
        self._hook_due.append(next_due)
        self._replan()  # an idle worker planned its wait without this hook

    def receive_work_waiting(self) -> bool:
        """A URC waits to be handled (hooks that can wait, such as sending, let it go first)."""
        session = self._session
        if self._urcs.empty() and session is not None \
                and threading.current_thread() is self._thread:
            session.pump(0.0)  # what already came but is not read yet
        return not self._urcs.empty()

    def stalled(self, now: float | None = None) -> str | None:
        """Why the worker looks stuck (for the watchdog), or None while it makes progress.

        Bytes still arriving (a long listing on a slow line) count as progress.
        """
        if self._thread is None or self._stop.is_set():
            return None
        if not self._thread.is_alive():
            return f"modem {self.config.name}: worker thread ended"
        now = time.monotonic() if now is None else now
        limit = self.stall_after or max(120.0, 4 * self.timeout + self._max_backoff)
        session = self._session
        if session is not None and now - session.last_read_at < limit:
            return None if now - self._beat < 10 * limit else (
                f"modem {self.config.name}: one command for {now - self._beat:.0f}s")
        idle = now - self._beat
        if idle > limit:
            return (f"modem {self.config.name}: worker stuck: no progress for {idle:.0f}s "
                    f"({self.state.phase.value})")
        return None

    # --- the supervisor loop -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._beat = time.monotonic()
            try:
                self._set_phase(Phase.CONNECTING)
                self._connect()
                self._backoff.reset()
                self._set_phase(Phase.SERVING)
                self._serve()
            except _Stop:
                break
            except TransportError as exc:
                self._went_offline(f"port: {exc}", step="reopen")
            except CommandTimeout as exc:
                self._went_offline(f"modem not answering: {exc}", step="reopen")
            except SimNotReady as exc:
                self._went_offline(str(exc), step="sim")
            except WrongModem as exc:
                self._went_offline(str(exc), step="rebind")
            except StoreError as exc:
                # Disk full or a failing SD card: nothing is read (and so nothing deleted)
                # until the journal can commit again.
                self._went_offline(f"journal: {exc}", step="store")
            except ModemdError as exc:
                self._went_offline(f"init failed: {exc}", step="reinit")
            except Exception as exc:
                # A bug must not end reception for good: log it, back off, reconnect.
                log.exception("modem %s: unexpected error", self.config.name)
                self._went_offline(f"internal error: {type(exc).__name__}", step="reopen")
            finally:
                if self._stop.is_set():
                    self._flush_on_stop()
                    self._leave_store_mode()
                self._close_session()
            if self._stop.is_set():
                break
            self._beat = time.monotonic()
            self._stop.wait(self._backoff.next_delay())
        self._close_session()
        self.state.online = False
        self._set_phase(Phase.STOPPED)

    def _set_phase(self, phase: Phase) -> None:
        self.state.phase = phase
        self._beat = time.monotonic()

    def _went_offline(self, reason: str, *, step: str) -> None:
        log.warning("modem %s: %s", self.config.name, reason)
        self.state.online = False
        self.state.last_error = reason
        self.state.count(step)
        self._set_phase(Phase.OFFLINE)
        self._publish_state()

    def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def _leave_store_mode(self) -> None:
        """On stop: messages arriving while modemd is away must be stored, not pushed."""
        session = self._session
        if session is None or self.state.delivery != "direct" or session.dead.is_set():
            return
        setting = self._store_cnmi or "2,1,0,0,0"
        try:
            session.execute(f"AT+CNMI={setting}", timeout=min(self.timeout, 2.0),
                            answer=NOTHING)
            log.info("modem %s: left in store mode (AT+CNMI=%s)", self.config.name, setting)
        except (ATError, TransportError) as exc:  # stop() may close the port meanwhile
            log.warning("modem %s: could not switch to store mode on stop: %s",
                        self.config.name, exc)

    def _flush_on_stop(self) -> None:
        """On stop: make the messages journalled in a burst cut short durable and delete
        them from the modem, so that the next start does not read them again.

        Guarded like :meth:`_leave_store_mode`: only on a live port, each command bounded by
        the command timeout (at most 2 s). A failure is logged and the slots not yet deleted
        stay on the modem (the next start's sweep takes them again, as duplicates); nothing
        is deleted unless the fsync succeeded.
        """
        latest, slots = self._unsynced, self._to_delete
        self._forget_unsynced()
        session = self._session
        if not slots or session is None or session.dead.is_set():
            return
        timeout = min(self.timeout, 2.0)
        deleted = 0
        try:
            if latest is not None:  # None: durable already, a stop cut their deletes short
                self.journal.make_durable(latest)
            bounded = functools.partial(session.execute, timeout=timeout)
            for storage, index in slots:
                self._select_storage(storage, execute=bounded)
                bounded(f"AT+CMGD={index}", answer=NOTHING)
                deleted += 1
        except (StoreError, ATError, TransportError) as exc:
            log.warning("modem %s: on stop, %d journalled message(s) left on the modem for "
                        "the next start: %s", self.config.name, len(slots) - deleted, exc)
            return
        log.info("modem %s: on stop, %d journalled message(s) made durable and deleted",
                 self.config.name, deleted)

    def _resolve_port(self) -> str:
        port = self.config.port
        looks_like_path = port.startswith("/")
        lost = looks_like_path and (not os.path.exists(port) or self._wrong_modem)
        if lost and self.port_resolver is not None:
            found = self.port_resolver(self.config)
            if found:
                log.info("modem %s: found on %s", self.config.name, found)
                return found
        return port

    def _serial_transport(self, port: str) -> Transport:
        # A device's reads block until bytes arrive (no timer wakes an idle reader); closing
        # the session interrupts them. pyserial URLs (socket://, rfc2217://) cannot be
        # interrupted, so they keep polling.
        return SerialTransport(port, baudrate=self.config.baudrate, rtscts=self.config.rtscts,
                               read_timeout=None if port.startswith("/") else 0.1)

    def _connect(self) -> None:
        port = self._resolve_port()
        self.state.port = port
        transport = self._transport_factory(port)
        transport.open()
        urcs: queue.Queue[Urc] = queue.Queue()
        self._urcs = urcs
        session = ATSession(
            transport,
            on_urc=urcs.put,
            on_garbage=self._on_garbage,
            on_dead=lambda: urcs.put(_WAKE),  # the worker reads: it sees the failure itself
            urc_prefixes=ALL_URC_PREFIXES,
            line_prefix_urcs=ALL_LINE_PREFIX_URCS,
            name=self.config.name,
        )
        self._session = session  # driven: the worker reads its port (no reader thread)
        self._initialise(first=True)
        ident = self.state.identity
        if not self.config.matches(imei=ident.imei, iccid=ident.iccid):
            # Another modem answers on this path (re-enumeration swapped them): never take
            # its messages under this name; look for ours instead.
            self._wrong_modem = True
            raise WrongModem(f"{port} holds IMEI {ident.imei} / ICCID {ident.iccid}, not the "
                             f"configured {self.config.imei or self.config.iccid}")
        self._wrong_modem = False
        self.state.online = True
        self.state.last_error = self._degraded  # said until it changes, e.g. no direct mode
        log.info(
            "modem %s online: %s %s IMEI %s, %s mode, storage %s %s/%s, %s delivery",
            self.config.name, self.state.identity.manufacturer, self.state.identity.model,
            self.state.identity.imei, self.state.mode, self.state.storage,
            self.state.storage_used, self.state.storage_total, self.state.delivery,
        )
        # A boot banner (RDY) that came while initialising is the boot just initialised for.
        self._drop_queued_restarts()
        self.sweep()
        self.poll_health()
        self.ready.set()

    def _on_garbage(self, event: Garbage) -> None:
        self.garbage_lines += 1  # counted while reading; the worker copies it (no dict race)

    # --- commands ------------------------------------------------------------------------------

    def command(
        self, command: str, *, answer: Answer = NOTHING, check: bool = True,
        timeout: float | None = None, progress: bool = False, data: bytes | None = None,
    ) -> Response:
        """Run one command on the worker thread (for worker hooks)."""
        return self._cmd(command, answer=answer, check=check, timeout=timeout,
                         progress=progress, data=data)

    def _cmd(
        self, command: str, *, answer: Answer = NOTHING, check: bool = True,
        timeout: float | None = None, progress: bool = False, data: bytes | None = None,
    ) -> Response:
        if self._stop.is_set():
            raise _Stop
        session = self._session
        if session is None:
            raise TransportError("not connected", port=self.state.port)
        self._beat = time.monotonic()
        return session.execute(
            command, timeout=timeout or self._timeout_for(command), answer=answer,
            check=check, progress=progress, data=data,
        )

    def _timeout_for(self, command: str) -> float:
        """The configured timeout, or longer where the profile knows the modem is slow."""
        upper = command.upper()
        slow = [t for prefix, t in self.profile.command_timeouts if upper.startswith(prefix)]
        return max([self.timeout, *slow])

    def _try(self, command: str, answer: Answer = NOTHING) -> Response | None:
        """A command whose failure is an answer (unsupported), not a problem."""
        try:
            return self._cmd(command, answer=answer)
        except CommandFailed:
            return None

    def _value(self, command: str, answer: Answer) -> str:
        """The first line of a query's answer, its prefix removed."""
        response = self._try(command, answer)
        if response is None:
            return ""
        for line in response.lines:
            text = line.strip()
            for prefix in answer.prefixes:
                if text.startswith(prefix + ":"):
                    return text[len(prefix) + 1 :].strip().strip('"')
            if text:
                return text.strip('"')
        return ""

    # --- init --------------------------------------------------------------------------------

    def _initialise(self, *, first: bool = False) -> None:
        self._forget_unsynced()
        self._set_phase(Phase.INITIALISING)
        self._first_sync = first
        for step in INIT_STEPS:
            getattr(self, step)()
            self._beat = time.monotonic()

    def _sync(self) -> None:
        """Get the modem's attention: a few short ATs (it may be booting or mid-garbage).

        A slow-booting module (u-blox TOBY-L2: ~20 s) is given its profile's ready time.
        """
        patience = self.profile.ready_timeout if self._first_sync else 0.0
        deadline = time.monotonic() + patience
        last: ATError | None = None
        tries = 0
        while tries < 3 or time.monotonic() < deadline:
            tries += 1
            try:
                self._cmd("AT", timeout=min(self.timeout, 2.0))
                return
            except ATError as exc:
                last = exc
        assert last is not None
        raise last

    def _echo_off(self) -> None:
        self._cmd("ATE0")

    def _verbose_errors(self) -> None:
        self._try("AT+CMEE=1")

    def _vendor_init(self) -> None:
        for command in self.profile.init_commands:
            self._try(command)

    def _sim_state(self) -> str:
        """AT+CPIN?'s state; SimNotReady when the SIM is missing, failed or wrong.

        "" when the modem cannot tell (plain ERROR): then reception is simply tried.
        """
        for _ in range(max(1, self.profile.sim_busy_retries + 1)):
            response = self._cmd("AT+CPIN?", answer=prefixed("+CPIN"), check=False)
            if response.final.ok:
                line = response.first("+CPIN")
                return at.parse_cpin(line) if line else ""
            code = response.final.code
            if code is None:
                text = response.final.text.partition(":")[2].strip().casefold()
                code = _SIM_ERROR_TEXT.get(text)
            if code == _SIM_BUSY:
                log.info("modem %s: SIM busy; asking again", self.config.name)
                if self._stop.wait(1.0):
                    raise _Stop
                continue
            if code in SIM_ERRORS:
                self.state.sim = SIM_ERRORS[code]
                raise SimNotReady(f"SIM not usable: {SIM_ERRORS[code]} (+CME ERROR: {code})")
            if code == 11:
                return "SIM PIN"
            if code == 12:
                return "SIM PUK"
            if response.final.kind in (ResultKind.CME_ERROR, ResultKind.CMS_ERROR):
                self.state.sim = f"unknown ({response.final.text})"
                raise SimNotReady(f"SIM state unknown: {response.final.text}")
            return ""
        self.state.sim = "SIM busy"
        raise SimNotReady("SIM busy: it did not become ready")

    def _unlock_sim(self) -> None:
        state = self._sim_state()
        self.state.sim = state or None
        if not state or state in _RECEIVING_SIM_STATES:
            if state in ("SIM PIN2", "SIM PUK2"):
                log.info("modem %s: %s pending; it does not stop reception",
                         self.config.name, state)
            return
        if state != "SIM PIN":
            raise SimNotReady(f"SIM not ready: {state} (PUK or a missing SIM need a person)")
        pin = self.config.resolved_pin()
        if not pin:
            raise SimNotReady("the SIM needs a PIN: set pin_file in the [[modem]] section")
        if _VALID_PIN.fullmatch(pin) is None:
            raise SimNotReady("the configured PIN is not 4-8 digits: not entering it")
        # A wrong PIN entered on every reconnect would lock the SIM (PUK) within seconds:
        # enter each configured PIN once, and never with fewer than two attempts left.
        if pin == self._refused_pin:
            raise SimNotReady("the SIM refused the configured PIN; fix pin_file and restart")
        left = self._pin_attempts_left()
        if self._pin_timed_out and left is None:
            raise SimNotReady("an earlier PIN entry timed out and the attempts left cannot be "
                              "read: not entering the PIN again; check with `modemd probe`")
        if left is not None and left < 2:
            raise SimNotReady(f"only {left} PIN attempt(s) left: not entering the PIN "
                              "automatically; check it with `modemd probe`")
        try:
            self._cmd(f'AT+CPIN="{pin}"', timeout=max(self._timeout_for("AT+CPIN="), 5.0))
        except CommandTimeout:
            self._pin_timed_out = True
            raise SimNotReady("the PIN entry timed out; the attempts left are read before "
                              "it is tried again") from None
        except CommandFailed as exc:
            self._refused_pin = pin
            raise SimNotReady(f"the SIM refused the configured PIN ({exc.code})") from None
        self._pin_timed_out = False
        self.state.sim = "READY"
        if self._stop.wait(self.profile.pin_settle):
            raise _Stop

    def _pin_attempts_left(self) -> int | None:
        for command, prefix, position in pin_retry_queries(self.profile):
            fields = [f.strip().strip('"')
                      for f in self._value(command, prefixed(prefix)).split(",")]
            if len(fields) > position and fields[position].isdigit():
                return int(fields[position])
        return None

    def _identify_modem(self) -> None:
        manufacturer = self._value("AT+CGMI", queries.MANUFACTURER)
        model = self._value("AT+CGMM", queries.MODEL)
        self.profile = self._forced_profile or detect_profile(manufacturer, model)
        self.state.profile = self.profile.name
        self.state.identity = ModemIdentity(
            manufacturer=manufacturer,
            model=model,
            revision=self._value("AT+CGMR", queries.REVISION),
            imei=read_imei(self._value("AT+CGSN", IMEI)),
        )

    def _identify_sim(self) -> None:
        iccid_answer = ""
        for command, prefix in self.profile.iccid_commands:
            iccid_answer = self._value(command, queries.iccid_answer(prefix))
            if iccid_answer:
                break
        iccid = read_iccid(iccid_answer)
        if iccid.problem:
            log.warning("modem %s: %s", self.config.name, iccid.problem)
        self.state.identity = replace(
            self.state.identity,
            imsi=self._value("AT+CIMI", IMSI) or None,
            iccid=iccid.value,
            iccid_problem=iccid.problem,
        )

    def _choose_mode(self) -> None:
        if self._try("AT+CMGF=0") is not None:
            self._reader = PDU_MODE
        else:
            self._cmd("AT+CMGF=1")
            self._try("AT+CSDH=1")  # the header gives the body's length: framing by length
            self._reader = TEXT_MODE
        self.state.mode = self._reader.name

    def _choose_storage(self) -> None:
        line = self._value("AT+CPMS=?", prefixed("+CPMS"))
        preference: tuple[str, ...] = (
            self.profile.storage_preference
            if self.config.storage == "auto"
            else (self.config.storage,)
        )
        chosen: tuple[str, ...] = (preference[0],) * 3
        options: tuple[tuple[str, ...], ...] = ()
        try:
            options = at.parse_cpms_test(line) if line else ()
            if options:
                chosen = at.choose_cpms(options, prefer=preference)
        except ATError as exc:  # unreadable: fall back to the preference
            log.info("modem %s: AT+CPMS=? answer %r unusable (%s); using %s",
                     self.config.name, line, exc, preference[0])
            chosen = (preference[0],) * 3
        mem1 = chosen[0] or preference[0]
        # A storage the modem does not list ("" from choose_cpms) is left off the command.
        storages = ",".join(f'"{m}"' for m in chosen if m)
        self._cmd(f"AT+CPMS={storages}", answer=prefixed("+CPMS"))
        self._read_storage = self._primary_storage = mem1
        # Messages can wait in any readable storage (another tool's setting, a modem that
        # stores new messages in SM whatever <mem3> says): the sweep reads every one, the
        # chosen one last.
        readable = tuple(dict.fromkeys(
            [*(options[0] if options else ()), *(chosen[2:3] if chosen[2:3] != ("",) else ())]
        )) or (mem1,)
        self._sweep_storages = (
            *(m for m in readable if m != mem1 and m not in self._not_swept()), mem1)
        self.state.storage = mem1
        self._refresh_storage_use()

    def _not_swept(self) -> frozenset[str]:
        # Sending: delivery reports stored in SR while nobody listened are read by the sweep.
        return _NOT_MESSAGE_STORAGES - {"SR"} if self.sweeps_status_reports \
            else _NOT_MESSAGE_STORAGES

    def _choose_notifications(self) -> None:
        line = self._value("AT+CNMI=?", prefixed("+CNMI"))
        direct = self.config.delivery == "direct"
        if direct and not self._hold_until_acknowledged():
            log.warning("modem %s: the modem refused AT+CSMS=1, so +CMT would not wait for "
                        "the acknowledgement: using store mode (+CMTI) instead",
                        self.config.name)
            direct = False
        setting, store = "2,1,0,0,0", "2,1,0,0,0"
        try:
            options = at.parse_cnmi_test(line) if line else ()
            if options:
                # Sending: delivery reports are stored (SR) and read like messages, so one
                # that comes while modemd is down or restarting is read by the next sweep.
                # (Text mode reads a report only as its one-line +CDS.)
                reports = self.sweeps_status_reports and self.state.mode == "pdu"
                setting = at.choose_cnmi(options, prefer_direct=direct, store_reports=reports)
                store = at.choose_cnmi(options, prefer_direct=False, store_reports=reports)
        except ATError as exc:
            log.info("modem %s: CNMI options %r unusable (%s); trying %s", self.config.name,
                     line, exc, setting)
        self._store_cnmi = store
        if self._try(f"AT+CNMI={setting}") is None:
            # Not every modem takes five values; without notifications the sweep still works.
            setting = "2,1"
            self._try("AT+CNMI=2,1")
        mt = setting.split(",")[1] if "," in setting else "1"
        self.state.delivery = "direct" if mt == "2" else "store"
        self._degraded = None
        if self.config.delivery == "direct" and self.state.delivery != "direct":
            self._degraded = "direct delivery unavailable (AT+CSMS=1 refused): store mode in use"

    def _hold_until_acknowledged(self) -> bool:
        """AT+CSMS=1: the modem keeps a +CMT message until AT+CNMA (3GPP TS 27.005 3.2.1)."""
        response = self._try("AT+CSMS=1", prefixed("+CSMS"))
        if response is None:
            return False
        fields = (response.first("+CSMS") or "1").split(",")
        return fields[0].strip() == "1"

    # --- receiving ---------------------------------------------------------------------------

    def _serve(self) -> None:
        now = time.monotonic()
        self._next_sweep = now + self.sweep_interval
        self._next_health = now + self.health_interval
        while not self._stop.is_set():
            self._beat = time.monotonic()
            session = self._session
            if session is None or session.dead.is_set():
                raise TransportError("port lost", port=self.state.port)
            wait = self._idle_wait()
            self._beat = time.monotonic() + wait  # waiting idle is not being stuck
            urc = self._next_urc(session, wait)
            self._beat = time.monotonic()
            try:
                if urc is not None and urc is not _WAKE:
                    self._handle_urc(urc)
                if self._notice_waiting() and self._to_delete:
                    continue  # a burst: read the next message first, one fsync for both
                self._sync_and_delete()
                self._run_hooks()
                now = time.monotonic()
                if now >= self._next_sweep:
                    self.sweep()
                if now >= self._next_health:
                    self.poll_health()
            except CommandTimeout as exc:
                self._recover(exc)

    def _next_urc(self, session: ATSession, wait: float) -> Urc | None:
        """The next queued URC; none queued, read the port for at most ``wait`` s (a URC,
        :meth:`wake` or the port failing ends the wait sooner)."""
        try:
            return self._urcs.get_nowait()
        except queue.Empty:
            pass
        session.pump(wait)
        try:
            return self._urcs.get_nowait()
        except queue.Empty:
            return None

    def _idle_wait(self) -> float:
        """Seconds until the worker must act unasked: the next sweep, health poll or hook due
        time (a URC or :meth:`wake` cuts it short). Capped so the heartbeat stays fresh."""
        now = time.monotonic()
        due = min(self._next_sweep, self._next_health, now + MAX_IDLE_WAIT)
        for next_due in self._hook_due:
            due = min(due, now + HOOK_POLL if next_due is None else next_due())
        return max(due - now, 0.0)

    def _run_hooks(self) -> None:
        """Worker hooks; a bug in one is logged and never stops reception (timeouts and a
        lost port still climb the recovery ladder)."""
        for hook in self._hooks:
            try:
                hook(self)
            except (CommandTimeout, TransportError, StoreError, _Stop):
                raise
            except Exception:
                log.exception("modem %s: worker hook %s failed", self.config.name,
                              getattr(hook, "__name__", repr(hook)))

    def _handle_urc(self, urc: Urc) -> None:
        name = urc.name
        if name in ("+CMTI", "+CDSI"):
            try:
                where = at.parse_cmti(urc.args)
            except ATError as exc:
                log.warning("modem %s: unreadable %s %r (%s); sweeping", self.config.name,
                            name, urc.args, exc)
                self.sweep()
                return
            self._read_and_delete(where.storage, where.index)
            return
        if name in ("+CMT", "+CDS"):
            self._take_direct(urc)
            return
        meaning = meaning_of(self.profile, name, urc.args)
        counts = self.state.unsolicited
        counts[meaning or "unknown"] = counts.get(meaning or "unknown", 0) + 1
        if meaning is None:
            self.unknown_urcs += 1
            log.debug("modem %s: unknown URC %s %s", self.config.name, name, urc.args)
            return
        self.events[meaning] = self.events.get(meaning, 0) + 1
        if meaning == "storage_full":
            self.state.last_error = "SIM storage full"
            log.warning("modem %s: storage full (%s); sweeping", self.config.name, name)
            self.sweep()
        elif meaning == "restarted":
            log.warning("modem %s: the modem restarted (%s); re-initialising and sweeping",
                        self.config.name, name)
            self.state.count("restart")
            self._initialise()
            self._set_phase(Phase.SERVING)
            self._drop_queued_restarts()
            self.sweep()
        elif meaning in ("power_warning", "power_down"):
            log.warning("modem %s: %s %s: check the power supply", self.config.name, name,
                        urc.args)
            self.state.last_error = f"power: {name} {urc.args}".strip()
        else:
            log.debug("modem %s: %s event %s %s", self.config.name, meaning, name, urc.args)

    def _drop_queued_restarts(self) -> None:
        """Boot lines that came while re-initialising belong to the restart just handled."""
        kept: list[Urc] = []
        while True:
            try:
                urc = self._urcs.get_nowait()
            except queue.Empty:
                break
            if meaning_of(self.profile, urc.name, urc.args) != "restarted":
                kept.append(urc)
        for urc in kept:
            self._urcs.put(urc)

    def _commit(self, mode: RecordMode, raw: bytes, *, storage: str | None,
                index: int | None) -> None:
        """Journal a message and hand it on; not durable yet (see :meth:`_sync_and_delete`).
        Its slot, if any, joins those to delete once it is."""
        result = self.journal.record_raw(
            modem=self.config.name,
            imei=self.state.identity.imei,
            storage=storage,
            sim_index=index,
            mode=mode,
            raw=raw,
        )
        if result.inserted:
            self.state.received += 1
            self.on_committed()  # the sinks get it while the disk syncs: the modem keeps it
        self._unsynced = result
        if index is not None:
            self._to_delete.append((storage or "", index))
            if len(self._to_delete) >= MAX_UNSYNCED:
                self._sync_and_delete()

    def _sync_and_delete(self) -> None:
        """Make what was journalled durable (one fsync for all of it), and only then delete
        those messages from the modem."""
        latest, self._unsynced = self._unsynced, None
        slots, self._to_delete = self._to_delete, []
        if latest is not None:
            self.journal.make_durable(latest)  # raises: nothing deleted, a sweep takes them
        # Durable: each slot stays listed until it is deleted, so that a stop cutting this
        # short (the next command raises _Stop) deletes the rest (:meth:`_flush_on_stop`).
        self._to_delete = slots
        while self._to_delete:
            storage, index = self._to_delete[0]
            self._select_storage(storage)
            self._delete(index)
            del self._to_delete[0]

    def _forget_unsynced(self) -> None:
        """After a restart, a reset or a lost port a slot may hold another message now: keep
        the slots not yet deleted on the modem; the sweep that follows reads them again (the
        journal knows them: duplicates) and deletes them after their fsync."""
        self._unsynced = None
        self._to_delete = []

    def _notice_waiting(self) -> bool:
        """Is the next queued URC a new-message notice (read it before syncing the last)?"""
        with self._urcs.mutex:
            head = self._urcs.queue[0] if self._urcs.queue else None
        return head is not None and head.name in ("+CMTI", "+CDSI")

    def _select_storage(self, storage: str, *, execute: Callable[..., Response] | None = None,
                        ) -> None:
        """``execute``: how to send the command (default :meth:`_cmd`, which a stop ends)."""
        if storage and storage != self._read_storage:
            (execute or self._cmd)(f'AT+CPMS="{storage}"', answer=prefixed("+CPMS"))
            self._read_storage = storage

    def _read_and_delete(self, storage: str, index: int) -> None:
        self._select_storage(storage)
        response = self._try(f"AT+CMGR={index}", self._reader.read_answer())
        if response is None:
            return  # already gone (read by a sweep) or an empty slot
        entries = at.listing_entries(response.items, "+CMGR")
        if not entries:
            return
        self._take_entry(self._reader.record(entries[0]), index=index)

    def _take_entry(self, record: EntryRecord, *, index: int | None) -> None:
        """Journal one entry (an unreadable one as ``invalid``), then delete it."""
        if not record.ours:
            return  # stored outgoing messages are not ours to take
        if record.problem is not None:
            self.invalid_entries += 1
            self.state.invalid_entries += 1
            log.warning("modem %s: unreadable entry at %s:%s journalled as invalid (%s)",
                        self.config.name, self._read_storage, index, record.problem)
        if record.mode == "invalid" and index is None:
            log.warning("modem %s: an unreadable entry without an index is left on the modem",
                        self.config.name)
            return
        self._commit(record.mode, record.raw, storage=self._read_storage, index=index)

    def _delete(self, index: int) -> None:
        try:
            self._cmd(f"AT+CMGD={index}")
        except CommandFailed as exc:
            # The message is safe in the journal; a later sweep retries the delete.
            log.warning("modem %s: delete of index %d failed: %s", self.config.name, index, exc)

    def _take_direct(self, urc: Urc) -> None:
        # a text-mode +CDS is one line: the report's fields are its arguments
        text_report = urc.name == "+CDS" and self.state.mode == "text"
        if urc.body is None and not text_report:
            log.warning("modem %s: %s without its body line; sweeping", self.config.name,
                        urc.name)
            self.sweep()
            return
        mode, raw = self._reader.direct_record(urc)
        self._commit(mode, raw, storage=None, index=None)
        self._sync_and_delete()
        # Acknowledge only after the fsync: with AT+CSMS=1 the modem holds the message
        # until then and stores it (or the network delivers again) when it is not acked.
        if self._try("AT+CNMA") is None:
            self._try("AT+CNMA=0")

    def sweep(self) -> None:
        """Take every received message in every storage: commit each, then delete it."""
        self._next_sweep = time.monotonic() + self.sweep_interval
        for storage in self._sweep_storages:
            try:
                self._select_storage(storage)
            except CommandFailed as exc:
                log.debug("modem %s: cannot select %s for the sweep: %s", self.config.name,
                          storage, exc)
                continue
            self._sweep_selected()
        self._refresh_storage_use()

    def _sweep_selected(self) -> None:
        # A listing's timeout is "no byte for that long", not a bound on the whole answer:
        # 110 long messages take minutes at 9600 baud.
        response = self._cmd(self._reader.list_command, answer=self._reader.listing_answer(),
                             timeout=max(self.timeout, 30), progress=True)
        for entry in at.listing_entries(response.items, "+CMGL"):
            self._take_entry(self._reader.record(entry), index=entry.index())
        self._sync_and_delete()

    def _refresh_storage_use(self) -> None:
        if self._primary_storage is not None:
            self._select_storage(self._primary_storage)
        line = self._value("AT+CPMS?", prefixed("+CPMS"))
        if not line:
            return
        try:
            uses = at.parse_cpms_query(line)
        except ATError:
            return
        if uses:
            first = uses[0]
            self.state.storage_used, self.state.storage_total = first.used, first.total
            if first.total and first.used >= first.total:
                self.state.last_error = "SIM storage full"
            elif self.state.last_error == "SIM storage full":
                self.state.last_error = None

    # --- health ------------------------------------------------------------------------------

    def poll_health(self) -> None:
        self._next_health = time.monotonic() + self.health_interval
        csq = self._value("AT+CSQ", prefixed("+CSQ"))
        if csq:
            try:
                signal = at.parse_csq(csq)
                self.state.rssi_dbm, self.state.ber = signal.rssi_dbm, signal.ber
            except ATError:
                pass
        # A "+CREG: <stat>" URC can come inside the answer: take the line in query form.
        creg = self._try("AT+CREG?", prefixed("+CREG"))
        for line in creg.lines if creg is not None else ():
            with contextlib.suppress(ATError):
                self.state.registration = at.parse_creg(line, form="query").stat_text
                break
        cops = self._value("AT+COPS?", prefixed("+COPS"))
        if cops:
            with contextlib.suppress(ATError):
                self.state.operator = at.parse_cops(cops).name
        command = self.profile.lte_quality_command
        if command:  # vendor LTE quality (RSRP/RSRQ/SINR), kept as the modem words it
            prefix = command.removeprefix("AT").removesuffix("?")
            self.state.lte_quality = self._value(command, prefixed(prefix)) or None
        self._refresh_storage_use()
        self._publish_state()

    def _publish_state(self) -> None:
        if self.garbage_lines:
            self.state.unsolicited["unplaced_lines"] = self.garbage_lines
        try:
            self.on_state(self.state)
        except ModemdError as exc:
            log.warning("modem %s: could not record state: %s", self.config.name, exc)

    # --- recovery ------------------------------------------------------------------------------

    def _recover(self, cause: CommandTimeout) -> None:
        """Climb the ladder after a timeout; raise to reopen the port if nothing helps."""
        log.warning("modem %s: %s; recovering", self.config.name, cause)
        self._forget_unsynced()
        self.state.count("timeout")
        self.state.last_error = str(cause)
        self._set_phase(Phase.RECOVERING)
        for step in RECOVERY_LADDER:
            try:
                recovered: bool = getattr(self, step.method)()
            except CommandTimeout:
                recovered = False
            self.state.count(step.name)
            if recovered:
                log.info("modem %s: recovered by %s", self.config.name, step.name)
                self._set_phase(Phase.SERVING)
                return
        raise CommandTimeout(cause.command, cause.timeout)

    def _recover_by_ping(self) -> bool:
        self._sync()
        # Notifications sent while it was not answering may be lost: sweep now rather
        # than at the next periodic sweep.
        self.sweep()
        return True

    def _recover_by_reinit(self) -> bool:
        self._initialise()
        self.sweep()
        return True

    def _recover_by_reset(self) -> bool:
        log.warning("modem %s: re-init failed; resetting with %s", self.config.name,
                    self.profile.reset_command)
        session = self._session
        if session is not None:
            with contextlib.suppress(TransportError):
                session.transport.write(self.profile.reset_command.encode() + b"\r")
        return False

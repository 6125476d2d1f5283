"""One modem, supervised: open, initialise, receive, sweep, poll health, recover.

The receive rule that the rest of modemd relies on: a message is read, committed to the
journal (fsync), and only then deleted from the modem (+CMTI/sweep) or acknowledged (+CMT).
Nothing depends on one notification arriving: a CMGL sweep runs at start, after every
reconnect, after a storage-full warning and every ``sweep_interval`` seconds.

Recovery ladder on a command timeout: AT ping → re-init → the profile's reset command →
close and reopen the port with capped backoff. A vanished port is waited for (the same path,
or the same IMEI found on another port) and the modem is swept when it is back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from modemd.at import responses as at
from modemd.at.events import Garbage, Urc
from modemd.at.parser import DEFAULT_URC_PREFIXES
from modemd.backoff import Backoff
from modemd.config import ModemConfig
from modemd.errors import (
    ATError,
    CommandFailed,
    CommandTimeout,
    ModemdError,
    StoreError,
    TransportError,
)
from modemd.modem.profiles import (
    GENERIC,
    PIN_RETRY_QUERIES,
    PROFILES,
    ModemProfile,
    detect_profile,
    profile_named,
)
from modemd.modem.session import ATSession, Response
from modemd.modem.state import ModemIdentity, ModemState
from modemd.store.journal import Journal, RecordMode
from modemd.transport import SerialTransport

log = logging.getLogger(__name__)

# Every vendor URC any profile knows: the parser must recognise them before the profile is
# known (a ^RSSI can arrive in the middle of the very first command).
ALL_URC_PREFIXES = tuple(
    dict.fromkeys([*DEFAULT_URC_PREFIXES, *(u for p in PROFILES for u in p.extra_urcs)])
)


# Broadcast and status-report storages hold no SMS-DELIVER for us to sweep.
_NOT_MESSAGE_STORAGES = frozenset({"BM", "SR"})


class SimNotReady(ModemdError):
    """The SIM needs a PIN/PUK that the config does not give, or is missing."""


class WrongModem(ModemdError):
    """The port answers with another modem's IMEI/ICCID than the config names."""


class _Stop(Exception):
    """Internal: the driver was asked to stop."""


class ModemDriver:
    """Runs one configured modem on its own worker thread."""

    def __init__(
        self,
        config: ModemConfig,
        *,
        journal: Journal,
        on_committed: Callable[[], None] = lambda: None,
        on_state: Callable[[ModemState], None] = lambda state: None,
        sweep_interval: float = 60.0,
        health_interval: float = 60.0,
        port_resolver: Callable[[ModemConfig], str | None] | None = None,
        max_backoff: float = 30.0,
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
        self._urcs: queue.Queue[Urc] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: ATSession | None = None
        self._backoff = Backoff(base=0.5, cap=max_backoff)
        self._read_storage: str | None = None
        self._refused_pin: str | None = None
        self._wrong_modem = False
        self._primary_storage: str | None = None
        self._sweep_storages: tuple[str, ...] = ()
        self._next_sweep = 0.0
        self._next_health = 0.0
        self.ready = threading.Event()  # set after the first successful init
        self.garbage_lines = 0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"modem-{self.config.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        session = self._session
        if session is not None:
            session.close()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the supervisor loop -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._connect()
                self._backoff.reset()
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
                self._went_offline(f"internal error: {exc!r}", step="reopen")
            finally:
                self._close_session()
            if self._stop.is_set():
                break
            self._stop.wait(self._backoff.next_delay())
        self._close_session()
        self.state.online = False

    def _went_offline(self, reason: str, *, step: str) -> None:
        log.warning("modem %s: %s", self.config.name, reason)
        self.state.online = False
        self.state.last_error = reason
        self.state.count(step)
        self._publish_state()

    def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

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

    def _connect(self) -> None:
        port = self._resolve_port()
        self.state.port = port
        transport = SerialTransport(port, baudrate=self.config.baudrate, rtscts=self.config.rtscts)
        transport.open()
        self._urcs = queue.Queue()
        session = ATSession(
            transport,
            on_urc=self._urcs.put,
            on_garbage=self._on_garbage,
            urc_prefixes=ALL_URC_PREFIXES,
            name=self.config.name,
        )
        self._session = session
        session.start()
        self._initialise()
        ident = self.state.identity
        if not self.config.matches(imei=ident.imei, iccid=ident.iccid):
            # Another modem answers on this path (re-enumeration swapped them): never take
            # its messages under this name; look for ours instead.
            self._wrong_modem = True
            raise WrongModem(f"{port} holds IMEI {ident.imei} / ICCID {ident.iccid}, not the "
                             f"configured {self.config.imei or self.config.iccid}")
        self._wrong_modem = False
        self.state.online = True
        self.state.last_error = None
        log.info(
            "modem %s online: %s %s IMEI %s, %s mode, storage %s %s/%s",
            self.config.name, self.state.identity.manufacturer, self.state.identity.model,
            self.state.identity.imei, self.state.mode, self.state.storage,
            self.state.storage_used, self.state.storage_total,
        )
        self.sweep()
        self.poll_health()
        self.ready.set()

    def _on_garbage(self, event: Garbage) -> None:
        self.garbage_lines += 1

    # --- commands ------------------------------------------------------------------------------

    def _cmd(
        self, command: str, *, prefixes: tuple[str, ...] = (), check: bool = True,
        timeout: float | None = None,
    ) -> Response:
        if self._stop.is_set():
            raise _Stop
        session = self._session
        if session is None:
            raise TransportError("not connected", port=self.state.port)
        return session.execute(
            command, timeout=timeout or self.timeout, response_prefixes=prefixes, check=check
        )

    def _try(self, command: str, *, prefixes: tuple[str, ...] = ()) -> Response | None:
        """A command whose failure is an answer (unsupported), not a problem."""
        try:
            return self._cmd(command, prefixes=prefixes)
        except CommandFailed:
            return None

    def _value(self, command: str, prefix: str = "") -> str:
        """The single information line of an identity query, prefix removed."""
        response = self._try(command, prefixes=(prefix,) if prefix else ())
        if response is None:
            return ""
        for line in response.lines:
            text = line.strip()
            if prefix and text.startswith(prefix + ":"):
                return text[len(prefix) + 1 :].strip().strip('"')
            if text:
                return text.strip('"')
        return ""

    # --- init --------------------------------------------------------------------------------

    def _initialise(self) -> None:
        self._sync()
        self._cmd("ATE0")
        self._try("AT+CMEE=1")
        self._unlock_sim()
        self._identify()
        for command in self.profile.init_commands:
            self._try(command)
        self._choose_mode()
        self._choose_storage()
        self._choose_notifications()

    def _sync(self) -> None:
        """Get the modem's attention: a few short ATs (it may be booting or mid-garbage)."""
        last: ATError | None = None
        for _ in range(3):
            try:
                self._cmd("AT", timeout=min(self.timeout, 2.0))
                return
            except ATError as exc:
                last = exc
        assert last is not None
        raise last

    def _unlock_sim(self) -> None:
        state = self._value("AT+CPIN?", "+CPIN")
        if not state or state == "READY":
            return
        if state == "SIM PIN":
            pin = self.config.resolved_pin()
            if not pin:
                raise SimNotReady("the SIM needs a PIN: set pin_file in the [[modem]] section")
            # A wrong PIN entered on every reconnect would lock the SIM (PUK) within seconds:
            # enter each configured PIN once, and never with fewer than two attempts left.
            if pin == self._refused_pin:
                raise SimNotReady("the SIM refused the configured PIN; fix pin_file and restart")
            left = self._pin_attempts_left()
            if left is not None and left < 2:
                raise SimNotReady(f"only {left} PIN attempt(s) left: not entering the PIN "
                                  "automatically; check it with `modemd probe`")
            try:
                self._cmd(f'AT+CPIN="{pin}"')
            except CommandFailed as exc:
                self._refused_pin = pin
                raise SimNotReady(f"the SIM refused the configured PIN ({exc.code})") from exc
            time.sleep(0.5)
            return
        raise SimNotReady(f"SIM not ready: {state} (PUK or a missing SIM need a person)")

    def _pin_attempts_left(self) -> int | None:
        for command, prefix, position in PIN_RETRY_QUERIES:
            fields = [f.strip().strip('"') for f in self._value(command, prefix).split(",")]
            if len(fields) > position and fields[position].isdigit():
                return int(fields[position])
        return None

    def _identify(self) -> None:
        manufacturer = self._value("AT+CGMI", "+CGMI")
        model = self._value("AT+CGMM", "+CGMM")
        self.profile = self._forced_profile or detect_profile(manufacturer, model)
        iccid = ""
        for command, prefix in self.profile.iccid_commands:
            iccid = self._value(command, prefix)
            if iccid:
                break
        self.state.identity = ModemIdentity(
            manufacturer=manufacturer,
            model=model,
            revision=self._value("AT+CGMR", "+CGMR"),
            imei=self._value("AT+CGSN", "+CGSN") or None,
            imsi=self._value("AT+CIMI", "+CIMI") or None,
            iccid=iccid.rstrip("F") or None,
        )
        self.state.profile = self.profile.name

    def _choose_mode(self) -> None:
        if self._try("AT+CMGF=0") is not None:
            self.state.mode = "pdu"
            return
        self._cmd("AT+CMGF=1")
        self._try("AT+CSDH=1")
        self.state.mode = "text"

    def _choose_storage(self) -> None:
        line = self._value("AT+CPMS=?", "+CPMS")
        preference: tuple[str, ...] = (
            self.profile.storage_preference
            if self.config.storage == "auto"
            else (self.config.storage,)
        )
        chosen: tuple[str, ...] = (preference[0],) * 3
        options: tuple[tuple[str, ...], ...] = ()
        with contextlib.suppress(ATError):  # unreadable: fall back to the preference
            options = at.parse_cpms_test(line) if line else ()
            if options:
                chosen = at.choose_cpms(options, prefer=preference)
        mem1 = chosen[0] or preference[0]
        # A storage the modem does not list ("" from choose_cpms) is left off the command.
        storages = ",".join(f'"{m}"' for m in chosen if m)
        self._cmd(f"AT+CPMS={storages}", prefixes=("+CPMS",))
        self._read_storage = self._primary_storage = mem1
        # Messages can wait in any readable storage (another tool's setting, a modem that
        # stored there before init): the sweep reads them all, the chosen one last.
        readable = options[0] if options else (mem1,)
        self._sweep_storages = (
            *(m for m in readable if m != mem1 and m not in _NOT_MESSAGE_STORAGES), mem1)
        self.state.storage = mem1
        self._refresh_storage_use()

    def _choose_notifications(self) -> None:
        line = self._value("AT+CNMI=?", "+CNMI")
        setting = "2,1,0,0,0"
        try:
            options = at.parse_cnmi_test(line) if line else ()
            if options:
                setting = at.choose_cnmi(options, prefer_direct=self.config.delivery == "direct")
        except ATError as exc:
            log.info("modem %s: CNMI options %r unusable (%s); trying %s", self.config.name,
                     line, exc, setting)
        if self._try(f"AT+CNMI={setting}") is None:
            # Not every modem takes five values; without notifications the sweep still works.
            self._try("AT+CNMI=2,1")

    # --- receiving ---------------------------------------------------------------------------

    def _serve(self) -> None:
        now = time.monotonic()
        self._next_sweep = now + self.sweep_interval
        self._next_health = now + self.health_interval
        while not self._stop.is_set():
            session = self._session
            if session is None or session.dead.is_set():
                raise TransportError("port lost", port=self.state.port)
            try:
                urc = self._urcs.get(timeout=0.25)
            except queue.Empty:
                urc = None
            try:
                if urc is not None:
                    self._handle_urc(urc)
                now = time.monotonic()
                if now >= self._next_sweep:
                    self.sweep()
                if now >= self._next_health:
                    self.poll_health()
            except CommandTimeout as exc:
                self._recover(exc)

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
        elif name in ("+CMT", "+CDS"):
            self._take_direct(urc)
        elif name in self.profile.storage_full_urcs or name in ("^SMMEMFULL",):
            self.state.last_error = "SIM storage full"
            log.warning("modem %s: storage full (%s); sweeping", self.config.name, name)
            self.sweep()
        else:
            log.debug("modem %s: URC %s %s", self.config.name, name, urc.args)

    def _commit(self, mode: RecordMode, raw: bytes, *, storage: str | None,
                index: int | None) -> None:
        result = self.journal.commit_raw(
            modem=self.config.name,
            imei=self.state.identity.imei,
            storage=storage,
            sim_index=index,
            mode=mode,
            raw=raw,
        )
        if result.inserted:
            self.state.received += 1
            self.on_committed()

    @staticmethod
    def _pdu_record(pdu_hex: str) -> tuple[RecordMode, bytes]:
        text = pdu_hex.strip()
        try:
            return "pdu", bytes.fromhex(text)
        except ValueError:
            # Keep what the modem said: the pipeline dead-letters it with the reason.
            return "invalid", text.encode("latin-1", "replace")

    def _select_storage(self, storage: str) -> None:
        if storage and storage != self._read_storage:
            self._cmd(f'AT+CPMS="{storage}"', prefixes=("+CPMS",))
            self._read_storage = storage

    def _read_and_delete(self, storage: str, index: int) -> None:
        self._select_storage(storage)
        if self.state.mode == "pdu":
            response = self._try(f"AT+CMGR={index}", prefixes=("+CMGR",))
            if response is None or not response.lines:
                return  # already gone (read by a sweep) or empty slot
            listed = at.parse_cmgr_pdu(response.lines)
            mode, raw = self._pdu_record(listed.pdu_hex)
        else:
            response = self._try(f"AT+CMGR={index}", prefixes=("+CMGR",))
            if response is None or not response.lines:
                return
            record = at.parse_cmgr_text(response.lines)
            mode, raw = "text", _text_record(_header_text(record.header_args), record.body)
        self._commit(mode, raw, storage=storage, index=index)
        self._delete(index)

    def _delete(self, index: int) -> None:
        try:
            self._cmd(f"AT+CMGD={index}")
        except CommandFailed as exc:
            # The message is safe in the journal; a later sweep retries the delete.
            log.warning("modem %s: delete of index %d failed: %s", self.config.name, index, exc)

    def _take_direct(self, urc: Urc) -> None:
        if urc.body is None:
            log.warning("modem %s: %s without its body line; sweeping", self.config.name,
                        urc.name)
            self.sweep()
            return
        if self.state.mode == "pdu":
            mode, raw = self._pdu_record(urc.body)
        else:
            mode, raw = "text", _text_record(urc.args, urc.body)
        self._commit(mode, raw, storage=None, index=None)
        # Acknowledge only after the commit: unacknowledged, the network delivers again.
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
        if self.state.mode == "pdu":
            response = self._cmd("AT+CMGL=4", prefixes=("+CMGL",), timeout=max(self.timeout, 30))
            for listed in at.parse_cmgl_pdu(response.lines):
                if listed.status not in (None, 0, 1):
                    continue  # stored outgoing messages are not ours to take
                mode, raw = self._pdu_record(listed.pdu_hex)
                self._commit(mode, raw, storage=self._read_storage, index=listed.index)
                if listed.index is not None:
                    self._delete(listed.index)
        else:
            response = self._cmd('AT+CMGL="ALL"', prefixes=("+CMGL",),
                                 timeout=max(self.timeout, 30))
            for record in at.parse_cmgl_text(response.lines):
                if record.header_args and record.header_args[0].startswith("STO"):
                    continue  # stored outgoing messages are not ours to take
                raw = _text_record(_header_text(record.header_args), record.body)
                self._commit("text", raw, storage=self._read_storage, index=record.index)
                if record.index is not None:
                    self._delete(record.index)

    def _refresh_storage_use(self) -> None:
        if self._primary_storage is not None:
            self._select_storage(self._primary_storage)
        line = self._value("AT+CPMS?", "+CPMS")
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
        csq = self._value("AT+CSQ", "+CSQ")
        if csq:
            try:
                signal = at.parse_csq(csq)
                self.state.rssi_dbm, self.state.ber = signal.rssi_dbm, signal.ber
            except ATError:
                pass
        creg = self._value("AT+CREG?", "+CREG")
        if creg:
            with contextlib.suppress(ATError):
                self.state.registration = at.parse_creg(creg).stat_text
        cops = self._value("AT+COPS?", "+COPS")
        if cops:
            with contextlib.suppress(ATError):
                self.state.operator = at.parse_cops(cops).name
        command = self.profile.lte_quality_command
        if command:  # vendor LTE quality (RSRP/RSRQ/SINR), kept as the modem words it
            prefix = command.removeprefix("AT").removesuffix("?")
            self.state.lte_quality = self._value(command, prefix) or None
        self._refresh_storage_use()
        self._publish_state()

    def _publish_state(self) -> None:
        try:
            self.on_state(self.state)
        except ModemdError as exc:
            log.warning("modem %s: could not record state: %s", self.config.name, exc)

    # --- recovery ------------------------------------------------------------------------------

    def _recover(self, cause: CommandTimeout) -> None:
        """Climb the ladder after a timeout; raise to reopen the port if nothing helps."""
        name = self.config.name
        log.warning("modem %s: %s; pinging", name, cause)
        self.state.count("timeout")
        self.state.last_error = str(cause)
        try:
            self._sync()
            self.state.count("ping")
            # Notifications sent while it was not answering may be lost: sweep now rather
            # than at the next periodic sweep.
            self.sweep()
            return
        except CommandTimeout:
            pass
        log.warning("modem %s: no answer to AT; re-initialising", name)
        self.state.count("reinit")
        try:
            self._initialise()
            self.sweep()
            return
        except CommandTimeout:
            pass
        log.warning("modem %s: re-init failed; resetting with %s", name,
                    self.profile.reset_command)
        self.state.count("reset")
        session = self._session
        if session is not None:
            with contextlib.suppress(TransportError):
                session.transport.write(self.profile.reset_command.encode() + b"\r")
        raise CommandTimeout(cause.command, cause.timeout)


def _header_text(fields: tuple[str, ...]) -> str:
    """A text-mode header as the modem wrote it, from its unquoted fields."""
    return ",".join(f if f.isdigit() or not f else f'"{f}"' for f in fields)


def _text_record(header_args: str, body: str | None) -> bytes:
    """A text-mode record as journalled: the header, a newline, the body (UTF-8)."""
    return (header_args + "\n" + (body or "")).encode("utf-8", "replace")


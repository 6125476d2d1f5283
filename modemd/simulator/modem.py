"""A simulated AT modem behind a pseudo-terminal.

modemd's real serial code opens :attr:`SimulatedModem.port` exactly like a USB modem's AT port.
One thread per modem reads the pty master (``select`` with a short timeout), answers commands
through the dispatch table in ``handlers.py`` and runs the modem's timers (reset silence, the
+CNMA deadline, periodic vendor URCs). The delivery API (:meth:`deliver`, :meth:`deliver_many`,
:meth:`store`, :meth:`deliver_sms`) and the fault switches (:meth:`set_quirk`, :meth:`vanish`,
:meth:`reappear`) may be called from any thread.

Everything the modem does is under one re-entrant lock; only the modem's own thread closes or
replaces the pty, so no thread ever reads or writes a descriptor that another one closed.
"""

from __future__ import annotations

import contextlib
import heapq
import importlib
import itertools
import logging
import os
import random
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from modemd.errors import ModemdError
from modemd.simulator.at_line import parse_line
from modemd.simulator.handlers import (
    REGISTRATION_URCS,
    Identity,
    PromptRequest,
    Reply,
    execute,
    finish_cmgw,
    registration_line,
)
from modemd.simulator.pdu_text import as_pdu, text_record, to_hex, tpdu_length
from modemd.simulator.profiles import SimProfile, sim_profile
from modemd.simulator.pty_port import PortLink, PtyPort
from modemd.simulator.pump import LoopbackPump, PtyPump, Pump
from modemd.simulator.quirks import GARBAGE, Quirks, checked_value
from modemd.simulator.sending import SendingState
from modemd.simulator.state import PIN_READY, PIN_SIM_PIN, ModemState
from modemd.simulator.storage import Storage
from modemd.transport.base import LoopbackTransport

log = logging.getLogger(__name__)

T = TypeVar("T")

_POLL = 0.05  # longest select() wait: how late a stop or a timer can be noticed at worst
_MAX_LINE = 4096


class SimulatorError(ModemdError):
    """Misuse of the simulator API (not started, storage full on store(), no codec ...)."""


class StorageFullError(SimulatorError):
    """store() found no free slot in the receive storage."""


class SimulatedModem:
    """A pty-backed AT modem; see the module docstring and docs/architecture.md."""

    def __init__(
        self,
        *,
        profile: str | SimProfile = "generic",
        imei: str = "356938035643809",
        imsi: str = "262011234567890",
        iccid: str = "8949011234567890126",
        capacity: int | Mapping[str, int] = 30,
        link_path: str | os.PathLike[str] | None = None,
        pin: str | None = None,
        quirks: Mapping[str, object] | None = None,
        cnma_timeout: float = 2.0,
        reset_silence: float = 0.3,
        signal: tuple[int, int] = (20, 99),
        loopback: bool = False,
        seed: int | None = None,
    ) -> None:
        self._loopback = loopback
        self.random = random.Random(seed)
        self._profile = profile if isinstance(profile, SimProfile) else sim_profile(profile)
        self._identity = Identity(imei=imei, imsi=imsi, iccid=iccid)
        self._pin = pin
        self.cnma_timeout = cnma_timeout
        self.reset_silence = reset_silence
        self._signal = signal
        self.quirks = Quirks()
        for name, value in (quirks or {}).items():
            setattr(self.quirks, name, checked_value(name, value))
        self._storages: dict[str, Storage] = {}
        for name in self._profile.all_storages():
            size = capacity if isinstance(capacity, int) else capacity.get(name, 30)
            self._storages[name] = Storage(name, size, self._profile.first_index)
        self._state = self._power_on_state()

        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._stopped = False
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._pump: Pump | None = None  # the pty (or loopback) the engine's bytes go through
        self._link = PortLink(link_path) if link_path is not None else None
        self._slave_path: str | None = None
        self._vanished = False
        self._requests: deque[Callable[[], None]] = deque()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()

        self._inbuf = bytearray()
        self._prompt: PromptRequest | None = None
        self._prompt_buf = bytearray()
        self._answering = False
        self._after_answer: list[Callable[[], None]] = []
        self._deferred_urcs: list[str] = []
        self._held_urcs: list[str] = []
        self._indication_buffer: list[str] = []
        self._silent_until = 0.0
        self._answers = 0

        self._command_log: list[str] = []
        self._rejected: list[bytes] = []
        self._acknowledged: list[bytes] = []
        self._cmt_queue: deque[bytes] = deque()
        self._unheld: list[bytes] = []
        self._cmt_outstanding = False
        self._cmt_token = 0
        self.sending = SendingState()  # AT+CMGS: what was sent, injected errors, reports

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> SimulatedModem:
        with self._lock:
            if self._started:
                raise SimulatorError("a simulated modem can only be started once")
            self._started = True
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            try:
                self._open_port(avoid=None)
            except BaseException:
                self.stop()
                raise
            for period, template in self._profile.periodic_urcs:
                self._schedule_periodic(period, template)
            if self._profile.chatter_urcs:
                self._schedule(self.random.uniform(0.2, 1.0), self._chatter_tick)
            self._thread = threading.Thread(
                target=self._run, name=f"modemd-sim-{self._profile.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, close every descriptor, remove the link. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop_event.set()
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        with self._lock:
            self._close_port()
            for attr in ("_wake_r", "_wake_w"):
                fd = getattr(self, attr)
                setattr(self, attr, None)
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def __enter__(self) -> SimulatedModem:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what the host and the tests see ---------------------------------------------------

    @property
    def port(self) -> str:
        """The path a host opens: ``link_path`` when given, else the current pty slave."""
        if self._loopback:
            return f"loopback:{self._profile.name}"
        if self._link is not None:
            return str(self._link.path)
        if self._slave_path is None:
            raise SimulatorError("the simulated modem is not started")
        return self._slave_path

    def transport(self, port: str = "") -> LoopbackTransport:
        """The in-process port of a ``loopback=True`` modem (the host side), for
        ``ModemDriver(transport_factory=sim.transport)``: no pty, no file descriptor."""
        pump = self._pump
        if not isinstance(pump, LoopbackPump):
            raise SimulatorError("not a loopback modem, or unplugged")
        return pump.transport

    @property
    def slave_path(self) -> str | None:
        """The current (or, while vanished, the last) pty slave path."""
        return self._slave_path

    @property
    def profile(self) -> SimProfile:
        return self._profile

    @property
    def state(self) -> ModemState:
        return self._state

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def signal(self) -> tuple[int, int]:
        return self._signal

    @property
    def expected_pin(self) -> str:
        return self._pin if self._pin is not None else "1234"

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def vanished(self) -> bool:
        return self._vanished

    @property
    def command_log(self) -> list[str]:
        """Every command line received, in order (a copy)."""
        with self._lock:
            return list(self._command_log)

    @property
    def rejected(self) -> list[bytes]:
        """PDUs the network could not deliver (storage full); see :meth:`retry_rejected`."""
        with self._lock:
            return list(self._rejected)

    @property
    def acknowledged(self) -> list[bytes]:
        """PDUs delivered by +CMT and acknowledged with AT+CNMA (never stored)."""
        with self._lock:
            return list(self._acknowledged)

    @property
    def unheld(self) -> list[bytes]:
        """PDUs pushed by +CMT without AT+CSMS=1: the modem did not keep them for a +CNMA."""
        with self._lock:
            return list(self._unheld)

    def storage(self, name: str) -> Storage:
        return self._storages[name]

    def messages(self, storage: str | None = None) -> dict[int, bytes]:
        """index -> PDU in ``storage`` (default: the current read storage, <mem1>)."""
        with self._lock:
            name = storage if storage is not None else self._state.cpms[0]
            return {i: m.pdu for i, m in sorted(self._storages[name].slots.items())}

    def statuses(self, storage: str | None = None) -> dict[int, int]:
        """index -> <stat> (0 REC UNREAD, 1 REC READ, ...) in ``storage``."""
        with self._lock:
            name = storage if storage is not None else self._state.cpms[0]
            return {i: m.status for i, m in sorted(self._storages[name].slots.items())}

    # -- delivery ----------------------------------------------------------------------------

    def deliver(self, pdu: bytes | str) -> int | None:
        """One SMS from the network, routed by AT+CNMI; the index when it was stored."""
        raw = as_pdu(pdu)
        with self._lock:
            index, urcs = self._receive(raw)
            self._urc(urcs)
            return index

    def deliver_many(self, pdus: Iterable[bytes | str]) -> list[int | None]:
        """A burst: every resulting +CMTI goes to the host in one write."""
        raws = [as_pdu(p) for p in pdus]
        with self._lock:
            results: list[int | None] = []
            urcs: list[str] = []
            for raw in raws:
                index, more = self._receive(raw)
                results.append(index)
                urcs.extend(more)
            self._urc(urcs)
            return results

    def store(self, pdu: bytes | str, *, storage_name: str | None = None) -> int:
        """Put a message in the receive storage (or ``storage_name``) silently: it came while
        the host was away, or the modem stores there whatever <mem3> says."""
        raw = as_pdu(pdu)
        with self._lock:
            storage = self._storages[storage_name or self._state.cpms[2]]
            index = None if self.quirks.storage_full else storage.store(raw)
            if index is None:
                raise StorageFullError(f"storage {storage.name} is full")
            return index

    def store_corrupt(self, listing: str, *, length: int | None = None,
                      storage: str | None = None) -> int:
        """A slot whose listing shows ``listing`` instead of a PDU (non-hex, odd length; ""
        lists the header alone, as ``+CMGL: 2,1,,0`` for an empty slot)."""
        with self._lock:
            target = self._storages[storage or self._state.cpms[2]]
            index = target.store(b"\x00")
            if index is None:
                raise StorageFullError(f"storage {target.name} is full")
            slot = target.slots[index]
            slot.listing = listing
            slot.length = length if length is not None else (0 if not listing else 24)
            return index

    def restart(self) -> None:
        """The modem reboots by itself (a brown-out, a firmware watchdog): settings lost,
        silence, then its boot lines (``RDY``...). Stored messages survive."""
        self._call_in_thread(self._do_reset)

    def ring(self, number: str = "+4915112345678", *, rings: int = 2) -> None:
        """A call that rings and is missed: the profile's call events, as the modem says them."""
        with self._lock:
            lines = ["RING", f'+CLIP: "{number}",145,"",0,"",0'] * rings
            lines += [line.format(number=number) for line in self._profile.missed_call_urcs]
            self._urc(lines)

    def retry_rejected(self) -> list[int | None]:
        """The network tries the rejected messages again (after the host freed storage)."""
        with self._lock:
            pending, self._rejected = self._rejected, []
            return self.deliver_many(pending)

    def deliver_sms(
        self,
        *,
        sender: str,
        text: str | None = None,
        data: bytes | None = None,
        encoding: str = "auto",
        scts: datetime | None = None,
        reference: int | None = None,
        smsc: str | None = None,
    ) -> list[int | None]:
        """Encode with modemd.sms and deliver; several parts when it needs them (one burst).

        One PDU when the text fits one SMS, else a concatenated set with ``reference`` (random
        when not given). The PDUs carry ``smsc`` (default: the profile's service centre).
        """
        encode = encoder_module()
        pdus: list[bytes] = list(
            encode.encode_deliver_parts(
                sender=sender,
                text=text,
                data=data,
                encoding=encoding,
                scts=scts if scts is not None else datetime.now().astimezone(),
                smsc=smsc if smsc is not None else self._profile.smsc,
                reference=reference if reference is not None else random.randrange(256),
            )
        )
        return self.deliver_many(pdus)

    # -- line noise, URCs and quirks -------------------------------------------------------

    def garbage(self, data: bytes) -> None:
        """Raw bytes on the line, now (ignores hang: it is noise, not the modem talking)."""
        with self._lock:
            self._write(bytes(data))

    def write_urc(self, line: str) -> None:
        with self._lock:
            self._urc([line])

    def set_signal(self, rssi: int, ber: int = 99) -> None:
        with self._lock:
            self._signal = (rssi, ber)

    def set_quirk(self, name: str, value: object) -> None:
        with self._lock:
            before = self.registration_stat()
            checked = checked_value(name, value)
            setattr(self.quirks, name, checked)
            if name == "echo":
                self._state.echo = bool(checked)
            elif name == "pin_required":
                if checked and self._state.pin_state == PIN_READY:
                    self._state.pin_state = PIN_SIM_PIN
                    self._state.pin_attempts = 3
                elif not checked and self._pin is None:
                    self._state.pin_state = PIN_READY
            elif name == "urc_inside_answer" and not checked:
                held, self._held_urcs = self._held_urcs, []
                self._urc(held)
            self._registration_urcs(before)

    # -- the USB plug ------------------------------------------------------------------------

    def vanish(self) -> None:
        """As on USB unplug: the host's next read/write fails, the link goes away."""
        self._call_in_thread(self._do_vanish)

    def reappear(self, new_path: bool = True) -> str:
        """Plug back in: a new pty (a new slave path unless ``new_path`` is False and the
        kernel hands the old number back), the link re-pointed, power-on settings, SIM storage
        and identity kept. Returns :attr:`port`."""
        return self._call_in_thread(lambda: self._do_reappear(new_path))

    # -- Context for the handlers ------------------------------------------------------------

    def registration_stat(self) -> int:
        if self._state.cfun != 1 or self._state.pin_state != PIN_READY:
            return 0
        flag = self.quirks.not_registered
        if isinstance(flag, bool):
            return 2 if flag else 1
        return int(flag)

    def ack_cmt(self, positive: bool) -> bool:
        if not self._cmt_outstanding:
            return False
        raw = self._cmt_queue.popleft()
        self._cmt_outstanding = False
        self._cmt_token += 1
        if positive:
            self._acknowledged.append(raw)
        else:  # RP-ERROR: the network keeps it and retries; model: it lands in storage
            self._store_and_indicate(raw)
        if self._cmt_queue:
            self._after_answer.append(self._send_next_cmt)
        return True

    def start_reset(self) -> None:
        self._after_answer.append(self._do_reset)

    def flush_indications(self, discard: bool) -> None:
        buffered, self._indication_buffer = self._indication_buffer, []
        if not discard:
            self._urc(buffered)

    def restore_settings(self) -> None:
        self._state.restore_user_settings(self._profile, echo=self.quirks.echo)

    def sim_unlocked(self) -> None:
        self._urc(list(self._profile.ready_urcs))

    # -- internals: state ------------------------------------------------------------------

    def _power_on_state(self) -> ModemState:
        locked = self._pin is not None or self.quirks.pin_required
        return ModemState.power_on(self._profile, echo=self.quirks.echo, pin_locked=locked)

    def _online(self) -> bool:
        """Would the modem write to the host now?"""
        return (
            self._pump is not None
            and not self._vanished
            and not self.quirks.hang
            and time.monotonic() >= self._silent_until
        )

    def _receive(self, raw: bytes) -> tuple[int | None, list[str]]:
        """Route one incoming SMS by AT+CNMI; (index if stored, URCs to write)."""
        mode, mt = self._state.cnmi[0], self._state.cnmi[1]
        if mt == 2 and mode != 0 and self._online() and self._cmt_unit(raw) is not None:
            if self._state.csms == 0:
                # Phase 2 (AT+CSMS=0): the modem acknowledges to the network itself and
                # forgets the message once written; a host that does not keep it loses it.
                self._unheld.append(raw)
                unit = self._cmt_unit(raw)
                return None, [unit] if unit is not None else []
            self._cmt_queue.append(raw)
            if not self._cmt_outstanding:
                self._send_next_cmt()
            return None, []
        index, mem, urcs = self._store_received(raw)
        if index is not None and mt != 0:
            self._indicate(f'+CMTI: "{mem}",{index}', urcs)
        return index, urcs

    def _indicate(self, line: str, urcs: list[str]) -> None:
        if self._state.cnmi[0] == 0:
            self._indication_buffer.append(line)
        else:
            urcs.append(line)

    def _store_received(self, raw: bytes) -> tuple[int | None, str, list[str]]:
        mem = self._state.cpms[2]
        storage = self._storages[mem]
        index = None if self.quirks.storage_full else storage.store(raw)
        if index is None:
            self._rejected.append(raw)
            template = self._profile.storage_full_urc
            return None, mem, [template.format(mem=mem)] if template else []
        return index, mem, []

    def _store_and_indicate(self, raw: bytes) -> int | None:
        index, mem, urcs = self._store_received(raw)
        if index is not None:
            urcs.append(f'+CMTI: "{mem}",{index}')
        self._urc(urcs)
        return index

    def _cmt_unit(self, raw: bytes) -> str | None:
        """The +CMT URC (header and body as one unit), or None when it cannot be shown."""
        if self._state.cmgf == 0:
            body = to_hex(raw, lowercase=self.quirks.lowercase_hex)
            return f"+CMT: ,{tpdu_length(raw)}\r\n{body}"
        record = text_record(raw, self._state.cscs)
        if record is None or record.scts is None:
            return None
        head = f'+CMT: "{record.address}",,"{record.scts}"'
        if self._state.csdh:
            head += (
                f',{record.toa},{record.first_octet},{record.pid},{record.dcs},'
                f'"{record.sca}",{record.tosca},{record.length}'
            )
        return f"{head}\r\n{record.body}"

    def _send_next_cmt(self) -> None:
        if self._cmt_outstanding or not self._cmt_queue:
            return
        raw = self._cmt_queue[0]
        unit = self._cmt_unit(raw) if self._online() else None
        if unit is None:  # went offline or to text mode meanwhile: it lands in storage
            self._cmt_queue.popleft()
            self._store_and_indicate(raw)
            self._send_next_cmt()
            return
        self._cmt_outstanding = True
        self._cmt_token += 1
        token = self._cmt_token
        self._schedule(self.cnma_timeout, lambda: self._cmt_timeout(token))
        self._urc([unit])

    def _cmt_timeout(self, token: int) -> None:
        if token != self._cmt_token or not self._cmt_outstanding:
            return
        raw = self._cmt_queue.popleft()
        self._cmt_outstanding = False
        self._cmt_token += 1
        log.debug("no AT+CNMA within %.1fs: message stored instead", self.cnma_timeout)
        self._store_and_indicate(raw)
        self._send_next_cmt()

    def _settle_cmts(self) -> None:
        """Reset or unplug: unacknowledged +CMT messages are kept (silently stored)."""
        self._cmt_outstanding = False
        self._cmt_token += 1
        while self._cmt_queue:
            self._store_received(self._cmt_queue.popleft())

    def _registration_urcs(self, before: int) -> None:
        if self.registration_stat() == before:
            return
        lines = []
        for prefix, attr, area in REGISTRATION_URCS:
            if prefix != "+CREG" and prefix not in self._profile.optional_commands:
                continue
            if getattr(self._state, attr) >= 1:
                lines.append(registration_line(self, prefix, attr, area, urc=True))
        self._urc(lines)

    def _do_reset(self) -> None:
        """After the reset command's OK: silence, power-on settings, then the boot URCs."""
        self._settle_cmts()
        self._state = self._power_on_state()
        self._reset_line_state()
        self._silent_until = time.monotonic() + self.reset_silence
        self._schedule(self.reset_silence, self._boot)

    def _boot(self) -> None:
        self._silent_until = 0.0
        cpin = self._state.pin_state
        lines = [line.format(cpin=cpin) for line in self._profile.boot_urcs]
        if cpin == PIN_READY:
            lines += self._profile.ready_urcs
        self._urc(lines)

    def _reset_line_state(self) -> None:
        self._inbuf.clear()
        self._prompt = None
        self._prompt_buf.clear()
        self._held_urcs.clear()
        self._deferred_urcs.clear()
        self._indication_buffer.clear()

    # -- internals: the pty ----------------------------------------------------------------

    def _open_port(self, avoid: str | None) -> None:
        if self._loopback:
            self._pump = LoopbackPump(self._from_host, path=self.port)
            return
        port = PtyPort.open(avoid_path=avoid)
        self._pump = PtyPump(port, baud=lambda: self.quirks.baud)
        self._slave_path = port.slave_path
        if self._link is not None:
            try:
                self._link.point_at(port.slave_path)
            except OSError:
                port.close()
                self._pump = None
                raise

    def _from_host(self, data: bytes) -> None:
        with self._lock:
            if isinstance(self._pump, LoopbackPump) and not self._stopped:
                self._feed(data)

    def _close_port(self) -> None:
        if self._link is not None:
            self._link.remove()
        if self._pump is not None:
            self._pump.close()
            self._pump = None

    def _do_vanish(self) -> None:
        if self._vanished or self._pump is None:
            return
        self._vanished = True
        self._settle_cmts()
        self._reset_line_state()
        self._close_port()

    def _do_reappear(self, new_path: bool) -> str:
        if self._stopped or not self._started:
            raise SimulatorError("the simulated modem is not running")
        old = self._slave_path
        self._do_vanish()
        self._open_port(avoid=old if new_path else None)
        self._state = self._power_on_state()
        self._silent_until = 0.0
        self._answers = 0
        self._vanished = False
        return self.port

    def _write(self, data: bytes) -> None:
        if self._pump is not None and data:
            self._pump.write(data)

    def _urc(self, units: list[str]) -> None:
        """Write unsolicited lines (one write), hold or defer them, or drop them offline."""
        if not units or not self._online():
            return
        if self.quirks.urc_inside_answer:
            self._held_urcs.extend(units)
            return
        if self._answering:
            self._deferred_urcs.extend(units)
            return
        self._write("".join(f"\r\n{unit}\r\n" for unit in units).encode("latin-1", "replace"))

    # -- internals: the thread ---------------------------------------------------------------

    def _wake(self) -> None:
        fd = self._wake_w
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, b"!")

    def _schedule(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_seq), action))
        if threading.current_thread() is not self._thread:
            self._wake()

    def _schedule_periodic(self, period: float, template: str) -> None:
        def fire() -> None:
            if self._state.curc:
                self._urc([template.format(rssi=self._signal[0])])
            self._schedule(period, fire)

        self._schedule(period, fire)

    def _chatter_tick(self) -> None:
        """With the ``chatter`` quirk: a vendor URC at a random (seeded) moment."""
        if self.quirks.chatter and self.random.random() < self.quirks.chatter:
            line = self.random.choice(self._profile.chatter_urcs)
            self._urc([line.format(rssi=self._signal[0])])
        self._schedule(self.random.uniform(0.2, 1.0), self._chatter_tick)

    def _call_in_thread(self, action: Callable[[], T]) -> T:
        """Run ``action`` (under the lock) in the modem's thread, which owns the pty fds."""
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            with self._lock:
                return action()
        done = threading.Event()
        outcome: list[Any] = []

        def request() -> None:
            try:
                outcome.append((True, action()))
            except Exception as exc:  # noqa: BLE001 -- re-raised in the calling thread
                outcome.append((False, exc))
            finally:
                done.set()

        with self._lock:
            self._requests.append(request)
        self._wake()
        if not done.wait(timeout=10.0):
            raise SimulatorError("the simulator thread did not answer")
        ok, value = outcome[0]
        if not ok:
            raise value
        result: T = value
        return result

    def _run(self) -> None:
        try:
            while not self._stop_event.is_set():
                self._loop_once()
        except Exception:
            log.exception("simulated modem thread failed")
            raise
        finally:
            self._run_requests()

    def _loop_once(self) -> None:
        with self._lock:
            wake_r = self._wake_r
            pump = self._pump
            master, wants_write = pump.select_fds() if pump is not None else (None, False)
            readers = [fd for fd in (wake_r, master) if fd is not None]
            writers = [master] if master is not None and wants_write else []
            timeout = _POLL
            if self._timers:
                timeout = min(_POLL, max(0.0, self._timers[0][0] - time.monotonic()))
        try:
            readable, writable, _ = select.select(readers, writers, [], timeout)
        except (OSError, ValueError):
            self._stop_event.wait(_POLL)
            return
        if wake_r is not None and wake_r in readable:
            with contextlib.suppress(OSError):
                os.read(wake_r, 4096)
        self._run_requests()
        if pump is not None and master is not None and master in readable:
            data = self._read_host(pump)
            if data:
                self._feed(data)
        with self._lock:
            if self._pump is pump and pump is not None and (writable or pump.pending):
                pump.flush()
        self._run_timers()

    def _run_requests(self) -> None:
        while True:
            with self._lock:
                if not self._requests:
                    return
                request = self._requests.popleft()
                request()

    def _run_timers(self) -> None:
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > time.monotonic():
                    return
                _deadline, _seq, action = heapq.heappop(self._timers)
                action()

    def _read_host(self, pump: Pump) -> bytes:
        with self._lock:
            if self._pump is not pump:
                return b""  # replaced or closed meanwhile
            data = pump.read()
        if not data:
            self._stop_event.wait(0.005)  # a hung-up master reads empty: do not spin
        return data

    # -- internals: commands -----------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        for byte in data:
            if self._prompt is not None:
                self._feed_prompt(byte)
            elif byte == 0x0D:
                line = self._inbuf.decode("latin-1")
                self._inbuf.clear()
                self._handle_line(line)
            elif byte == 0x0A:
                continue
            elif byte in (0x08, 0x7F):
                if self._inbuf:
                    self._inbuf.pop()
            elif len(self._inbuf) < _MAX_LINE:
                self._inbuf.append(byte)

    def _feed_prompt(self, byte: int) -> None:
        request = self._prompt
        assert request is not None
        if byte == 0x1A:  # Ctrl-Z: send
            text = self._prompt_buf.decode("latin-1")
            self._prompt = None
            self._prompt_buf.clear()
            with self._lock:
                if self._state.echo:
                    self._write(text.encode("latin-1"))
                reply = (request.finish or finish_cmgw)(self, request, text)
            self._answer([reply])
        elif byte == 0x1B:  # ESC: cancel
            self._prompt = None
            self._prompt_buf.clear()
            self._answer([Reply()])
        elif byte not in (0x0D, 0x0A) and len(self._prompt_buf) < _MAX_LINE:
            self._prompt_buf.append(byte)

    def _handle_line(self, line: str) -> None:
        # Leading control characters (a stray Ctrl-Z or ESC a host sends to abort a prompt,
        # line noise) are skipped, as modems wait for "AT".
        text = line.strip().lstrip("".join(map(chr, range(32))) + "\x7f\xff")
        if not text:
            return
        with self._lock:
            self._command_log.append(text)
            if self.quirks.hang or time.monotonic() < self._silent_until:
                return
            if self._state.echo:
                self._write((line + "\r").encode("latin-1", "replace"))
            try:
                commands = parse_line(text)
            except ValueError:
                commands = []
                replies = [Reply(final="ERROR")]
            else:
                replies = []
            if commands is None:
                return  # not an AT command: a real modem ignores it
            silent = self.quirks.silent_commands
            if silent and any(c.text.startswith(silent) for c in commands):
                return  # a command this modem never answers (a hung SIM read)
            before = self.registration_stat()
            self._answering = True
            for command in commands:
                reply = execute(self, command)
                replies.append(reply)
                if not reply.ok or reply.halt:
                    break
            if not replies:
                replies.append(Reply())
        slow = self.quirks.slow_commands
        extra = max((t for c in commands for p, t in slow.items() if c.text.startswith(p)),
                    default=0.0)
        self._answer(replies, registration_before=before, extra_delay=extra)

    def _answer(self, replies: list[Reply], registration_before: int | None = None,
                extra_delay: float = 0.0) -> None:
        """Write the answer (after the ``slow`` delay), then what it set in motion."""
        with self._lock:
            self._answering = True
            delay = self.quirks.slow + extra_delay
        if delay > 0:
            self._stop_event.wait(delay)
        with self._lock:
            self._answering = False
            if self.quirks.hang:
                self._after_answer.clear()
                self._deferred_urcs.clear()
                return
            self._answers += 1
            out = bytearray()
            every = self.quirks.garbage_every
            if every and self._answers % every == 0:
                out += GARBAGE
            out += self._format(replies).encode("latin-1", "replace")
            self._write(bytes(out))
            last = replies[-1]
            if last.prompt is not None:
                self._prompt = last.prompt
            deferred, self._deferred_urcs = self._deferred_urcs, []
            self._urc(deferred)
            if registration_before is not None:
                self._registration_urcs(registration_before)
            actions, self._after_answer = self._after_answer, []
            for action in actions:
                action()

    def _inside_lines(self) -> tuple[list[str], list[str]]:
        """Unsolicited lines to put inside this answer: (before its lines, before its final)."""
        lines = list(self.quirks.inside_answers)
        chatter = self._profile.chatter_urcs
        if chatter and self.quirks.chatter and self.random.random() < self.quirks.chatter:
            lines.append(self.random.choice(chatter).format(rssi=self._signal[0]))
        before: list[str] = []
        after: list[str] = []
        for line in lines:
            (before if self.random.random() < 0.5 else after).append(line)
        return before, after

    def _format(self, replies: list[Reply]) -> str:
        blank = self.quirks.extra_blank_lines
        parts: list[str] = []
        before, after = self._inside_lines()
        parts.extend(f"\r\n{unit}\r\n" for unit in before)
        for reply in replies:
            if reply.lines:
                joiner = "\r\n\r\n" if blank else "\r\n"
                parts.append("\r\n" + joiner.join(reply.lines) + ("\r\n\r\n" if blank else "\r\n"))
        held, self._held_urcs = self._held_urcs, []
        parts.extend(f"\r\n{unit}\r\n" for unit in (*held, *after))
        last = replies[-1]
        if last.prompt is not None:
            parts.append("\r\n> ")
        else:
            parts.append(f"\r\n{last.final}\r\n")
        return "".join(parts)


def encoder_module() -> Any:
    """modemd.sms's encoder (imported late: the simulator works without it in PDU mode)."""
    for name in ("modemd.sms.encode", "modemd.sms"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "encode_deliver") and hasattr(module, "encode_deliver_parts"):
            return module
    raise SimulatorError("modemd.sms.encode_deliver is not available (the codec is missing)")

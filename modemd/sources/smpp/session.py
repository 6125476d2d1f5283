"""One SMPP connection: bind, receive deliver_sm into the journal, answer after the commit.

smpplib builds and parses every PDU. Its ``Client`` is not used for the session because it
answers each deliver_sm as soon as its handler returns, one PDU at a time on a blocking
socket: that allows neither grouped commits nor a window. Here one thread owns the socket
(plain or TLS; never read and written from two threads): it reads PDUs, hands each deliver_sm
to the group committer, and writes the deliver_sm_resp when the committer says the record is
durable (the committer's callback only queues the answer and wakes this thread).

Flow control: at most ``window`` deliver_sm wait for their commit; past that the socket is
not read, so TCP pushes back on the SMSC. enquire_link goes out after ``enquire_link``
seconds of silence and is answered when the SMSC sends one; no answer within
``response_timeout`` ends the session (the bind reconnects).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from smpplib import command_codes, consts
from smpplib import smpp as smpp_pdu

from modemd.errors import ModemdError, StoreError
from modemd.sms.smpp import Alphabets
from modemd.sources.smpp.framing import Frame, Framer, FramingError
from modemd.store.committer import GroupCommitter
from modemd.store.journal import CommitResult, RawEntry

log = logging.getLogger(__name__)

BIND_COMMANDS = {"receiver": "bind_receiver", "transceiver": "bind_transceiver"}
_CODE = command_codes.commands
_NAME = {code: name for name, code in _CODE.items()}
ESME_ROK = consts.SMPP_ESME_ROK
#: "temporary application error": the SMSC keeps the message and retries (store failure)
ESME_RX_T_APPN = consts.SMPP_ESME_RX_T_APPN


class SessionError(ModemdError):
    """The session ended: connection lost, bind refused, protocol error, timeout."""


class BindRefused(SessionError):
    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"bind refused: 0x{status:08X} {consts.DESCRIPTIONS.get(status, '')}"
                         .rstrip())


#: the SMSC's requests that carry a message (or receipt) for the journal; each is answered
#: with its own _resp once committed. data_sm (section 4.7) is how some SMSCs deliver MO.
MESSAGE_COMMANDS = frozenset({"deliver_sm", "data_sm"})


class SubmitUnknown(SessionError):
    """The connection went before submit_sm_resp: the message may or may not have been sent."""


class SubmitRefused(SessionError):
    """The SMSC answered submit_sm with an error ``status`` (SMPP 3.4 section 5.1.3)."""

    def __init__(self, status: int, description: str) -> None:
        self.status = status
        super().__init__(f"submit_sm refused: 0x{status:08X} {description}".rstrip())


@dataclass(frozen=True, slots=True)
class SessionSettings:
    name: str
    host: str
    port: int
    system_id: str
    password: str | None = field(repr=False)  # never in a log line
    bind: Literal["receiver", "transceiver"] = "receiver"
    system_type: str = ""
    address_range: str = ""
    tls: bool = False
    tls_ca: str | None = None
    tls_insecure: bool = False
    connect_timeout: float = 10.0
    enquire_link: float = 30.0
    response_timeout: float = 10.0
    window: int = 256
    submit_window: int = 10
    alphabets: Alphabets = field(default_factory=Alphabets)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    message_id: str
    sequence: int


@dataclass
class SubmitRequest:
    """A submit_sm to send (transceiver binds): smpplib's submit_sm field names."""

    fields: dict[str, Any]
    future: Future[SubmitResult] = field(default_factory=Future)


class _Sequences:
    """Our request sequence numbers, 1 .. 0x7FFFFFFF (SMPP 3.4 section 3.2)."""

    def __init__(self) -> None:
        self._next = 0

    def next(self) -> int:
        self._next = self._next % 0x7FFFFFFF + 1
        return self._next


def build_pdu(command: str, sequence: int, **fields: Any) -> bytes:
    """The wire bytes of one PDU, built by smpplib."""
    pdu = smpp_pdu.make_pdu(command, sequence=0, **fields)
    pdu.sequence = sequence
    return bytes(pdu.generate())


class SmppSession:
    """One connection's life: ``run()`` returns when stopped and raises SessionError when
    the connection ends any other way."""

    def __init__(
        self,
        settings: SessionSettings,
        committer: GroupCommitter,
        *,
        stop: threading.Event,
        submits: deque[SubmitRequest] | None = None,
        on_bound: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.committer = committer
        self.stop_event = stop
        self.submits: deque[SubmitRequest] = submits if submits is not None else deque()
        self.on_bound = on_bound
        self.clock = clock
        self._sock: socket.socket | None = None
        self._framer = Framer()
        self._sequences = _Sequences()
        # (sequence, status, answer command) to send
        self._answers: deque[tuple[int, int, str]] = deque()
        self._answers_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._closed = False
        self.in_flight = 0  # deliver_sm waiting for their commit
        self._backlog: deque[Frame] = deque()  # read, not yet handled (the window is full)
        self._in_flight_submits: dict[int, SubmitRequest] = {}
        self._enquire_sent_at: float | None = None
        self._last_heard = clock()
        self.received = 0
        self.duplicates = 0

    # --- the committer's side (another thread) ---------------------------------------------

    def _committed(self, sequence: int, answer: str,
                   ) -> Callable[[CommitResult | None, StoreError | None], None]:
        def done(result: CommitResult | None, error: StoreError | None) -> None:
            if result is not None and not result.inserted:
                self.duplicates += 1
            status = ESME_ROK if result is not None else ESME_RX_T_APPN
            with self._answers_lock:
                if self._closed:
                    return  # the SMSC resends it on the next session: same id, no loss
                self._answers.append((sequence, status, answer))
                self._wake_locked()
        return done

    def wake(self) -> None:
        """Wake the session thread (new submits); safe from any thread, also after close."""
        with self._answers_lock:
            if not self._closed:
                self._wake_locked()

    def _wake_locked(self) -> None:
        # under _answers_lock, so the pipe is not closed (and its number reused) meanwhile
        with contextlib.suppress(BlockingIOError):  # full: a wake is pending anyway
            os.write(self._wake_w, b"\0")

    # --- life ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._connect()
            self._bind()
            self.on_bound()
            self._loop()
        finally:
            self._close()

    def _connect(self) -> None:
        s = self.settings
        try:
            raw = socket.create_connection((s.host, s.port), timeout=s.connect_timeout)
        except OSError as exc:
            raise SessionError(f"cannot connect to {s.host}:{s.port}: {exc}") from exc
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if s.tls:
            context = ssl.create_default_context(cafile=s.tls_ca)
            if s.tls_insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            try:
                self._sock = context.wrap_socket(raw, server_hostname=s.host)
            except (ssl.SSLError, OSError) as exc:
                raw.close()
                raise SessionError(f"TLS with {s.host}:{s.port} failed: {exc}") from exc
        else:
            self._sock = raw
        self._sock.settimeout(s.response_timeout)

    def _bind(self) -> None:
        s = self.settings
        command = BIND_COMMANDS[s.bind]
        sequence = self._sequences.next()
        self._send(build_pdu(command, sequence, system_id=s.system_id,
                             password=s.password or "", system_type=s.system_type,
                             address_range=s.address_range))
        deadline = self.clock() + s.response_timeout
        while self.clock() < deadline:
            frames = self._read()
            for index, frame in enumerate(frames):
                if frame.command_id == _CODE[command + "_resp"] and frame.sequence == sequence:
                    if frame.status != ESME_ROK:
                        raise BindRefused(frame.status)
                    log.info("smpp %s: bound as %s to %s:%d", s.name, s.bind, s.host, s.port)
                    # deliver_sm may follow the answer in the same read
                    for later in frames[index + 1 :]:
                        self._handle(later)
                    return
                self._handle(frame)  # an SMSC may send enquire_link before the answer
        raise SessionError(f"no answer to {command} within {s.response_timeout:g} s")

    def _loop(self) -> None:
        s = self.settings
        while not self.stop_event.is_set():
            self._send_answers()
            self._send_submits()
            self._work_backlog()
            wait = self._keepalive()
            room = self.in_flight < s.window and not self._backlog
            watch: list[Any] = [self._wake_r]
            if room:
                watch.append(self._sock)
                if self._pending_tls():
                    wait = 0.0  # decrypted bytes already buffered: select would not see them
            readable, _, _ = select.select(watch, [], [], wait)
            if self._wake_r in readable:
                self._drain_wake()
            if room and (self._sock in readable or self._pending_tls()):
                self._backlog.extend(self._read())
                self._work_backlog()
        self._unbind()

    def _work_backlog(self) -> None:
        """Handle read PDUs while the window has room; the rest wait, the socket unread."""
        while self._backlog and self.in_flight < self.settings.window:
            self._handle(self._backlog.popleft())

    def _keepalive(self) -> float:
        """Send enquire_link when the line was quiet; how long select may wait."""
        s = self.settings
        now = self.clock()
        if self._enquire_sent_at is not None:
            left = s.response_timeout - (now - self._enquire_sent_at)
            if left < 0:
                raise SessionError(f"no enquire_link_resp within {s.response_timeout:g} s")
            return min(1.0, left)
        quiet = now - self._last_heard
        if quiet >= s.enquire_link:
            self._enquire_sent_at = now
            self._send(build_pdu("enquire_link", self._sequences.next()))
            return min(1.0, s.response_timeout)
        return min(1.0, s.enquire_link - quiet)

    # --- PDUs in ---------------------------------------------------------------------------

    def _handle(self, frame: Frame) -> None:
        self._last_heard = self.clock()
        command = _NAME.get(frame.command_id)
        if command in MESSAGE_COMMANDS:
            self.received += 1
            self.in_flight += 1
            self.committer.submit(
                RawEntry(modem=self.settings.name, mode="smpp", raw=frame.raw,
                         storage=self.settings.alphabets.stored(), sim_index=frame.sequence),
                self._committed(frame.sequence, f"{command}_resp"))
        elif command == "enquire_link":
            self._send(build_pdu("enquire_link_resp", frame.sequence))
        elif command == "enquire_link_resp":
            self._enquire_sent_at = None
        elif command == "submit_sm_resp":
            self._submit_answered(frame)
        elif command == "unbind":
            self._send(build_pdu("unbind_resp", frame.sequence))
            raise SessionError("the SMSC unbound")
        elif command == "generic_nack":
            log.warning("smpp %s: generic_nack 0x%08X for sequence %d", self.settings.name,
                        frame.status, frame.sequence)
            request = self._in_flight_submits.pop(frame.sequence, None)
            if request is not None:
                request.future.set_exception(SessionError(f"generic_nack 0x{frame.status:08X}"))
        elif command == "alert_notification":
            pass  # no answer is defined; MO does not depend on it
        elif command is not None and command.endswith("_resp"):
            pass
        else:
            # other requests: refused so the SMSC does not wait for an answer
            log.warning("smpp %s: %s (0x%08X) is not supported; answered generic_nack",
                        self.settings.name, command or "unknown command", frame.command_id)
            self._send(build_pdu("generic_nack", frame.sequence,
                                 status=consts.SMPP_ESME_RINVCMDID))

    def _read(self) -> list[Frame]:
        assert self._sock is not None
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            return []
        except ssl.SSLWantReadError:
            return []
        except OSError as exc:
            raise SessionError(f"connection lost: {exc}") from exc
        if not data:
            raise SessionError("the SMSC closed the connection")
        try:
            return self._framer.feed(data)
        except FramingError as exc:  # no way to find the next PDU: start a new session
            raise SessionError(f"protocol error: {exc}") from exc

    def _pending_tls(self) -> bool:
        return isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    # --- PDUs out ------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise SessionError(f"connection lost while sending: {exc}") from exc

    def _send_answers(self) -> None:
        with self._answers_lock:
            answers = list(self._answers)
            self._answers.clear()
        if not answers:
            return
        self.in_flight -= len(answers)
        self._send(b"".join(build_pdu(answer, sequence, status=status)
                            for sequence, status, answer in answers))

    def _send_submits(self) -> None:
        while self.submits and len(self._in_flight_submits) < self.settings.submit_window:
            request = self.submits.popleft()
            if not request.future.set_running_or_notify_cancel():
                continue
            sequence = self._sequences.next()
            self._in_flight_submits[sequence] = request
            self._send(build_pdu("submit_sm", sequence, **request.fields))

    def _submit_answered(self, frame: Frame) -> None:
        request = self._in_flight_submits.pop(frame.sequence, None)
        if request is None:
            return
        if frame.status != ESME_ROK:
            request.future.set_exception(SubmitRefused(
                frame.status, consts.DESCRIPTIONS.get(frame.status, "")))
            return
        pdu = smpp_pdu.parse_pdu(frame.raw, sequence=0, allow_unknown_opt_params=True)
        message_id = pdu.message_id.decode("latin-1") if isinstance(pdu.message_id, bytes) \
            else str(pdu.message_id or "")
        request.future.set_result(SubmitResult(message_id=message_id, sequence=frame.sequence))

    def _unbind(self) -> None:
        """A clean goodbye; answers not yet sent are left to the SMSC's resend."""
        try:
            self._send_answers()
            self._send(build_pdu("unbind", self._sequences.next()))
            deadline = self.clock() + min(2.0, self.settings.response_timeout)
            while self.clock() < deadline:
                for frame in self._read():
                    if frame.command_id == _CODE["unbind_resp"]:
                        return
                    if frame.command_id == _CODE["submit_sm_resp"]:
                        self._submit_answered(frame)  # a send in flight learns how it went
                    # a deliver_sm now is not committed: the SMSC sends it again
        except SessionError:
            return

    def _close(self) -> None:
        with self._answers_lock:
            self._closed = True
        for request in self._in_flight_submits.values():
            request.future.set_exception(SubmitUnknown(
                "the connection went before submit_sm_resp; the message may have been sent"))
        self._in_flight_submits.clear()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

"""An AT session: one command in flight over a transport, unsolicited codes handed off.

Bytes from the transport go into the sans-IO parser and its events are routed: information
lines and the final result to the command in flight, URCs to ``on_urc`` (which must not block:
the driver puts them on its queue). Who reads the transport depends on the mode:

* driven (the default): the caller's thread. ``execute()`` reads until its own final result
  and ``pump()`` is the idle wait between commands; another thread ends that wait with
  :meth:`ATSession.interrupt`. No thread hop per line: the modem worker reads its own port.
* threaded (after :meth:`ATSession.start`): a reader thread reads all the time, for callers
  that must see URCs while they wait on something else (the console waits on stdin).

Commands are serialised by a lock and each waits for its final result with its own timeout: a
bound on the whole answer, or, for a listing (``progress=True``), "no byte for that long" so a
long answer on a slow line completes.

The transport is anything with ``read()``, ``write()``, ``close()`` and ``port``
(:class:`~modemd.transport.Transport`): the serial port, or an in-process loopback in tests.
Command text is shown only redacted (:func:`~modemd.at.redact.redact`): a PIN never reaches a
log line or an error message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from modemd.at.answers import Answer
from modemd.at.events import ATEvent, FinalResult, Garbage, InfoLine, Prompt, Urc
from modemd.at.parser import DEFAULT_LINE_PREFIX_URCS, ATParser
from modemd.at.redact import redact
from modemd.errors import CommandFailed, CommandTimeout, PromptTimeout, TransportError
from modemd.transport import Transport

log = logging.getLogger(__name__)

#: s: the longest read on a transport that cannot be interrupted (a pyserial URL), so that a
#: driven session's idle wait still notices interrupt() and close() that soon.
UNINTERRUPTIBLE_READ = 0.1


@dataclass(frozen=True, slots=True)
class Response:
    command: str
    lines: tuple[str, ...]
    final: FinalResult
    items: tuple[InfoLine, ...] = ()  # the same lines, with which are entry bodies

    def first(self, prefix: str) -> str | None:
        """The text after ``prefix:`` on the first line that has it."""
        for line in self.lines:
            if line.startswith(prefix + ":"):
                return line[len(prefix) + 1 :].strip()
        return None


@dataclass
class _Pending:
    command: str
    lines: list[InfoLine] = field(default_factory=list)
    final: FinalResult | None = None
    prompt: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    progress_at: float = field(default_factory=time.monotonic)

    def wait(self, timeout: float, *, progress: bool) -> bool:
        """Wait for the answer: at most ``timeout`` s, or ``timeout`` s without a byte."""
        start = time.monotonic()
        while True:
            since = self.progress_at if progress else start
            remaining = since + timeout - time.monotonic()
            if remaining <= 0:
                return self.done.is_set()
            if self.done.wait(remaining):
                return True


class ATSession:
    """Drives one modem port: ``execute()`` commands, receive URCs via ``on_urc``.

    Driven unless :meth:`start` is called: then only the thread that calls ``execute()`` and
    ``pump()`` may read (other threads may call :meth:`interrupt` and :meth:`close`).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        on_urc: Callable[[Urc], None],
        on_garbage: Callable[[Garbage], None] | None = None,
        on_dead: Callable[[], None] = lambda: None,
        urc_prefixes: Iterable[str] | None = None,
        line_prefix_urcs: Iterable[str] = DEFAULT_LINE_PREFIX_URCS,
        name: str = "modem",
    ) -> None:
        self.transport = transport
        self.name = name
        self._on_urc = on_urc
        self._on_garbage = on_garbage
        self._on_dead = on_dead  # told once the port failed (the worker may be waiting)
        self._parser = (
            ATParser(line_prefix_urcs=line_prefix_urcs)
            if urc_prefixes is None
            else ATParser(urc_prefixes=urc_prefixes, line_prefix_urcs=line_prefix_urcs)
        )
        self.last_read_at = time.monotonic()  # when bytes last came from the modem
        self._command_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pending: _Pending | None = None
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._failure: TransportError | None = None
        self.dead = threading.Event()  # set when the transport failed (port vanished)
        interruptible = getattr(transport, "interruptible", True)
        self._read_cap = None if interruptible and hasattr(transport, "interrupt") \
            else UNINTERRUPTIBLE_READ

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._reader = threading.Thread(
            target=self._read_loop, name=f"at-reader-{self.name}", daemon=True
        )
        self._reader.start()

    def close(self) -> None:
        self._stop.set()
        self.interrupt()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(2.0)
        self.transport.close()
        self._fail_pending()

    def interrupt(self) -> None:
        """Make a blocking read (a driven session's :meth:`pump`) return now; one that starts
        after this call returns at once (the transport keeps the request)."""
        interrupt = getattr(self.transport, "interrupt", None)
        if interrupt is not None:
            interrupt()

    def pump(self, timeout: float) -> None:
        """A driven session's idle wait: read and dispatch what comes (URCs to ``on_urc``)
        until a URC came, ``timeout`` s passed, :meth:`interrupt` was called or the port
        failed (then ``dead`` is set and ``on_dead`` told)."""
        if self._reader is not None:  # threaded: the reader thread reads
            self._stop.wait(timeout)
            return
        with self._command_lock:
            deadline = time.monotonic() + timeout
            while not self._stop.is_set() and not self.dead.is_set():
                read, urcs = self._read_once(max(deadline - time.monotonic(), 0.0))
                if not read or urcs or time.monotonic() >= deadline:
                    return  # timed out, interrupted, or something to handle

    # --- commands ---------------------------------------------------------------------

    def execute(
        self,
        command: str,
        *,
        timeout: float = 10.0,
        response_prefixes: Sequence[str] = (),
        check: bool = True,
        data: bytes | None = None,
        answer: Answer | None = None,
        progress: bool = False,
    ) -> Response:
        """Send ``command`` and wait for its final result.

        ``answer`` declares what the answer looks like (else ``response_prefixes``, the older
        form, with any non-URC line belonging). ``progress``: ``timeout`` is the longest
        silence, not a bound on the whole answer (listings). ``data`` is written after the
        ``> `` prompt (AT+CMGS/CMGW) followed by Ctrl-Z. Raises CommandTimeout,
        TransportError, or (with ``check``) CommandFailed; their text is redacted.
        """
        shown = redact(command)
        if data is not None and answer is not None and not answer.prompt:
            answer = replace(answer, prompt=True)
        with self._command_lock:
            if self._failure is not None:
                raise self._failure
            pending = _Pending(command)
            with self._state_lock:
                self._pending = pending
                self._parser.command_started(
                    command, response_prefixes=response_prefixes,
                    expects_prompt=data is not None, answer=answer,
                )
            try:
                self.transport.write(command.encode("latin-1") + b"\r")
                if data is not None:
                    if not self._await(pending, timeout, progress=False):
                        # No prompt: nothing was written. ESC ends a prompt that comes late,
                        # so the next command is not taken as the PDU.
                        with self._state_lock:
                            self._parser.command_aborted()
                        self.transport.write(b"\x1b")
                        raise PromptTimeout(shown, timeout)
                    if pending.prompt:  # else the final result came instead (an error)
                        pending.done.clear()
                        self.transport.write(data + b"\x1a")
                if not self._await(pending, timeout, progress=progress):
                    with self._state_lock:
                        self._parser.command_aborted()
                    raise CommandTimeout(shown, timeout)
            finally:
                with self._state_lock:
                    self._pending = None
            if pending.final is None:
                raise self._failure or TransportError("session closed", port=self.transport.port)
            items = tuple(pending.lines)
            response = Response(shown, tuple(i.text for i in items), pending.final, items)
            if check and not pending.final.ok:
                raise CommandFailed(shown, pending.final.kind.value, pending.final.code)
            return response

    def _await(self, pending: _Pending, timeout: float, *, progress: bool) -> bool:
        """Wait for the prompt or the final result: the reader thread's, or read it here."""
        if self._reader is not None:
            return pending.wait(timeout, progress=progress)
        start = time.monotonic()
        while not pending.done.is_set():
            if self._stop.is_set():
                return True  # closed: execute() raises the failure
            since = pending.progress_at if progress else start
            remaining = since + timeout - time.monotonic()
            if remaining <= 0:
                return False
            self._read_once(remaining)
        return True

    # --- reading ---------------------------------------------------------------------------

    def _read_loop(self) -> None:
        while not self._stop.is_set() and not self.dead.is_set():
            self._read_once(None)

    def _read_once(self, timeout: float | None) -> tuple[bool, int]:
        """One read (at most ``timeout`` s; None: the transport's own read timeout), its
        events dispatched. Returns whether bytes came, and how many URCs they held."""
        if timeout is not None and self._read_cap is not None:
            timeout = min(timeout, self._read_cap)
        try:
            data = self.transport.read(timeout)
        except TransportError as exc:
            if not self._stop.is_set() and not self.dead.is_set():
                log.warning("%s: %s", self.name, exc)
                self._failure = exc
                self.dead.set()
                self._fail_pending()
                self._on_dead()
            return False, 0
        if not data:
            return False, 0
        with self._state_lock:
            self.last_read_at = time.monotonic()
            if self._pending is not None:
                self._pending.progress_at = self.last_read_at
            events = self._parser.feed(data)
        urcs = 0
        for event in events:
            urcs += self._dispatch(event)
        return True, urcs

    def _dispatch(self, event: ATEvent) -> int:
        """Route one event; 1 if it was a URC."""
        if isinstance(event, Urc):
            self._on_urc(event)
            return 1
        if isinstance(event, Garbage):
            shown = redact(event.data[:60].decode("latin-1"))  # a garbled echo may hold a PIN
            log.debug("%s: ignored %r (%s)", self.name, shown, event.reason)
            if self._on_garbage is not None:
                self._on_garbage(event)
            return 0
        pending = self._pending
        if pending is None:
            return 0
        if isinstance(event, InfoLine):
            pending.lines.append(event)
        elif isinstance(event, Prompt):
            pending.prompt = True
            pending.done.set()
        elif isinstance(event, FinalResult):
            pending.final = event
            pending.done.set()
        return 0

    def _fail_pending(self) -> None:
        pending = self._pending
        if pending is not None:
            pending.done.set()

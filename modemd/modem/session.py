"""An AT session: one command in flight over a transport, unsolicited codes handed off.

A reader thread moves bytes from the transport into the sans-IO parser and routes its events:
information lines and the final result to the command in flight, URCs to ``on_urc`` (which
must not block: the driver puts them on its queue). Commands are serialised by a lock and each
waits for its final result with its own timeout: a bound on the whole answer, or, for a
listing (``progress=True``), "no byte for that long" so a long answer on a slow line completes.

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
    """Drives one modem port: ``execute()`` commands, receive URCs via ``on_urc``."""

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

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._reader = threading.Thread(
            target=self._read_loop, name=f"at-reader-{self.name}", daemon=True
        )
        self._reader.start()

    def close(self) -> None:
        self._stop.set()
        interrupt = getattr(self.transport, "interrupt", None)
        if interrupt is not None:
            interrupt()  # a blocking read returns now
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(2.0)
        self.transport.close()
        self._fail_pending()

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
                    if not pending.wait(timeout, progress=False):
                        # No prompt: nothing was written. ESC ends a prompt that comes late,
                        # so the next command is not taken as the PDU.
                        with self._state_lock:
                            self._parser.command_aborted()
                        self.transport.write(b"\x1b")
                        raise PromptTimeout(shown, timeout)
                    if pending.prompt:  # else the final result came instead (an error)
                        pending.done.clear()
                        self.transport.write(data + b"\x1a")
                if not pending.wait(timeout, progress=progress):
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

    # --- the reader thread ----------------------------------------------------------------

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.transport.read()
            except TransportError as exc:
                if not self._stop.is_set():
                    log.warning("%s: %s", self.name, exc)
                    self._failure = exc
                    self.dead.set()
                    self._fail_pending()
                    self._on_dead()
                return
            if data:
                with self._state_lock:
                    self.last_read_at = time.monotonic()
                    if self._pending is not None:
                        self._pending.progress_at = self.last_read_at
                    events = self._parser.feed(data)
                for event in events:
                    self._dispatch(event)

    def _dispatch(self, event: ATEvent) -> None:
        if isinstance(event, Urc):
            self._on_urc(event)
            return
        if isinstance(event, Garbage):
            shown = redact(event.data[:60].decode("latin-1"))  # a garbled echo may hold a PIN
            log.debug("%s: ignored %r (%s)", self.name, shown, event.reason)
            if self._on_garbage is not None:
                self._on_garbage(event)
            return
        pending = self._pending
        if pending is None:
            return
        if isinstance(event, InfoLine):
            pending.lines.append(event)
        elif isinstance(event, Prompt):
            pending.prompt = True
            pending.done.set()
        elif isinstance(event, FinalResult):
            pending.final = event
            pending.done.set()

    def _fail_pending(self) -> None:
        pending = self._pending
        if pending is not None:
            pending.done.set()

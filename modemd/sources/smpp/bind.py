"""An ``[[smpp]]`` bind: a thread that keeps one session to the SMSC, reconnecting with a
capped exponential backoff, and the small interface a sender uses on a transceiver bind."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modemd.sms.smpp import Alphabets
from modemd.sources.smpp.session import (
    BindRefused,
    SessionError,
    SessionSettings,
    SmppSession,
    SubmitRequest,
    SubmitResult,
)
from modemd.store.committer import GroupCommitter

if TYPE_CHECKING:
    from modemd.config import SmppConfig

log = logging.getLogger(__name__)


class SmppBind:
    """Receives deliver_sm from one SMSC account into the journal, through *committer*.

    ``state`` is ``connecting``, ``bound``, ``backoff`` or ``stopped``; ``reconnects`` counts
    sessions that ended other than by stop().
    """

    def __init__(
        self,
        settings: SessionSettings,
        committer: GroupCommitter,
        *,
        reconnect_min: float = 1.0,
        reconnect_max: float = 60.0,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.committer = committer
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: SmppSession | None = None
        self._submits: deque[SubmitRequest] = deque()
        self.state = "stopped"
        self.last_error: str | None = None
        self.reconnects = 0
        self.bound = threading.Event()
        self.received = 0
        self.changed_at = time.time()
        # told (on the bind's thread) when it binds, loses its session or stops: the
        # retained /smpp/<bind>/state; never on every reconnect attempt of a long outage
        self.on_state: Callable[[SmppBind], None] | None = None
        self._reported_error: str | None = None
        self._report_lock = threading.Lock()

    # --- thread ----------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self.state = "connecting"
        self._thread = threading.Thread(target=self._run, name=f"smpp-{self.name}",
                                        daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        session = self._session
        if session is not None:
            session.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self.state = "stopped"

    def _run(self) -> None:
        delay = self.reconnect_min
        while not self._stop.is_set():
            self.state = "connecting"
            session = SmppSession(self.settings, self.committer, stop=self._stop,
                                  submits=self._submits, on_bound=self._on_bound)
            self._session = session
            try:
                session.run()
            except BindRefused as exc:
                self._ended(str(exc), level=logging.ERROR)
            except SessionError as exc:
                self._ended(str(exc), level=logging.WARNING)
            except Exception as exc:
                # a bug must not end reception for good: log it, reconnect as after an error
                log.exception("smpp %s: unexpected error in the session", self.name)
                self._ended(f"internal error: {exc!r}", level=logging.ERROR)
            finally:
                self.received += session.received
                self._session = None
                was_bound = self.bound.is_set()
                self.bound.clear()
            if self._stop.is_set():
                break
            self.state = "backoff"
            if was_bound or self.last_error != self._reported_error:
                self._changed()  # offline now, with the reason (not again for the same one)
            if was_bound:
                delay = self.reconnect_min  # a working bind that dropped: retry soon
            log.info("smpp %s: reconnecting in %.1f s", self.name, delay)
            self._stop.wait(delay)
            delay = min(self.reconnect_max, delay * 2)
        self.state = "stopped"
        self._changed()

    def _on_bound(self) -> None:
        self.state = "bound"
        self.last_error = None
        self.bound.set()
        self._changed()

    def report(self) -> None:
        """Tell ``on_state`` the bind's state now (as at each change)."""
        self._changed()

    def _changed(self) -> None:
        # one report at a time, in order: a report read before a change must not be
        # published after the change's own (a stale "not bound" left retained)
        with self._report_lock:
            self.changed_at = time.time()
            self._reported_error = self.last_error
            if self.on_state is None:
                return
            try:
                self.on_state(self)
            except Exception:
                # reporting must never end the session (published again at the next change)
                log.exception("smpp %s: could not report the bind's state", self.name)

    def _ended(self, reason: str, *, level: int) -> None:
        self.reconnects += 1
        self.last_error = reason
        log.log(level, "smpp %s: session ended: %s", self.name, reason)

    # --- sending (transceiver binds) ----------------------------------------------------------

    def submit(self, **fields: Any) -> Future[SubmitResult]:
        """Queue one submit_sm (smpplib field names: destination_addr, short_message, ...).

        The future resolves with the SMSC's message id on submit_sm_resp; it fails with
        SubmitUnknown if the connection went after sending and before the answer (the
        message may have gone out: it is never sent again by this bind), or SessionError
        if the SMSC refused it. Requests not yet sent wait for the next session.
        """
        if self.settings.bind != "transceiver":
            raise SessionError(f"smpp {self.name} is bound as a receiver; it cannot send")
        request = SubmitRequest(fields=dict(fields))
        self._submits.append(request)
        session = self._session
        if session is not None:
            session.wake()
        return request.future

    def status(self) -> dict[str, Any]:
        session = self._session
        return {
            "bind": self.name,
            "state": self.state,
            "received": self.received + (session.received if session else 0),
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }

    def document(self) -> dict[str, Any]:
        """The retained ``<base>/<gw>/smpp/<bind>/state`` payload."""
        settings = self.settings
        return {
            **self.status(),
            "online": self.bound.is_set(),
            "bind_type": settings.bind,
            "host": settings.host,
            "port": settings.port,
            "system_id": settings.system_id,
            "updated_at": datetime.fromtimestamp(self.changed_at, UTC).isoformat(
                timespec="seconds"),
        }


def bind_from_config(config: SmppConfig, committer: GroupCommitter) -> SmppBind:
    """The bind an ``[[smpp]]`` entry describes (its password read from its file now)."""
    password = config.password()
    settings = SessionSettings(
        name=config.name, host=config.host, port=config.port, system_id=config.system_id,
        password=password.get_secret_value() if password else None, bind=config.bind,
        system_type=config.system_type, address_range=config.address_range, tls=config.tls,
        tls_ca=str(config.tls_ca) if config.tls_ca else None,
        tls_insecure=config.tls_insecure, enquire_link=config.enquire_link,
        response_timeout=config.response_timeout, window=config.window,
        submit_window=config.submit_window,
        alphabets=Alphabets(config.default_alphabet, config.ia5_alphabet),
    )
    return SmppBind(settings, committer, reconnect_min=config.reconnect_min,
                    reconnect_max=config.reconnect_max)

"""A driven AT session reads its port on the caller's thread (issue 18: no thread hop per line).

The same behaviour as with a reader thread: answers, URCs inside them (in order, after the
answer's lines), the prompt of AT+CMGS, a vanished port, close() from another thread; and an
idle ``pump()`` that a URC, ``interrupt()`` or its timeout ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from modemd.at.answers import NOTHING, entries, prefixed
from modemd.errors import CommandTimeout, TransportError
from modemd.modem.session import ATSession
from modemd.transport import LoopbackTransport
from tests.helpers import unique_pdus, wait_until
from tests.test_driver_loopback import journalled, loopback, running


@contextmanager
def driven(modem: Callable[[LoopbackTransport, bytes], None], *, threaded: bool = False,
           ) -> Iterator[tuple[ATSession, LoopbackTransport, list[tuple[str, str]]]]:
    transport = LoopbackTransport()
    transport.connect(lambda data: modem(transport, data))
    transport.open()
    seen: list[tuple[str, str]] = []  # (URC name, thread name)
    session = ATSession(transport, name="t",
                        on_urc=lambda urc: seen.append((urc.name,
                                                        threading.current_thread().name)))
    if threaded:
        session.start()
    try:
        yield session, transport, seen
    finally:
        session.close()


def answers(transport: LoopbackTransport, data: bytes) -> None:
    if data.startswith(b"AT+CSQ"):
        transport.deliver(b"\r\n+CSQ: 20,99\r\n\r\n+CMTI: \"SM\",3\r\n\r\nOK\r\n")
    elif data.startswith(b"AT+CMGS"):
        transport.deliver(b"\r\n> ")
    elif data.endswith(b"\x1a"):
        transport.deliver(b"\r\n+CMGS: 7\r\n\r\nOK\r\n")
    elif data.startswith(b"AT"):
        transport.deliver(b"\r\nOK\r\n")


@pytest.mark.parametrize("threaded", [False, True])
def test_a_urc_inside_an_answer_is_told_and_not_taken_as_its_line(threaded: bool) -> None:
    with driven(answers, threaded=threaded) as (session, _transport, seen):
        response = session.execute("AT+CSQ", answer=prefixed("+CSQ"))
        wait_until(lambda: seen, what="the URC")
        assert response.lines == ("+CSQ: 20,99",)
        assert [name for name, _ in seen] == ["+CMTI"]
        # driven: told on the thread that executes (the driver queues it for after the command)
        assert (seen[0][1] == threading.current_thread().name) is not threaded


def test_a_driven_session_has_no_reader_thread_and_sends_after_the_prompt() -> None:
    with driven(answers) as (session, transport, _seen):
        assert not [t for t in threading.enumerate() if t.name.startswith("at-reader")]
        response = session.execute("AT+CMGS=20", answer=prefixed("+CMGS"), data=b"0011")
        assert response.first("+CMGS") == "7"
        assert transport.written.endswith(b"0011\x1a")


def test_a_driven_command_times_out_on_its_own_deadline() -> None:
    with driven(lambda transport, data: None) as (session, _transport, _seen):
        started = time.monotonic()
        with pytest.raises(CommandTimeout):
            session.execute("AT", timeout=0.3, answer=NOTHING)
        assert 0.3 <= time.monotonic() - started < 1.0


def test_pump_ends_on_a_urc_on_interrupt_or_on_its_timeout() -> None:
    with driven(answers) as (session, transport, seen):
        started = time.monotonic()
        session.pump(0.2)
        assert 0.2 <= time.monotonic() - started < 1.0 and not seen
        transport.deliver(b"\r\n+CMTI: \"SM\",1\r\n")
        session.pump(5.0)
        assert [name for name, _ in seen] == ["+CMTI"]
        threading.Timer(0.2, session.interrupt).start()
        started = time.monotonic()
        session.pump(5.0)
        assert time.monotonic() - started < 2.0
        session.interrupt()  # before the wait: not lost
        started = time.monotonic()
        session.pump(5.0)
        assert time.monotonic() - started < 0.5


def test_a_port_vanishing_under_pump_marks_the_session_dead() -> None:
    told: list[bool] = []
    transport = LoopbackTransport()
    transport.open()
    session = ATSession(transport, on_urc=lambda urc: None, on_dead=lambda: told.append(True))
    threading.Timer(0.2, transport.vanish).start()
    session.pump(5.0)
    assert session.dead.is_set() and told == [True]
    with pytest.raises(TransportError):
        session.execute("AT", answer=NOTHING)
    session.close()


def test_close_from_another_thread_ends_a_driven_command() -> None:
    with driven(lambda transport, data: None) as (session, _transport, _seen):
        threading.Timer(0.2, session.close).start()
        started = time.monotonic()
        with pytest.raises(TransportError):
            session.execute("AT", timeout=10.0, answer=NOTHING)
        assert time.monotonic() - started < 2.0


def test_progress_and_last_read_follow_the_bytes_of_a_driven_listing() -> None:
    def trickle(transport: LoopbackTransport, data: bytes) -> None:
        def feed() -> None:
            for i in range(6):
                time.sleep(0.2)
                transport.deliver(f"\r\n+CMGL: {i},1,,2\r\n0000\r\n".encode())
            transport.deliver(b"\r\nOK\r\n")
        threading.Thread(target=feed, daemon=True).start()

    with driven(trickle) as (session, _transport, _seen):
        before = session.last_read_at
        answer = session.execute("AT+CMGL=4", answer=entries("+CMGL", "pdu"), timeout=0.6,
                                 progress=True)
        assert len(answer.lines) == 12
        assert session.last_read_at > before + 1.0


@pytest.mark.parametrize("over", ["loopback", "pty"])
def test_the_modem_worker_reads_its_own_port(tmp_path: Path, over: str) -> None:
    sim = loopback(over=over)
    try:
        with running(tmp_path, sim) as (driver, store):
            wait_until(driver.ready.is_set, what="ready")
            assert not [t for t in threading.enumerate() if t.name.startswith("at-reader")]
            sim.deliver(unique_pdus(1)[0])
            wait_until(lambda: journalled(store), what="received")
    finally:
        sim.stop()

"""The clocks modemd measures waiting on, injectable so tests drive time.

A Raspberry Pi has no real-time clock: it boots with an old wall-clock time and steps forward
(or back) when NTP syncs. Durations are therefore measured on CLOCK_MONOTONIC, which never
steps; the wall clock only dates things. ``boot_id`` says whether a monotonic reading stored by
an earlier process is comparable with this one (CLOCK_MONOTONIC starts again at each boot).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Protocol

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class Clock(Protocol):
    boot_id: str

    def wall(self) -> float: ...

    def monotonic(self) -> float: ...


def current_boot_id() -> str:
    """The kernel's id of this boot; a fresh random one where there is none (then stored
    monotonic readings are never trusted across processes, which is the safe side)."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip() or uuid.uuid4().hex
    except OSError:
        return uuid.uuid4().hex


class SystemClock:
    """``time.time`` and ``time.monotonic`` (CLOCK_MONOTONIC on Linux, shared by the processes
    of one boot)."""

    def __init__(self) -> None:
        self.boot_id = current_boot_id()

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock a test moves: ``advance`` moves both, ``step_wall`` only the wall clock (NTP),
    ``reboot`` starts a new boot (monotonic from near zero, new boot id)."""

    def __init__(self, wall: float = 1_790_000_000.0, mono: float = 1000.0,
                 boot_id: str = "boot-1") -> None:
        self._wall = wall
        self._mono = mono
        self.boot_id = boot_id

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    def step_wall(self, seconds: float) -> None:
        self._wall += seconds

    def reboot(self, *, wall: float | None = None, boot_id: str | None = None) -> None:
        self._mono = 5.0
        self._wall = self._wall if wall is None else wall
        self.boot_id = boot_id or self.boot_id + "'"

"""Capped exponential backoff with jitter, shared by the modem driver and the sinks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Capped exponential backoff with jitter: 0.5 s, 1 s, 2 s … up to ``cap``."""

    base: float = 0.5
    cap: float = 30.0
    attempt: int = field(default=0, init=False)

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * (2.0**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return delay * random.uniform(0.8, 1.0)  # jitter, not crypto

    def reset(self) -> None:
        self.attempt = 0

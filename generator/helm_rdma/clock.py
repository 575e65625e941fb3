"""Time for code that waits (polls, timeouts), replaceable in tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple


class Clock(NamedTuple):
    """Monotonic time and sleep, injectable for tests."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()


@dataclass(frozen=True)
class Polling:
    """How long a wait may last and how often it looks: first after ``poll_seconds``, then half as long again each
    time, up to ``max_poll_seconds`` (waits that look at a steady pace set both the same)."""

    timeout_seconds: float
    poll_seconds: float = 10
    max_poll_seconds: float = 60
    clock: Clock = SYSTEM_CLOCK

    def next_delay(self, delay: float) -> float:
        """The pause after one of ``delay``."""
        return min(delay * 1.5, self.max_poll_seconds)

"""The retry schedule: events that failed wait out their backoff here, under one lock.

The worker schedules (a wake failed), the main loop takes what is due and looks up
what is waiting (so the inbox poll does not queue a message early): both go through
the same lock, so no event is ever retried without its backoff. The clock and the
backoff are injected, so tests of retries do not sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agentd.events import Event

MAX_BACKOFF_S = 300.0


def exponential(attempt: int) -> float:
    """2, 4, 8 … seconds, at most five minutes."""
    return min(MAX_BACKOFF_S, 2.0**attempt)


@dataclass(frozen=True)
class _Waiting:
    due: float
    event: Event


class RetrySchedule:
    """Events waiting to be published again, keyed by ``Event.key``, with their attempt counts."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, backoff: Callable[[int], float] = exponential) -> None:
        self.clock = clock
        self.backoff = backoff
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiting] = {}
        self._attempts: dict[str, int] = {}

    def schedule(self, event: Event) -> tuple[int, float]:
        """Count one more failed attempt and wait its backoff; returns (attempt, delay)."""
        with self._lock:
            n = self._attempts.get(event.key, 0) + 1
            self._attempts[event.key] = n
            delay = self.backoff(n)
            self._waiting[event.key] = _Waiting(self.clock() + delay, event)
            return n, delay

    def attempts(self, key: str) -> int:
        with self._lock:
            return self._attempts.get(key, 0)

    def succeeded(self, key: str) -> None:
        """The event's wake went through: its next failure starts from the first backoff."""
        with self._lock:
            self._attempts.pop(key, None)
            self._waiting.pop(key, None)

    def cancel(self, key: str) -> Event | None:
        """Forget a waiting event (a newer run replaced it); returns it, if one waited."""
        with self._lock:
            self._attempts.pop(key, None)
            waiting = self._waiting.pop(key, None)
            return waiting.event if waiting is not None else None

    def due(self) -> list[Event]:
        """Take the events whose backoff is over, oldest due first."""
        with self._lock:
            now = self.clock()
            ready = sorted((w for w in self._waiting.values() if w.due <= now), key=lambda w: w.due)
            for w in ready:
                del self._waiting[w.event.key]
            return [w.event for w in ready]

    def waiting(self) -> set[str]:
        with self._lock:
            return set(self._waiting)

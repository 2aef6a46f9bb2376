"""The daemon's one queue of typed events."""

from __future__ import annotations

import heapq
import itertools
import threading

from agentd.events import Event


class WakeQueue:
    """Events by their kind's priority (messages first), then in arrival order.

    An event whose key is queued or running already is coalesced: one pending heartbeat,
    one run per cron job, each inbox file once.
    """

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[int, int, Event]] = []
        self._seq = itertools.count()
        self._known: set[str] = set()  # keys queued or running
        self.coalesced = 0

    def put(self, event: Event) -> bool:
        with self._cv:
            if event.key in self._known:
                self.coalesced += 1
                return False
            self._known.add(event.key)
            heapq.heappush(self._heap, (event.spec.priority, next(self._seq), event))
            self._cv.notify()
            return True

    def get(self, timeout: float) -> Event | None:
        """The next event; its key stays known until ``done()``."""
        with self._cv:
            if not self._heap:
                self._cv.wait(timeout)
            return heapq.heappop(self._heap)[2] if self._heap else None

    def done(self, event: Event) -> None:
        with self._cv:
            self._known.discard(event.key)

    def known(self) -> set[str]:
        with self._cv:
            return set(self._known)



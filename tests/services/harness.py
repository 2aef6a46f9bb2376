"""An in-process daemon for service tests: built by build_daemon, driven tick by tick, no signals."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agentd.daemon import Daemon


class FakeMonotonic:
    """A monotonic clock the test moves: backoff waits pass without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run_until(d: Daemon, cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Turn the main loop until ``cond`` holds (the worker runs wakes on its thread meanwhile)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        d.tick()


def idle(d: Daemon, ticks: int = 40) -> None:
    """Turn the main loop a while, for a test that checks nothing happens."""
    for _ in range(ticks):
        d.tick()


@contextmanager
def running(d: Daemon) -> Iterator[Daemon]:
    d.start()
    try:
        yield d
    finally:
        d.stop_event.set()
        if d.worker is not None:
            d.worker.join(30)
        d.shutdown()

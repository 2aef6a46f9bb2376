"""The door for a new trigger: a ``Service`` publishes typed ``Event``s through the ``Hub``.

A service is started and stopped by the daemon, may look at things on every tick of
the main loop (``poll``), and hears back about each event it published: ``prepare``
just before the wake (read what the event needs, or skip it with a reason) and
``finished`` once the wake is over (committed, skipped, failed). ``build_daemon()``
adds one line per service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from agentd.events import Event, EventKind, WakeResult

if TYPE_CHECKING:
    from agentd.agent import Agent
    from agentd.config import Config
    from agentd.home import Home
    from agentd.services.notices import Notices
    from agentd.services.retries import RetrySchedule
    from scheduler.cron import CronJob


@dataclass(frozen=True)
class Skip:
    """``prepare``'s answer when the event should not wake the agent; the reason is logged."""

    reason: str


@dataclass(frozen=True)
class Outcome:
    """How a published event ended: exactly one of the three is set."""

    result: WakeResult | None = None  # the wake ran (it committed, or was undone to be tried again)
    skipped: str | None = None  # it did not run, and why
    error: Exception | None = None  # the wake raised


@dataclass(frozen=True)
class Steering:
    """The person's steering as last read without errors: agent.yaml and CRON.md's jobs."""

    config: Config
    jobs: tuple[CronJob, ...]


class Hub(Protocol):
    """What a service may use of the daemon's core."""

    home: Home
    notices: Notices
    retries: RetrySchedule

    @property
    def config(self) -> Config: ...
    @property
    def agent(self) -> Agent | None: ...
    def now(self) -> datetime: ...
    def publish(self, event: Event) -> bool: ...
    def known(self) -> set[str]: ...
    def wake_running(self) -> bool: ...
    def request_warmup(self, reason: str) -> None: ...
    def steer(self, steering: Steering) -> None: ...
    def write_state(self) -> None: ...


class Service:
    """A service with nothing to do; subclasses override what they need."""

    kinds: tuple[EventKind, ...] = ()  # the kinds it publishes: their events come back to it

    def start(self) -> None:
        """Begin publishing (called once, after the engine is up and the steering read)."""

    def stop(self) -> None:
        """Stop publishing; pending events stay where they are durable (inbox files, cron records)."""

    def poll(self) -> None:
        """Called on the main loop's every tick (0.25 s): cheap checks only."""

    def steered(self, steering: Steering) -> None:
        """The steering changed (and at start): take what concerns this service."""

    def prepare(self, event: Event) -> Event | Skip:
        """On the worker, just before the wake: the event to run, or why not."""
        return event

    def run(self, event: Event) -> WakeResult | None:
        """On the worker, in place of the model wake: a service whose events are another kind of
        work (a merge) does it here and says how it went; None (the default) wakes the model."""
        return None

    def finished(self, event: Event, outcome: Outcome) -> None:
        """On the worker, once per published event that was taken from the queue."""

    def next_runs(self) -> list[dict[str, Any]]:
        """For `agentd status`: {"kind", "name", "at"} of what this service will publish next."""
        return []

    def channel_status(self) -> dict[str, Any] | None:
        """For `agentd status` and the web app, when the service is a chat channel:
        {"name", "state", "last_message", "last_error"} (None for every other service)."""
        return None

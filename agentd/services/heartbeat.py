"""The heartbeat: every ``heartbeat.every`` within active hours, a ``heartbeat`` event.

One waits at most (the queue coalesces the rest); just before its wake, HEARTBEAT.md
and its checks decide whether the model is woken at all (``agentd.heartbeat``).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from agentd import heartbeat as hb
from agentd.events import HEARTBEAT, Event
from agentd.fileio import atomic_write
from agentd.home import Home
from agentd.services.base import Hub, Service, Skip, Steering
from agentd.wiring import timezone_of
from scheduler.service import Scheduler
from scheduler.timespec import ActiveHours

log = logging.getLogger("agentd")


class HeartbeatService(Service):
    kinds = (HEARTBEAT,)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.scheduler = Scheduler(state_path=hub.home.runtime / "heartbeat-schedule.json", on_fire=self._on_fire, on_skip=self._on_skip)

    def steered(self, steering: Steering) -> None:
        config = steering.config
        self.scheduler.apply(
            heartbeat_every=config.heartbeat.every, active_hours=ActiveHours.parse(config.heartbeat.active_hours), tz=timezone_of(config), jobs=[],
        )

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()

    def next_runs(self) -> list[dict[str, Any]]:
        return [{"kind": kind, "name": name, "at": at.isoformat() if at else None} for kind, name, at in self.scheduler.next_runs()]

    def _on_fire(self, kind: str, name: str | None, at: datetime) -> None:
        self.hub.publish(Event(HEARTBEAT.name, "", at))

    def _on_skip(self, kind: str, name: str | None, reason: str) -> None:
        log.info("skip heartbeat: %s", reason)
        record_skip(self.hub.home, self.hub.now(), reason)

    def prepare(self, event: Event) -> Event | Skip:
        plan = hb.prepare(self.hub.home, self.hub.config, self.hub.now())
        for key, text in plan.notices:
            self.hub.notices.tell(key, text)
        if plan.event is None:
            record_skip(self.hub.home, self.hub.now(), plan.reason)
            return Skip(plan.reason)
        return plan.event


def skip_path(home: Home) -> Path:
    return home.runtime / "heartbeat-last-skip.json"


def record_skip(home: Home, at: datetime, reason: str) -> None:
    """The last heartbeat skipped, and why: for the web app's schedule (a skip makes no commit)."""
    atomic_write(skip_path(home), json.dumps({"at": at.isoformat(), "reason": reason}))


def last_skip(home: Home) -> tuple[datetime, str] | None:
    try:
        data = json.loads(skip_path(home).read_text(encoding="utf-8"))
        return datetime.fromisoformat(data["at"]), str(data["reason"])
    except (OSError, ValueError, KeyError, TypeError):
        return None

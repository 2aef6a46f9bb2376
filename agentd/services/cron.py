"""Cron: CRON.md's jobs publish ``cron`` events; a run is done when its wake commits, never lost.

Every run ends one of three ways, each recorded in ``.agentd/cron-runs.json`` (what
`agentd cron list` shows): done (its wake committed), retried (the engine was down, or
the wake failed: backed off like a message, within the job's grace), or skipped with
its reason (past its grace, over the daily budget, coalesced with a run already
queued or running, given up after repeated failures). A run queued when the daemon
stopped or crashed runs once on the next start, within its grace.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from git import GitCommandError

from agentd.events import CRON, Event
from agentd.services.base import Hub, Outcome, Service, Skip, Steering
from agentd.services.cron_runs import RUNS, CronRuns
from agentd.wiring import timezone_of
from scheduler.cron import CronJob
from scheduler.service import Scheduler
from scheduler.timespec import ActiveHours

log = logging.getLogger("agentd")

GRACE = timedelta(hours=1)
ATTEMPTS = 3  # wakes a run may fail with an error of agentd's own before it is given up


class CronService(Service):
    kinds = (CRON,)

    def __init__(self, hub: Hub, *, grace: timedelta = GRACE, now: Callable[[], datetime] | None = None) -> None:
        self.hub = hub
        self.grace = grace
        self._now = now
        self.runs = CronRuns(hub.home.runtime / RUNS)
        self.jobs: dict[str, CronJob] = {}
        self.scheduler = Scheduler(
            state_path=hub.home.runtime / "schedule.json", on_fire=self._on_fire, on_skip=self._on_skip, grace=grace, now=now,
        )
        self._lock = threading.Lock()  # the scheduler's thread and the main loop both queue runs

    def now(self) -> datetime:
        return self._now() if self._now is not None else self.hub.now()

    # ------------------------------------------------------------ lifecycle
    def steered(self, steering: Steering) -> None:
        self.jobs = {j.slug: j for j in steering.jobs}
        config = steering.config
        self.scheduler.apply(
            heartbeat_every=None, active_hours=ActiveHours.parse(config.heartbeat.active_hours), tz=timezone_of(config), jobs=list(steering.jobs),
        )

    def start(self) -> None:
        for slug, runs in self.runs.pending().items():
            assert runs.pending is not None
            commit = self._committed(slug, runs.pending_after)
            if commit is not None:  # killed between its commit and its record
                self._done(slug, runs.pending, commit)
                continue
            log.info("cron %s: the run due at %s was not done when the daemon stopped", slug, runs.pending.isoformat())
            self.queue_run(slug, runs.pending)
        self.scheduler.start()  # its catch-up of runs missed while down is coalesced with those

    def stop(self) -> None:
        self.scheduler.stop()

    def next_runs(self) -> list[dict[str, Any]]:
        return [{"kind": kind, "name": name, "at": at.isoformat() if at else None} for kind, name, at in self.scheduler.next_runs()]

    # ------------------------------------------------------------ queueing a run
    def _on_fire(self, kind: str, name: str | None, due: datetime) -> None:
        if name is not None:
            self.queue_run(name, due)

    def _on_skip(self, kind: str, name: str | None, reason: str) -> None:
        if name is not None:
            self._skip(name, self.now(), reason)

    def queue_run(self, slug: str, due: datetime) -> bool:
        """Record the run as pending, then publish it; False if it was skipped (and recorded so)."""
        with self._lock:
            key = f"cron:{slug}"
            if slug not in self.jobs:
                return self._skip(slug, due, f"job {slug!r} no longer in CRON.md")
            late = self.now() - due
            if late > self.grace:
                return self._skip(slug, due, f"due at {due:%Y-%m-%d %H:%M}, {_ago(late)} ago, past the {_ago(self.grace)} grace")
            if key in self.hub.known():
                return self._skip(slug, due, "coalesced with the run of this job already queued or running", keep_pending=True)
            replaced = self.hub.retries.cancel(key)
            if replaced is not None:
                self._skip(slug, _due(replaced), f"waiting to be retried, replaced by the run due at {due:%H:%M}")
            # Durable before it is queued: a crash from here on loses nothing.
            self.runs.queued(slug, due, self.hub.home.repo.git.rev_parse("HEAD"))
            log.info("cron %s: run due %s queued", slug, due.isoformat())
            self.hub.publish(Event(CRON.name, self.jobs[slug].instruction, due, name=slug, meta={"due": due.isoformat()}))
            return True

    def _skip(self, slug: str, due: datetime, reason: str, *, keep_pending: bool = False) -> bool:
        log.info("cron %s: run due %s skipped: %s", slug, due.isoformat(), reason)
        # A coalesced run leaves the pending one (another run, still to be done) as it is.
        self.runs.skipped(slug, None if keep_pending else due, reason, self.now())
        return False

    def _done(self, slug: str, due: datetime, commit: str | None) -> None:
        log.info("cron %s: run due %s done (%s)", slug, due.isoformat(), (commit or "no commit")[:8])
        self.runs.done(slug, due, commit)

    def _committed(self, slug: str, after: str | None) -> str | None:
        """The wake commit of this job made since ``after`` (the HEAD when its run was queued)."""
        if not after:
            return None
        try:
            out = self.hub.home.repo.git.log(f"{after}..HEAD", "--format=%H %s")
        except GitCommandError:
            return None  # that commit is gone (history rewritten): run it again
        label = f"wake cron:{slug}"
        return next((line.split(" ", 1)[0] for line in out.splitlines() if line.split(" ", 1)[-1].startswith((f"{label}:", f"{label} ["))), None)

    # ------------------------------------------------------------ the wake
    def prepare(self, event: Event) -> Event | Skip:
        job = self.jobs.get(event.name or "")
        if job is None:
            return Skip(f"job {event.name!r} no longer in CRON.md")
        return Event(CRON.name, job.instruction, self.hub.now(), name=job.slug, meta=event.meta)

    def finished(self, event: Event, outcome: Outcome) -> None:
        slug, due = event.name or "", _due(event)
        result = outcome.result
        if outcome.skipped is not None:
            self._skip(slug, due, outcome.skipped)
            self.hub.retries.succeeded(event.key)
        elif result is not None and (result.commit or result.status != "failed"):
            self._done(slug, due, result.commit)
            self.hub.retries.succeeded(event.key)
        elif result is not None:  # undone: the engine could not serve it, or an error of our own
            self._failed(event, due, result.error, own=not (result.error or "").startswith("engine"))
        else:
            self._failed(event, due, f"{type(outcome.error).__name__}: {outcome.error}", own=True)

    def _failed(self, event: Event, due: datetime, error: str | None, *, own: bool) -> None:
        """Back off like a message: an engine outage until the grace runs out, an error of our own a few times."""
        slug, late = event.name or "", self.now() - due
        if late > self.grace:
            self.hub.retries.cancel(event.key)
            self._skip(slug, due, f"could not run within its {_ago(self.grace)} grace: {error}")
            return
        if own and self.hub.retries.attempts(event.key) + 1 >= ATTEMPTS:
            self.hub.retries.cancel(event.key)
            self._skip(slug, due, f"failed {ATTEMPTS} wakes in a row: {error}")
            self.hub.notices.tell(f"cron-failed:{slug}:{due.isoformat()}", f"The cron job {slug} (due {due:%Y-%m-%d %H:%M}) failed {ATTEMPTS} wakes in a row, so I gave it up. Last error: {error}")
            return
        n, delay = self.hub.retries.schedule(event)
        log.info("cron %s will be retried in %.0fs (attempt %d): %s", slug, delay, n, error)


def _due(event: Event) -> datetime:
    due = event.meta.get("due")
    return datetime.fromisoformat(due) if isinstance(due, str) else event.at


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"

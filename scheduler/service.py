"""The schedule: heartbeat and cron jobs on APScheduler 3, with catch-up of jobs missed while down.

The scheduler only *enqueues* wakes (``on_fire``); the daemon's queue runs them one at a
time. So each APScheduler job is instant, and its options mean:

- ``max_instances=1``: a job never overlaps itself (it could only if enqueueing hung);
- ``coalesce=True``: runs missed while the process was suspended fire once, not N times;
- ``misfire_grace_time``: a run late by more than this (the machine slept) is dropped by
  APScheduler; our own catch-up at start covers the daemon being *down*, and reports
  every skip through ``on_skip`` — never a silent skip.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.cron import CronJob
from scheduler.timespec import ActiveHours

OnFire = Callable[[str, str | None, datetime], None]
OnSkip = Callable[[str, str | None, str], None]
MAX_CATCHUP_SCAN = 100_000


@dataclass(frozen=True)
class _Spec:
    heartbeat_every: timedelta | None
    active_hours: ActiveHours
    tz: tzinfo
    jobs: tuple[CronJob, ...]


class Scheduler:
    """Heartbeat + cron jobs; ``apply()`` may be called again at any time (live steering)."""

    def __init__(
        self,
        state_path: Path,
        on_fire: OnFire,
        on_skip: OnSkip | None = None,
        *,
        grace: timedelta = timedelta(hours=1),
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.state_path = state_path
        self.on_fire = on_fire
        self.on_skip = on_skip or (lambda kind, name, reason: None)
        self.grace = grace
        self._now = now
        self._aps = BackgroundScheduler()
        self._aps.add_listener(self._missed, EVENT_JOB_MISSED)
        self._spec: _Spec | None = None
        self._applied: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._started = False

    def now(self, tz: tzinfo | None = None) -> datetime:
        if self._now is not None:
            return self._now()
        return datetime.now(tz or (self._spec.tz if self._spec else None))

    # ------------------------------------------------------------ state
    def _load_state(self) -> dict[str, str]:
        try:
            data = json.loads(self.state_path.read_text())
            return {str(k): str(v) for k, v in data.get("last", {}).items()}
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            return {}

    def _record(self, key: str, when: datetime) -> None:
        with self._lock:
            state = self._load_state()
            state[key] = when.isoformat()
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"last": state}, indent=1))
            os.replace(tmp, self.state_path)

    # ------------------------------------------------------------ applying a spec
    def apply(self, *, heartbeat_every: timedelta | None, active_hours: ActiveHours, tz: tzinfo, jobs: list[CronJob]) -> None:
        with self._lock:
            self._spec = _Spec(heartbeat_every, active_hours, tz, tuple(jobs))
            if self._started:
                self._sync()

    def _sync(self) -> None:
        spec = self._spec
        if spec is None:
            return
        wanted: dict[str, Any] = {}
        if spec.heartbeat_every is not None:
            wanted["heartbeat"] = ("heartbeat", spec.heartbeat_every, str(spec.tz))
        for job in spec.jobs:
            wanted[f"cron:{job.slug}"] = ("cron", job.expr, job.timezone, str(spec.tz), job.name)
        for job_id in list(self._applied):
            if job_id not in wanted:
                self._aps.remove_job(job_id)
                del self._applied[job_id]
        grace_s = int(self.grace.total_seconds())
        for job_id, key in wanted.items():
            if self._applied.get(job_id) == key:
                continue  # unchanged: keep its next run
            if job_id == "heartbeat":
                assert spec.heartbeat_every is not None
                trigger: Any = IntervalTrigger(seconds=spec.heartbeat_every.total_seconds(), timezone=spec.tz)
                args: list[Any] = ["heartbeat", None]
            else:
                job = next(j for j in spec.jobs if f"cron:{j.slug}" == job_id)
                trigger = job.trigger(spec.tz)
                args = ["cron", job.slug]
            self._aps.add_job(
                self._fire, trigger, args=args, id=job_id, replace_existing=True,
                max_instances=1, coalesce=True, misfire_grace_time=grace_s,
            )
            self._applied[job_id] = key

    def _fire(self, kind: str, name: str | None) -> None:
        spec = self._spec
        now = self.now()
        if kind == "heartbeat" and spec is not None and not spec.active_hours.contains(now.astimezone(spec.tz)):
            self.on_skip(kind, name, f"outside active hours ({spec.active_hours})")
            return
        # Handed over first, recorded after: a crash in between fires it again on catch-up
        # (the daemon coalesces the two), never loses it.
        self.on_fire(kind, name, now)
        self._record(f"{kind}:{name}" if name else kind, now)

    def _missed(self, event: JobExecutionEvent) -> None:
        """APScheduler dropped a run late past the grace (the machine slept): said, not silent."""
        kind, _, name = str(event.job_id).partition(":")
        self.on_skip(kind, name or None, f"missed at {event.scheduled_run_time:%Y-%m-%d %H:%M}, late past the {_ago(self.grace)} grace (the machine slept or was busy)")

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self._lock:
            self._catch_up()
            self._sync()
            self._aps.start()
            self._started = True

    def stop(self) -> None:
        with self._lock:
            if self._started:
                self._aps.shutdown(wait=False)
                self._started = False

    def _catch_up(self) -> None:
        """A cron job missed while the daemon was down runs once now if within grace, else is reported."""
        spec = self._spec
        if spec is None:
            return
        state = self._load_state()
        now = self.now(spec.tz)
        for job in spec.jobs:
            key = f"cron:{job.slug}"
            if key not in state:
                self._record(key, now)  # first start: nothing was missed
                continue
            last = datetime.fromisoformat(state[key])
            trigger = job.trigger(spec.tz)
            missed: datetime | None = None
            probe: datetime | None = trigger.get_next_fire_time(None, last + timedelta(microseconds=1))
            for _ in range(MAX_CATCHUP_SCAN):
                if probe is None or probe > now:
                    break
                missed = probe
                probe = trigger.get_next_fire_time(probe, probe + timedelta(seconds=1))
            if missed is None:
                continue
            late = now - missed
            if late <= self.grace:
                self.on_fire("cron", job.slug, missed)
                self._record(key, now)
            else:
                self._record(key, now)
                self.on_skip("cron", job.slug, f"missed at {missed:%Y-%m-%d %H:%M}, {_ago(late)} ago, past the {_ago(self.grace)} grace")

    def next_runs(self) -> list[tuple[str, str | None, datetime | None]]:
        out: list[tuple[str, str | None, datetime | None]] = []
        spec = self._spec
        if spec is None:
            return out
        now = self.now(spec.tz)
        if spec.heartbeat_every is not None:
            job = self._aps.get_job("heartbeat") if self._started else None
            nxt = job.next_run_time if job is not None else now + spec.heartbeat_every
            if nxt is not None and not spec.active_hours.contains(nxt.astimezone(spec.tz)):
                nxt = spec.active_hours.next_start(nxt.astimezone(spec.tz))
            out.append(("heartbeat", None, nxt))
        for cron in spec.jobs:
            job = self._aps.get_job(f"cron:{cron.slug}") if self._started else None
            out.append(("cron", cron.slug, job.next_run_time if job is not None else cron.next_run(now, spec.tz)))
        return out


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"

"""Each cron job's runs, durable in ``.agentd/cron-runs.json``: pending, last done, last skipped.

A run is *pending* from the moment it is queued until its wake commits (then it is the
job's *last run*) or it is skipped with a reason (its *last skip*). A pending run
outlives the daemon: the next start runs it once, within its grace. ``agentd cron
list`` reads the same record.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from agentd.fileio import atomic_write
from agentd.home import Home
from scheduler.cron import parse_cron_md

RUNS = "cron-runs.json"


@dataclass(frozen=True)
class JobRuns:
    pending: datetime | None = None  # the run queued, running or waiting to be retried
    pending_after: str | None = None  # the home's HEAD when it was queued: its commit comes after
    last_run: datetime | None = None  # when the last run that committed was due
    last_commit: str | None = None
    last_skip: datetime | None = None  # when the last skipped run was due (or was skipped)
    skip_reason: str | None = None


class CronRuns:
    """The record, rewritten atomically on every change (a few jobs, a few changes a day)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def get(self, slug: str) -> JobRuns:
        return self.all().get(slug, JobRuns())

    def all(self) -> dict[str, JobRuns]:
        return {slug: _runs(entry) for slug, entry in self._load().items()}

    def pending(self) -> dict[str, JobRuns]:
        return {slug: r for slug, r in self.all().items() if r.pending is not None}

    def queued(self, slug: str, due: datetime, head: str | None = None) -> None:
        self._update(slug, pending=due.isoformat(), pending_after=head)

    def done(self, slug: str, due: datetime, commit: str | None) -> None:
        self._update(slug, last_run=due.isoformat(), last_commit=commit, clear=due)

    def skipped(self, slug: str, due: datetime | None, reason: str, now: datetime) -> None:
        when = (due or now).isoformat()
        self._update(slug, last_skip=when, skip_reason=reason, clear=due)

    def _update(self, slug: str, *, clear: datetime | None = None, **fields: Any) -> None:
        with self._lock:
            data = self._load()
            entry = data.setdefault(slug, {})
            entry.update(fields)
            if clear is not None and entry.get("pending") == clear.isoformat():
                entry["pending"] = None
            atomic_write(self.path, json.dumps(data, indent=1, ensure_ascii=False))

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def _runs(entry: dict[str, Any]) -> JobRuns:
    def when(key: str) -> datetime | None:
        value = entry.get(key)
        try:
            return datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            return None

    return JobRuns(when("pending"), entry.get("pending_after"), when("last_run"), entry.get("last_commit"), when("last_skip"), entry.get("skip_reason"))


def cron_report(home: Home, tz: tzinfo, now: datetime) -> list[str]:
    """`agentd cron list`: each job's schedule, next run, last run and last skip with its reason."""
    path = home.root / "CRON.md"
    parsed = parse_cron_md(path.read_text(encoding="utf-8", errors="replace") if path.is_file() else "", path)
    runs = CronRuns(home.runtime / RUNS).all()
    lines = []
    for job in parsed.jobs:
        nxt = job.next_run(now, tz)
        lines.append(f"{job.name:24} {job.expr:16} next {nxt:%Y-%m-%d %H:%M %Z}" if nxt else f"{job.name:24} {job.expr:16} never")
        r = runs.get(job.slug, JobRuns())
        last = f"{r.last_run:%Y-%m-%d %H:%M}" + (f" ({r.last_commit[:8]})" if r.last_commit else "") if r.last_run else "never"
        skip = f"{r.last_skip:%Y-%m-%d %H:%M}: {r.skip_reason}" if r.last_skip else "none"
        lines.append(f"    last run {last} · last skip {skip}" + (f" · pending {r.pending:%Y-%m-%d %H:%M}" if r.pending else ""))
    if not parsed.jobs:
        lines.append("no jobs in CRON.md")
    lines += [f"error: {e}" for e in parsed.errors]
    return lines

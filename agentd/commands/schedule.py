"""`agentd cron list` and the planned runs in `agentd status`: CRON.md's jobs and their next runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agentd.config import Config, load_config
from agentd.home import Home
from agentd.wiring import timezone_of
from scheduler.cron import CronParse, parse_cron_md


def _cron_schedule(home: Home, config: Config) -> tuple[CronParse, list[datetime | None]]:
    """CRON.md's jobs (and errors), each with its next run from now in the agent's zone."""

    tz = timezone_of(config)
    path = home.root / "CRON.md"
    parsed = parse_cron_md(path.read_text(encoding="utf-8", errors="replace") if path.is_file() else "", path)
    now = datetime.now(tz)
    return parsed, [job.next_run(now, tz) for job in parsed.jobs]


def planned_runs(home: Home, config: Config) -> list[dict[str, Any]]:
    """What the daemon would run next, for `status` while no daemon is running."""
    parsed, nexts = _cron_schedule(home, config)
    runs: list[dict[str, Any]] = []
    if config.heartbeat.every is not None:
        every = int(config.heartbeat.every.total_seconds() // 60)
        runs.append({"kind": "heartbeat", "name": None, "at": f"every {every} min, {config.heartbeat.active_hours} (when the daemon runs)"})
    runs += [{"kind": "cron", "name": job.name, "at": nxt.isoformat() if nxt else None} for job, nxt in zip(parsed.jobs, nexts, strict=True)]
    return runs


def cron_lines(home: Home) -> list[str]:
    from agentd.services.cron_runs import cron_report

    tz = timezone_of(load_config(home.root))
    return cron_report(home, tz, datetime.now(tz))

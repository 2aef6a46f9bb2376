"""CRON.md and HEARTBEAT.md parsing, durations and active hours, and the APScheduler service."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scheduler.cron import parse_cron_md
from scheduler.heartbeat import parse_heartbeat_md
from scheduler.service import Scheduler
from scheduler.timespec import ActiveHours, parse_duration

CRON = """# My jobs

Some explanation that is not a job.

## Morning briefing
`0 8 * * 1-5` Europe/Berlin
Write the briefing.

<!--
## Disabled
`* * * * *`
Never runs.
-->

## Bad minute
61 * * * *
Does not parse.

## Nightly backup
30 2 * * *
Back up the notes
with two lines of instruction.

## Morning briefing
`0 9 * * *`
A duplicate name.

## Empty
"""


def test_cron_parse_good_and_bad() -> None:
    parsed = parse_cron_md(CRON, Path("CRON.md"))
    assert [j.name for j in parsed.jobs] == ["Morning briefing", "Nightly backup"]
    brief, backup = parsed.jobs
    assert brief.expr == "0 8 * * 1-5" and brief.timezone == "Europe/Berlin" and brief.line == 5 and brief.slug == "morning-briefing"
    assert backup.instruction == "Back up the notes\nwith two lines of instruction."
    errors = [str(e) for e in parsed.errors]
    assert any(e.startswith("CRON.md:16:") and "Bad minute" in e for e in errors), errors
    assert any(e.startswith("CRON.md:24:") and "already at line 5" in e for e in errors), errors
    assert len(errors) == 2


def test_cron_next_run_with_fixed_clock() -> None:
    parsed = parse_cron_md(CRON, Path("CRON.md"))
    brief, backup = parsed.jobs
    saturday = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    nxt = brief.next_run(saturday, UTC)
    assert nxt == datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert backup.next_run(saturday, UTC) == datetime(2026, 11, 22, 2, 30, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["`0 8 * *` ", "0 8 * * * * *", "`0 25 * * *`", "`0 8 * * *` Mars/Base",
                                 "`0 8 * * *` America", "`0 8 * * *` " + "A" * 300])
def test_cron_bad_expressions_name_the_line(bad: str) -> None:
    parsed = parse_cron_md(f"## Job\n{bad}\nDo it.\n", "CRON.md")
    assert not parsed.jobs and str(parsed.errors[0]).startswith("CRON.md:2:")


def test_heartbeat_parse() -> None:
    text = "# Heartbeat\n<!-- - [ ] commented out -->\n- [ ] water the plants\n- [x] done already\n\n## Checks\n- `git status --porcelain` dirty repo\n- no backticks here\n- [ ] an item under checks\n"
    plan = parse_heartbeat_md(text, "HEARTBEAT.md")
    assert [(i.text, i.line) for i in plan.open_items] == [("water the plants", 3), ("an item under checks", 9)]
    assert [(c.command, c.label, c.line) for c in plan.checks] == [("git status --porcelain", "dirty repo", 7)]
    assert [str(e).split(":")[1] for e in plan.errors] == ["8"]
    assert not plan.is_empty


def test_template_heartbeat_is_empty() -> None:
    root = Path(__file__).resolve().parents[2]
    assert parse_heartbeat_md((root / "home_template/HEARTBEAT.md").read_text(), "HEARTBEAT.md").is_empty


def test_durations_and_active_hours() -> None:
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("45") == timedelta(minutes=45)
    for bad in ("soon", "", "0m", "5x"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    day = ActiveHours.parse("08:00-22:00")
    assert day.contains(datetime(2026, 1, 1, 8, 0)) and not day.contains(datetime(2026, 1, 1, 22, 0))
    night = ActiveHours.parse("22:00-06:00")
    assert night.contains(datetime(2026, 1, 1, 23, 0)) and night.contains(datetime(2026, 1, 1, 5, 59)) and not night.contains(datetime(2026, 1, 1, 12, 0))
    assert night.next_start(datetime(2026, 1, 1, 12, 0)) == datetime(2026, 1, 1, 22, 0)
    assert ActiveHours.parse("always").always and ActiveHours.parse(None).contains(datetime(2026, 1, 1, 3, 0))
    assert ActiveHours.parse("08:00-24:00").end == time(0, 0)


class Recorder:
    def __init__(self) -> None:
        self.fired: list[tuple[str, str | None, datetime]] = []
        self.skipped: list[tuple[str, str | None, str]] = []
        self.event = threading.Event()

    def fire(self, kind: str, name: str | None, at: datetime) -> None:
        self.fired.append((kind, name, at))
        self.event.set()

    def skip(self, kind: str, name: str | None, reason: str) -> None:
        self.skipped.append((kind, name, reason))
        self.event.set()


def test_heartbeat_fires_and_apply_is_idempotent(tmp_path: Path) -> None:
    rec = Recorder()
    s = Scheduler(tmp_path / "schedule.json", rec.fire, rec.skip)
    jobs = parse_cron_md(CRON, "CRON.md").jobs
    s.apply(heartbeat_every=timedelta(seconds=0.2), active_hours=ActiveHours(), tz=UTC, jobs=jobs)
    s.start()
    try:
        assert rec.event.wait(10)
        assert rec.fired[0][0] == "heartbeat"
        before = s.next_runs()
        s.apply(heartbeat_every=timedelta(seconds=0.2), active_hours=ActiveHours(), tz=UTC, jobs=jobs)
        after = s.next_runs()
        assert [r[:2] for r in before] == [r[:2] for r in after]
        assert dict((n, t) for k, n, t in before if k == "cron") == dict((n, t) for k, n, t in after if k == "cron")
        # a live edit: one job removed, the heartbeat turned off
        s.apply(heartbeat_every=None, active_hours=ActiveHours(), tz=UTC, jobs=jobs[:1])
        assert [r[:2] for r in s.next_runs()] == [("cron", "morning-briefing")]
    finally:
        s.stop()


def test_heartbeat_outside_active_hours_is_reported(tmp_path: Path) -> None:
    rec = Recorder()
    now = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    s = Scheduler(tmp_path / "schedule.json", rec.fire, rec.skip, now=lambda: now)
    s.apply(heartbeat_every=timedelta(seconds=0.2), active_hours=ActiveHours.parse("08:00-22:00"), tz=UTC, jobs=[])
    s.start()
    try:
        assert rec.event.wait(10)
    finally:
        s.stop()
    assert not rec.fired and rec.skipped[0][2] == "outside active hours (08:00-22:00)"


def test_catch_up_within_grace_fires_once_and_past_grace_is_reported(tmp_path: Path) -> None:
    jobs = parse_cron_md("## Hourly\n`0 * * * *`\nTick.\n\n## Daily\n`0 6 * * *`\nReport.\n", "CRON.md").jobs
    state = tmp_path / "schedule.json"
    down_at = datetime(2026, 11, 22, 5, 50, tzinfo=UTC)
    first = Scheduler(state, lambda *a: None, now=lambda: down_at)
    first.apply(heartbeat_every=None, active_hours=ActiveHours(), tz=UTC, jobs=jobs)
    first.start()
    first.stop()  # first start: nothing is caught up, last runs recorded
    rec = Recorder()
    back_at = datetime(2026, 11, 22, 7, 20, tzinfo=UTC)  # hourly missed 06:00 and 07:00; daily missed 06:00
    s = Scheduler(state, rec.fire, rec.skip, now=lambda: back_at)
    s.apply(heartbeat_every=None, active_hours=ActiveHours(), tz=UTC, jobs=jobs)
    s.start()
    s.stop()
    assert rec.fired == [("cron", "hourly", datetime(2026, 11, 22, 7, 0, tzinfo=UTC))]
    assert rec.skipped == [("cron", "daily", "missed at 2026-11-22 06:00, 1h20m ago, past the 1h00m grace")]
    # and it does not fire again on the next start
    rec2 = Recorder()
    again = Scheduler(state, rec2.fire, rec2.skip, now=lambda: back_at + timedelta(minutes=5))
    again.apply(heartbeat_every=None, active_hours=ActiveHours(), tz=UTC, jobs=jobs)
    again.start()
    again.stop()
    assert rec2.fired == [] and rec2.skipped == []

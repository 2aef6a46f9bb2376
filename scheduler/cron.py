"""CRON.md: the person's scheduled jobs, one `## Name` section each.

The format, as the person writes it::

    ## Morning briefing
    `0 8 * * 1-5` Europe/Berlin
    Summarise yesterday's journal and today's open items.

The first non-empty line under a heading is a 5-field cron expression (minute hour
day month weekday), in backticks or not, optionally followed by a time zone; the
lines after it, up to the next `## ` heading, are the instruction. Text before the
first heading and HTML comments are ignored. A bad job is reported with its file and
line, and the good jobs still run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from agentd.errors import CronError

_COMMENT = re.compile(r"<!--.*?-->", re.S)


@dataclass(frozen=True)
class CronJob:
    name: str
    slug: str
    expr: str
    timezone: str | None
    instruction: str
    line: int

    def trigger(self, default_tz: tzinfo) -> CronTrigger:
        tz = ZoneInfo(self.timezone) if self.timezone else default_tz
        return crontab_trigger(self.expr, tz)

    def next_run(self, after: datetime, default_tz: tzinfo) -> datetime | None:
        fire: datetime | None = self.trigger(default_tz).get_next_fire_time(None, after)
        return fire


@dataclass
class CronParse:
    jobs: list[CronJob] = field(default_factory=list)
    errors: list[CronError] = field(default_factory=list)


DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def crontab_weekdays(field: str) -> str:
    """Crontab weekdays (0 or 7 = Sunday, 1 = Monday) as APScheduler day names.

    APScheduler 3 counts 0 as Monday, so ``from_crontab("0 8 * * 1-5")`` would run
    Tuesday to Saturday; numbers are expanded to names here.
    """
    if not re.search(r"\d", field):
        return field
    days: set[int] = set()
    for part in field.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            a, b = rng.split("-", 1)
            lo, hi = int(a), int(b)
        else:
            lo = hi = int(rng)
            if step_text:
                hi = 7
        if not (0 <= lo <= 7 and 0 <= hi <= 7 and lo <= hi) or step < 1:
            raise ValueError(f"day of week {part!r}: use 0-7 (0 and 7 are Sunday) or mon-sun")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def crontab_trigger(expr: str, tz: tzinfo | None = None) -> CronTrigger:
    minute, hour, day, month, dow = expr.split()
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_weekdays(dow), timezone=tz)


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "job"


def _blank_comments(text: str) -> str:
    """Remove HTML comments but keep their newlines, so line numbers stay true."""
    return _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def parse_cron_md(text: str, path: Path | str) -> CronParse:
    out = CronParse()
    lines = _blank_comments(text).split("\n")
    sections: list[tuple[str, int, list[tuple[int, str]]]] = []
    in_fence = False
    for i, line in enumerate(lines, 1):
        if line.strip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.startswith("## "):
            sections.append((line[3:].strip(), i, []))
        elif sections:
            sections[-1][2].append((i, line))
    seen: dict[str, int] = {}
    for name, line_no, body in sections:
        content = [(n, ln) for n, ln in body if ln.strip()]
        if not content:
            continue  # an empty or commented-out section is not a job
        if not name:
            out.errors.append(CronError(path, line_no, "a job heading needs a name after '## '"))
            continue
        expr_line, expr_text = content[0]
        m = re.fullmatch(r"\s*`?([^`]+?)`?\s*(?:\s([A-Za-z_]+/[A-Za-z0-9_+/-]+|UTC))?\s*", expr_text)
        expr = m.group(1).strip() if m else expr_text.strip()
        tz_name = m.group(2) if m else None
        if len(expr.split()) != 5:
            out.errors.append(CronError(path, expr_line, f"job {name!r}: expected a 5-field cron expression (minute hour day month weekday), got {expr_text.strip()!r}"))
            continue
        try:
            crontab_trigger(expr)
        except ValueError as e:
            out.errors.append(CronError(path, expr_line, f"job {name!r}: bad cron expression {expr!r}: {e}"))
            continue
        if tz_name:
            try:
                ZoneInfo(tz_name)
            except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "America"
                out.errors.append(CronError(path, expr_line, f"job {name!r}: unknown time zone {tz_name!r}"))
                continue
        instruction = "\n".join(ln for n, ln in body if n > expr_line).strip()
        if not instruction:
            out.errors.append(CronError(path, expr_line, f"job {name!r}: no instruction below the cron expression"))
            continue
        slug = slugify(name)
        if slug in seen:
            out.errors.append(CronError(path, line_no, f"job {name!r}: a job with this name is already at line {seen[slug]}"))
            continue
        seen[slug] = line_no
        out.jobs.append(CronJob(name, slug, expr, tz_name, instruction, line_no))
    return out

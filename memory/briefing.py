"""The daily-briefing skill's inputs, gathered deterministically from the home."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from memory.journal import read_recent
from scheduler.cron import parse_cron_md
from scheduler.heartbeat import parse_heartbeat_md

if TYPE_CHECKING:
    from agentd.home import Home


def gather_briefing_inputs(home: Home, today: date) -> str:
    parts = [f"Today is {today:%A, %Y-%m-%d}. Write the briefing to outbox/briefing-{today:%Y-%m-%d}.md."]
    hb_path = home.root / "HEARTBEAT.md"
    plan = parse_heartbeat_md(hb_path.read_text(encoding="utf-8", errors="replace") if hb_path.is_file() else "", hb_path)
    parts.append("## Open items (HEARTBEAT.md)\n" + ("\n".join(f"- [ ] {i.text}" for i in plan.open_items) or "- none"))
    cron_path = home.root / "CRON.md"
    cron = parse_cron_md(cron_path.read_text(encoding="utf-8", errors="replace") if cron_path.is_file() else "", cron_path)
    parts.append("## Scheduled jobs (CRON.md)\n" + ("\n".join(f"- {j.name} (`{j.expr}`)" for j in cron.jobs) or "- none"))
    approvals = home.root / "outbox" / "approvals"
    waiting = sorted(p.stem for p in approvals.glob("*.md") if "status: pending" in p.read_text(errors="replace")) if approvals.is_dir() else []
    parts.append("## Waiting for the person\n" + ("\n".join(f"- shell command {w} awaits `agentd approve {w}`" for w in waiting) or "- nothing"))
    parts.append("## Journal (yesterday and today)\n" + (read_recent(home, days=2, today=today) or "(empty)"))
    return "\n\n".join(parts)

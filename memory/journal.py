"""The journal: memory/journal/YYYY-MM-DD.md, append-only, one entry per wake."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentd.home import Home

MAX_RECENT_CHARS = 12_000
ENTRY_HEADING = re.compile(r"## \d\d:\d\d · ")


def day_path(day: date) -> str:
    return f"memory/journal/{day:%Y-%m-%d}.md"


def _append(home: Home, day: date, text: str) -> str:
    rel = day_path(day)
    head = f"# {day:%Y-%m-%d}\n" if not (home.root / rel).exists() else ""
    home.append_text(rel, head + text)
    return rel


def append_entry(home: Home, when: datetime, trigger: str, summary: str, actions: list[str], files: list[str], tokens: str | None = None) -> str:
    """One wake's entry: what woke the agent, what it did, which files changed, what it cost."""
    lines = [f"\n## {when:%H:%M} · {trigger}", "", summary.strip() or "(nothing to report)", ""]
    lines += [f"- {a}" for a in actions[:20]]
    if len(actions) > 20:
        lines.append(f"- … and {len(actions) - 20} more actions")
    if files:
        lines.append("- files: " + ", ".join(f"`{f}`" for f in files[:20]))
    if tokens:
        lines.append(f"- tokens: {tokens}")
    return _append(home, when.date(), "\n".join(lines) + "\n")


def count_wakes(home: Home, day: date) -> int:
    """Wakes recorded in the day's journal (one entry each; compaction entries are not wakes)."""
    path = home.root / day_path(day)
    if not path.is_file():
        return 0
    return sum(
        1
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        if ENTRY_HEADING.match(line) and " · compaction of session " not in line
    )


def daily_summary(home: Home, day: datetime | date, text: str) -> str:
    """Append the day's summary (rendered from the ledger by the caller) to that day's journal."""
    return _append(home, day.date() if isinstance(day, datetime) else day, text)


def read_recent(home: Home, days: int = 2, today: date | None = None) -> str:
    """The last ``days`` journal files, newest last, bounded in size (the newest text is kept)."""
    today = today or date.today()
    parts = []
    for back in range(days - 1, -1, -1):
        path = home.root / day_path(today - timedelta(days=back))
        if path.is_file():
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    text = "\n".join(parts)
    return text if len(text) <= MAX_RECENT_CHARS else "[… older entries cut …]\n" + text[-MAX_RECENT_CHARS:]

"""Curated memory: memory/MEMORY.md is a short index of topics; the facts live in memory/topics/<slug>.md.

MEMORY.md is in every prompt's cached prefix, so it stays small (budgets.memory_chars):
when it grows past the budget, the oldest index lines move to memory/topics/index.md —
folded, never dropped.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentd.home import Home

MEMORY = "memory/MEMORY.md"
OVERFLOW = "memory/topics/index.md"
GIST_CHARS = 80


def slug(topic: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", topic.lower()).strip("-")
    return s[:60] or "notes"


def _read(home: Home, rel: str) -> str:
    return home.read_text(rel) if (home.root / rel).is_file() else ""


def _index_line(topic: str, gist: str) -> str:
    gist = " ".join(gist.split())
    if len(gist) > GIST_CHARS:
        gist = gist[: GIST_CHARS - 1] + "…"
    return f"- [[topics/{slug(topic)}]] {topic}: {gist}"


def _set_index(text: str, topic: str, line: str) -> str:
    pattern = re.compile(rf"^- \[\[topics/{re.escape(slug(topic))}\]\].*$", re.M)
    if pattern.search(text):
        return pattern.sub(lambda _: line, text, count=1)
    return text.rstrip("\n") + "\n" + line + "\n"


def remember(home: Home, topic: str, fact: str, *, budget_chars: int) -> list[str]:
    """Add ``fact`` to the topic's file (no duplicates) and keep MEMORY.md's index line current."""
    topic, fact = " ".join(topic.split()), " ".join(fact.split())
    if not topic or not fact:
        raise ValueError("remember needs a topic and a fact")
    rel = f"memory/topics/{slug(topic)}.md"
    text = _read(home, rel) or f"# {topic}\n\n"
    changed = []
    if f"- {fact}\n" not in text:
        text = text.rstrip("\n") + f"\n- {fact}\n"
        home.write_text(rel, text)
        changed.append(rel)
    memory = _read(home, MEMORY) or "# Memory\n"
    updated = _set_index(memory, topic, _index_line(topic, fact))
    updated, overflow = fold_to_budget(updated, budget_chars)
    if overflow:
        old = _read(home, OVERFLOW) or "# Topics index\n\nOlder index lines moved here from MEMORY.md to keep it short.\n"
        home.write_text(OVERFLOW, old.rstrip("\n") + "\n" + "\n".join(overflow) + "\n")
        changed.append(OVERFLOW)
        if "[[topics/index]]" not in updated:
            updated = updated.rstrip("\n") + "\n- [[topics/index]] more topics\n"
    if updated != memory:
        home.write_text(MEMORY, updated)
        changed.append(MEMORY)
    return changed


def fold_to_budget(text: str, budget: int) -> tuple[str, list[str]]:
    """Move the oldest index lines out until ``text`` fits ``budget`` characters."""
    lines = text.split("\n")
    moved: list[str] = []
    index_rows = [i for i, ln in enumerate(lines) if ln.startswith("- [[topics/") and "[[topics/index]]" not in ln]
    while len("\n".join(lines)) > budget and index_rows:
        i = index_rows.pop(0)
        moved.append(lines[i])
        lines[i] = "\0"
        lines = [ln for ln in lines if ln != "\0"]
        index_rows = [j for j, ln in enumerate(lines) if ln.startswith("- [[topics/") and "[[topics/index]]" not in ln]
    return "\n".join(lines), moved


def forget(home: Home, topic: str, fact: str) -> list[str]:
    """Remove facts containing ``fact`` from the topic; drop its index line when the topic is empty."""
    rel = f"memory/topics/{slug(topic)}.md"
    text = _read(home, rel)
    if not text:
        raise ValueError(f"no topic {topic!r} in memory/topics/")
    kept = [ln for ln in text.split("\n") if not (ln.startswith("- ") and fact.lower() in ln.lower())]
    if len(kept) == len(text.split("\n")):
        raise ValueError(f"no fact containing {fact!r} in {rel}")
    changed = [rel]
    home.write_text(rel, "\n".join(kept))
    if not any(ln.startswith("- ") for ln in kept):
        memory = _read(home, MEMORY)
        pattern = re.compile(rf"^- \[\[topics/{re.escape(slug(topic))}\]\].*\n?", re.M)
        if pattern.search(memory):
            home.write_text(MEMORY, pattern.sub("", memory))
            changed.append(MEMORY)
    return changed

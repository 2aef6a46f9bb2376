"""Curated memory: memory/MEMORY.md is a short index of topics; the facts live in memory/topics/<slug>.md.

MEMORY.md is in every prompt's cached prefix, so it stays small (budgets.memory_chars):
when it grows past the budget, the oldest index lines move to memory/topics/index.md —
folded, never dropped. Text the person wrote in MEMORY.md (anything that is not an index
line) is never folded or rewritten; when it alone exceeds the budget, :func:`budget_note`
says so.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentd.home import Home

MEMORY = "memory/MEMORY.md"
OVERFLOW = "memory/topics/index.md"
OVERFLOW_LINK = "- [[topics/index]] more topics"
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
    overflow: list[str] = []
    if len(updated) > budget_chars:
        # Room for the link to the folded lines is kept before folding, so the result fits.
        reserve = 0 if "[[topics/index]]" in updated else len(OVERFLOW_LINK) + 2
        updated, overflow = fold_to_budget(updated, budget_chars - reserve)
    if overflow:
        old = _read(home, OVERFLOW) or "# Topics index\n\nOlder index lines moved here from MEMORY.md to keep it short.\n"
        home.write_text(OVERFLOW, old.rstrip("\n") + "\n" + "\n".join(overflow) + "\n")
        changed.append(OVERFLOW)
        if "[[topics/index]]" not in updated:
            updated = updated.rstrip("\n") + "\n" + OVERFLOW_LINK + "\n"
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


def budget_note(home: Home, budget_chars: int) -> str | None:
    """Why MEMORY.md is still over budget after folding (text that is not index lines), or None."""
    memory = _read(home, MEMORY)
    if len(memory) <= budget_chars:
        return None
    prose = sum(len(ln) + 1 for ln in memory.split("\n") if ln.strip() and not ln.startswith("- [[topics/") and not ln.startswith("#"))
    return (
        f"MEMORY.md is {len(memory)} characters, over its budget of {budget_chars}: {prose} of them are text "
        "that is not index lines (the person's prose is never folded automatically). Use the housekeeping "
        "skill to move that detail into topic files, or tell the person."
    )


def forget(home: Home, topic: str, fact: str) -> list[str]:
    """Remove facts containing ``fact`` from the topic and every index line that still quotes it.

    When the topic is left empty its index line goes, from MEMORY.md and from the
    folded lines in memory/topics/index.md alike.
    """
    fact = " ".join(fact.split())
    if not fact:
        raise ValueError("forget needs the text of the fact to remove (an empty text would match every fact in the topic)")
    rel = f"memory/topics/{slug(topic)}.md"
    text = _read(home, rel)
    if not text:
        raise ValueError(f"no topic {topic!r} in memory/topics/")
    kept = [ln for ln in text.split("\n") if not (ln.startswith("- ") and fact.lower() in ln.lower())]
    if len(kept) == len(text.split("\n")):
        raise ValueError(f"no fact containing {fact!r} in {rel}")
    changed = [rel]
    home.write_text(rel, "\n".join(kept))
    remaining = [ln[2:] for ln in kept if ln.startswith("- ")]
    pattern = re.compile(rf"^- \[\[topics/{re.escape(slug(topic))}\]\].*(\n|$)", re.M)
    for index in (MEMORY, OVERFLOW):
        old = _read(home, index)
        match = pattern.search(old)
        if not match:
            continue
        if not remaining:
            new = pattern.sub("", old)
        elif fact.lower() in match.group(0).lower():
            # The index line quoted the forgotten fact: it now quotes the newest one left.
            new = pattern.sub(lambda m: _index_line(topic, remaining[-1]) + m.group(1), old, count=1)
        else:
            continue
        home.write_text(index, new)
        changed.append(index)
    return changed

"""Compaction of a long session into the journal: the fixed instructions and the bounded summary."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentd.home import Home

SUMMARY_MAX_CHARS = 2000

MEMORY_FLUSH_INSTRUCTION = """\
This session is about to be compacted: its messages will be replaced by a short summary.
Before that, save anything that must outlive it — facts about the person, decisions,
promises, open tasks — with `remember` or by editing memory files. Then call `done`."""

COMPACTION_INSTRUCTION = """\
Summarize this session for your future self in at most 12 short bullet points:
decisions made, open tasks (with who is waiting), facts learned, and the paths of files
created or changed. No pleasantries; plain Markdown bullets only."""


def bound_summary(text: str, limit: int = SUMMARY_MAX_CHARS) -> str:
    """The model's summary, cut at a line boundary so the journal entry stays bounded."""
    text = text.strip() or "(the model gave no summary)"
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit("\n", 1)[0]
    return cut + "\n- … (summary cut to its size limit)"


def write_compaction(home: Home, when: datetime, summary: str, session_id: str) -> str:
    from memory.journal import _append

    return _append(home, when.date(), f"\n## {when:%H:%M} · compaction of session {session_id}\n\n{bound_summary(summary)}\n")

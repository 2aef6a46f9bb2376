"""Steering edits without a cold prefix: a prefix file changed mid-session enters the tail as a diff.

A session's prefix is frozen. When AGENT.md, USER.md, MEMORY.md or the skills index
changes while the session is open, the change goes into the session's tail, before the
next event, as one message: a compact diff of each changed section (what was there, what
is there now), saying who made it (the person or the agent) and that it holds from then
on. Nothing before it is recomputed; the new prefix is built at the next session boundary
(compaction, a new session or day), where the tail is rebuilt anyway.

A new prefix is still started at once when:
- the rules or the tool schemas changed (agentd's own text: a diff of them would leave
  the model reading two sets of rules, and the tools a request offers must be the ones
  the grammar and the prefix describe);
- the session's diffs would pass ``DIFF_BUDGET_TOKENS`` (1,024) together — a whole file
  rewritten, or many edits piling up. Each diff is computed once and then cached like
  the rest of the tail, but it is a second copy of the text the prefix holds: past ~1K
  tokens it is about as large as what a new prefix recomputes on the template home (a
  ~2.3K-token prefix, the person's files in its second half), it eats a sixth of the
  template's session budget (6,000 tokens) and brings compaction nearer, and a small
  model reads one clean copy better than a long patch;
- a diff would cost more tokens than the new prefix it avoids (the prefix from the first
  change on, plus the session tail re-sent after it).
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

from agentd.context import CHARS_PER_TOKEN, ContextCompiler, Message, Session
from agentd.prefix import FIXED_SECTIONS, Prefix

DIFF_BUDGET_TOKENS = 1024
STEERING_TAG = "[steering diff"
PERSON, AGENT_SELF, BOTH = "the person", "you (the agent)", "the person and you (the agent)"
# The section a home path feeds (for who changed it); the skills index is fed by skills/.
SECTION_SOURCES = {"AGENT.md": "AGENT.md", "USER.md": "USER.md", "MEMORY.md": "memory/MEMORY.md", "skills": "skills"}


@dataclass(frozen=True)
class Change:
    section: str
    before: str  # as the session last showed it (the prefix, or an earlier diff)
    after: str  # as the home holds it now
    who: str  # PERSON, AGENT_SELF or BOTH


@dataclass(frozen=True)
class Decision:
    """What a wake does with the prefix sections that changed since its session last showed them."""

    kind: str  # "same" | "diff" | "new-prefix"
    cause: str | None = None  # the reason (and, for a new prefix, the cache break's cause)
    changes: tuple[Change, ...] = ()
    message: Message | None = None  # the diff, for the tail
    diff_tokens: int = 0  # its estimated tokens
    saved_prefix_tokens: int = 0  # prefix tokens a new prefix would have recomputed (from the first change on)
    saved_tail_tokens: int = 0  # ... and the session tail it would have re-sent


def shown_sections(prefix: Prefix, session: Session) -> dict[str, str]:
    """Each prefix section as the session's model last saw it: the prefix, overlaid by its diffs."""
    shown = {s.name: s.text for s in prefix.sections}
    if session.epoch == prefix.digest:
        shown.update((k, v) for k, v in session.steering.items() if k in shown)
    return shown


def render_hunks(before: str, after: str) -> str:
    """A unified diff of one section with one line of context, without the file headers."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), n=1, lineterm="")
    return "\n".join(line for i, line in enumerate(lines) if i >= 2)


def diff_message(changes: tuple[Change, ...]) -> Message:
    parts = []
    for c in changes:
        parts.append(
            f"{STEERING_TAG} · {c.section} · edited by {c.who}]\n"
            f"{c.section} changed after this conversation began. From now on this holds: where it "
            f"differs from {c.section} above, follow the lines marked +.\n{render_hunks(c.before, c.after)}"
        )
    return {"role": "user", "content": "\n\n".join(parts)}


def estimate(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def decide(compiler: ContextCompiler, session: Session, candidate: Prefix, who: Callable[[str], str]) -> Decision:
    """Compare the home's prefix now (``candidate``, in the epoch's order) with what the session shows."""
    prefix = compiler.prefix
    assert prefix is not None
    if candidate.digest == prefix.digest and (session.epoch != prefix.digest or not session.steering):
        return Decision("same")
    names = [s.name for s in prefix.sections]
    if candidate.tools != prefix.tools or [s.name for s in candidate.sections] != names:
        return Decision("new-prefix", "tools changed")
    shown = shown_sections(prefix, session)
    changed = [s for s in candidate.sections if shown[s.name] != s.text]
    if not changed:
        return Decision("same")
    fixed = [s.name for s in changed if s.name in FIXED_SECTIONS]
    if fixed:
        return Decision("new-prefix", f"{fixed[0]} changed")
    changes = tuple(Change(s.name, shown[s.name], s.text, who(s.name)) for s in changed)
    message = diff_message(changes)
    tokens = estimate(str(message["content"]))
    old_text, new_text = prefix.system_text(), candidate.system_text()
    after_change = len(old_text) - len(os.path.commonprefix([old_text, new_text]))
    saved_prefix = round(compiler.prefix_estimate() * after_change / max(1, len(old_text)))
    saved_tail = compiler.tail_tokens(session) if session.tail else 0
    what = ", ".join(f"{c.section} edited by {'the agent' if c.who == AGENT_SELF else c.who.replace(' (the agent)', '')}" for c in changes)
    if session.steering_tokens + tokens > DIFF_BUDGET_TOKENS:
        return Decision("new-prefix", f"{what}: steering diffs past their budget ({session.steering_tokens + tokens} > {DIFF_BUDGET_TOKENS} tokens)")
    if tokens >= saved_prefix + saved_tail:
        return Decision("new-prefix", f"{what}: a new prefix costs less than the diff")
    return Decision("diff", f"steering-diff: {what}", changes, message, tokens, saved_prefix, saved_tail)


def apply(session: Session, decision: Decision) -> None:
    """Append the diff to the session's tail: the model reads it before the next event."""
    assert decision.kind == "diff" and decision.message is not None
    session.tail.append(decision.message)
    for c in decision.changes:
        session.steering[c.section] = c.after
    session.steering_tokens += decision.diff_tokens


def restart_view(session: Session, prefix: Prefix) -> None:
    """The session goes on on a new prefix, which holds every change: no diff shown applies any more."""
    session.epoch = prefix.digest
    session.steering = {}
    session.steering_tokens = 0


def who_changed(authors: set[str]) -> str:
    """``authors``: "person" and/or "agent" (from the commits that touched the section)."""
    if authors == {"agent"}:
        return AGENT_SELF
    return BOTH if "agent" in authors else PERSON

"""The stable prefix: the home's rules, tools and steering files, rendered byte-deterministically.

Moved out of the context compiler (``agentd.context`` re-exports it): what the prefix
holds, in which order, and how two prefixes differ. The order of the home's sections
follows how often each changes in the home's own git history (rarest first; see
:func:`section_order`), after the rules and tool schemas, which only a new agentd changes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentd.errors import SourceError
from agentd.merge.kinds import has_markers

# Home files whose content is in the prefix, with the section each feeds.
PREFIX_FILES = {"AGENT.md": "AGENT.md", "USER.md": "USER.md", "memory/MEMORY.md": "MEMORY.md"}
SOURCE_SECTION = dict(PREFIX_FILES)
# The home's sections when the history cannot tell them apart (a new home): the usual
# volatility, the skills index (built-ins, rarely a skill of the person's) first, the
# agent's curated memory last.
DEFAULT_ORDER = ("skills", "AGENT.md", "USER.md", "MEMORY.md")
Message = dict[str, Any]
PRIOR_COMMITS = 5  # the default order's weight against the measured history (see section_order)
FIXED_SECTIONS = ("rules", "tools")  # agentd's own: a change to them is a new prefix at once


SYSTEM_RULES = """\
You are a persistent personal agent. Your whole mind is the Markdown in your home
folder, a git repository: identity (AGENT.md), the person (USER.md), memory
(memory/MEMORY.md, memory/topics/, memory/journal/), skills (skills/), schedule
(CRON.md, HEARTBEAT.md). Every change you make is committed to git at the end of
the wake.

Each wake starts with an event: a message from the person, a heartbeat, or a
scheduled job. Work through it with your tools, one step at a time, then finish:
- answer the person with `reply` (for a message, always reply);
- or call `done` with a one-line summary when there is nothing to say.
On a heartbeat with nothing that needs doing, finish with `done` and the summary
HEARTBEAT_OK.

Write what you learn that must outlast this conversation with `remember`, or into
memory files; the conversation itself is compacted away. Read a file before you
change it. Use skills by reading them with `read_skill`. Keep answers short."""

JSON_ACTION_RULES = """\
Answer every turn with exactly one JSON object and nothing else:
{"tool": "<tool name>", "arguments": {<the tool's arguments>}}
The result of the tool comes back in the next message."""


def normalize_text(text: str) -> str:
    """NFC, LF line ends, no trailing spaces, at most one blank line in a row, one final newline."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return out + "\n" if out else ""


def canonical_json(value: Any) -> str:
    """Sorted keys, fixed separators: the same value always serializes to the same bytes."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Section:
    name: str
    text: str

    @property
    def digest(self) -> str:
        return digest(self.text)


@dataclass(frozen=True)
class Prefix:
    """The stable prefix of one epoch: the system message and, for native tool calls, the tools."""

    sections: tuple[Section, ...]
    tools: tuple[str, ...]  # canonical JSON of each tool schema, in registry order (native mode)

    @property
    def digest(self) -> str:
        return digest("".join(s.name + "\0" + s.digest for s in self.sections) + "".join(self.tools))

    def system_text(self) -> str:
        return "\n".join(f"<<< {s.name} >>>\n{s.text}" for s in self.sections)

    def system_message(self) -> Message:
        return {"role": "system", "content": self.system_text()}

    def tool_schemas(self) -> list[dict[str, Any]] | None:
        return [json.loads(t) for t in self.tools] if self.tools else None

    @functools.cached_property  # asked several times per request; the prefix is frozen
    def tools_digest(self) -> str:
        return digest("\n".join(self.tools))

    def section_at(self, offset: int) -> str:
        """The section holding character ``offset`` of the canonical system message."""
        # JSON escapes character by character, so each piece's escaped length adds up.
        pos = len('{"content": "')
        for i, s in enumerate(self.sections):
            piece = ("\n" if i else "") + f"<<< {s.name} >>>\n{s.text}"
            pos += len(json.dumps(piece, ensure_ascii=False)) - 2
            if offset < pos:
                return s.name
        return self.sections[-1].name if self.sections else "rules"

    def first_difference(self, other: Prefix) -> str | None:
        """The name of the first section (in prompt order) that differs, or None."""
        if self.tools != other.tools:
            return "tools"
        mine, theirs = {s.name: s for s in self.sections}, {s.name: s for s in other.sections}
        for s in self.sections:
            if theirs.get(s.name) != s:
                return s.name
        for s in other.sections:
            if s.name not in mine:
                return s.name
        return None

    def to_json(self) -> dict[str, Any]:
        return {"sections": [[s.name, s.text] for s in self.sections], "tools": list(self.tools)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prefix:
        return cls(tuple(Section(n, t) for n, t in data["sections"]), tuple(data["tools"]))


def render_tools_text(schemas: Sequence[dict[str, Any]]) -> str:
    parts = [JSON_ACTION_RULES, ""]
    for schema in schemas:
        fn = schema["function"]
        parts.append(f"## {fn['name']}\n{' '.join(fn['description'].split())}\narguments: {canonical_json(fn['parameters'])}")
    return "\n".join(parts)


def build_prefix(
    read: Callable[[str], str | None],
    tool_schemas: Sequence[dict[str, Any]],
    skills_index: str,
    *,
    tool_calling: str,
    order: Sequence[str] = DEFAULT_ORDER,
) -> Prefix:
    """Render the prefix from the home's files: rules, tools, then ``order`` (rarest change first).

    ``read`` returns a home file's text or None; nothing else (no clock, no git
    status, no counters) enters the prefix, so equal files give equal bytes.
    A file holding git conflict markers (a merge left for the person) is refused:
    SourceError naming its line, and no prefix.
    """
    for rel in PREFIX_FILES:
        line = has_markers(read(rel) or "")
        if line is not None:
            raise SourceError(rel, line, "unresolved merge conflict markers (<<<<<<< ======= >>>>>>>); the agent waits on the last good version until you resolve them")
    sections = [Section("rules", normalize_text(SYSTEM_RULES))]
    tools: tuple[str, ...] = ()
    if tool_calling == "json":
        sections.append(Section("tools", normalize_text(render_tools_text(tool_schemas))))
    else:
        tools = tuple(canonical_json(s) for s in tool_schemas)
    files = {name: rel for rel, name in PREFIX_FILES.items()}
    for name in order:
        if name == "skills":
            sections.append(Section("skills", normalize_text(skills_index) or "(no skills)\n"))
        else:
            text = read(files[name])
            sections.append(Section(name, normalize_text(text) if text else "(empty)\n"))
    return Prefix(tuple(sections), tools)


# ---------------------------------------------------------------------- the order
def change_counts(log_names: str) -> dict[str, int]:
    """Commits touching each movable section, from ``git log --format=%x00 --name-only``'s output."""
    counts = dict.fromkeys(DEFAULT_ORDER, 0)
    for commit in log_names.split("\0"):
        touched = {SOURCE_SECTION.get(p) or ("skills" if p.startswith("skills/") else None) for p in commit.split()}
        for name in touched - {None}:
            counts[str(name)] += 1
    return counts


def section_order(counts: Mapping[str, int]) -> tuple[str, ...]:
    """The movable sections, least often changed first (``counts``: commits touching each).

    What changes most sits last, so an edit invalidates (and a new prefix recomputes)
    as little of the cached prefix as it can. Each section starts from
    :data:`DEFAULT_ORDER` with ``PRIOR_COMMITS`` pseudo-commits per place, so one edit
    on a young home does not reorder it (a reorder recomputes every section it moves):
    a section moves past the next one only once it has changed ``PRIOR_COMMITS`` times
    more. Equal histories give equal orders.
    """
    def score(name: str) -> tuple[int, int]:
        rank = DEFAULT_ORDER.index(name)
        return counts.get(name, 0) + PRIOR_COMMITS * rank, rank

    return tuple(sorted(DEFAULT_ORDER, key=score))

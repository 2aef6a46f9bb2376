"""The context compiler: every request is STABLE PREFIX + SESSION TAIL + EVENT, so the prefix cache holds.

The prefix is rendered byte-deterministically from the home (rules → tools → AGENT.md
→ USER.md → skills index → MEMORY.md) and frozen for an *epoch*; sessions append to
their tail and never rewrite it; everything volatile (the clock, what changed) goes
into the event, the last message. Before each request the compiler compares it with
the requests the engine last saw (the session's own, and the last of any session or
warm-up), records the longest common prefix and what the cache should hold, and — when
the shared prefix shrank — which section changed first.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agentd.errors import SourceError
from agentd.events import Event
from agentd.fileio import atomic_write
from agentd.merge.kinds import has_markers

Message = dict[str, Any]
IdSource = Callable[[], str]  # wake and session ids; injected where runs must be reproducible


def random_id() -> str:
    """The default id source: ten random hex digits."""
    return uuid.uuid4().hex[:10]


def seeded_ids(seed: int) -> IdSource:
    """A reproducible id source (benchmarks, tests): the same seed gives the same ids in the same order."""
    rng = random.Random(seed)
    return lambda: f"{rng.getrandbits(40):010x}"

# Home files whose content is in the prefix, with the section each feeds.
PREFIX_FILES = {"AGENT.md": "AGENT.md", "USER.md": "USER.md", "memory/MEMORY.md": "MEMORY.md"}
HEARTBEAT_OK = "HEARTBEAT_OK"
# Token estimates for text the engine has not measured yet. Canonical JSON runs at
# 3.7–4.5 characters per token on the SmolLM2 and Qwen tokenizers; 3 errs on the side
# of more tokens, so a context window is never overrun on an estimate.
CHARS_PER_TOKEN = 3.0
MESSAGE_TOKENS = 8  # the chat template's tokens around one message

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
) -> Prefix:
    """Render the prefix from the home's files, least volatile first.

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
    for rel, name in PREFIX_FILES.items():
        if name == "MEMORY.md":
            sections.append(Section("skills", normalize_text(skills_index) or "(no skills)\n"))
        text = read(rel)
        sections.append(Section(name, normalize_text(text) if text else "(empty)\n"))
    return Prefix(tuple(sections), tools)


# ---------------------------------------------------------------------- sessions
@dataclass
class Session:
    """An append-only conversation on one epoch's prefix."""

    id: str
    kind: str  # "main", or "cron:<slug>" for a job's own short session
    epoch: str  # the prefix digest
    tail: list[Message] = field(default_factory=list)
    last_request: list[str] | None = None  # canonical JSON of each message of the last request
    last_tools: str = ""  # the tools' digest in that request (native tool calling)
    generation: int = 0  # the engine generation it was sent in (see ContextCompiler.note_break)
    last_prompt_tokens: int | None = None  # the engine's count for the last request it answered
    last_prompt_chars: int | None = None  # ... and that request's size, to anchor estimates on it
    last_prompt_messages: int | None = None
    started: str = ""

    def measured(self, request: Request, prompt_tokens: int) -> None:
        """The engine answered ``request`` and counted its prompt: later estimates start there."""
        self.last_prompt_tokens = prompt_tokens
        self.last_prompt_chars = request.chars
        self.last_prompt_messages = len(request.messages)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "epoch": self.epoch,
            "tail": self.tail,
            "last_request": self.last_request,
            "last_tools": self.last_tools,
            "generation": self.generation,
            "last_prompt_tokens": self.last_prompt_tokens,
            "last_prompt_chars": self.last_prompt_chars,
            "last_prompt_messages": self.last_prompt_messages,
            "started": self.started,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Session:
        return cls(**data)


@dataclass(frozen=True)
class SelfCheck:
    """What the compiler expects of the cache for one request, and why it broke if it did."""

    common_messages: int  # leading messages identical to the previous request's
    extends_previous: bool  # the session's previous request is a prefix of this one
    expected_cached: int | None  # tokens the engine should find cached (None: it cannot know)
    cause: str | None  # why the shared prefix shrank, if it did
    common_chars: int = 0  # the longest common prefix with what the engine saw, in canonical characters
    section: str | None = None  # the first section that changed, when the shared prefix shrank


@dataclass
class Request:
    """One rendered engine request."""

    messages: list[Message]
    tools: list[dict[str, Any]] | None
    prefix_messages: int  # how many leading messages are the stable prefix
    check: SelfCheck
    chars: int = 0  # characters of the canonical messages
    estimated_tokens: int = 0  # prompt tokens, estimated from the engine's last count (see estimate_tokens)
    canon: list[str] = field(default_factory=list)  # canonical JSON of each message


@dataclass
class _Seen:
    """A request the engine was sent: what the next request's self-check compares with."""

    canon: list[str]
    tools: str
    generation: int
    tokens: int | None = None  # the engine's prompt count for it, once it answered

    @property
    def chars(self) -> int:
        return sum(map(len, self.canon))


def _common_prefix(a: list[str], b: list[str]) -> tuple[int, int]:
    """Leading messages identical in ``a`` and ``b``, and their common prefix in characters."""
    messages = chars = 0
    for x, y in zip(a, b, strict=False):
        if x == y:
            messages += 1
            chars += len(x)
            continue
        lo, hi = 0, min(len(x), len(y))
        while lo < hi:  # binary search: the slices compare in C
            mid = (lo + hi + 1) // 2
            if x[:mid] == y[:mid]:
                lo = mid
            else:
                hi = mid - 1
        return messages, chars + lo
    return messages, chars


class ContextCompiler:
    """Owns the epoch (the frozen prefix) and the sessions of one home.

    State lives in ``.agentd/context/`` (runtime, not in git): losing it only
    costs one cold start, because everything the agent knows is in the home.
    """

    def __init__(self, state_dir: Path, new_id: IdSource = random_id) -> None:
        self.state_dir = state_dir
        self.new_id = new_id
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.prefix: Prefix | None = None
        self.epoch_cause: str | None = None
        self.prefix_tokens: int | None = None  # measured by the warm-up request
        # Bumped when the engine lost its cache (restart): requests sent before no longer count.
        self.generation = 0
        self._pending_cause: str | None = None  # why the next request's shared prefix will shrink
        self._emptied = False  # the engine restarted and nothing was sent since
        self._seen: _Seen | None = None  # the last request of any session, or the warm-up
        self._prefix_counts: dict[str, int] = {}  # system message digest → tokens, as warm-ups counted them
        self._load_epoch()

    # ------------------------------------------------------------ epochs
    def _epoch_path(self) -> Path:
        return self.state_dir / "epoch.json"

    def _load_epoch(self) -> None:
        try:
            data = json.loads(self._epoch_path().read_text(encoding="utf-8"))
            self.prefix = Prefix.from_json(data["prefix"])
            self.epoch_cause = data.get("cause")
            self.prefix_tokens = data.get("prefix_tokens")
            self.generation = int(data.get("generation", 0))
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            self.prefix = None

    def _save_epoch(self) -> None:
        assert self.prefix is not None
        data = {
            "prefix": self.prefix.to_json(),
            "cause": self.epoch_cause,
            "prefix_tokens": self.prefix_tokens,
            "generation": self.generation,
        }
        atomic_write(self._epoch_path(), json.dumps(data, ensure_ascii=False))

    def start_epoch(self, prefix: Prefix, cause: str | None = None) -> bool:
        """Adopt ``prefix`` if it differs from the current one; returns whether a new epoch began.

        Without a ``cause`` the first section that differs names it ("USER.md changed").
        """
        if self.prefix is not None and self.prefix.digest == prefix.digest:
            return False
        if cause is None:
            changed = prefix.first_difference(self.prefix) if self.prefix is not None else None
            cause = f"{changed} changed" if changed else "first epoch"
        self.prefix = prefix
        self.epoch_cause = cause
        self.prefix_tokens = None
        self._pending_cause = cause
        self._save_epoch()
        return True

    def set_prefix_tokens(self, tokens: int) -> None:
        self.prefix_tokens = tokens
        self._save_epoch()

    def note_break(self, cause: str) -> None:
        """Something outside the prompt emptied the engine's cache (it restarted).

        Nothing sent before counts as cached any more; the next request (the warm-up,
        if there is one) records the break with ``cause``.
        """
        self.generation += 1
        self._seen = None
        self._emptied = True
        self._pending_cause = cause
        if self.prefix is not None:
            self._save_epoch()

    def note_cause(self, cause: str) -> None:
        """The compiler is about to shrink the shared prefix on purpose (compaction): name why."""
        self._pending_cause = cause

    # ------------------------------------------------------------ sessions
    def _session_path(self, kind: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", kind)
        return self.state_dir / f"session-{safe}.json"

    def load_session(self, kind: str = "main") -> Session | None:
        try:
            return Session.from_json(json.loads(self._session_path(kind).read_text(encoding="utf-8")))
        except (FileNotFoundError, json.JSONDecodeError, TypeError, KeyError):
            return None

    def new_session(self, kind: str, now: datetime) -> Session:
        assert self.prefix is not None, "start an epoch before a session"
        return Session(id=self.new_id(), kind=kind, epoch=self.prefix.digest, started=now.isoformat())

    def save_session(self, session: Session) -> None:
        atomic_write(self._session_path(session.kind), json.dumps(session.to_json(), ensure_ascii=False))

    def drop_session(self, kind: str) -> None:
        self._session_path(kind).unlink(missing_ok=True)

    # ------------------------------------------------------------ rendering
    def render(self, session: Session, pending: list[Message]) -> Request:
        """PREFIX + TAIL + pending (the event and this wake's steps so far), with the self-check."""
        assert self.prefix is not None
        canon = [canonical_json(m) for m in (self.prefix.system_message(), *session.tail, *pending)]
        # The engine is sent exactly what the self-check compared: keys sorted at every level.
        messages = [json.loads(c) for c in canon]
        estimate = self._estimate(session, canon)
        check = self._self_check(canon, session)
        session.last_request = canon
        session.last_tools = self.prefix.tools_digest
        session.generation = self.generation
        self._seen = _Seen(canon, self.prefix.tools_digest, self.generation)
        return Request(messages, self.prefix.tool_schemas(), 1, check, sum(map(len, canon)), estimate, canon)

    def render_prefix(self) -> Request:
        """The prefix alone, for the warm-up: checked and remembered like any request."""
        assert self.prefix is not None
        messages = [self.prefix.system_message()]
        canon = [canonical_json(messages[0])]
        check = self._self_check(canon, None)
        self._seen = _Seen(canon, self.prefix.tools_digest, self.generation)
        return Request(messages, self.prefix.tool_schemas(), 1, check, len(canon[0]), self.prefix_estimate(), canon)

    def measured(self, request: Request, prompt_tokens: int, session: Session | None = None) -> None:
        """The engine answered ``request`` and counted ``prompt_tokens``: later checks and estimates start there."""
        if not prompt_tokens:
            return
        if session is not None:
            session.measured(request, prompt_tokens)
        if self._seen is not None and self._seen.canon is request.canon:
            self._seen.tokens = prompt_tokens
        if session is None and len(request.canon) == 1:
            self.set_prefix_tokens(prompt_tokens)
            self._prefix_counts[digest(request.canon[0])] = prompt_tokens

    def estimate_tokens(self, session: Session, pending: Sequence[Message] = ()) -> int:
        """Prompt tokens of PREFIX + TAIL + ``pending``, without rendering anything.

        Anchored on what the engine counted: the session's last answered request when
        this one extends it, else the warm-up's count of the prefix. Only the text past
        the anchor is estimated (``CHARS_PER_TOKEN``, generously), so the figure is close
        and errs high: it decides compaction and guards the engine's context window.
        """
        assert self.prefix is not None
        return self._estimate(session, [canonical_json(m) for m in (self.prefix.system_message(), *session.tail, *pending)])

    def tail_tokens(self, session: Session) -> int:
        """The session tail's share of the estimate (the prefix as the warm-up counted it, if it did)."""
        assert self.prefix is not None
        canon = [canonical_json(m) for m in (self.prefix.system_message(), *session.tail)]
        total = self._estimate(session, canon)
        if self.prefix_tokens:
            return max(0, total - self.prefix_tokens)
        return round(total * sum(map(len, canon[1:])) / max(1, sum(map(len, canon))))

    def prefix_estimate(self) -> int:
        assert self.prefix is not None
        if self.prefix_tokens:
            return self.prefix_tokens
        chars = len(canonical_json(self.prefix.system_message())) + sum(len(t) for t in self.prefix.tools)
        return math.ceil(chars / CHARS_PER_TOKEN) + MESSAGE_TOKENS

    def _estimate(self, session: Session, canon: list[str]) -> int:
        n = session.last_prompt_messages
        if (
            session.last_prompt_tokens
            and n
            and session.last_prompt_chars is not None
            and len(canon) >= n
            and sum(map(len, canon[:n])) == session.last_prompt_chars
        ):
            tokens, done = session.last_prompt_tokens, n
        else:
            tokens, done = self.prefix_estimate(), 1
        rest = sum(map(len, canon[done:]))
        return tokens + math.ceil(rest / CHARS_PER_TOKEN) + MESSAGE_TOKENS * (len(canon) - done)

    def _self_check(self, canon: list[str], session: Session | None) -> SelfCheck:
        """Compare ``canon`` with what the engine last saw and say what it should find cached.

        The references are the session's own previous request and the last request of
        any session (or the warm-up), as long as the engine has not restarted since.
        The prompt's stable part — the prefix, and the session's tail — must start with
        what was sent before: a shorter common prefix there is a cache break.
        A message the tail dropped at its end (an empty heartbeat) is no break: the
        request shares everything before it.
        """
        assert self.prefix is not None
        cause, self._pending_cause = self._pending_cause, None
        emptied, self._emptied = self._emptied, False
        tools = self.prefix.tools_digest
        refs: list[_Seen] = []
        own: _Seen | None = None
        if session is not None and session.last_request and session.generation == self.generation:
            chars = sum(map(len, session.last_request))
            tokens = session.last_prompt_tokens if session.last_prompt_chars == chars else None
            own = _Seen(session.last_request, session.last_tools, session.generation, tokens)
            refs.append(own)
        seen = self._seen
        if seen is not None and seen.generation == self.generation and (own is None or seen.canon != own.canon):
            refs.append(seen)
        if not refs:
            return SelfCheck(0, False, 0 if emptied else None, cause or "cold start")
        shared = [_common_prefix(r.canon, canon) if r.tools == tools else (0, 0) for r in refs]
        expected = max((self._tokens_at(c, r, canon) for r, (_, c) in zip(refs, shared, strict=True)), default=None, key=lambda t: t or 0)
        # Judged against the reference the engine shares most with: after a warm-up of a
        # new prefix, the warm-up (which recorded the break) rather than the session's
        # request on the old one — one break, one record.
        best = max(range(len(refs)), key=lambda i: shared[i][1])
        ref, (common, common_chars) = refs[best], shared[best]
        stable = 1 + (len(session.tail) if session is not None else 0)
        must_share = min(sum(map(len, canon[:stable])), ref.chars)
        extends = own is not None and shared[0][0] == len(own.canon)
        if common_chars >= must_share:
            return SelfCheck(common, extends, expected, None, common_chars, None)
        section = self._section_at(common, common_chars, canon, ref.tools == tools)
        if cause is None:
            cause = f"session tail rewritten at message {common}" if section == "tail" else f"{section} changed"
        return SelfCheck(common, extends, expected, cause, common_chars, section)

    def _section_at(self, common: int, common_chars: int, canon: list[str], same_tools: bool) -> str:
        assert self.prefix is not None
        if not same_tools:
            return "tools"
        if common == 0:
            return self.prefix.section_at(common_chars)
        return "tail"

    def _tokens_at(self, chars: int, ref: _Seen, canon: list[str]) -> int | None:
        """Tokens in the first ``chars`` characters, interpolated between the engine's own counts.

        Both requests start with those characters, so a count of either one's prefix
        (as a warm-up measured it) or of the whole reference (as the engine answered it)
        is a point on the same curve; without one at or past ``chars`` it is unknown.
        """
        anchors = [(0, 0)]
        if ref.tokens:
            anchors.append((ref.chars, ref.tokens))
        if canon and self.prefix_tokens:
            anchors.append((len(canon[0]), self.prefix_tokens))
        if ref.canon and (counted := self._prefix_counts.get(digest(ref.canon[0]))):
            anchors.append((len(ref.canon[0]), counted))
        below = max((a for a in anchors if a[0] <= chars), default=(0, 0))
        above = [a for a in anchors if a[0] >= chars]
        if not above:
            return None
        c1, t1 = min(above)
        c0, t0 = below
        if c1 == c0 or t1 <= t0:
            return t0 if chars < c1 else t1
        return t0 + round((t1 - t0) * (chars - c0) / (c1 - c0))

    # ------------------------------------------------------------ events
    @staticmethod
    def event_message(event: Event, now: datetime, changes: Sequence[str] = ()) -> Message:
        """The event: what woke the agent, and the volatile facts, in the last message."""
        lines = [f"[{event.heading} · {now.strftime('%Y-%m-%d %H:%M %Z').strip()} ({now.strftime('%A')})]"]
        if changes:
            lines.append("Changed in the home since the last wake: " + ", ".join(changes))
        lines.append("")
        lines.append(event.text.strip() or "(empty)")
        if event.spec.from_person:
            lines += ["", "(Answer the person with the reply tool.)"]
        return {"role": "user", "content": "\n".join(lines)}

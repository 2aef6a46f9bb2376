"""The context compiler: every request is STABLE PREFIX + SESSION TAIL + EVENT, so the prefix cache holds.

The prefix (``agentd.prefix``) is rendered byte-deterministically from the home (rules →
tools → the home's sections, rarest change first) and frozen for an *epoch*; sessions append to
their tail and never rewrite it; everything volatile (the clock, what changed) goes
into the event, the last message. Before each request the compiler compares it with
the requests the engine last saw (the session's own, and the last of any session or
warm-up), records the longest common prefix and what the cache should hold, and — when
the shared prefix shrank — which section changed first.
"""

from __future__ import annotations

import json
import math
import random
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agentd.events import Event
from agentd.fileio import atomic_write
from agentd.prefix import (  # noqa: F401 - the prefix's names, re-exported where they always were
    JSON_ACTION_RULES,
    PREFIX_FILES,
    SYSTEM_RULES,
    Prefix,
    Section,
    build_prefix,
    canonical_json,
    digest,
    normalize_text,
    render_tools_text,
)

Message = dict[str, Any]
IdSource = Callable[[], str]  # wake and session ids; injected where runs must be reproducible


def random_id() -> str:
    """The default id source: ten random hex digits."""
    return uuid.uuid4().hex[:10]


def seeded_ids(seed: int) -> IdSource:
    """A reproducible id source (benchmarks, tests): the same seed gives the same ids in the same order."""
    rng = random.Random(seed)
    return lambda: f"{rng.getrandbits(40):010x}"

HEARTBEAT_OK = "HEARTBEAT_OK"
# Token estimates for text the engine has not measured yet. Canonical JSON runs at
# 3.7–4.5 characters per token on the SmolLM2 and Qwen tokenizers; 3 errs on the side
# of more tokens, so a context window is never overrun on an estimate.
CHARS_PER_TOKEN = 3.0
MESSAGE_TOKENS = 8  # the chat template's tokens around one message


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
    # Steering diffs (agentd.steering_diff): each prefix section as this session last showed it,
    # where a diff in the tail changed it; their estimated tokens; the commit they were read at.
    steering: dict[str, str] = field(default_factory=dict)
    steering_tokens: int = 0
    view_commit: str | None = None

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
            "steering": self.steering,
            "steering_tokens": self.steering_tokens,
            "view_commit": self.view_commit,
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


# One example action: a small model copies the shape it was shown.
REPLY_NOTE = '(Reply to the person with {"tool": "reply", "arguments": {"text": ...}}, the text being your answer in a short sentence.)'


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
    def event_message(event: Event, now: datetime, changes: Sequence[str] = (), recalled: Sequence[str] = ()) -> Message:
        """The event: what woke the agent, and the volatile facts, in the last message.

        ``recalled``: lines of USER.md/MEMORY.md that share words with a person's message
        (:mod:`agentd.recall`), quoted under it."""
        lines = [f"[{event.heading} · {now.strftime('%Y-%m-%d %H:%M %Z').strip()} ({now.strftime('%A')})]"]
        if changes:
            lines.append("Changed in the home since the last wake: " + ", ".join(changes))
        lines.append("")
        lines.append(event.text.strip() or "(empty)")
        if event.spec.from_person:
            lines += ["", REPLY_NOTE]
        if recalled:
            lines += ["", *(f"({line.replace(': ', ') ', 1)}" for line in recalled)]
        return {"role": "user", "content": "\n".join(lines)}

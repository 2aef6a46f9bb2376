"""What crosses modules in a wake: the event that wakes the agent and what the wake did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

WakeStatus = Literal["ok", "budget", "failed", "skipped", "heartbeat_ok"]


@dataclass(frozen=True)
class EventKind:
    """What a kind of event means to a wake, as data: a new trigger registers one, and no
    module needs a new branch for it."""

    name: str
    heading: str  # the event message's heading; "{name}" is the event's name
    own_session: bool = False  # each name runs in its own short session and has its own ledger line
    from_person: bool = False  # someone asked: an answer is owed, their words are quoted in the outbox
    retried: bool = False  # a wake the engine could not serve, having changed nothing, is undone to be tried again
    background: bool = False  # paused once the daily token budget is spent
    quiet_ok: bool = False  # a run the model finds empty (HEARTBEAT_OK) leaves no trace
    priority: int = 5  # the queue runs lower numbers first


KINDS: dict[str, EventKind] = {}


def register_kind(kind: EventKind) -> EventKind:
    """The one door for a new kind of event; registering the same kind again is harmless."""
    known = KINDS.setdefault(kind.name, kind)
    if known != kind:
        raise ValueError(f"event kind {kind.name!r} is already registered differently: {known}")
    return kind


MESSAGE = register_kind(EventKind("message", "Message from the person", from_person=True, retried=True, priority=0))
SYSTEM = register_kind(EventKind("system", "Notice from the daemon", priority=1))
CRON = register_kind(EventKind("cron", "Scheduled job: {name}", own_session=True, retried=True, background=True, priority=2))
HEARTBEAT = register_kind(EventKind("heartbeat", "Heartbeat", background=True, quiet_ok=True, priority=3))


@dataclass(frozen=True)
class Event:
    """What woke the agent: a person's message, a heartbeat, a cron job, or the daemon itself."""

    kind: str  # the name of a registered EventKind
    text: str
    at: datetime
    name: str | None = None  # cron job name, or message id
    source: str | None = None  # home-relative path of the inbox file
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}: register it with agentd.events.register_kind")

    @property
    def spec(self) -> EventKind:
        return KINDS[self.kind]

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind

    @property
    def key(self) -> str:
        """What the queue coalesces on: the inbox file, else the label (one pending run per job)."""
        return self.source or self.label

    @property
    def heading(self) -> str:
        return self.spec.heading.format(name=self.name or "")

    @property
    def session_kind(self) -> str:
        """A kind with its own sessions runs each name in one on the shared prefix; the rest share "main"."""
        return self.label if self.spec.own_session else "main"

    @property
    def trigger(self) -> str:
        """What the ledger groups by: each cron job on its own, every message together."""
        return self.label if self.spec.own_session else self.kind


@dataclass
class WakeResult:
    """What one wake did, for the log line, the journal, the commit and the CLI."""

    wake_id: str
    event: Event
    status: WakeStatus
    reply: str | None = None
    steps: int = 0
    prompt_tokens: int = 0
    cached_tokens: int | None = None
    completion_tokens: int = 0
    seconds: float = 0.0
    actions: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    commit: str | None = None
    error: str | None = None

    @property
    def cached_percent(self) -> float | None:
        if self.cached_tokens is None or not self.prompt_tokens:
            return None
        return 100.0 * self.cached_tokens / self.prompt_tokens

"""What crosses modules in a wake: the event that wakes the agent and what the wake did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

EventKind = Literal["message", "heartbeat", "cron", "system"]
WakeStatus = Literal["ok", "budget", "failed", "skipped", "heartbeat_ok"]


@dataclass(frozen=True)
class Event:
    """What woke the agent: a person's message, a heartbeat, a cron job, or the daemon itself."""

    kind: EventKind
    text: str
    at: datetime
    name: str | None = None  # cron job name, or message id
    source: str | None = None  # home-relative path of the inbox file
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind

    @property
    def trigger(self) -> str:
        """What the ledger groups by: each cron job on its own, every message together."""
        return self.label if self.kind == "cron" else self.kind


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

"""The reply hub: a running wake's reply text as it streams, for whoever watches (the web app's chat).

The worker hands each wake a sink for the engine's streamed text; the hub keeps the
text so far under the message's id (the inbox file's stem, the id ``inbox.post``
returned), and readers poll it from any thread. Nothing here is durable: the reply
itself is in outbox/ and in the reply note (``inbox.read_reply_note``) once the wake ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from agentd.events import Event

KEEP_FINISHED = 64  # finished streams kept for a reader that comes late


@dataclass(frozen=True)
class Stream:
    """What a reader sees of one wake's reply: the text so far, and whether the wake is over."""

    text: str
    finished: bool


class ReplyHub:
    """Streamed reply text keyed by message id; thread-safe, bounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text: dict[str, list[str]] = {}
        self._finished: list[str] = []

    def sink(self, event: Event) -> Callable[[str], None] | None:
        """The on_delta for ``event``'s wake: only what a person asked streams (an answer is owed)."""
        key = event.name
        if not event.spec.from_person or not key:
            return None
        with self._lock:
            self._text[key] = []  # a retried message streams afresh
            if key in self._finished:
                self._finished.remove(key)

        def on_delta(piece: str) -> None:
            with self._lock:
                parts = self._text.get(key)
                if parts is not None:
                    parts.append(piece)

        return on_delta

    def finish(self, event: Event) -> None:
        key = event.name
        with self._lock:
            if not key or key not in self._text or key in self._finished:
                return
            self._finished.append(key)
            while len(self._finished) > KEEP_FINISHED:
                self._text.pop(self._finished.pop(0), None)

    def get(self, key: str) -> Stream | None:
        """The stream of the message ``key``, or None if no wake of it ran in this process."""
        with self._lock:
            parts = self._text.get(key)
            return None if parts is None else Stream("".join(parts), key in self._finished)

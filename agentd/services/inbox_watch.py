"""The inbox watcher: each settled file in inbox/ becomes a ``message`` event, answered exactly once.

A message whose wake could not reach the engine stays in the inbox and is retried with
backoff until the engine is back; one that fails for a reason of agentd's own (a
refused commit, a bug) is retried a few times, then set aside in ``.agentd/failed/``
and the person told once. Text appended after the wake read it becomes a new message.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path

from agentd import inbox
from agentd.errors import AgentdError
from agentd.events import MESSAGE, Event, WakeResult
from agentd.services.base import Hub, Outcome, Service, Skip

log = logging.getLogger("agentd")

# Wakes a message may fail with an error of agentd's own (a refused commit, a bug; not an
# engine outage, which is waited out) before it is set aside in .agentd/failed/.
MESSAGE_ATTEMPTS = 3


class InboxWatcher(Service):
    kinds = (MESSAGE,)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.watch = inbox.SettleWatch()
        self._read: dict[str, bytes] = {}  # message → the bytes its wake read
        self._lock = threading.Lock()

    def poll(self) -> None:
        # Every tick: a message is taken once it looks the same on two polls. Queued,
        # in-flight and retrying messages are known already: no stat, no lease check.
        for rel in self.watch.ready(self.hub.home, skip=self.hub.known() | self.hub.retries.waiting()):
            self.hub.publish(Event(MESSAGE.name, "", self.hub.now(), name=Path(rel).stem, source=rel))

    def prepare(self, event: Event) -> Event | Skip:
        assert event.source is not None
        try:
            data = (self.hub.home.root / event.source).read_bytes()
        except FileNotFoundError:
            return Skip(f"{event.source} is gone")
        with self._lock:
            self._read[event.source] = data
        return inbox.message_event(event.source, data, self.hub.now())

    def finished(self, event: Event, outcome: Outcome) -> None:
        rel = event.source
        assert rel is not None
        with self._lock:
            read = self._read.pop(rel, None)
        if outcome.result is not None:
            self._answered(event, outcome.result, read)
        elif outcome.error is not None:
            self._failed(event, f"{type(outcome.error).__name__}: {outcome.error}" if not isinstance(outcome.error, AgentdError) else str(outcome.error))

    def _answered(self, event: Event, result: WakeResult, read: bytes | None) -> None:
        rel = event.source
        assert rel is not None
        self._keep_late_write(rel, result, read)
        inbox.write_reply_note(self.hub.home, event, result)
        if result.status == "failed" and not result.commit:
            self._retry(event, result.error or "failed")
        else:
            self.hub.retries.succeeded(event.key)

    def _failed(self, event: Event, error: str) -> None:
        """Back off; after ``MESSAGE_ATTEMPTS`` such failures, set the message aside and say so."""
        rel, home = event.source, self.hub.home
        assert rel is not None
        if self.hub.retries.attempts(event.key) + 1 < MESSAGE_ATTEMPTS:
            self._retry(event, error)
            return
        try:
            with home.lock(timeout=60, purpose="set a message aside"):
                kept = inbox.set_aside(home, rel)
        except (AgentdError, OSError) as e:
            log.error("could not set %s aside: %s; retrying it later", rel, e)
            self._retry(event, error)
            return
        self.hub.retries.cancel(event.key)
        if kept is None:
            return
        inbox.write_note(home, Path(rel).stem, status="set_aside", error=f"set aside in {kept} after {MESSAGE_ATTEMPTS} failed wakes: {error}")
        log.error("message %s set aside in %s after %d failed wakes: %s", rel, kept, MESSAGE_ATTEMPTS, error)
        self.hub.notices.tell(
            f"set-aside:{rel}",
            f"Your message {rel} failed {MESSAGE_ATTEMPTS} wakes in a row, so I set it aside in {kept} "
            f"(not in git). Last error: {error}. Move it back into inbox/ to try again.",
        )

    def _retry(self, event: Event, error: str) -> None:
        n, delay = self.hub.retries.schedule(event)
        log.info("message %s will be retried in %.0fs (attempt %d): %s", event.source, delay, n, error)

    def _keep_late_write(self, rel: str, result: WakeResult, read: bytes | None) -> None:
        """A writer that went on writing after the message was read: the rest becomes a new message."""
        home = self.hub.home
        done = f"inbox/done/{Path(rel).name}"
        if read is None or not result.commit or not (home.root / done).is_file():
            return
        try:
            with home.lock(timeout=60, purpose="late write to a message"):
                new = inbox.keep_late_write(home, done, read, datetime.now())
        except AgentdError as e:
            log.error("could not check %s for a late write: %s", done, e)
            return
        if new:
            log.warning("%s changed after it was read: what was added is queued as %s", rel, new)

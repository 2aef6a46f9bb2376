"""Durable notices: each problem is told to the person once, in outbox/notices.md, committed.

"Told" is recorded (``.agentd/reported.json``, across restarts) only after the notice
was written and committed: a notice that could not be written (the home lock was held
too long, the commit was refused) waits and is tried again by ``flush()``, never
marked as told.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from agentd.errors import AgentdError
from agentd.fileio import atomic_write
from agentd.home import Home

log = logging.getLogger("agentd")

REPORTED = "reported.json"  # problems already told to the person, across restarts
LOCK_TIMEOUT_S = 60.0


class Notices:
    """Tell once; remember what was told; try again what could not be told."""

    def __init__(self, home: Home, *, mask: Callable[[str], str] = lambda text: text, lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        self.home = home
        self.mask = mask
        self.lock_timeout = lock_timeout
        self._lock = threading.Lock()  # guards the two collections, never held while writing
        self.told: set[str] = self._load()
        self.waiting: dict[str, str] = {}  # key → text, not written yet
        self._writing: set[str] = set()

    def tell(self, key: str, text: str) -> bool:
        """Write the notice now (the caller must not hold the home lock); False if it waits."""
        with self._lock:
            if key in self.told:
                return True
            self.waiting[key] = text
        return self._write(key)

    def later(self, key: str, text: str) -> None:
        """For a caller holding the home lock (a wake): written by the next ``flush()``."""
        with self._lock:
            if key not in self.told:
                self.waiting.setdefault(key, text)

    def flush(self) -> None:
        """Try every waiting notice again (the main loop calls this between wakes)."""
        with self._lock:
            keys = list(self.waiting)
        for key in keys:
            self._write(key)

    def forget(self, *keys: str) -> None:
        """The problem went away: a new occurrence is told again."""
        with self._lock:
            if not any(k in self.told for k in keys):
                return
            self.told.difference_update(keys)
            told = sorted(self.told)
        self._save(told)

    def forget_prefix(self, prefix: str) -> None:
        with self._lock:
            keys = [k for k in self.told if k.startswith(prefix)]
        self.forget(*keys)

    def _write(self, key: str) -> bool:
        with self._lock:
            text = self.waiting.get(key)
            if text is None or key in self._writing:
                return key in self.told  # told, or being written by another thread right now
            self._writing.add(key)
        try:
            sha = self._notify(text)
        finally:
            with self._lock:
                self._writing.discard(key)
        if sha is None:
            return False
        with self._lock:
            self.waiting.pop(key, None)
            self.told.add(key)
            told = sorted(self.told)
        self._save(told)
        return True

    def _notify(self, text: str) -> str | None:
        try:
            with self.home.lock(timeout=self.lock_timeout, purpose="notice"):
                sha = self.home.notify(self.mask(text))
        except AgentdError as e:  # the home lock could not be had
            log.error("could not write a notice (tried again later): %s", e)
            return None
        if sha is None:
            log.error("could not write a notice (tried again later): %s", text)
        return sha

    def _load(self) -> set[str]:
        try:
            data = json.loads((self.home.runtime / REPORTED).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return set()  # runtime state only: a lost or corrupt record means telling again
        return {str(k) for k in data} if isinstance(data, list) else set()

    def _save(self, told: list[str]) -> None:
        atomic_write(self.home.runtime / REPORTED, json.dumps(told, ensure_ascii=False))

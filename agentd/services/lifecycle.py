"""The running daemon's files: its state (``.agentd/daemon.json``) and the lock that allows one per home."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil

from agentd.fileio import file_lock, lock_held
from agentd.home import Home


def state_path(home: Home) -> Path:
    return home.runtime / "daemon.json"


def read_state(home: Home) -> dict[str, Any] | None:
    """The running daemon's state, or None (a stale file of a dead daemon counts as none)."""
    try:
        state: dict[str, Any] = json.loads(state_path(home).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not psutil.pid_exists(pid) or not daemon_lock_held(home):
        return None
    return state


def daemon_lock_held(home: Home) -> bool:
    return lock_held(home.runtime / "daemon.lock")


@contextlib.contextmanager
def daemon_lock(home: Home) -> Iterator[None]:
    """One daemon per home: a second one is refused with the holder's PID."""
    running = lambda holder: f"a daemon is already running on {home.root}: {holder}"  # noqa: E731
    with file_lock(home.runtime / "daemon.lock", timeout=0, purpose="daemon", refusal=running):
        yield


def uptime(state: dict[str, Any]) -> str:
    return str(timedelta(seconds=int(time.time() - float(state.get("started", time.time())))))



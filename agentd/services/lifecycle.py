"""The running daemon's files: its state (``.agentd/daemon.json``) and the lock that allows one per home."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil

from agentd.errors import LockedError
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
    path = home.runtime / "daemon.lock"
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def daemon_lock(home: Home) -> Iterator[None]:
    """One daemon per home: a second one is refused with the holder's PID."""
    path = home.runtime / "daemon.lock"
    fh = open(path, "a+")  # noqa: SIM115 - held for the daemon's life
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise LockedError(f"a daemon is already running on {home.root} (pid {holder})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def uptime(state: dict[str, Any]) -> str:
    return str(timedelta(seconds=int(time.time() - float(state.get("started", time.time())))))



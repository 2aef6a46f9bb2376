"""The engine's owner: adopts or starts the home's engine, stops only one it started, hears the monitor.

What happens to the engine reaches the daemon as typed values (``EngineNews``), never
as text to match: the core warms a restarted engine up, notices tell a give-up once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from enum import Enum

import psutil

from agentd.config import Config, load_config
from agentd.fileio import atomic_write
from agentd.home import Home
from agentd.services.notices import Notices
from agentd.wiring import make_supervisor
from engine.client import OpenAIClient
from engine.supervisor import EngineEvent, EngineInfo, EngineSupervisor

log = logging.getLogger("agentd")

ENGINE_OWNER = "engine-owner.json"  # the engine this home's daemon started (pid)


class EngineNews(Enum):
    STARTED = "started"  # by this daemon
    ADOPTED = "adopted"  # already running: the person's, or one a killed daemon left
    RESTARTED = "restarted"  # by the monitor, after it died: the prefix cache is cold
    STOPPED = "stopped"  # by this daemon, which started it
    LEFT_RUNNING = "left running"  # adopted from the person: theirs to stop


class EngineOwner:
    """One supervisor at a time; ``switch()`` replaces it when agent.yaml names another engine."""

    def __init__(self, home: Home, notices: Notices, on_news: Callable[[EngineNews, str], None] = lambda news, detail: None) -> None:
        self.home = home
        self.notices = notices
        self.on_news = on_news
        self.supervisor: EngineSupervisor | None = None
        self.owns_engine = False  # started by this daemon (or by a previous one that was killed)
        self.adopted_pid: int | None = None

    def start(self, config: Config) -> EngineInfo:
        """Adopt a running engine or start one, then watch it."""
        sup = self.supervisor = make_supervisor(self.home, config)
        adopted = sup.adopt()
        if adopted is None:
            orphan = stop_owned_engine(self.home)  # alive but not adoptable (hung): not left behind
            if orphan is not None:
                log.warning("stopped engine %d, left by a previous daemon and not answering", orphan)
            info = sup.start()
            self.adopted_pid = None
            self.owns_engine = info.pid is not None
        else:
            info = adopted
            # One a previous daemon started and left behind (it was killed) is still ours;
            # one the person started (`agentd engine start`) stays theirs.
            self.adopted_pid = info.pid
            self.owns_engine = info.pid is not None and info.pid == _owned_engine_pid(self.home)
        self._record_owner()
        log.info("engine %s ready at %s (pid %s)", info.model, info.url, info.pid)
        sup.on_event = self._on_engine_event
        sup.start_monitor()
        self.on_news(EngineNews.ADOPTED if adopted is not None else EngineNews.STARTED, f"{info.model} (pid {info.pid})")
        return info

    def switch(self, config: Config) -> EngineInfo:
        """Even an adopted engine goes: the person asked for another one on this home."""
        if self.supervisor is not None:
            self.supervisor.stop_monitor()
            self.supervisor.stop()
        return self.start(config)

    def client(self) -> OpenAIClient:
        assert self.supervisor is not None
        return self.supervisor.client()

    def info_dict(self) -> dict[str, object] | None:
        return self.supervisor.info_dict() if self.supervisor is not None else None

    def stop(self) -> None:
        """Stop the engine if this daemon started it; leave an adopted one running."""
        sup = self.supervisor
        if sup is None:
            return
        sup.stop_monitor()
        if self._started_here():
            sup.stop()
            (self.home.runtime / ENGINE_OWNER).unlink(missing_ok=True)
            self.on_news(EngineNews.STOPPED, "")
        elif sup.info is not None and sup.info.pid is not None:
            log.info("leaving the engine (pid %s) running: this daemon adopted it, it did not start it", sup.info.pid)
            self.on_news(EngineNews.LEFT_RUNNING, f"pid {sup.info.pid}")

    def _on_engine_event(self, kind: EngineEvent, detail: str) -> None:
        log.warning("engine: %s: %s", kind.value, detail)
        if kind is EngineEvent.RESTARTED:
            self._record_owner()
            self.on_news(EngineNews.RESTARTED, detail)
        elif kind is EngineEvent.GAVE_UP:
            self.notices.tell("engine-gave-up", f"The engine stopped and could not be restarted: {detail}")

    def _started_here(self) -> bool:
        info = self.supervisor.info if self.supervisor is not None else None
        if info is None or info.pid is None:
            return False
        # The monitor restarts a dead engine: a new pid is one this daemon started.
        return self.owns_engine or info.pid != self.adopted_pid

    def _record_owner(self) -> None:
        path = self.home.runtime / ENGINE_OWNER
        info = self.supervisor.info if self.supervisor is not None else None
        if self._started_here() and info is not None:
            atomic_write(path, json.dumps({"pid": info.pid, "daemon": os.getpid()}))
        else:
            path.unlink(missing_ok=True)


def _owned_engine_pid(home: Home) -> int | None:
    """The engine a daemon of this home started, if it still runs (a killed daemon leaves it behind)."""
    try:
        pid = json.loads((home.runtime / ENGINE_OWNER).read_text(encoding="utf-8")).get("pid")
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return None
    return pid if isinstance(pid, int) and psutil.pid_exists(pid) else None


def stop_owned_engine(home: Home) -> int | None:
    """Stop the engine a dead daemon of this home started; returns its pid, or None.

    An engine the person started themselves is never touched: only the one named in
    ``.agentd/engine-owner.json`` and still recorded as this home's engine.
    """
    pid = _owned_engine_pid(home)
    try:
        recorded = json.loads((home.runtime / "engine.json").read_text(encoding="utf-8")).get("pid")
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        recorded = None
    if pid is None or recorded != pid:
        return None  # gone already, or the home's engine is now another one (the person's)
    # Healthy or not: a hung orphan is stopped all the same.
    sup = make_supervisor(home, load_config(home.root))
    sup.stop()
    (home.runtime / ENGINE_OWNER).unlink(missing_ok=True)
    return pid

"""`agentd status` and `agentd log`: an overview of what the home, its daemon and its engine are doing, and what was done."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentd import daemon, identity, sandbox
from agentd.commands.schedule import planned_runs
from agentd.config import Config, load_config
from agentd.home import AGENT, Home
from agentd.ledger import Ledger, summarize, today_since
from agentd.wiring import make_supervisor, session_key, timezone_of
from engine.errors import EngineError


@dataclass(frozen=True)
class LogEntry:
    sha: str
    when: datetime
    who: str  # "agent" | "person"
    author: str
    subject: str
    trailers: dict[str, str]


def log_entries(home: Home, limit: int = 20) -> list[LogEntry]:
    out = []
    for c in home.repo.iter_commits(max_count=limit):
        message = str(c.message)
        trailers = {}
        for line in message.strip().splitlines()[1:]:
            key, sep, value = line.partition(": ")
            if sep and key.replace("-", "").isalnum() and key[:1].isupper():
                trailers[key] = value.strip()
        who = "agent" if c.author.email == AGENT.email else "person"
        out.append(
            LogEntry(c.hexsha[:8], c.authored_datetime, who, str(c.author.name), message.splitlines()[0] if message else "", trailers)
        )
    return out


def status_report(home: Home) -> dict[str, Any]:
    config = load_config(home.root)
    state = daemon.read_state(home)
    ledger = Ledger(home.runtime / "ledger.db")
    today = summarize(ledger.rows(today_since(timezone_of(config))))["total"]
    try:
        engine: dict[str, Any] = make_supervisor(home, config).status()
    except EngineError as e:  # status reports a broken engine setup; it does not fail on it
        engine = {"backend": config.engine.backend, "model": config.engine.model, "error": str(e)}
    last = log_entries(home, 1)
    copy = identity.check(home, config.id)
    return {
        "home": str(home.root),
        "agent": {"id": session_key(home, config), "copy_of": None if copy is None else str(copy.original)},
        "daemon": None if state is None else {"pid": state["pid"], "uptime": daemon.uptime(state)},
        "engine": engine,
        "config": {"backend": config.engine.backend, "model": config.engine.model, "tool_calling": config.engine.tool_calling},
        "next_runs": state.get("next_runs", []) if state else planned_runs(home, config),
        "last_wake": state.get("last_wake") if state else None,
        "last_commit": None if not last else f"{last[0].sha} {last[0].subject}",
        "today": today,
        "sandbox": sandbox.in_force(config),
        "channels": state.get("channels", []) if state else configured_channels(config),
    }


def configured_channels(config: Config) -> list[dict[str, Any]]:
    """With no daemon running, the channels agent.yaml names, each not connected."""
    names = [name for name in ("matrix",) if getattr(config.channels, name) is not None]
    return [{"name": name, "state": "daemon not running", "last_message": None, "last_error": None} for name in names]


def channel_line(ch: dict[str, Any]) -> str:
    """``matrix    connected, last message 2026-11-29T10:02:11, last error: …``"""
    parts = [str(ch.get("state"))]
    if ch.get("last_message"):
        parts.append(f"last message {ch['last_message']}")
    if ch.get("last_error"):
        parts.append(f"last error: {ch['last_error']}")
    return f"{ch.get('name')!s:9} " + ", ".join(parts)

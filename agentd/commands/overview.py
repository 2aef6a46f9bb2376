"""`agentd status` and `agentd log`: an overview of what the home, its daemon and its engine are doing, and what was done."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentd import daemon, identity, sandbox
from agentd.commands.schedule import planned_runs
from agentd.config import load_config
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
    }

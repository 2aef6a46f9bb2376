"""Timeline and Cache & cost: every wake from git history and its trailers, the ledger's figures as plots."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import git
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentd.commands.overview import LogEntry, log_entries
from agentd.config import load_config
from agentd.errors import AgentdError
from agentd.ledger import Ledger, summarize
from agentd.services.lifecycle import read_state
from agentd.web.app import page, refuse, web_of

SHA = re.compile(r"[0-9a-f]{7,40}")
TIMELINE_LIMIT = 200
MAX_DIFF_CHARS = 200_000
READ_ONLY = {"GIT_OPTIONAL_LOCKS": "0"}  # looking never takes git's index lock


@dataclass(frozen=True)
class WakeRow:
    """One commit on the timeline, with the figures its trailers carry."""

    entry: LogEntry
    trigger: str
    status: str
    steps: str
    prompt: int | None
    cached: int | None
    seconds: str

    @property
    def computed(self) -> int | None:
        return None if self.prompt is None or self.cached is None else self.prompt - self.cached

    @property
    def hit_rate(self) -> float | None:
        return None if not self.prompt or self.cached is None else self.cached / self.prompt


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def wake_rows(request: Request, limit: int = TIMELINE_LIMIT) -> list[WakeRow]:
    home = web_of(request).home
    rows = []
    for e in log_entries(home, limit):
        t = e.trailers
        rows.append(WakeRow(e, t.get("Wake-Trigger", ""), t.get("Wake-Status", ""), t.get("Wake-Steps", ""),
                            _int(t.get("Prompt-Tokens")), _int(t.get("Cached-Tokens")), t.get("Wake-Seconds", "")))
    return rows


async def timeline(request: Request) -> Response:
    return page(request, "timeline.html", active="timeline", rows=wake_rows(request))


def _journal_entry(diff: str) -> str:
    """The lines the commit added to the journal: the wake's own entry."""
    out, inside = [], False
    for line in diff.splitlines():
        if line.startswith("+++ "):
            inside = "memory/journal/" in line
        elif inside and line.startswith("+") and not line.startswith("+++"):
            out.append(line[1:])
    return "\n".join(out).strip()


async def wake_detail(request: Request) -> Response:
    sha = request.path_params["sha"]
    if not SHA.fullmatch(sha):
        return refuse(request, 404, f"no commit {sha!r}")
    repo = web_of(request).home.repo
    try:
        full = repo.git.rev_parse("--verify", "--quiet", f"{sha}^{{commit}}", env=READ_ONLY)
        diff = repo.git.show("--format=%H%n%an <%ae>%n%aI%n%n%B", "--stat", "--patch", full, env=READ_ONLY)
    except git.GitCommandError:
        return refuse(request, 404, f"no commit {sha}")
    truncated = len(diff) > MAX_DIFF_CHARS
    return page(request, "wake.html", active="timeline", sha=full, diff=diff[:MAX_DIFF_CHARS], truncated=truncated,
                journal=_journal_entry(diff))


def cache_data(request: Request) -> dict[str, Any]:
    """Per-wake hit rate (git trailers), per-day hit rate and computed tokens (the ledger), breaks, budget."""
    home = web_of(request).home
    wakes = [r for r in reversed(wake_rows(request)) if r.entry.who == "agent" and r.hit_rate is not None]
    ledger = Ledger(home.runtime / "ledger.db")
    summary = summarize(ledger.rows(), ledger.steering_rows())
    days = summary["by_day"]
    try:
        config = load_config(home.root)
        engine = {"backend": config.engine.backend, "model": config.engine.model}
        budget = config.budgets.daily_tokens
    except AgentdError as e:
        engine, budget = {"error": str(e)}, 0
    state = read_state(home)
    today = datetime.now().astimezone().strftime("%Y-%m-%d")
    used = ledger.tokens_on(today)
    return {
        "wakes": {
            "t": [int(r.entry.when.timestamp()) for r in wakes],
            "hit_rate": [round(100 * (r.hit_rate or 0), 1) for r in wakes],
            "label": [f"{r.entry.sha} {r.trigger}" for r in wakes],
        },
        "days": {
            "t": [int(datetime.fromisoformat(d).timestamp()) for d in days],
            "day": list(days),
            "hit_rate": [None if v["hit_rate"] is None else round(100 * v["hit_rate"], 1) for v in days.values()],
            "computed": [v["computed_tokens"] for v in days.values()],
        },
        "breaks": summary["cache_breaks"][-50:],
        "steering": summary["steering_diffs"],
        "total": summary["total"],
        "budget": {"day": today, "used": used, "limit": budget},
        "engine": {**engine, **({"running": state["engine"]} if state and state.get("engine") else {})},
    }


async def cache_page(request: Request) -> Response:
    return page(request, "cache.html", active="cache", data=cache_data(request))


async def cache_json(request: Request) -> Response:
    return JSONResponse(cache_data(request))


routes = [
    Route("/timeline", timeline),
    Route("/timeline/{sha}", wake_detail),
    Route("/cache", cache_page),
    Route("/cache/data.json", cache_json),
]

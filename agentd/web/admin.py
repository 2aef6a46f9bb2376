"""Approvals, notices, schedule and channels: what waits for the person and what the daemon will do next."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentd.commands import approvals as person
from agentd.commands.schedule import planned_runs
from agentd.config import load_config
from agentd.errors import AgentdError
from agentd.fileio import atomic_write
from agentd.home import NOTICES, Home
from agentd.services.cron_runs import RUNS, CronRuns, JobRuns
from agentd.services.heartbeat import last_skip
from agentd.services.lifecycle import read_state
from agentd.tools import approvals as parked
from agentd.web.app import page, refuse, web_of
from agentd.web.wakes import wake_rows
from agentd.wiring import timezone_of
from scheduler.cron import parse_cron_md

ACKED = "web-acknowledged.json"  # under .agentd/: notices the person has seen (outbox/notices.md stays the record)


def parked_commands(home: Home) -> list[dict[str, Any]]:
    """Pending records, shown from the record itself (what ``agentd approve`` runs), and whether the page still matches."""
    out = []
    for approval_id in parked.pending(home):
        p = parked.record(home, approval_id)
        if p is None:
            continue
        page_path = home.root / parked.FOLDER / f"{approval_id}.md"
        shown = page_path.read_text(encoding="utf-8", errors="replace") if page_path.is_file() else None
        intact = p.intact and shown == parked.render(p)
        out.append({"id": p.id, "command": p.command, "workdir": p.workdir, "wake": p.wake, "created": p.created, "intact": intact})
    return out


async def approvals(request: Request) -> Response:
    return page(request, "approvals.html", active="approvals", items=parked_commands(web_of(request).home))


async def answer(request: Request) -> Response:
    """Approve or deny through the very functions ``agentd approve`` / ``agentd deny`` call."""
    home = web_of(request).home
    approval_id, verb = request.path_params["id"], request.path_params["verb"]
    if not parked.ID.fullmatch(approval_id) or verb not in ("approve", "deny"):
        return refuse(request, 404, f"no parked command {approval_id!r}")
    if parked.record(home, approval_id) is None:
        return refuse(request, 404, f"no parked command {approval_id}")
    try:
        if verb == "approve":
            (_, _), text = await run_in_threadpool(person.approve, home, approval_id)
        else:
            text = await run_in_threadpool(person.deny, home, approval_id)
    except parked.Refused as e:
        return refuse(request, 409, str(e))
    except AgentdError as e:
        return refuse(request, 409, str(e))
    return JSONResponse({"ok": True, "id": approval_id, "result": text})


def _notice_id(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()[:16]


def notices_of(home: Home) -> list[dict[str, Any]]:
    path = home.root / NOTICES
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    try:
        acked = set(json.loads((home.runtime / ACKED).read_text(encoding="utf-8")))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        acked = set()
    items = [line[2:] for line in text.splitlines() if line.startswith("- ")]
    return [{"id": _notice_id(t), "text": t, "acked": _notice_id(t) in acked} for t in reversed(items)]


async def notices(request: Request) -> Response:
    return page(request, "notices.html", active="notices", items=notices_of(web_of(request).home))


async def acknowledge(request: Request) -> Response:
    home = web_of(request).home
    form = await request.form()
    wanted = str(form.get("id", ""))
    known = {n["id"] for n in notices_of(home)}
    if wanted != "all" and wanted not in known:
        return refuse(request, 404, f"no notice {wanted!r}")
    current = {n["id"] for n in notices_of(home) if n["acked"]}
    current |= known if wanted == "all" else {wanted}
    atomic_write(home.runtime / ACKED, json.dumps(sorted(current & known)))
    return JSONResponse({"ok": True, "acknowledged": len(current & known)})


def schedule_of(request: Request) -> dict[str, Any]:
    home = web_of(request).home
    state = read_state(home)
    try:
        config = load_config(home.root)
    except AgentdError as e:
        return {"error": str(e), "heartbeat": None, "jobs": [], "channels": [], "daemon": state is not None}
    tz = timezone_of(config)
    nexts = state.get("next_runs", []) if state else planned_runs(home, config)
    next_of = {(r.get("kind"), r.get("name")): r.get("at") for r in nexts}
    path = home.root / "CRON.md"
    parsed = parse_cron_md(path.read_text(encoding="utf-8", errors="replace") if path.is_file() else "", path)
    runs = CronRuns(home.runtime / RUNS).all()
    jobs = []
    for job in parsed.jobs:
        r = runs.get(job.slug, JobRuns())
        nxt = next_of.get(("cron", job.slug)) or next_of.get(("cron", job.name)) or (n.isoformat() if (n := job.next_run(datetime.now(tz), tz)) else None)
        jobs.append({"name": job.name, "expr": job.expr, "next": nxt, "last_run": r.last_run, "last_commit": r.last_commit,
                     "last_skip": r.last_skip, "skip_reason": r.skip_reason, "pending": r.pending})
    beats = [w for w in wake_rows(request) if w.trigger.startswith("heartbeat")]
    every = config.heartbeat.every
    heartbeat = {
        "every": f"{int(every.total_seconds() // 60)} min" if every else "off",
        "active_hours": config.heartbeat.active_hours,
        "next": next_of.get(("heartbeat", None)),
        "last_run": beats[0].entry.when if beats else None,
        "last_skip": last_skip(home),
    }
    return {"heartbeat": heartbeat, "jobs": jobs, "errors": [str(e) for e in parsed.errors],
            "channels": state.get("channels", []) if state else [], "daemon": state is not None}


async def schedule(request: Request) -> Response:
    return page(request, "schedule.html", active="schedule", **schedule_of(request))


routes = [
    Route("/approvals", approvals),
    Route("/approvals/{id}/{verb}", answer, methods=["POST"]),
    Route("/notices", notices),
    Route("/notices/ack", acknowledge, methods=["POST"]),
    Route("/schedule", schedule),
]

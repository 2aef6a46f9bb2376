"""The heartbeat wake: costs nothing when HEARTBEAT.md has nothing open and its checks stay quiet.

Checks obey the shell tool's policy, since the agent can write HEARTBEAT.md: a refused
check never runs and is told to the person once (it does not wake the model); in
``ask`` mode a check is parked for approval once and runs on later heartbeats only
after the person approved it (``agentd approve ID``, or their own edit of the file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from agentd.config import Config
from agentd.events import Event
from agentd.fileio import atomic_write
from agentd.home import AGENT, Home
from agentd.sandbox import jail_for, run_command
from agentd.tools import approvals
from agentd.tools.policy import ShellPolicy
from scheduler.heartbeat import Check, HeartbeatPlan, parse_heartbeat_md

CHECK_TIMEOUT_S = 20.0
CHECK_OUTPUT_CHARS = 1500
PARKED = "heartbeat-checks.json"  # under .agentd/: check command → its approval id


@dataclass(frozen=True)
class HeartbeatDecision:
    event: Event | None  # None: skip the wake, no engine call
    reason: str
    notices: list[tuple[str, str]] = field(default_factory=list)  # (key, text): tell the person once


def parse(home: Home) -> HeartbeatPlan:
    path = home.root / "HEARTBEAT.md"
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return parse_heartbeat_md(text, path)


def prepare(home: Home, config: Config, now: datetime) -> HeartbeatDecision:
    """Open items wake the model; checks run first and wake it only when one reports something."""
    plan = parse(home)
    if plan.is_empty:
        return HeartbeatDecision(None, "HEARTBEAT.md has no open items and no checks")
    policy = ShellPolicy.from_config(config.shell, home.root)
    reports: list[str] = []
    notices: list[tuple[str, str]] = []
    held = 0
    for check in plan.checks:
        decision = policy.decide(check.command)
        if decision.action == "deny":
            held += 1
            notices.append((f"check-refused:{check.command}", f"The HEARTBEAT.md:{check.line} check `{check.command}` is refused by the shell policy ({decision.rule}); it does not run."))
            continue
        if decision.action == "ask":
            waiting = _approval(home, check)
            if waiting is not None:
                held += 1
                notices.append(waiting)
                continue
        # A check the person approved may run without a sandbox where there is none; others may not.
        out = run_command(check.command, cwd=home.root, timeout=min(CHECK_TIMEOUT_S, config.shell.timeout),
                          jail=jail_for(home.root, config), unconfined_ok=decision.action == "ask")
        text = out.output.strip()
        if out.exit_code != 0 or text:
            label = f" ({check.label})" if check.label else ""
            excerpt = text[:CHECK_OUTPUT_CHARS] + ("…" if len(text) > CHECK_OUTPUT_CHARS else "")
            reports.append(f"- check `{check.command}`{label} exited {out.exit_code}:\n```\n{excerpt}\n```")
    if not plan.open_items and not reports:
        ran = len(plan.checks) - held
        why = f"{ran} checks quiet, {held} not run (shell policy), no open items" if held else f"all {ran} checks quiet, no open items"
        return HeartbeatDecision(None, why, notices)
    parts = []
    if plan.open_items:
        parts.append("Open items in HEARTBEAT.md:\n" + "\n".join(f"- [ ] {i.text}" for i in plan.open_items))
    if reports:
        parts.append("Checks that reported something:\n" + "\n".join(reports))
    parts.append("Deal with what needs doing. If nothing does, finish with done and the summary HEARTBEAT_OK.")
    return HeartbeatDecision(Event("heartbeat", "\n\n".join(parts), now), "open items or checks reported", notices)


def _approval(home: Home, check: Check) -> tuple[str, str] | None:
    """None once the person approved this check; else a notice (it is parked for approval once)."""
    path = home.runtime / PARKED
    try:
        parked: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        parked = {}
    approval_id = parked.get(check.command)
    # Only the record under .agentd/ counts (written by `agentd approve`), never the page's text.
    status = approvals.status(home, approval_id) if approval_id else None
    rel = f"{approvals.FOLDER}/{approval_id}.md"
    if status == "approved":
        return None
    if status is None:
        with home.lock(timeout=60, purpose="park a heartbeat check"):
            approval_id, rel = approvals.park(home, check.command, home.root, "heartbeat")
            home.commit(f"heartbeat: check `{check.command[:40]}` waits for approval", identity=AGENT, paths=[rel])
        parked[check.command] = approval_id
        atomic_write(path, json.dumps(parked, indent=1, ensure_ascii=False))
        status = "pending"
    if status == "pending":
        text = (f"The HEARTBEAT.md:{check.line} check `{check.command}` runs only once you approve it (shell.mode is ask): "
                f"agentd approve {approval_id} (it then runs on every heartbeat), or agentd deny {approval_id}.")
    else:
        text = f"The HEARTBEAT.md:{check.line} check `{check.command}` was {status} ({rel}); it does not run."
    return f"check-{status}:{approval_id}", text

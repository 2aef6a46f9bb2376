"""The heartbeat wake: costs nothing when HEARTBEAT.md has nothing open and its checks stay quiet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agentd.config import Config
from agentd.events import Event
from agentd.home import Home
from agentd.tools.policy import ShellPolicy
from agentd.tools.shell import run_command
from scheduler.heartbeat import HeartbeatPlan, parse_heartbeat_md

CHECK_TIMEOUT_S = 20.0
CHECK_OUTPUT_CHARS = 1500


@dataclass(frozen=True)
class HeartbeatDecision:
    event: Event | None  # None: skip the wake, no engine call
    reason: str


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
    reports = []
    for check in plan.checks:
        decision = policy.decide(check.command)
        if decision.action == "deny":
            reports.append(f"- check `{check.command}` (HEARTBEAT.md:{check.line}) refused by the shell policy: {decision.reason}")
            continue
        out = run_command(check.command, cwd=home.root, timeout=min(CHECK_TIMEOUT_S, config.shell.timeout), env_names=config.shell.env)
        text = out.output.strip()
        if out.exit_code != 0 or text:
            label = f" ({check.label})" if check.label else ""
            excerpt = text[:CHECK_OUTPUT_CHARS] + ("…" if len(text) > CHECK_OUTPUT_CHARS else "")
            reports.append(f"- check `{check.command}`{label} exited {out.exit_code}:\n```\n{excerpt}\n```")
    if not plan.open_items and not reports:
        return HeartbeatDecision(None, f"all {len(plan.checks)} checks quiet, no open items")
    parts = []
    if plan.open_items:
        parts.append("Open items in HEARTBEAT.md:\n" + "\n".join(f"- [ ] {i.text}" for i in plan.open_items))
    if reports:
        parts.append("Checks that reported something:\n" + "\n".join(reports))
    parts.append("Deal with what needs doing. If nothing does, finish with done and the summary HEARTBEAT_OK.")
    return HeartbeatDecision(Event("heartbeat", "\n\n".join(parts), now), "open items or checks reported")

"""Shell commands parked for the person's approval, as Markdown files in outbox/approvals/."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from pathlib import Path

from agentd.config import Config
from agentd.errors import UserError
from agentd.home import Home
from agentd.tools.policy import ShellPolicy
from agentd.tools.shell import run_command

FOLDER = "outbox/approvals"


def park(home: Home, command: str, workdir: Path, wake_id: str) -> tuple[str, str]:
    approval_id = secrets.token_hex(3)
    rel = f"{FOLDER}/{approval_id}.md"
    text = (
        f"---\nid: {approval_id}\nstatus: pending\nworkdir: {workdir}\nwake: {wake_id}\n"
        f"created: {datetime.now().isoformat(timespec='seconds')}\n---\n\n"
        f"The agent wants to run:\n\n```sh\n{command}\n```\n\n"
        f"Run it: `agentd approve {approval_id}` · refuse it: `agentd deny {approval_id}`\n"
    )
    home.write_text(rel, text)
    return approval_id, rel


def _load(home: Home, approval_id: str) -> tuple[str, str, str, Path]:
    if not re.fullmatch(r"[0-9a-f]{6}", approval_id):
        raise UserError(f"{approval_id!r} is not an approval id (6 hex digits, see outbox/approvals/)")
    rel = f"{FOLDER}/{approval_id}.md"
    path = home.root / rel
    if not path.is_file():
        raise UserError(f"no parked command {approval_id} in {FOLDER}/")
    text = home.read_text(rel)
    status = re.search(r"^status: (\w+)", text, re.M)
    if not status or status.group(1) != "pending":
        raise UserError(f"command {approval_id} is not pending (status: {status.group(1) if status else '?'})")
    cmd = re.search(r"```sh\n(.*?)\n```", text, re.S)
    workdir = re.search(r"^workdir: (.+)$", text, re.M)
    if not cmd or not workdir:
        raise UserError(f"{rel} is not a parked command file")
    return rel, text, cmd.group(1), Path(workdir.group(1))


def pending(home: Home) -> list[str]:
    folder = home.root / FOLDER
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.md") if "status: pending" in p.read_text(errors="replace"))


def approve(home: Home, config: Config, approval_id: str) -> str:
    """Run the parked command (the built-in deny rules still hold) and record the result."""
    rel, text, command, workdir = _load(home, approval_id)
    decision = ShellPolicy("auto", config.shell.allow, config.shell.deny, home_root=home.root, workdirs=config.shell.workdirs).decide(command, workdir)
    if decision.action == "deny":
        home.write_text(rel, text.replace("status: pending", "status: refused", 1) + f"\nRefused by the policy: {decision.rule}\n", guard=False)
        raise UserError(f"the policy still refuses this command ({decision.rule}); nothing ran")
    result = run_command(command, cwd=workdir, timeout=config.shell.timeout, env_names=config.shell.env, home=home.root)
    excerpt = result.output[-4000:]
    home.write_text(
        rel,
        text.replace("status: pending", "status: approved", 1)
        + f"\n## Result ({datetime.now().isoformat(timespec='seconds')})\nexit code {result.exit_code}\n\n```\n{excerpt}\n```\n",
        guard=False,
    )
    return f"exit code {result.exit_code}\n{excerpt}"


def deny(home: Home, approval_id: str) -> str:
    rel, text, command, _ = _load(home, approval_id)
    home.write_text(rel, text.replace("status: pending", "status: denied", 1), guard=False)
    return f"denied: {command}"

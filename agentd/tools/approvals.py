"""Shell commands parked for the person's approval: a record the agent cannot touch, a page it can't forge.

Parking writes two things. The **record**, ``.agentd/approvals/<id>.json``: the exact command,
its working directory and a digest of both. The agent's file tools refuse ``.agentd/`` and the
sandbox mounts it read-only, so only the daemon writes it. The **page**,
``outbox/approvals/<id>.md``: what the person reads, rendered from the record (the file tools
refuse that folder too, and the sandbox mounts it read-only).

``agentd approve ID`` runs the command of the record, and only when the page still reads exactly
as it was rendered from it: a page that was edited, a page with no record (the daemon did not
park it) or a record whose digest does not match is refused, reported in outbox/notices.md, and
the refusal is written and committed at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from agentd.config import Config
from agentd.errors import UserError
from agentd.fileio import atomic_write
from agentd.home import Home
from agentd.sandbox import jail_for, run_command
from agentd.tools.policy import ShellPolicy

FOLDER = "outbox/approvals"
RECORDS = "approvals"  # under .agentd/
ID = re.compile(r"[0-9a-f]{6}")


@dataclass(frozen=True)
class Parked:
    id: str
    command: str
    workdir: str
    wake: str
    created: str
    digest: str
    status: str = "pending"

    @staticmethod
    def digest_of(command: str, workdir: str) -> str:
        return hashlib.sha256(json.dumps([command, workdir]).encode()).hexdigest()

    @property
    def intact(self) -> bool:
        return self.digest == self.digest_of(self.command, self.workdir)


class Refused(UserError):
    """An approval that cannot run; the refusal is already written and committed."""


def _fence(command: str) -> str:
    """A fence longer than any run of backticks in the command, so no line of it can close the block."""
    longest = max((len(run) for run in re.findall(r"`+", command)), default=0)
    return "`" * max(3, longest + 1)


def render(p: Parked, result: str = "") -> str:
    fence = _fence(p.command)
    return (
        f"---\nid: {p.id}\nstatus: {p.status}\nwake: {p.wake}\ncreated: {p.created}\n---\n\n"
        f"The agent wants to run, in `{p.workdir}`:\n\n{fence}sh\n{p.command}\n{fence}\n\n"
        f"Run it: `agentd approve {p.id}` · refuse it: `agentd deny {p.id}`\n{result}"
    )


def _record_path(home: Home, approval_id: str) -> Path:
    return home.runtime / RECORDS / f"{approval_id}.json"


def _save(home: Home, p: Parked) -> None:
    atomic_write(_record_path(home, p.id), json.dumps(asdict(p), indent=1, ensure_ascii=False) + "\n")


def record(home: Home, approval_id: str) -> Parked | None:
    try:
        return Parked(**json.loads(_record_path(home, approval_id).read_text(encoding="utf-8")))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def park(home: Home, command: str, workdir: Path, wake_id: str) -> tuple[str, str]:
    """Record the command and its working directory, then write the page the person reads."""
    approval_id = secrets.token_hex(3)
    where = str(workdir)
    p = Parked(approval_id, command, where, wake_id, datetime.now().isoformat(timespec="seconds"), Parked.digest_of(command, where))
    _save(home, p)
    rel = f"{FOLDER}/{approval_id}.md"
    home.write_text(rel, render(p), guard=False)
    return approval_id, rel


def pending(home: Home) -> list[str]:
    folder = home.runtime / RECORDS
    found = [record(home, p.stem) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted(p.id for p in found if p is not None and p.status == "pending")


def status(home: Home, approval_id: str) -> str | None:
    """The record's status (``None``: no such record); the page's own text is never trusted."""
    p = record(home, approval_id)
    return None if p is None else p.status


def _load(home: Home, approval_id: str) -> Parked:
    """The pending record whose page is untouched, or a refusal that is written down and reported."""
    if not ID.fullmatch(approval_id):
        raise UserError(f"{approval_id!r} is not an approval id (6 hex digits, see {FOLDER}/)")
    rel = f"{FOLDER}/{approval_id}.md"
    page = home.root / rel
    p = record(home, approval_id)
    if p is None:
        if not page.is_file():
            raise UserError(f"no parked command {approval_id} in {FOLDER}/")
        _refuse(home, rel, None, "agentd did not park this command (there is no record of it): the page was written by someone else")
    assert p is not None
    if p.status != "pending":
        raise UserError(f"command {approval_id} is not pending (status: {p.status})")
    if not p.intact:
        _refuse(home, rel, p, "the record of this command does not match its digest")
    shown = page.read_text(encoding="utf-8", errors="replace") if page.is_file() else None
    if shown != render(p):
        _refuse(home, rel, p, f"{rel} was changed after the command was parked, so it no longer shows what would run")
    return p


def _refuse(home: Home, rel: str, p: Parked | None, why: str) -> None:
    text = f"Approval {Path(rel).stem} refused: {why}. Nothing ran."
    if p is not None:
        p = Parked(**{**asdict(p), "status": "refused"})
        _save(home, p)
        home.write_text(rel, render(p, f"\n**Refused**: {why}\n"), guard=False)
    else:
        home.write_text(rel, f"**Refused**: {why}. Nothing ran.\n", guard=False)
    home.notify(text)
    home.commit(f"person: refused approval {Path(rel).stem}", identity=home.person_identity(), all_changes=True)
    raise Refused(text)


def _inside(workdir: Path, home: Home, config: Config) -> bool:
    resolved = workdir.resolve()
    allowed = [home.root.resolve(), *(Path(p).expanduser().resolve() for p in (*config.shell.workdirs, *config.files_allow))]
    return any(resolved == a or a in resolved.parents for a in allowed)


def show(home: Home, approval_id: str) -> tuple[str, str]:
    """The exact command and working directory ``approve`` would run."""
    p = _load(home, approval_id)
    return p.command, p.workdir


def approve(home: Home, config: Config, approval_id: str) -> str:
    """Run the recorded command (the built-in deny rules still hold) in the sandbox; record the result."""
    p = _load(home, approval_id)
    rel = f"{FOLDER}/{approval_id}.md"
    workdir = Path(p.workdir)
    if not _inside(workdir, home, config):
        _refuse(home, rel, p, f"its working directory {p.workdir} is outside the home and the folders agent.yaml allows")
    decision = ShellPolicy("auto", config.shell.allow, config.shell.deny, home_root=home.root, workdirs=config.shell.workdirs).decide(p.command, workdir)
    if decision.action == "deny":
        _refuse(home, rel, p, f"the shell policy still refuses it ({decision.rule})")
    # The person approved exactly this command: where no sandbox can run, it may run without one.
    result = run_command(p.command, cwd=workdir, timeout=config.shell.timeout, jail=jail_for(home.root, config), unconfined_ok=True)
    excerpt = result.output[-4000:]
    done = Parked(**{**asdict(p), "status": "approved"})
    _save(home, done)
    fence = _fence(excerpt)
    home.write_text(rel, render(done, f"\n## Result ({datetime.now().isoformat(timespec='seconds')})\nexit code {result.exit_code}\n\n{fence}\n{excerpt}\n{fence}\n"), guard=False)
    return f"exit code {result.exit_code}\n{excerpt}"


def deny(home: Home, approval_id: str) -> str:
    p = _load(home, approval_id)
    done = Parked(**{**asdict(p), "status": "denied"})
    _save(home, done)
    home.write_text(f"{FOLDER}/{approval_id}.md", render(done), guard=False)
    return f"denied: {p.command}"

"""`agentd fork` and `agentd merge`: the library calls behind the commands, and what they print."""

from __future__ import annotations

from pathlib import Path

from agentd.config import load_config
from agentd.errors import UserError
from agentd.home import Home
from agentd.merge import requests
from agentd.merge.orchestrator import abort_merge, fork_home, merge_home
from agentd.merge.report import outcome_lines
from agentd.services.lifecycle import daemon_lock_held


def fork(home: Home, dest: Path) -> list[str]:
    forked = fork_home(home, dest)
    agent_id = load_config(forked.root).id
    return [f"forked {home.root} into {forked.root} (agent id {agent_id}, empty inbox)", f"merge it back later with: agentd --home {home.root} merge {forked.root}"]


def merge(home: Home, other: str, *, dry_run: bool, use_model: bool) -> list[str]:
    """In this process; or, with a daemon running, handed to it: the merge runs as its wake, others wait."""
    if dry_run:
        return outcome_lines(merge_home(home, other, dry_run=True), dry_run=True)
    if daemon_lock_held(home):
        return _by_daemon(home, "merge", other, use_model=use_model)
    if not use_model:
        return outcome_lines(merge_home(home, other))
    from agentd.commands.engines import engine_for

    with engine_for(home, load_config(home.root)) as (sup, _):
        return outcome_lines(merge_home(home, other, engine=sup.client()))


def _by_daemon(home: Home, action: str, other: str = "", *, use_model: bool = True) -> list[str]:
    req = requests.submit(home, action, other, use_model=use_model)
    result = requests.wait(home, req, daemon_alive=lambda: daemon_lock_held(home))
    if result.error is not None:
        raise UserError(result.error)
    return ["(run by the daemon, its other wakes paused meanwhile)", *result.lines]


def abort(home: Home) -> str:
    if daemon_lock_held(home):
        return "\n".join(_by_daemon(home, "abort"))
    return abort_merge(home)

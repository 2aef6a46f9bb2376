"""`agentd fork` and `agentd merge`: the library calls behind the commands, and what they print."""

from __future__ import annotations

from pathlib import Path

from agentd.config import load_config
from agentd.home import Home
from agentd.merge.orchestrator import abort_merge, fork_home, merge_home, refuse_if_daemon
from agentd.merge.report import MergeOutcome, plan_lines


def fork(home: Home, dest: Path) -> list[str]:
    forked = fork_home(home, dest)
    agent_id = load_config(forked.root).id
    return [f"forked {home.root} into {forked.root} (agent id {agent_id}, empty inbox)", f"merge it back later with: agentd --home {home.root} merge {forked.root}"]


def merge(home: Home, other: str, *, dry_run: bool, use_model: bool) -> list[str]:
    if dry_run or not use_model:
        return _lines(merge_home(home, other, dry_run=dry_run), dry_run)
    from agentd.commands.engines import engine_for

    refuse_if_daemon(home)  # before an engine is started for nothing
    with engine_for(home, load_config(home.root)) as (sup, _):
        return _lines(merge_home(home, other, engine=sup.client()), dry_run)


def _lines(out: MergeOutcome, dry_run: bool) -> list[str]:
    if out.up_to_date:
        return [f"{out.source} is already merged into this home; nothing to do"]
    if dry_run:
        return [*plan_lines(out), "(dry run: nothing was changed)"]
    lines = [f"merge commit {out.commit[:10] if out.commit else '?'}: {out.summary()}"]
    for m in out.memory:
        if m.rejected:
            lines.append(f"  {m.path}: the model's merge was rejected ({m.rejected}); the union of both sides was kept")
        elif m.chunks > 1:
            lines.append(f"  {m.path}: too large for the engine's context window; merged in {m.chunks} parts")
    for rel, findings in sorted(out.withheld.items()):
        where = ", ".join(f"line {line} ({kind})" for _, line, kind in findings[:3])
        lines.append(f"  {rel}: left out of the merge commit, it looks like a credential ({where}); the merged text is in the working tree")
    if out.report:
        lines.append(f"for you: {out.report} ({len(out.conflicts)} conflicts, {len(out.contradictions)} contradictions)")
    return lines


def abort(home: Home) -> str:
    return abort_merge(home)

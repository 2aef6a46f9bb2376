"""`agentd init`, `fork`, `merge`, `config`, `log` and `status`: the home and what it holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from agentd import identity
from agentd.cli.base import Context, pass_ctx
from agentd.commands import merge, overview, settings
from agentd.home import is_home
from agentd.template import init_home


@click.command()
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def init(c: Context, path: Path | None) -> None:
    """Create a new home: the template files, git init, one commit (and the agent's id in agent.yaml).

    On a home copied from another one (same id), gives the copy an id of its own.

    \b
    Example:
      agentd init ~/agent
    """
    target = (path or c.path).expanduser().absolute()
    renewed = identity.init_existing(target) if is_home(target) else None
    if renewed is not None:
        click.echo(renewed)
        return
    home = init_home(target)
    click.echo(f"created a home at {home.root}")
    click.echo(f"next: edit {home.root / 'USER.md'}, then: agentd --home {home.root} say 'hello'")


@click.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def fork(c: Context, path: Path) -> None:
    """A new home at PATH: this one's history, its own agent id, an empty inbox.

    \b
    Example:
      agentd --home ~/agent fork ~/agent-travel
    """
    for line in merge.fork(c.home(), path):
        click.echo(line)


@click.command("merge")
@click.argument("other", required=False)
@click.option("--dry-run", is_flag=True, help="Print what the merge would do; change nothing.")
@click.option("--abort", "abort_", is_flag=True, help="Undo the last merge (or drop an unfinished one).")
@click.option("--no-model", is_flag=True, help="No merge wake: memory keeps the deterministic union of lines.")
@pass_ctx
def merge_cmd(c: Context, other: str | None, dry_run: bool, abort_: bool, no_model: bool) -> None:
    """Merge the home OTHER (a path or git URL) into this one; stop the daemon first.

    \b
    Examples:
      agentd --home ~/agent merge ~/agent-travel --dry-run
      agentd --home ~/agent merge ~/agent-travel
      agentd --home ~/agent merge --abort
    """
    if abort_:
        click.echo(merge.abort(c.home()))
        return
    if not other:
        raise click.UsageError("name the home to merge (a path or a git URL), or use --abort")
    for line in merge.merge(c.home(), other, dry_run=dry_run, use_model=not no_model):
        click.echo(line)


@click.group()
def config() -> None:
    """Read and change agent.yaml (comments are kept; each change is a commit)."""


@config.command("get")
@click.argument("key")
@pass_ctx
def config_get(c: Context, key: str) -> None:
    """Print one setting, e.g. `agentd config get heartbeat.every`."""
    from agentd.config_edit import get_value

    value = get_value(c.home().root, key)
    click.echo(json.dumps(value, default=str) if not isinstance(value, str) else value)


@config.command("set")
@click.argument("key")
@click.argument("value")
@pass_ctx
def config_set(c: Context, key: str, value: str) -> None:
    """Set one setting (validated; committed), e.g. `agentd config set heartbeat.every 1h`."""
    sha = settings.config_set(c.home(), key, value)
    click.echo(f"{key} = {value}" + (f"  (commit {sha[:8]})" if sha else "  (unchanged)"))


@click.command()
@click.option("-n", "limit", default=20, show_default=True, help="How many commits.")
@pass_ctx
def log(c: Context, limit: int) -> None:
    """The home's history: what the agent did and what you edited, told apart."""
    for e in overview.log_entries(c.home(), limit):
        tokens = ""
        if "Prompt-Tokens" in e.trailers:
            tokens = f"  [{e.trailers['Prompt-Tokens']} prompt, {e.trailers.get('Cached-Tokens', '?')} cached]"
        who = click.style(f"{e.who:6}", fg="cyan" if e.who == "agent" else "green")
        click.echo(f"{e.sha} {e.when:%Y-%m-%d %H:%M} {who} {e.subject}{tokens}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status(c: Context, as_json: bool) -> None:
    """Daemon, engine, schedule, last wake, today's tokens and cache hit rate."""
    report = overview.status_report(c.home())
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"home      {report['home']}")
    a = report["agent"]
    copy = f" (a copy of {a['copy_of']}: agentd init {report['home']} gives it its own)" if a["copy_of"] else ""
    click.echo(f"agent id  {a['id']}{copy}")
    d = report["daemon"]
    click.echo(f"daemon    {'running, pid {}, up {}'.format(d['pid'], d['uptime']) if d else 'not running'}")
    e = report["engine"]
    click.echo(f"engine    {ops_engine_line(e)}")
    click.echo(f"sandbox   {report['sandbox']['line']}")
    for ch in report["channels"]:
        click.echo(f"channel   {overview.channel_line(ch)}")
    for run in report["next_runs"]:
        click.echo(f"next      {run['kind']:9} {run['name'] or '':20} {run['at'] or 'not scheduled'}")
    if report["last_wake"]:
        w = report["last_wake"]
        click.echo(f"last wake {w['label']} {w['status']} at {w['at']}")
    click.echo(f"last      {report['last_commit']}")
    t = report["today"]
    rate = "n/a" if t["hit_rate"] is None else f"{100 * t['hit_rate']:.1f}%"
    computed = "unknown" if t["computed_tokens"] is None else t["computed_tokens"]
    click.echo(f"today     {t['requests']} requests, {t['prompt_tokens']} prompt tokens, cache hit {rate}, {computed} computed")


def ops_engine_line(e: Any) -> str:
    d = e if isinstance(e, dict) else getattr(e, "__dict__", {})
    parts = [f"{d.get('backend')}:{d.get('model')}"]
    if d.get("error"):
        return f"{parts[0]}, cannot start: {d['error']}"
    if d.get("url"):
        parts.append(str(d["url"]))
    if d.get("pid"):
        parts.append(f"pid {d['pid']}")
    parts.append("healthy" if d.get("healthy") else "not running")
    return ", ".join(parts)


COMMANDS = (init, fork, merge_cmd, config, log, status,)

"""The `agentd` command line: thin click commands that call one library function and print."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from agentd import __version__
from agentd.commands import (
    approvals,
    background,
    engines,
    memory,
    merge,
    overview,
    pool,
    schedule,
    settings,
    wakes,
)
from agentd.errors import AgentdError, UserError
from agentd.home import Home, resolve_home_path
from agentd.template import init_home
from engine.errors import EngineError, EngineStartError

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    def __init__(self, home: str | None) -> None:
        self.home_opt = home

    @property
    def path(self) -> Path:
        return resolve_home_path(self.home_opt)

    def home(self) -> Home:
        return Home.open(self.path)


pass_ctx = click.make_pass_decorator(Context)


class AgentdGroup(click.Group):
    """Turns agentd's own errors into one clear line and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (UserError, AgentdError) as e:
            raise click.ClickException(str(e)) from None
        except EngineError as e:
            # engine/ knows nothing of agentd, so its errors are not AgentdErrors; they are
            # still the person's to fix (a backend not installed, a model not found).
            text = f"engine: {e}"
            if isinstance(e, EngineStartError) and e.log_tail:
                text = f"engine: {str(e).split(chr(10))[0]}; the engine's log ends with:\n{e.log_tail}"
            raise click.ClickException(text) from None
        except OSError as e:
            if isinstance(e, (BrokenPipeError,)):
                sys.exit(0)
            raise click.ClickException(f"{e.filename or ''}: {e.strerror}".lstrip(": ")) from None


@click.group(cls=AgentdGroup)
@click.version_option(__version__, prog_name="agentd")
@click.option("--home", "home", envvar="AGENTD_HOME", help="The agent's home (default: $AGENTD_HOME, else ~/.local/share/agentd/home).")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """agentd: a persistent agent whose mind is Markdown in a git repository.

    \b
    Quick start:
      agentd init ~/agent
      agentd --home ~/agent say "hello, who are you?"
      agentd --home ~/agent run        # the daemon: heartbeat, cron, inbox
    """
    ctx.obj = Context(home)


# ---------------------------------------------------------------------- home


@cli.command()
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def init(c: Context, path: Path | None) -> None:
    """Create a new home: the template files, git init, one commit.

    \b
    Example:
      agentd init ~/agent
    """
    home = init_home(path or c.path)
    click.echo(f"created a home at {home.root}")
    click.echo(f"next: edit {home.root / 'USER.md'}, then: agentd --home {home.root} say 'hello'")


@cli.command()
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


@cli.command("merge")
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


@cli.group()
def config() -> None:
    """Read and change agent.yaml (comments are kept; each change is a commit)."""


@config.command("get")
@click.argument("key")
@pass_ctx
def config_get(c: Context, key: str) -> None:
    """Print one setting, e.g. `agentd config get heartbeat.every`."""
    from agentd.config import get_value

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


@cli.command()
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


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status(c: Context, as_json: bool) -> None:
    """Daemon, engine, schedule, last wake, today's tokens and cache hit rate."""
    report = overview.status_report(c.home())
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"home      {report['home']}")
    d = report["daemon"]
    click.echo(f"daemon    {'running, pid {}, up {}'.format(d['pid'], d['uptime']) if d else 'not running'}")
    e = report["engine"]
    click.echo(f"engine    {ops_engine_line(e)}")
    click.echo(f"sandbox   {report['sandbox']['line']}")
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


# ---------------------------------------------------------------------- wakes


@cli.command()
@click.argument("message")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the reply.")
@pass_ctx
def say(c: Context, message: str, timeout: float) -> None:
    """Send one message; prints the agent's reply.

    With the daemon running, the message goes through the inbox and this waits
    for the reply; without it, the wake runs here.

    \b
    Example:
      agentd say "what is on my list today?"
    """
    from agentd.chat import print_delta, print_reply

    streamed: list[str] = []

    def on_delta(text: str) -> None:
        streamed.append(text)
        print_delta(text)

    result = wakes.say(c.home(), message, timeout=timeout, on_delta=on_delta)
    if isinstance(result, dict):
        reply, status, error = result.get("reply"), result.get("status"), result.get("error")
    else:
        reply, status, error = result.reply, result.status, result.error
    print_reply("".join(streamed), str(reply) if reply else None)
    if status not in ("ok", "heartbeat_ok"):
        click.echo(f"[wake {status}: {error}]", err=True)
        if not reply:
            sys.exit(1)


@cli.command()
@pass_ctx
def chat(c: Context) -> None:
    """An interactive conversation (each line is one wake). Ctrl-C or Ctrl-D to leave."""
    from agentd.chat import run_chat

    run_chat(c.home())


@cli.group("wake")
def wake_group() -> None:
    """Run one wake now, in this process."""


@wake_group.command("heartbeat")
@pass_ctx
def wake_heartbeat(c: Context) -> None:
    """Run the heartbeat now (skipped, with no engine call, when nothing is open)."""
    from agentd import heartbeat
    from agentd.config import load_config
    from agentd.wiring import timezone_of

    home = c.home()
    config = load_config(home.root)
    from datetime import datetime

    decision = heartbeat.prepare(home, config, datetime.now(timezone_of(config)))
    if decision.event is None:
        click.echo(f"heartbeat skipped: {decision.reason}")
        return
    ev = decision.event
    result = wakes.run_wake(home, lambda at: ev)
    _print_result(result)


@wake_group.command("cron")
@click.argument("name")
@pass_ctx
def wake_cron(c: Context, name: str) -> None:
    """Run the cron job NAME now."""
    home = c.home()
    result = wakes.run_wake(home, wakes.cron_event(home, name))
    _print_result(result)


def _print_result(result: Any) -> None:
    if result.reply:
        click.echo(result.reply)
    pct = "n/a" if result.cached_percent is None else f"{result.cached_percent:.0f}%"
    click.echo(
        f"[{result.event.label} {result.status}: {result.steps} steps, {result.prompt_tokens} prompt tokens, "
        f"{pct} cached{', commit ' + result.commit[:8] if result.commit else ''}]",
        err=True,
    )


@cli.command()
@click.argument("approval_id")
@pass_ctx
def approve(c: Context, approval_id: str) -> None:
    """Run a shell command the agent parked for approval (see outbox/approvals/)."""
    (command, workdir), result = approvals.approve(c.home(), approval_id)
    click.echo(f"ran in {workdir}:\n  {command}\n{result}")


@cli.command()
@click.argument("approval_id")
@pass_ctx
def deny(c: Context, approval_id: str) -> None:
    """Refuse a shell command the agent parked for approval."""
    click.echo(approvals.deny(c.home(), approval_id))


# ---------------------------------------------------------------------- daemon


@cli.command()
@pass_ctx
def run(c: Context) -> None:
    """Run the daemon in the foreground (heartbeat, cron, inbox). SIGTERM/Ctrl-C stop it cleanly."""
    from agentd.daemon import build_daemon

    sys.exit(build_daemon(c.home()).run())


@cli.command()
@pass_ctx
def start(c: Context) -> None:
    """Start the daemon in the background."""
    state = background.start_background(c.home())
    click.echo(f"daemon running, pid {state['pid']}")


@cli.command()
@pass_ctx
def stop(c: Context) -> None:
    """Stop the background daemon (it finishes the running wake) and its engine."""
    pid = background.stop_background(c.home())
    click.echo("daemon was not running" if pid is None else f"daemon {pid} stopped")


@cli.group()
def service() -> None:
    """Run the daemon as a systemd user service."""


@service.command("install")
@pass_ctx
def service_install(c: Context) -> None:
    """Write ~/.config/systemd/user/agentd.service (Restart=on-failure)."""
    unit = background.install_service(c.home())
    click.echo(f"wrote {unit}\nenable it with: systemctl --user daemon-reload && systemctl --user enable --now agentd")


@cli.group()
def cron() -> None:
    """Scheduled jobs from CRON.md."""


@cron.command("list")
@pass_ctx
def cron_list(c: Context) -> None:
    """Each job in CRON.md: next run, last run, last skip with its reason (and errors, with file:line)."""
    for line in schedule.cron_lines(c.home()):
        click.echo(line)


# ---------------------------------------------------------------------- engine and model


@cli.group()
def engine() -> None:
    """The supervised inference engine."""


@engine.command("start")
@pass_ctx
def engine_start(c: Context) -> None:
    """Start the engine in the background (or adopt the one already running)."""
    info = engines.engine_start(c.home())
    click.echo(f"engine running: {info}")


@engine.command("stop")
@pass_ctx
def engine_stop(c: Context) -> None:
    """Stop the engine and every process it started."""
    click.echo(engines.engine_stop(c.home()))


@engine.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def engine_status(c: Context, as_json: bool) -> None:
    """Backend, model, URL, PID, uptime, health and prefix-cache counters."""
    st = engines.engine_status(c.home())
    if as_json:
        click.echo(json.dumps(st, indent=2, default=str))
    else:
        for k, v in st.items():
            click.echo(f"{k:14} {v}")


@cli.group("pool")
def pool_group() -> None:
    """A pool of engine replicas behind vllm-router on this machine, shared by homes with engine.backend: pool.

    \b
    agentd pool start --replicas 3          # 3 embedded llama.cpp replicas, consistent hash on X-Session-ID
    agentd pool start --replicas 2 --backend vllm --model Qwen/Qwen3-8B   # one GPU each
    agentd pool status
    agentd pool stop
    """


_POOL_DIR = click.option("--dir", "root", type=click.Path(path_type=Path), default=None, help="the pool's directory (default $XDG_DATA_HOME/agentd/pool)")


@pool_group.command("start")
@click.option("--replicas", type=click.IntRange(1), required=True)
@click.option("--backend", default="llamacpp", show_default=True, help="the replicas' engine (a supervised backend)")
@click.option("--model", default="smollm2", show_default=True)
@click.option("--policy", default="consistent_hash", show_default=True, help="vllm-router's --policy")
@click.option("--option", "options", multiple=True, help="a backend option, name=value (e.g. n_ctx=4096)")
@_POOL_DIR
def pool_start(replicas: int, backend: str, model: str, policy: str, options: tuple[str, ...], root: Path | None) -> None:
    """Start the replicas and the router in the background; restarted on crash until `agentd pool stop`."""
    click.echo(pool.start(replicas, backend, model, policy, options, root))


@pool_group.command("stop")
@_POOL_DIR
def pool_stop(root: Path | None) -> None:
    """Stop the router and every replica."""
    click.echo(pool.stop(root))


@pool_group.command("status")
@click.option("--json", "as_json", is_flag=True)
@_POOL_DIR
def pool_status(as_json: bool, root: Path | None) -> None:
    """The router's and each replica's health, and each replica's prefix-cache hit rate."""
    st = pool.status(root)
    click.echo(json.dumps(st, indent=2) if as_json else "\n".join(pool.status_lines(st)))


@cli.group()
def model() -> None:
    """The model the engine serves."""


@model.command("use")
@click.argument("name")
@click.option("--backend", help="Switch backend too (llamacpp, vllm, openai or one a plugin installed).")
@pass_ctx
def model_use(c: Context, name: str, backend: str | None) -> None:
    """Swap the model: agent.yaml updated (comments kept), committed, engine restarted, self-tested.

    \b
    Example:
      agentd model use ~/models/qwen2.5-3b-instruct-q4_k_m.gguf
    """
    for line in engines.model_use(c.home(), name, backend):
        click.echo(line)


@model.command("import")
@click.argument("source")
@click.option("--name", help="The name engine.model takes (default: smollm2, or the file's stem).")
@click.option("--force", is_flag=True, help="Convert again over an earlier import of the same name.")
def model_import(source: str, name: str | None, force: bool) -> None:
    """Convert a GGUF (a path, or smollm2) to a Hugging Face folder that vLLM serves.

    \b
    It lands in $XDG_DATA_HOME/agentd/models/hf/NAME; then:
      agentd model use NAME --backend vllm
    """
    from engine.convert import import_gguf

    done = import_gguf(source, name=name, force=force, progress=click.echo)
    if done.reused:
        click.echo(f"{done.name} was already imported: {done.folder} (--force converts it again)")
    click.echo(f"use it with: agentd model use {done.name} --backend vllm")


@model.command("list")
@pass_ctx
def model_list(c: Context) -> None:
    """What is configured and, for llamacpp, the GGUF files available."""
    for line in engines.model_list(c.home()):
        click.echo(line)


# ---------------------------------------------------------------------- memory, skills, stats


@cli.command()
@click.option("--since", default="1d", show_default=True, help="1d, 12h, 30m or a date.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def stats(c: Context, since: str, as_json: bool) -> None:
    """Tokens, cache hit rate, computed tokens and TTFT per trigger and day; cache breaks and why."""
    from agentd.ledger import Ledger, format_stats, parse_since, summarize

    try:
        t = parse_since(since)
    except ValueError as e:
        raise UserError(str(e)) from None
    ledger = Ledger(c.home().runtime / "ledger.db")
    summary = summarize(ledger.rows(t), ledger.steering_rows(t))
    click.echo(json.dumps(summary, indent=2) if as_json else format_stats(summary))


@cli.command()
@click.argument("query")
@click.option("-k", default=8, show_default=True)
@pass_ctx
def search(c: Context, query: str, k: int) -> None:
    """Full-text search over the home's Markdown (path:line: snippet)."""
    for line in memory.search(c.home(), query, k):
        click.echo(line)


@cli.command()
@pass_ctx
def reindex(c: Context) -> None:
    """Rebuild the search index from scratch."""
    click.echo(memory.reindex(c.home()))


@cli.command()
@pass_ctx
def skills(c: Context) -> None:
    """The skills the agent knows, with their source (built-in / home) and any errors."""
    for line in memory.skills_lines(c.home()):
        click.echo(line)


def main() -> None:
    cli(prog_name="agentd")


if __name__ == "__main__":  # pragma: no cover
    main()

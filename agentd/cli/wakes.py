"""`agentd say`, `chat`, `wake`, `approve` and `deny`: wakes run now, and the approvals they parked."""

from __future__ import annotations

import sys
from typing import Any

import click

from agentd.cli.base import Context, pass_ctx
from agentd.commands import approvals, wakes


@click.command()
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


@click.command()
@pass_ctx
def chat(c: Context) -> None:
    """An interactive conversation (each line is one wake). Ctrl-C or Ctrl-D to leave."""
    from agentd.chat import run_chat

    run_chat(c.home())


@click.group("wake")
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


@click.command()
@click.argument("approval_id")
@pass_ctx
def approve(c: Context, approval_id: str) -> None:
    """Run a shell command the agent parked for approval (see outbox/approvals/)."""
    (command, workdir), result = approvals.approve(c.home(), approval_id)
    click.echo(f"ran in {workdir}:\n  {command}\n{result}")


@click.command()
@click.argument("approval_id")
@pass_ctx
def deny(c: Context, approval_id: str) -> None:
    """Refuse a shell command the agent parked for approval."""
    click.echo(approvals.deny(c.home(), approval_id))


COMMANDS = (say, chat, wake_group, approve, deny,)

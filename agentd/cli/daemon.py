"""`agentd run`, `start`, `stop`, `service` and `cron`: the daemon and its schedule."""

from __future__ import annotations

import sys

import click

from agentd.cli.base import Context, pass_ctx
from agentd.commands import background, schedule


@click.command()
@pass_ctx
def run(c: Context) -> None:
    """Run the daemon in the foreground (heartbeat, cron, inbox). SIGTERM/Ctrl-C stop it cleanly."""
    from agentd.daemon import build_daemon

    sys.exit(build_daemon(c.home()).run())


@click.command()
@pass_ctx
def start(c: Context) -> None:
    """Start the daemon in the background."""
    state = background.start_background(c.home())
    click.echo(f"daemon running, pid {state['pid']}")


@click.command()
@pass_ctx
def stop(c: Context) -> None:
    """Stop the background daemon (it finishes the running wake) and its engine."""
    pid = background.stop_background(c.home())
    click.echo("daemon was not running" if pid is None else f"daemon {pid} stopped")


@click.group()
def service() -> None:
    """Run the daemon as a systemd user service."""


@service.command("install")
@pass_ctx
def service_install(c: Context) -> None:
    """Write ~/.config/systemd/user/agentd.service (Restart=on-failure)."""
    unit = background.install_service(c.home())
    click.echo(f"wrote {unit}\nenable it with: systemctl --user daemon-reload && systemctl --user enable --now agentd")


@click.group()
def cron() -> None:
    """Scheduled jobs from CRON.md."""


@cron.command("list")
@pass_ctx
def cron_list(c: Context) -> None:
    """Each job in CRON.md: next run, last run, last skip with its reason (and errors, with file:line)."""
    for line in schedule.cron_lines(c.home()):
        click.echo(line)


COMMANDS = (run, start, stop, service, cron,)

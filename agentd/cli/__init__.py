"""The `agentd` command line: thin click commands that call one library function and print.

The root group lives here; the commands live in this package, one module per group of
commands, and a new command is one ``cli.add_command`` line below.
"""

from __future__ import annotations

import click

from agentd import __version__
from agentd.cli import daemon, engine, home, memory, wakes
from agentd.cli.base import AgentdGroup, Context, pass_ctx
from agentd.commands import channel, web

__all__ = ["Context", "cli", "main", "pass_ctx"]


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


for _group in (home, wakes, daemon, engine, memory):
    for _command in _group.COMMANDS:
        cli.add_command(_command)
cli.add_command(channel.channel_group)
cli.add_command(web.open_cmd)


def main() -> None:
    cli(prog_name="agentd")


if __name__ == "__main__":  # pragma: no cover
    main()

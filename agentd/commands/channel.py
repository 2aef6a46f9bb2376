"""`agentd channel login matrix`: the agent's access token from a password typed at the prompt."""

from __future__ import annotations

from typing import Any

import click

from agentd.channels.matrix_login import login as matrix_login
from agentd.channels.matrix_state import TOKEN_FILE, save_token
from agentd.config import CONFIG_FILE, load_config
from agentd.errors import UserError


@click.group("channel")
def channel_group() -> None:
    """Chat channels (agent.yaml's channels: section)."""


@channel_group.command("login")
@click.argument("name", type=click.Choice(["matrix"]))
@click.option("--save", is_flag=True, help=f"Write the token to .agentd/{TOKEN_FILE} (mode 0600, git-ignored) instead of printing it.")
@click.pass_obj
def login(obj: Any, name: str, save: bool) -> None:
    """Log the agent's account in (password at the prompt) and print the line that puts its token in the environment.

    \b
    Example:
      agentd channel login matrix              # prints: export AGENTD_MATRIX_TOKEN=...
      agentd channel login matrix --save       # or keeps it in .agentd/ for the daemon
    """
    home = obj.home()
    config = load_config(home.root).channels.matrix
    if config is None:
        raise UserError(f"{home.root / CONFIG_FILE}: no channels.matrix section (homeserver, user_id, rooms, allow; README: Matrix)")
    password = click.prompt(f"Password of {config.user_id} on {config.homeserver}", hide_input=True)
    token = matrix_login(config.homeserver, config.user_id, password)
    if save:
        path = save_token(home.runtime, token)
        click.echo(f"saved the token in {path} (mode 0600); the daemon reads ${config.token_env} first, then this file")
    else:
        click.echo(f"export {config.token_env}={token}")

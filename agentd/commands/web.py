"""`agentd open`: the web app's one-time login link (opened in a browser where there is a display)."""

from __future__ import annotations

import os
import sys
import webbrowser
from typing import Any

import click

from agentd.errors import UserError
from agentd.home import Home
from agentd.services.lifecycle import read_state
from agentd.services.web import read_address
from agentd.web import auth

ANY_ADDRESS = {"0.0.0.0", "::", ""}


def login_link(home: Home) -> str:
    """A link with a fresh one-time token to the web app the running daemon serves."""
    if read_state(home) is None:
        raise UserError(f"no daemon is running on {home.root}: start it with `agentd start` (the web app is part of it)")
    address = read_address(home)
    if address is None:
        raise UserError("the daemon serves no web app (web.enabled: off in agent.yaml, or it could not listen: see .agentd/logs/daemon.log)")
    host = str(address["host"])
    host = "127.0.0.1" if host in ANY_ADDRESS else host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{address['port']}/login?token={auth.new_login_token(home)}"


def has_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@click.command("open")
@click.option("--no-browser", is_flag=True, help="Only print the link.")
@click.option("--api-token", "show_token", is_flag=True, help="Print the bearer token for POST /api/messages instead.")
@click.pass_obj
def open_cmd(obj: Any, no_browser: bool, show_token: bool) -> None:
    """Log in to the web app: prints a one-time link (and opens it where a browser can).

    \b
    Example:
      agentd open                 # the link; a browser opens it when there is a display
      agentd open --api-token     # the token for scripts: curl -H "Authorization: Bearer …"
    """
    home: Home = obj.home()
    if show_token:
        click.echo(auth.api_token(home))
        return
    link = login_link(home)
    click.echo(link)
    if not no_browser and has_display():
        webbrowser.open(link)

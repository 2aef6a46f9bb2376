"""What every `agentd` command shares: the home it acts on, and one clear line for an error."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from agentd.errors import AgentdError, UserError
from agentd.home import Home, resolve_home_path
from engine.errors import EngineError, EngineStartError


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

"""`agentd stats`, `search`, `reindex` and `skills`: the ledger, the search index and the skills."""

from __future__ import annotations

import json

import click

from agentd.cli.base import Context, pass_ctx
from agentd.commands import memory
from agentd.errors import UserError


@click.command()
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


@click.command()
@click.argument("query")
@click.option("-k", default=8, show_default=True)
@pass_ctx
def search(c: Context, query: str, k: int) -> None:
    """Full-text search over the home's Markdown (path:line: snippet)."""
    for line in memory.search(c.home(), query, k):
        click.echo(line)


@click.command()
@pass_ctx
def reindex(c: Context) -> None:
    """Rebuild the search index from scratch."""
    click.echo(memory.reindex(c.home()))


@click.command()
@pass_ctx
def skills(c: Context) -> None:
    """The skills the agent knows, with their source (built-in / home) and any errors."""
    for line in memory.skills_lines(c.home()):
        click.echo(line)


COMMANDS = (stats, search, reindex, skills,)

"""`agentd chat`: an interactive conversation, one wake per line, Ctrl-C safe."""

from __future__ import annotations

import sys

import click

from agentd import daemon, inbox
from agentd.commands import engines, wakes
from agentd.config import load_config
from agentd.home import Home
from agentd.loop import wake
from agentd.wiring import build_agent


def print_delta(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def print_reply(streamed: str, reply: str | None) -> None:
    """End the streamed text; print the reply unless it was the text just streamed.

    A JSON action's ``reply`` text and a native answer without a tool call stream as
    the reply itself; text streamed before a native tool call is the model thinking
    aloud, and a native ``reply`` call's text arrives whole in its arguments.
    """
    if streamed:
        click.echo()
    if reply and not streamed.rstrip().endswith(reply.strip()):
        click.echo(reply)


def run_chat(home: Home) -> None:
    """Each line you type is a message (kept in inbox/done/ like any other); replies stream where the engine streams."""
    if daemon.read_state(home) is not None:
        click.echo("(the daemon is running: messages go through its inbox)")
        _loop(lambda text: _via_daemon(home, text))
        return
    config = load_config(home.root)
    with engines.engine_for(home, config) as (sup, info):
        agent = build_agent(home, config, sup.client(), model=info.model)
        click.echo(f"(engine {info.model}; Ctrl-D or Ctrl-C to leave)")

        def one(text: str) -> None:
            now = agent.clock()
            msg_id = inbox.post(home, text, now)
            event = inbox.read_message(home, f"inbox/{msg_id}.md", now)
            assert event is not None
            streamed: list[str] = []

            def on_delta(t: str) -> None:
                streamed.append(t)
                print_delta(t)

            try:
                result = wake(agent, event, on_delta=on_delta)
            except KeyboardInterrupt:
                with home.lock(purpose="chat interrupted"):
                    home.recover()
                click.echo("\n(interrupted: the unfinished wake was undone; your message stays in the inbox)")
                return
            print_reply("".join(streamed), result.reply)
            if result.status != "ok":
                click.echo(f"[{result.status}: {result.error}]", err=True)

        _loop(one)


def _via_daemon(home: Home, text: str) -> None:
    note = wakes.say(home, text)
    reply = note.get("reply") if isinstance(note, dict) else note.reply
    click.echo(str(reply or "(no reply)"))


def _loop(handle: object) -> None:
    assert callable(handle)
    while True:
        try:
            text = click.prompt(click.style("you", fg="green"), prompt_suffix="> ", default="", show_default=False)
        except (EOFError, KeyboardInterrupt, click.Abort):
            click.echo()
            return
        if text.strip():
            try:
                handle(text)
            except KeyboardInterrupt:
                click.echo("\n(interrupted)")
                continue



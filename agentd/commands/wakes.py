"""`agentd say` and `agentd wake`: one wake in this process, or a message through the running daemon."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from agentd import daemon, inbox
from agentd.commands.engines import engine_for
from agentd.config import load_config
from agentd.errors import UserError
from agentd.events import Event, WakeResult
from agentd.home import Home
from agentd.loop import wake
from agentd.wiring import build_agent, timezone_of
from engine.errors import EngineError
from scheduler.cron import parse_cron_md


def run_wake(
    home: Home,
    event_for: Callable[[datetime], Event],
    *,
    on_delta: Callable[[str], None] | None = None,
) -> WakeResult:
    """One wake in this process (no daemon running): engine adopted or started, wake, engine stopped."""
    config = load_config(home.root)
    with engine_for(home, config) as (sup, info):
        agent = build_agent(home, config, sup.client(), model=info.model)
        return wake(agent, event_for(agent.clock()), on_delta=on_delta)


def say(
    home: Home, text: str, *, timeout: float = 600.0, on_delta: Callable[[str], None] | None = None
) -> WakeResult | dict[str, Any]:
    """A message → one wake → the reply. Through the daemon's inbox when one runs; in this
    process otherwise, the reply streamed to ``on_delta`` as it is generated."""
    if daemon.read_state(home) is not None:
        msg_id = inbox.post(home, text, datetime.now())
        deadline = time.monotonic() + timeout
        if on_delta is not None and (note := _streamed_reply(home, msg_id, timeout, on_delta)) is not None:
            return note
        while time.monotonic() < deadline:
            note = inbox.read_reply_note(home, msg_id)
            if note is not None and (note.get("status") != "failed" or note.get("commit")):
                return note
            time.sleep(0.2)
        raise UserError(f"no reply within {timeout:.0f}s; the message stays in the inbox as {msg_id} and will be answered")
    tz = timezone_of(load_config(home.root))
    now = datetime.now(tz)
    msg_id = inbox.post(home, text, now)
    rel = f"inbox/{msg_id}.md"

    def event_for(at: datetime) -> Event:
        ev = inbox.read_message(home, rel, at)
        assert ev is not None
        return ev

    try:
        return run_wake(home, event_for, on_delta=on_delta)
    except EngineError:
        # No wake ran: the engine could not start. The person sees the error here and
        # sends the message again once it is fixed; a copy left in inbox/ would be
        # answered a second time by the next daemon, unseen. So the home is left as it was.
        if rel in home.dirty_paths():
            (home.root / rel).unlink(missing_ok=True)
        raise


def _streamed_reply(home: Home, msg_id: str, timeout: float, on_delta: Callable[[str], None]) -> dict[str, Any] | None:
    """The reply through the daemon's web app, streamed to ``on_delta`` as the wake writes it
    (``GET /api/messages/ID/stream``); None when the app is not served or the stream broke
    before the reply (the caller then waits for the reply note)."""
    import httpx

    from agentd.services.web import read_address
    from agentd.web.auth import api_token

    address = read_address(home)
    if not address:
        return None
    host = str(address["host"])
    url = f"http://{'[' + host + ']' if ':' in host else host}:{address['port']}/api/messages/{msg_id}/stream"
    try:
        with httpx.stream("GET", url, headers={"Authorization": f"Bearer {api_token(home)}"}, timeout=httpx.Timeout(10.0, read=timeout)) as resp:
            if resp.status_code != 200:
                return None
            kind = ""
            for line in resp.iter_lines():
                if line.startswith("event: "):
                    kind = line[len("event: "):]
                elif line.startswith("data: ") and kind == "delta":
                    on_delta(json.loads(line[len("data: "):]))
                elif line.startswith("data: ") and kind == "reply":
                    note: dict[str, Any] = json.loads(line[len("data: "):])
                    # the reply note itself; "answered" without one: its note is read from disk
                    return note if note.get("status") not in ("waiting", "unknown", "answered") else None
    except (httpx.HTTPError, json.JSONDecodeError):
        return None
    return None


def cron_event(home: Home, name: str) -> Callable[[datetime], Event]:
    path = home.root / "CRON.md"
    parsed = parse_cron_md(path.read_text(encoding="utf-8"), path)
    for job in parsed.jobs:
        if name in (job.name, job.slug):
            return lambda at: Event("cron", job.instruction, at, name=job.slug)
    names = ", ".join(j.name for j in parsed.jobs) or "none"
    raise UserError(f"no cron job {name!r} in CRON.md (jobs: {names})")

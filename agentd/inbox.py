"""The inbox: one file per message to the agent; processed messages move to inbox/done/."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from pathlib import Path

from agentd.events import Event, WakeResult
from agentd.home import Home, atomic_write

MAX_MESSAGE_CHARS = 20_000
IGNORED = {"README.md", ".gitkeep"}


def pending(home: Home) -> list[str]:
    """Message files waiting in inbox/, oldest name first (``agentd say`` names sort by time)."""
    folder = home.root / "inbox"
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.name not in IGNORED and not p.name.endswith(".agentd-tmp"):
            out.append(f"inbox/{p.name}")
    return out


def new_message_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def post(home: Home, text: str, now: datetime) -> str:
    """Write a message into the inbox (atomically); returns its id."""
    msg_id = new_message_id(now)
    atomic_write(home.root / "inbox" / f"{msg_id}.md", text if text.endswith("\n") else text + "\n")
    return msg_id


def read_message(home: Home, rel: str, now: datetime) -> Event | None:
    """Turn an inbox file into an event; binary, huge, empty or broken files still become one."""
    path = home.root / rel
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if b"\0" in data[:8192]:
        text = f"(a binary file of {len(data)} bytes was dropped in the inbox as {rel}; it is not shown)"
    else:
        text = data.decode("utf-8", errors="replace")
        if "\ufffd" in text:
            text += "\n\n(note: this message was not valid UTF-8; undecodable bytes are shown as \ufffd)"
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS] + f"\n\n(truncated: the whole message, {len(data)} bytes, is {rel})"
        if not text.strip():
            text = "(an empty message)"
    return Event("message", text, now, name=Path(rel).stem, source=rel)


def reply_path(home: Home, msg_id: str) -> Path:
    return home.runtime / "replies" / f"{msg_id}.json"


def write_reply_note(home: Home, event: Event, result: WakeResult) -> None:
    """Tell a waiting ``agentd say`` what happened (runtime only; the outbox is the record)."""
    if not event.name:
        return
    note = {"id": event.name, "status": result.status, "reply": result.reply, "error": result.error, "commit": result.commit}
    atomic_write(reply_path(home, event.name), json.dumps(note))


def read_reply_note(home: Home, msg_id: str) -> dict[str, object] | None:
    try:
        data: dict[str, object] = json.loads(reply_path(home, msg_id).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data

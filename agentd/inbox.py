"""The inbox: one file per message to the agent; processed messages move to inbox/done/."""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime
from pathlib import Path

from agentd.events import Event, WakeResult
from agentd.home import AGENT, Home, atomic_write

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


def set_aside(home: Home, rel: str) -> str | None:
    """Move a message that keeps failing out of the inbox into ``.agentd/failed/`` (call under the lock).

    Runtime, not git: the usual reason is a commit refused because the message holds
    a secret. Returns where it went (relative to the home), or None if it is gone.
    """
    src = home.root / rel
    if not src.is_file():
        return None
    folder = home.runtime / "failed"
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / src.name
    n = 1
    while dest.exists():
        n += 1
        dest = folder / f"{src.stem}-{n}{src.suffix}"
    tracked = bool(home.repo.git.ls_files("--", rel))
    os.replace(src, dest)
    if tracked:  # an earlier wake committed it as the person's: its removal is the daemon's
        home.commit(f"daemon: set {rel} aside in {dest.relative_to(home.root)}", identity=AGENT, paths=[rel])
    return str(dest.relative_to(home.root))


def reply_path(home: Home, msg_id: str) -> Path:
    return home.runtime / "replies" / f"{msg_id}.json"


def write_reply_note(home: Home, event: Event, result: WakeResult) -> None:
    """Tell a waiting ``agentd say`` what happened (runtime only; the outbox is the record)."""
    if event.name:
        write_note(home, event.name, status=result.status, reply=result.reply, error=result.error, commit=result.commit)


def write_note(home: Home, msg_id: str, *, status: str, reply: str | None = None, error: str | None = None, commit: str | None = None) -> None:
    note = {"id": msg_id, "status": status, "reply": reply, "error": error, "commit": commit}
    atomic_write(reply_path(home, msg_id), json.dumps(note))


def read_reply_note(home: Home, msg_id: str) -> dict[str, object] | None:
    try:
        data: dict[str, object] = json.loads(reply_path(home, msg_id).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data

"""The inbox: one file per message to the agent; processed messages move to inbox/done/.

Writers should write the message under a dotfile or ``*.tmp`` name and rename it into
place (``agentd say`` does): such names are never read. A file written in place is
taken only once it has *settled*: the same size and mtime on two polls, and (on Linux)
no process holding it open for writing.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import signal
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from agentd.events import Event, WakeResult
from agentd.fileio import atomic_write
from agentd.home import AGENT, Home

MAX_MESSAGE_CHARS = 20_000
IGNORED = {"README.md", ".gitkeep"}
TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".swp", "~", ".agentd-tmp", ".crdownload")


def is_message_name(name: str) -> bool:
    """Dotfiles and temporary names are a writer's work in progress, never a message."""
    return not name.startswith(".") and name not in IGNORED and not name.endswith(TEMP_SUFFIXES)


def pending(home: Home) -> list[str]:
    """Message files waiting in inbox/, oldest name first (``agentd say`` names sort by time)."""
    folder = home.root / "inbox"
    if not folder.is_dir():
        return []
    return [f"inbox/{p.name}" for p in sorted(folder.iterdir()) if p.is_file() and is_message_name(p.name)]


def open_for_writing(path: Path) -> bool | None:
    """Whether some process holds ``path`` open for writing (Linux read lease), None if unknown.

    A writer opening the file while the lease is held breaks it with SIGIO, whose default
    action ends the process: so this only tries when the caller ignores SIGIO.
    """
    if not hasattr(fcntl, "F_SETLEASE") or signal.getsignal(signal.SIGIO) is not signal.SIG_IGN:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as e:
        return True if e.errno in (errno.EAGAIN, errno.EBUSY) else None
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


@dataclass
class SettleWatch:
    """Yields an inbox file only once it has settled: unchanged across two polls, not being written."""

    seen: dict[str, tuple[int, int]] = field(default_factory=dict)

    def ready(self, home: Home, skip: Collection[str] = ()) -> list[str]:
        """Settled files, leaving out ``skip`` (already queued or waiting to retry) unchecked."""
        out, now_seen = [], {}
        for rel in pending(home):
            if rel in skip:
                continue
            try:
                st = (home.root / rel).stat()
            except FileNotFoundError:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            now_seen[rel] = sig
            if self.seen.get(rel) == sig and not open_for_writing(home.root / rel):
                out.append(rel)
        self.seen = now_seen
        return out


def new_message_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def post(home: Home, text: str, now: datetime, *, front: Mapping[str, str] | None = None, msg_id: str | None = None) -> str:
    """Write a message into the inbox (atomically); returns its id.

    ``front`` becomes the message's front matter (a chat channel's room and event id);
    ``msg_id`` is for a caller that recorded the id before writing the message.
    """
    msg_id = msg_id or new_message_id(now)
    head = "".join(f"{k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in (front or {}).items())
    body = text if text.endswith("\n") else text + "\n"
    atomic_write(home.root / "inbox" / f"{msg_id}.md", f"---\n{head}---\n{body}" if head else body)
    return msg_id


def read_message(home: Home, rel: str, now: datetime) -> Event | None:
    """Turn an inbox file into an event; binary, huge, empty or broken files still become one."""
    try:
        data = (home.root / rel).read_bytes()
    except FileNotFoundError:
        return None
    return message_event(rel, data, now)


def message_event(rel: str, data: bytes, now: datetime) -> Event:
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


def keep_late_write(home: Home, rel: str, read: bytes, now: datetime) -> str | None:
    """The answered message (``inbox/done/…``) changed after its wake read it: what was added
    becomes a new message, so nothing the writer added goes unanswered (call under the lock).

    A late write that landed after the wake's commit is taken back out of the done file
    (it goes into the new message instead), so the home is left clean. Returns the new
    message's path, or None when the file is as it was read.
    """
    path = home.root / rel
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if data == read:
        return None
    extra = data[len(read):] if data.startswith(read) else data
    note = f"(continued: added to {Path(rel).name} after the agent had read it)\n\n".encode()
    new = f"inbox/{new_message_id(now)}-{Path(rel).stem}-more.md"
    atomic_write(home.root / new, note + extra)
    committed = home.head_bytes(rel)
    if committed is not None and committed != data:
        atomic_write(path, committed)
    return new


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

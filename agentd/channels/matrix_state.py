"""The Matrix channel's runtime records under .agentd/: sync token, messages taken, replies posted, the token file.

Each message taken from Matrix has one record, written before its inbox file (so a crash
in between leaves a record whose message is missing, never a message nobody will answer
in the room); the event ids of its reply are added once the reply is posted. A record
without them is a reply still owed: posted again, with the same transaction ids, on start.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentd.fileio import atomic_write

TOKEN_FILE = "secrets/matrix.token"  # under .agentd/: `agentd channel login matrix --save`


@dataclass
class Taken:
    """A message taken from a room into the inbox, and what was posted back."""

    msg_id: str
    room: str
    event: str
    sender: str
    posted: list[str] | None = None  # the reply's event ids, once posted (empty: nothing to post)


@dataclass
class SyncState:
    since: str | None = None  # the homeserver's next_batch: where the next sync starts
    rooms: list[str] = field(default_factory=list)  # rooms whose history before this was skipped


class MatrixRecords:
    """``.agentd/matrix/``: sync.json and one messages/<msg_id>.json per message taken."""

    def __init__(self, runtime: Path) -> None:
        self.folder = runtime / "matrix"
        self.by_event: dict[str, str] = {}  # event id → msg id, of every message taken
        for taken in self.all():
            self.by_event[taken.event] = taken.msg_id

    def sync(self) -> SyncState:
        data = _read(self.folder / "sync.json")
        if not isinstance(data, dict):
            return SyncState()
        return SyncState(since=data.get("since"), rooms=list(data.get("rooms") or []))

    def save_sync(self, state: SyncState) -> None:
        atomic_write(self.folder / "sync.json", json.dumps(asdict(state)))

    def all(self) -> list[Taken]:
        folder = self.folder / "messages"
        out = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            data = _read(path)
            if isinstance(data, dict):
                try:
                    out.append(Taken(**data))
                except TypeError:
                    continue  # not a record of ours
        return out

    def owed(self) -> list[Taken]:
        """Messages whose reply was not posted yet (or not known to be)."""
        return [t for t in self.all() if t.posted is None]

    def save(self, taken: Taken) -> None:
        atomic_write(self.folder / "messages" / f"{taken.msg_id}.json", json.dumps(asdict(taken)))
        self.by_event[taken.event] = taken.msg_id

    def drop(self, taken: Taken) -> None:
        (self.folder / "messages" / f"{taken.msg_id}.json").unlink(missing_ok=True)
        self.by_event.pop(taken.event, None)


def read_token(runtime: Path, env_name: str) -> str | None:
    """The access token: the environment variable first, then the file ``login --save`` wrote."""
    value = os.environ.get(env_name, "").strip()
    if value:
        return value
    try:
        return (runtime / TOKEN_FILE).read_text(encoding="utf-8").strip() or None
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def save_token(runtime: Path, token: str) -> Path:
    """Write the token file, mode 0600 in a 0700 folder (.agentd/ is git-ignored)."""
    path = runtime / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    atomic_write(path, token + "\n", mode=0o600)
    return path


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None

"""The write-ahead log: each agent write noted before it happens, so a wake killed before its commit is undone."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from agentd.fileio import ABSENT, atomic_write, content_digest, file_digest, fsync_dir, sha256

if TYPE_CHECKING:
    from agentd.home import Home


class WriteAheadLog:
    """Notes each agent write before it happens, so a wake killed before its commit can be undone.

    A wake opens the log (``begin``), every agent write or move appends an intent
    with the hash of the new content (ABSENT for a delete), and the commit closes it
    (``end``). On the next start, a log still open means the wake never committed:
    files that still hold exactly what the agent left (deleted ones: still absent) go
    back to HEAD, moves are reversed, and anything else (the person's edits) is kept.
    """

    def __init__(self, runtime: Path) -> None:
        self.path = runtime / "wake.wal"

    def active(self) -> bool:
        return self.path.exists()

    def begin(self, label: str) -> None:
        self._append({"op": "begin", "label": label})

    def end(self) -> None:
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(self.path.parent)

    def intend(self, rel: str, digest: str) -> None:
        if self.active():
            self._append({"op": "write", "path": rel, "sha": digest})

    def intend_move(self, src: str, dst: str, digest: str) -> None:
        if self.active():
            self._append({"op": "move", "src": src, "dst": dst, "sha": digest})

    def _append(self, record: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def records(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a record torn by the crash: everything before it is whole
        return out

    def label(self) -> str | None:
        for r in self.records():
            if r.get("op") == "begin":
                return r.get("label")
        return None

    def roll_back(self, home: Home) -> list[str]:
        if not self.active():
            return []
        done: list[str] = []
        for rec in reversed(self.records()):
            if rec["op"] == "write":
                target = home.root / rec["path"]
                committed = home.head_bytes(rec["path"])
                left = file_digest(target)
                if not target.is_dir() and left == rec["sha"] and left != content_digest(committed):
                    if committed is None:
                        target.unlink()
                    else:
                        atomic_write(target, committed)
                    done.append(f"undid unfinished {'delete of' if left == ABSENT else 'write to'} {rec['path']}")
            elif rec["op"] == "move":
                src, dst = home.root / rec["src"], home.root / rec["dst"]
                moved_in_head = home.head_bytes(rec["dst"]) is not None and home.head_bytes(rec["src"]) is None
                if not moved_in_head and dst.is_file() and not src.exists() and sha256(dst.read_bytes()) == rec["sha"]:
                    src.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(dst, src)
                    done.append(f"moved {rec['dst']} back to {rec['src']}")
        self.end()
        return done

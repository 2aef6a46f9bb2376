"""Full-text search over the home's Markdown: SQLite FTS5 (BM25), updated incrementally from git.

The index lives in ``.agentd/search.db`` and can always be rebuilt from the files.
A file is re-indexed only when its git blob id changes (tracked and clean files take
theirs from ``git ls-files -s``; modified or untracked files are hashed the same way).
Files are indexed in chunks (a heading section, or at most 40 lines) with their start
line, so a hit points at the right line.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

CHUNK_LINES = 40
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, blob TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(path UNINDEXED, line UNINDEXED, body, tokenize='porter unicode61');
"""


@dataclass(frozen=True)
class Hit:
    path: str
    line: int
    snippet: str
    score: float


def blob_id(data: bytes) -> str:
    """git's blob id of ``data`` (so clean files can take theirs from the index for free)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def chunks(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    start, buf = 1, list[str]()
    for i, line in enumerate(text.split("\n"), 1):
        if buf and (line.startswith("#") or len(buf) >= CHUNK_LINES):
            out.append((start, "\n".join(buf)))
            start, buf = i, []
        buf.append(line)
    if any(b.strip() for b in buf):
        out.append((start, "\n".join(buf)))
    return out


def fts_query(text: str, mode: str = "AND") -> str | None:
    """The person's free text as a safe FTS5 query: every word quoted (no syntax errors)."""
    words = re.findall(r"\w+", text, flags=re.UNICODE)
    if not words:
        return None
    return f" {mode} ".join('"' + w.replace('"', "") + '"' for w in words[:32])


class SearchIndex:
    def __init__(self, home_root: Path) -> None:
        self.root = home_root
        self.db_path = home_root / ".agentd" / "search.db"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.last_indexed = 0
        with closing(self._db()) as db:
            db.executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path, timeout=10)

    def _git(self, *args: str) -> str:
        # GIT_OPTIONAL_LOCKS=0: indexing (from the web app too) never takes index.lock from a commit.
        env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
        return subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True, check=True, env=env).stdout

    def current(self) -> dict[str, str]:
        """Every Markdown file git would see (tracked + untracked, not ignored) → its blob id."""
        files = [p for p in self._git("ls-files", "-co", "--exclude-standard", "-z", "--", "*.md").split("\0") if p]
        staged = {}
        for row in self._git("ls-files", "-s", "-z", "--", "*.md").split("\0"):
            if row:
                meta, path = row.split("\t", 1)
                staged[path] = meta.split()[1]
        dirty = set()
        for row in self._git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", "*.md").split("\0"):
            if len(row) > 3:
                dirty.add(row[3:])
        out = {}
        for path in files:
            if path in staged and path not in dirty:
                out[path] = staged[path]
            else:
                full = self.root / path
                if full.is_file():
                    out[path] = blob_id(full.read_bytes())
        return out

    def update(self) -> int:
        """Re-index changed files, drop deleted ones; returns how many files were (re)indexed."""
        now = self.current()
        with closing(self._db()) as db:
            known = dict(db.execute("SELECT path, blob FROM files").fetchall())
            changed = [p for p, b in now.items() if known.get(p) != b]
            gone = [p for p in known if p not in now]
            for path in gone + changed:
                db.execute("DELETE FROM chunks WHERE path = ?", (path,))
                db.execute("DELETE FROM files WHERE path = ?", (path,))
            for path in changed:
                text = (self.root / path).read_text(encoding="utf-8", errors="replace")
                db.executemany("INSERT INTO chunks (path, line, body) VALUES (?, ?, ?)", [(path, line, body) for line, body in chunks(text)])
                db.execute("INSERT INTO files (path, blob) VALUES (?, ?)", (path, now[path]))
            db.commit()
        self.last_indexed = len(changed)
        return len(changed)

    def rebuild(self) -> int:
        with closing(self._db()) as db:
            db.execute("DELETE FROM chunks")
            db.execute("DELETE FROM files")
            db.commit()
        return self.update()

    def search(self, query: str, k: int = 8) -> list[Hit]:
        hits: list[Hit] = []
        with closing(self._db()) as db:
            for mode in ("AND", "OR"):
                q = fts_query(query, mode)
                if q is None:
                    return []
                rows = db.execute(
                    "SELECT path, line, body, snippet(chunks, 2, '[', ']', '…', 12), bm25(chunks) "
                    "FROM chunks WHERE chunks MATCH ? ORDER BY bm25(chunks) LIMIT ?",
                    (q, k),
                ).fetchall()
                if rows:
                    break
        terms = sorted({w.lower()[:5] for w in re.findall(r"\w+", query)})
        for path, line, body, snip, score in rows:
            hits.append(Hit(path, int(line) + best_line(body, terms), " ".join(snip.split()), float(score)))
        return hits


def best_line(body: str, terms: list[str]) -> int:
    """The offset of the chunk's line that matches the most query terms.

    Ties go to the line whose terms are rarest in the chunk (the line with "quokka"
    beats forty lines with "line"), then to the first. A term matches a word it
    starts (its first five letters, roughly what the porter stemmer keeps).
    """
    matched = [{t for t in terms if any(w.startswith(t) for w in re.findall(r"\w+", ln.lower()))} for ln in body.split("\n")]
    lines_with = {t: sum(t in m for m in matched) for t in terms}

    def rank(i: int) -> tuple[int, float, int]:
        return len(matched[i]), sum(1 / lines_with[t] for t in matched[i]), -i

    return max(range(len(matched)), key=rank, default=0)

"""Search latency on a home of 1,000 Markdown files / ~400K words (SQLite FTS5, BM25).

    python bench/search.py
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

from agentd.home import AGENT
from agentd.template import init_home
from memory.search import SearchIndex

WORDS = ["agent", "memory", "journal", "commit", "heartbeat", "schedule", "engine", "cache", "prefix", "token", "model", "skill", "wiki", "note", "plan", "task", "person", "garden", "fern", "kitchen", "bicycle", "invoice", "meeting", "travel", "passport", "dentist", "recipe", "budget", "server", "backup", "python", "rust", "release", "deploy", "review", "design", "paper", "chapter", "draft", "letter", "family", "holiday", "weather", "market"]


def build(root: Path, files: int, words_per_file: int, rng: random.Random) -> None:
    for i in range(files):
        folder = root / "notes" / f"{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"# Note {i}", ""]
        for _ in range(words_per_file // 12):
            lines.append(" ".join(rng.choice(WORDS) for _ in range(12)) + f" item{rng.randrange(5000)}")
        (folder / f"note-{i:04d}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        home = init_home(Path(tmp) / "home")
        build(home.root, 1000, 400, rng)
        home.commit("bench: 1000 notes", identity=AGENT, all_changes=True)
        words = sum(len(p.read_text().split()) for p in home.root.rglob("*.md"))
        idx = SearchIndex(home.root)
        t = time.perf_counter()
        n = idx.update()
        build_s = time.perf_counter() - t
        for p in sorted((home.root / "notes").rglob("*.md"))[:10]:
            p.write_text(p.read_text() + "\nan edited line about the quokka\n")
        home.commit("bench: edit 10", identity=AGENT, all_changes=True)
        t = time.perf_counter()
        changed = idx.update()
        inc_s = time.perf_counter() - t
        t = time.perf_counter()
        idle = idx.update()
        noop_s = time.perf_counter() - t
        queries = [" ".join(rng.sample(WORDS, rng.choice([1, 2, 3]))) for _ in range(200)] + ["quokka", f"item{rng.randrange(5000)}"]
        times = []
        for q in queries:
            t = time.perf_counter()
            idx.search(q, 8)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"home: {n} Markdown files, {words} words")
        print(f"initial index build: {build_s:.2f} s")
        print(f"incremental update after editing 10 files: {inc_s * 1000:.0f} ms ({changed} files re-indexed)")
        print(f"update with nothing changed: {noop_s * 1000:.0f} ms ({idle} files)")
        print(f"search over {len(times)} queries: p50 {statistics.median(times):.1f} ms, p95 {times[int(0.95 * len(times))]:.1f} ms, max {times[-1]:.1f} ms")


if __name__ == "__main__":
    main()

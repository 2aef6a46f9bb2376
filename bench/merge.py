"""Merging two diverged homes of realistic size: lines lost (must be 0), duplicates left, contradictions found, wall time.

    python bench/merge.py                  # no model, the scripted merge double, and the double with a small window
    python bench/merge.py --model smollm2  # also the embedded llama.cpp model (slow on a CPU)

A home is generated, forked, and each side lives half a year apart: hundreds of memory
lines across MEMORY.md and topic files (with planted overlaps, near-duplicates and
contradictions) and a journal entry or more per day. The merge's figures are then
checked independently of what it says about itself: each line of either side must be
in the merged file or, when the model folded it, its stated holder must be.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentd.home import AGENT, Home  # noqa: E402
from agentd.merge.gitops import show  # noqa: E402
from agentd.merge.kinds import content_lines, split_entries  # noqa: E402
from agentd.merge.orchestrator import fork_home, merge_home  # noqa: E402
from agentd.merge.report import MergeOutcome  # noqa: E402
from agentd.template import init_home  # noqa: E402
from tests.doubles.merge_model import careful_merge  # noqa: E402
from tests.doubles.scripted_engine import ScriptedEngine  # noqa: E402

TOPICS = ["people", "servers", "garden", "travel", "books", "health", "money", "house", "work", "music", "cooking", "family"]
NOUNS = ["fern", "bicycle", "invoice", "passport", "dentist", "recipe", "backup", "release", "letter", "market", "kettle", "piano"]
VERBS = ["needs", "wants", "keeps", "moves", "checks", "follows", "likes", "avoids"]
START = date(2025, 1, 1)


@dataclass
class Planted:
    contradictions: list[tuple[str, str]]
    deleted: set[str]  # lines of the shared half-year one side deleted (the other left them): must stay deleted


def fact(rng: random.Random, tag: str, i: int) -> str:
    return f"- The {rng.choice(NOUNS)} {rng.choice(VERBS)} {rng.choice(NOUNS)} item {tag}{i}"


def write_memory(root: Path, lines: dict[str, list[str]]) -> None:
    for topic, facts in lines.items():
        path = root / "memory" / "topics" / f"{topic}.md"
        old = path.read_text() if path.is_file() else f"# {topic.title()}\n"
        path.write_text(old.rstrip("\n") + "\n" + "\n".join(facts) + "\n")
    index = root / "memory" / "MEMORY.md"
    extra = [f"- [[topics/{t}]] {len(f)} new facts about {t} ({root.name})" for t, f in lines.items()]
    index.write_text(index.read_text().rstrip("\n") + "\n" + "\n".join(extra) + "\n")


def write_journal(root: Path, days: range, hours: list[int], tag: str, rng: random.Random) -> None:
    for d in days:
        day = START + timedelta(days=d)
        path = root / "memory" / "journal" / f"{day:%Y-%m-%d}.md"
        text = path.read_text() if path.is_file() else f"# {day:%Y-%m-%d}\n"
        for h in hours[: rng.randint(1, len(hours))]:
            text += f"\n## {h:02d}:{rng.randrange(60):02d} · message ({tag})\n\nworked on the {rng.choice(NOUNS)} for {tag}\n"
        path.write_text(text)


def build(tmp: Path, rng: random.Random, per_side: int, days: int = 365, topics: int = len(TOPICS)) -> tuple[Home, Home, Planted]:
    chosen = TOPICS[:topics]
    ours = init_home(tmp / "ours")
    base = {t: [fact(rng, "base", i) for i in range(15)] for t in chosen}
    write_memory(ours.root, base)
    write_journal(ours.root, range(0, days // 2 + 1), [9, 14], "base", rng)
    ours.commit("bench: half a year lived", identity=AGENT, all_changes=True)
    theirs = fork_home(ours, tmp / "theirs", new_id=lambda: "agentd-benchtheirs000")
    planted: list[tuple[str, str]] = []
    shared = {t: [fact(rng, "both", i) for i in range(3)] for t in chosen}  # learned by both: overlaps
    side_lines: list[dict[str, list[str]]] = []
    for side in ("ours", "theirs"):
        side_lines.append({t: [fact(rng, side, i) for i in range(per_side // len(TOPICS))] + list(shared[t]) for t in chosen})
    for t in chosen[:6]:  # near-duplicates: theirs says one of ours' lines in other case and punctuation
        side_lines[1][t].append(side_lines[0][t][0].replace("- The", "- the") + ".")
    for n, t in enumerate(chosen[:10]):  # contradictions: the same claim, a different last word
        a, b = f"- The {t} server listens on port {8000 + n}", f"- The {t} server listens on port {9000 + n}"
        side_lines[0][t].append(a)
        side_lines[1][t].append(b)
        planted.append((a, b))
    deleted: set[str] = set()
    for home, lines, hours, tag, gone in ((ours, side_lines[0], [8, 12, 18], "ours", (0, 1)), (theirs, side_lines[1], [10, 16, 20], "theirs", (2, 3))):
        for t in chosen:  # each side forgets two facts of the shared half-year, not the same two
            drop = {base[t][i] for i in gone}
            path = home.root / "memory" / "topics" / f"{t}.md"
            path.write_text("".join(x for x in path.read_text().splitlines(keepends=True) if x.rstrip() not in drop))
            deleted |= drop
        write_memory(home.root, lines)
        write_journal(home.root, range(days // 2 + 1, days), hours, tag, rng)
        home.commit(f"bench: half a year as {tag}", identity=AGENT, all_changes=True)
    return ours, theirs, Planted(planted, deleted)


def key(line: str) -> str:
    return re.sub(r"[^\w ]", "", line.lower()).strip()


def measure(ours: Home, out: MergeOutcome, planted: Planted, seconds: float) -> dict[str, Any]:
    moved = {line: holder for m in out.memory for line, holder in m.moved.items()}
    lost = 0
    sides_total = 0
    dupes = 0
    back = 0
    for path in sorted({p for c in (out.ours, out.theirs) for p in _memory_paths(ours, c)}):
        merged = {x.strip() for x in content_lines((ours.root / path).read_text())} if (ours.root / path).is_file() else set()
        both = {x.strip() for c in (out.ours, out.theirs) for x in content_lines(show(ours.root, c, path) or "")}
        sides_total += len(both)
        lost += sum(1 for x in both if x not in merged and moved.get(x) not in merged and x not in planted.deleted)
        back += sum(1 for x in merged if x in planted.deleted)
        keys = [key(x) for x in merged if x.startswith("- ")]
        dupes += len(keys) - len(set(keys))
    found = {frozenset(p) for _, a, b in out.contradictions for p in [(a, b)]}
    entries_lost, entries = 0, 0
    for t in sorted((ours.root / "memory" / "journal").glob("*.md")):
        rel = t.relative_to(ours.root).as_posix()
        now = {e.strip() for e in split_entries(t.read_text())[1]}
        entries += len(now)
        for c in (out.ours, out.theirs):
            entries_lost += sum(1 for e in split_entries(show(ours.root, c, rel) or "")[1] if e.strip() not in now)
    return {
        "memory lines (ours / theirs, distinct per file)": f"{out.lines_ours} / {out.lines_theirs}",
        "distinct lines of either side": sides_total,
        "lines of either side lost": lost,
        "lines folded by the model (each accounted for)": out.lines_folded,
        "lines deleted on one side (planted / kept deleted)": f"{len(planted.deleted)} / {len(planted.deleted) - back}",
        "deleted lines that came back": back,
        "near-duplicates left": dupes,
        "planted contradictions found": f"{sum(1 for p in planted.contradictions if frozenset(p) in found)} / {len(planted.contradictions)}",
        "memory files the model's answer was rejected for": sum(1 for m in out.memory if m.rejected),
        "memory files merged in chunks (requests)": f"{sum(1 for m in out.memory if m.chunks > 1)} ({sum(m.chunks for m in out.memory if m.by_model or m.rejected)})",
        "why (first rejection)": next((m.rejected[:70] for m in out.memory if m.rejected), "-"),
        "journal entries after the merge": entries,
        "journal entries of either side lost": entries_lost,
        "conflicts for the person": len(out.conflicts),
        "files withheld for a credential": len(out.withheld),
        "merge wall time (s)": f"{seconds:.2f}",
    }


def _memory_paths(home: Home, commit: str) -> list[str]:
    from agentd.merge.gitops import files_at

    return [p for p in files_at(home.root, commit) if p == "memory/MEMORY.md" or p.startswith("memory/topics/")]


def run(label: str, engine_factory: Any, per_side: int, seed: int, days: int = 365, topics: int = len(TOPICS), *, window: int | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs, planted = build(Path(tmp), random.Random(seed), per_side, days, topics)
        started = time.perf_counter()
        if engine_factory is None:
            out = merge_home(ours, str(theirs.root))
        else:
            with engine_factory(ours) as engine:
                started = time.perf_counter()
                out = merge_home(ours, str(theirs.root), engine=engine, context_window=window)
        figures = measure(ours, out, planted, time.perf_counter() - started)
    print(f"\n== {label}")
    for k, v in figures.items():
        print(f"  {k:52} {v}")
    return figures


class _Scripted:
    def __init__(self, home: Home) -> None:
        self.engine = ScriptedEngine()
        self.engine.queue.extend([careful_merge] * 512)

    def __enter__(self) -> ScriptedEngine:
        return self.engine

    def __exit__(self, *exc: object) -> None:
        return None


def _embedded(model: str) -> Any:
    import contextlib

    from agentd.commands.engines import engine_for
    from agentd.config import load_config

    @contextlib.contextmanager
    def factory(home: Home) -> Any:
        (home.root / "agent.yaml").write_text((home.root / "agent.yaml").read_text().replace("model: smollm2", f"model: {model}"))
        home.commit("bench: model", identity=AGENT, all_changes=True)
        with engine_for(home, load_config(home.root)) as (sup, _):
            yield sup.client()

    return factory


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-side", type=int, default=240, help="new memory lines each side learns")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--days", type=int, default=365, help="days of journal: the first half shared, the second lived apart")
    ap.add_argument("--topics", type=int, default=len(TOPICS), help="topic files (one merge wake each, plus MEMORY.md)")
    ap.add_argument("--model", help="also run the merge wake on the embedded llama.cpp model (e.g. smollm2)")
    ap.add_argument("--window", type=int, default=1024, help="the small context window of the chunked run (tokens)")
    args = ap.parse_args()
    results = [
        run("no model (deterministic union only)", None, args.per_side, args.seed, args.days, args.topics),
        run("scripted merge double (tests/doubles/merge_model.py careful_merge: a rule, not a model)", _Scripted, args.per_side, args.seed, args.days, args.topics),
        run(f"scripted merge double, {args.window}-token context window (files merged in chunks)", _Scripted, args.per_side, args.seed, args.days, args.topics, window=args.window),
    ]
    if args.model:
        results.append(run(f"embedded model {args.model} (llama.cpp, CPU)", _embedded(args.model), args.per_side, args.seed, args.days, args.topics))
    if any(r["lines of either side lost"] or r["journal entries of either side lost"] or r["deleted lines that came back"] for r in results):
        sys.exit("FAIL: a merge lost lines or brought deleted ones back")


if __name__ == "__main__":
    main()

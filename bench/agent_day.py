"""The agent-day benchmark: one scripted day replayed through agentd's context compiler and a naive harness.

    python bench/agent_day.py                 # full day on the vLLM cache model, quick day on llama.cpp
    python bench/agent_day.py --quick         # a 3-hour day on both (CI)
    python bench/agent_day.py --out day.json

The day: heartbeats every 30 minutes over 16 active hours, 4 cron jobs, 20 chat messages
with 0-5 tool calls each (command output and file contents of 200-4,000 tokens), the
person editing USER.md twice, the agent updating MEMORY.md five times, and compactions
when the session passes its budget. The model's decisions are scripted, so the prompts
are the same every run; they are real renders of agentd's compiler (the real wake loop
on a real home). The naive harness is fed the same events, decisions and full tool
outputs, and builds its prompt the common way: a system prompt with the current time,
the home's file list and git status at the top, then all the home files, the full
history and full tool outputs.

Engines: (1) the real embedded llama.cpp engine (prefill-only requests, cached counts
from the engine) on a home whose prefix is ~3K tokens; (2) a block-level model of vLLM's
prefix cache fed the real token ids, on a large home (prefix ≥ 30K tokens).
The floor is what an ideal cache (token granularity, unlimited size) must still compute:
every token no earlier request had as a prefix — home files once per epoch, events, tool
outputs as they entered, completions. overhead = computed / floor.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentd.config import load_config  # noqa: E402
from agentd.events import Event  # noqa: E402
from agentd.home import Home, init_home  # noqa: E402
from agentd.loop import wake, warm_up  # noqa: E402
from agentd.wiring import build_agent  # noqa: E402
from engine.cache_model import PrefixCacheModel  # noqa: E402
from engine.types import ChatResult, Usage  # noqa: E402
from memory.compaction import COMPACTION_INSTRUCTION, MEMORY_FLUSH_INSTRUCTION  # noqa: E402

WORDS = ["the", "person", "keeps", "notes", "about", "projects", "family", "travel", "budget", "garden", "health", "reading", "and", "work", "each", "note", "links", "to", "others", "the", "agent", "reads", "them", "before", "acting", "and", "writes", "what", "it", "learns", "meetings", "are", "on", "tuesdays", "invoices", "go", "out", "monthly", "the", "server", "runs", "backups", "at", "night"]


# ---------------------------------------------------------------------- the day
@dataclass
class Step:
    at: datetime
    kind: str  # message | heartbeat | cron | edit_user
    text: str = ""
    name: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)


def prose(rng: random.Random, words: int) -> str:
    lines = []
    while words > 0:
        n = min(14, words)
        lines.append(" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + ".")
        words -= n
    return "\n".join(lines)


def make_day(rng: random.Random, hours: int, messages: int) -> list[Step]:
    start = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    steps: list[Step] = []
    for k in range(hours * 2):
        steps.append(Step(start + timedelta(minutes=30 * k + 1), "heartbeat"))
    crons = [("Morning briefing", 1), ("Inbox sweep", 5), ("Backup check", 9), ("Evening summary", 15)]
    for name, h in crons:
        if h < hours:
            steps.append(Step(start + timedelta(hours=h, minutes=7), "cron", f"Run the {name.lower()}.", name.lower().replace(" ", "-"),
                              [{"tool": "shell", "arguments": {"command": f"cat data/report-{h:02d}.txt"}}, {"tool": "done", "arguments": {"summary": f"{name} done"}}]))
    remembered = 0
    for i in range(messages):
        at = start + timedelta(minutes=int((hours * 60 - 20) * (i + 0.5) / messages))
        actions: list[dict[str, Any]] = []
        for j in range(rng.randint(0, 5)):
            if j % 2 == 0:
                actions.append({"tool": "shell", "arguments": {"command": f"cat data/report-{rng.randrange(24):02d}.txt"}})
            else:
                actions.append({"tool": "read_file", "arguments": {"path": f"notes/note-{rng.randrange(12):02d}.md"}})
        if remembered < 5 and i % 4 == 1:
            actions.append({"tool": "remember", "arguments": {"topic": f"topic {remembered}", "fact": f"fact {remembered}: " + prose(rng, 12)}})
            remembered += 1
        actions.append({"tool": "reply", "arguments": {"text": prose(rng, rng.randint(20, 80))}})
        steps.append(Step(at, "message", f"Question {i}: " + prose(rng, rng.randint(8, 40)), f"msg-{i:02d}", actions))
    for frac in (0.3, 0.7):
        steps.append(Step(start + timedelta(minutes=int(hours * 60 * frac) + 3), "edit_user", f"- New preference {frac}: " + prose(rng, 15)))
    steps.sort(key=lambda s: s.at)
    return steps


def make_home(root: Path, rng: random.Random, prefix_words: int, session_tokens: int, max_output: int = 8000, context_tokens: int = 131072) -> Home:
    home = init_home(root)
    share = prefix_words // 3
    (home.root / "AGENT.md").write_text((home.root / "AGENT.md").read_text() + "\n## Procedures\n" + prose(rng, share) + "\n")
    (home.root / "USER.md").write_text("# About you\n" + prose(rng, share) + "\n")
    (home.root / "memory/MEMORY.md").write_text("# Memory\n" + "\n".join(f"- [[topics/t{i}]] t{i}: " + prose(rng, 10) for i in range(share // 12)) + "\n")
    (home.root / "HEARTBEAT.md").write_text("# Heartbeat\n\n## Open items\n- [ ] glance at inbox/ and outbox/ for anything unanswered\n")
    data = home.root / "data"
    data.mkdir()
    for i in range(24):
        tokens = rng.choice([200, 600, 1200, 2500, 4000])
        (data / f"report-{i:02d}.txt").write_text("\n".join(f"{j:04d} " + " ".join(rng.choice(WORDS) for _ in range(8)) for j in range(tokens // 11)) + "\n")
    notes = home.root / "notes"
    notes.mkdir()
    for i in range(12):
        (notes / f"note-{i:02d}.md").write_text(f"# Note {i}\n\n" + prose(rng, rng.randint(100, 600)) + "\n")
    cfg = (home.root / "agent.yaml").read_text()
    cfg = cfg.replace("# context_tokens: 32768", f"context_tokens: {context_tokens}")
    cfg = cfg.replace("session_tokens: 6000", f"session_tokens: {session_tokens}").replace("memory_chars: 4000", "memory_chars: 400000")
    cfg = cfg.replace("max_output: 8000", f"max_output: {max_output}").replace("max_steps: 8", "max_steps: 12").replace("max_completion_tokens: 2048", "max_completion_tokens: 100000")
    (home.root / "agent.yaml").write_text(cfg)
    home.absorb_person_edits()
    return home


# ---------------------------------------------------------------------- engines
class Tokenizer:
    """The SmolLM2 tokenizer and chat template (vocab only), for real token ids."""

    def __init__(self) -> None:
        import jinja2.sandbox
        import llama_cpp

        from engine.models import find_smollm2_gguf

        self.llm = llama_cpp.Llama(str(find_smollm2_gguf()), vocab_only=True, verbose=False)
        self.template = jinja2.sandbox.ImmutableSandboxedEnvironment().from_string(self.llm.metadata["tokenizer.chat_template"])

    def ids(self, messages: list[dict[str, Any]]) -> list[int]:
        text = self.template.render(messages=messages, add_generation_prompt=True, bos_token="", eos_token="")
        return list(self.llm.tokenize(text.encode(), add_bos=False, special=True))


class Backend:
    """Serves prefill-only requests and reports cached tokens (a real engine, or the vLLM model)."""

    name = ""

    def serve(self, messages: list[dict[str, Any]], extra_body: dict[str, Any] | None) -> Usage:
        raise NotImplementedError


class ModelBackend(Backend):
    name = "vllm_model"

    def __init__(self, tok: Tokenizer, capacity_blocks: int) -> None:
        self.tok = tok
        self.cache = PrefixCacheModel(16, capacity_blocks)

    def serve(self, messages: list[dict[str, Any]], extra_body: dict[str, Any] | None) -> Usage:
        ids = self.tok.ids(messages)
        hit = self.cache.request(ids)
        return Usage(len(ids), 0, hit, None, 0.0)


class LlamaBackend(Backend):
    name = "llamacpp"

    def __init__(self, client: Any) -> None:
        self.client = client

    def serve(self, messages: list[dict[str, Any]], extra_body: dict[str, Any] | None) -> Usage:
        return self.client.chat(messages, max_tokens=1, extra_body=extra_body).usage


@dataclass
class Recorded:
    messages: list[dict[str, Any]]
    usage: Usage
    at: datetime


class ReplayEngine:
    """The model's decisions are scripted; every rendered request is really served (prefill only)."""

    def __init__(self, backend: Backend, now: Callable[[], datetime]) -> None:
        self.backend = backend
        self.now = now
        self.queue: list[dict[str, Any]] = []
        self.log: list[Recorded] = []

    def chat(self, messages: list[dict[str, Any]], **kw: Any) -> ChatResult:
        usage = self.backend.serve(messages, kw.get("extra_body"))
        self.log.append(Recorded(messages, usage, self.now()))
        last = str(messages[-1].get("content", ""))
        if kw.get("max_tokens") == 1:
            content = ""
        elif MEMORY_FLUSH_INSTRUCTION.splitlines()[0] in last:
            content = json.dumps({"tool": "done", "arguments": {"summary": "memory is up to date"}})
        elif COMPACTION_INSTRUCTION.splitlines()[0] in last:
            content = "- answered the person's questions\n- reports read: see the journal\n- open: none"
        elif last.startswith("[Heartbeat"):
            content = json.dumps({"tool": "done", "arguments": {"summary": "HEARTBEAT_OK"}})
        else:
            content = json.dumps(self.queue.pop(0) if self.queue else {"tool": "done", "arguments": {"summary": "done"}})
        return ChatResult(content, [], "stop", Usage(usage.prompt_tokens, max(1, len(content) // 4), usage.cached_tokens, usage.ttft_s, usage.total_s), "replay")

    def tokenize(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int] | None:
        return None


# ---------------------------------------------------------------------- (a) agentd
def run_agentd(home: Home, steps: list[Step], backend: Backend) -> list[Recorded]:
    clock = {"now": steps[0].at}
    engine = ReplayEngine(backend, lambda: clock["now"])
    agent = build_agent(home, load_config(home.root), engine, model="replay", clock=lambda: clock["now"])
    warm_up(agent, "day starts")
    for step in steps:
        clock["now"] = step.at
        if step.kind == "edit_user":
            (home.root / "USER.md").write_text((home.root / "USER.md").read_text() + step.text + "\n")
            continue
        engine.queue = list(step.actions)
        if step.kind == "message":
            (home.root / "inbox" / f"{step.name}.md").write_text(step.text + "\n")
            event = Event("message", step.text, step.at, name=step.name, source=f"inbox/{step.name}.md")
        elif step.kind == "cron":
            event = Event("cron", step.text, step.at, name=step.name)
        else:
            event = Event("heartbeat", "Open items in HEARTBEAT.md:\n- [ ] glance at inbox/ and outbox/ for anything unanswered", step.at)
        wake(agent, event)
    return engine.log


# ---------------------------------------------------------------------- (b) the naive harness
FULL_OUTPUT = re.compile(r"the whole output \(\d+ characters\) is in (\S+) …")


def naive_requests(home: Home, recorded: list[Recorded], max_tokens: int | None, tok: Tokenizer | None) -> list[tuple[list[dict[str, Any]], datetime]]:
    """The same day as common practice would prompt it (see the module docstring)."""
    history: list[dict[str, Any]] = []
    seen: dict[str, list[str]] = {}
    home_files = {rel: (home.root / rel).read_text() for rel in ("AGENT.md", "USER.md", "memory/MEMORY.md")}
    files = sorted(str(p.relative_to(home.root)) for p in home.root.rglob("*") if p.is_file() and ".git" not in p.parts and ".agentd" not in p.parts)
    out = []
    for rec in recorded:
        msgs = rec.messages[1:]
        if not msgs:
            continue  # agentd's warm-up has no naive counterpart
        key = str(msgs[0].get("content", ""))[:200]
        canon = [json.dumps(m, sort_keys=True) for m in msgs]
        prev = seen.get(key, [])
        # Only what this request adds to its session enters the history: the longest common
        # prefix with the session's previous request was added then (an empty heartbeat that
        # agentd drops from its tail stays in the naive history, as a naive harness keeps it).
        common = 0
        for a, b in zip(prev, canon, strict=False):
            if a != b:
                break
            common += 1
        new = msgs[common:]
        seen[key] = canon
        for m in new:
            content = str(m.get("content", ""))
            full = FULL_OUTPUT.search(content)
            if full and Path(full.group(1)).is_file():
                content = content.split("\n", 1)[0] + "\n" + Path(full.group(1)).read_text()
            history.append({"role": m["role"], "content": content})
        files_now = sorted(set(files) | {f"memory/journal/{rec.at:%Y-%m-%d}.md", f"outbox/{rec.at:%Y-%m-%d}.md"})
        status = f"## main\n M memory/journal/{rec.at:%Y-%m-%d}.md\n?? inbox/ ({len(history)} items)"
        system = (
            f"You are a helpful personal agent. Current time: {rec.at:%Y-%m-%d %H:%M:%S}.\n\n"
            f"# Files in the home\n" + "\n".join(files_now) + f"\n\n# git status\n{status}\n\n"
            + "".join(f"# {rel}\n{text}\n" for rel, text in home_files.items())
            + "\n# Tools\n" + str(rec.messages[0]["content"]).split("<<< tools >>>")[1].split("<<< AGENT.md >>>")[0]
        )
        messages = [{"role": "system", "content": system}, *history]
        if max_tokens is not None and tok is not None:
            while len(messages) > 2 and len(tok.ids(messages)) > max_tokens:
                messages.pop(1)  # sliding window: drop the oldest turn (common practice; it breaks caching too)
        out.append((messages, rec.at))
    return out


# ---------------------------------------------------------------------- accounting
def floor_tokens(tok: Tokenizer, recorded: list[list[dict[str, Any]]]) -> int:
    """Tokens an ideal cache (token granularity, unlimited) must still compute for agentd's day."""
    ideal = PrefixCacheModel(block_size=1)
    total = 0
    for messages in recorded:
        ids = tok.ids(messages)
        total += len(ids) - ideal.lookup(ids + [-1])
        ideal.request(ids + [-1])
    return total


def totals(usages: list[Usage], floor: int, wall: float | None = None) -> dict[str, Any]:
    prompt = sum(u.prompt_tokens for u in usages)
    cached = sum(u.cached_tokens or 0 for u in usages)
    out: dict[str, Any] = {
        "requests": len(usages),
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "computed_tokens": prompt - cached,
        "hit_rate": round(cached / prompt, 4) if prompt else None,
        "floor_tokens": floor,
        "overhead": round((prompt - cached) / floor, 3) if floor else None,
    }
    if wall is not None:
        out["wall_s"] = round(wall, 1)
    return out


def run_engine(label: str, steps: list[Step], prefix_words: int, session_tokens: int, backend_factory: Callable[[], Backend], tok: Tokenizer,
               naive_limit: int | None, naive_max_tokens: int | None, rng_seed: int, max_output: int = 8000,
               context_tokens: int = 131072) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        home = make_home(Path(tmp) / "home", random.Random(rng_seed), prefix_words, session_tokens, max_output, context_tokens)
        backend = backend_factory()
        recorded = run_agentd(home, steps, backend)
        if naive_limit is not None:
            recorded = recorded[: naive_limit + 1]
        agentd_wall = sum(r.usage.total_s for r in recorded)  # the same requests the naive side replays
        floor = floor_tokens(tok, [r.messages for r in recorded])
        naive = naive_requests(home, recorded, naive_max_tokens, tok)
        nb = backend_factory()
        naive_usages = [nb.serve(m, None) for m, _ in naive]
        naive_wall = sum(u.total_s for u in naive_usages)
        prefix_tokens = len(tok.ids([recorded[0].messages[0]]))
        wall = label == "llamacpp"
        a = totals([r.usage for r in recorded], floor, agentd_wall if wall else None)
        b = totals(naive_usages, floor, naive_wall if wall else None)
        commits = int(subprocess.run(["git", "-C", str(home.root), "rev-list", "--count", "HEAD"], capture_output=True, text=True).stdout)
        return {
            "agentd": a,
            "naive": b,
            "computed_ratio": round(a["computed_tokens"] / b["computed_tokens"], 4) if b["computed_tokens"] else None,
            "prefix_tokens": prefix_tokens,
            "home_commits": commits,
        }


def print_engine(label: str, r: dict[str, Any]) -> None:
    print(f"\n== {label}: prefix {r['prefix_tokens']} tokens ==")
    cols = ["requests", "prompt_tokens", "cached_tokens", "computed_tokens", "hit_rate", "floor_tokens", "overhead", "wall_s"]
    print(f"{'':8}" + "".join(f"{c:>16}" for c in cols))
    for side in ("agentd", "naive"):
        print(f"{side:8}" + "".join(f"{r[side].get(c, '')!s:>16}" for c in cols))
    print(f"computed(agentd) / computed(naive) = {r['computed_ratio']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a 3-hour day with 4 messages")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--no-llamacpp", action="store_true", help="skip the real engine (the vLLM model only)")
    ap.add_argument("--llama-requests", type=int, default=16, help="requests of the day replayed on the real engine (both sides)")
    ap.add_argument("--only", choices=["vllm_model", "llamacpp"], help="run one engine only")
    args = ap.parse_args()
    tok = Tokenizer()
    results: dict[str, Any] = {}
    day = make_day(random.Random(1), 3 if args.quick else 16, 4 if args.quick else 20)
    if args.only in (None, "vllm_model"):
        results["vllm_model"] = run_engine(
            "vllm_model", day, prefix_words=24000, session_tokens=20000,
            backend_factory=lambda: ModelBackend(tok, capacity_blocks=40_000), tok=tok,
            naive_limit=None, naive_max_tokens=None, rng_seed=2,
        )
        print_engine("vllm_model (block-level model of vLLM APC, 16-token blocks, 40K-block LRU)", results["vllm_model"])
    if not args.no_llamacpp and args.only in (None, "llamacpp"):
        from engine.supervisor import EngineSupervisor
        from engine.types import EngineSettings

        with tempfile.TemporaryDirectory() as rt:
            # 16K context: a wake with five tool results outgrows SmolLM2's 8K (prefill-only, so quality does not matter here).
            sup = EngineSupervisor(EngineSettings("llamacpp", "smollm2", options={"n_ctx": 16384}), Path(rt))
            sup.start()
            try:
                quick_day = make_day(random.Random(1), 3, 4)
                results["llamacpp"] = run_engine(
                    "llamacpp", quick_day, prefix_words=1100, session_tokens=2500,
                    backend_factory=lambda: LlamaBackend(sup.client()), tok=tok,
                    naive_limit=args.llama_requests, naive_max_tokens=7000, rng_seed=3, max_output=3000,
                    context_tokens=16384,
                )
            finally:
                sup.stop()
        print_engine(f"llamacpp (real engine, SmolLM2-135M, first {args.llama_requests} requests of a 3-hour day)", results["llamacpp"])
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

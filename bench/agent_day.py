"""The agent-day benchmark: one scripted day replayed through agentd's context compiler and a naive harness.

    python bench/agent_day.py                       # full day on the vLLM cache model, quick day on llama.cpp
    python bench/agent_day.py --quick               # a 3-hour day on both (CI)
    python bench/agent_day.py --only vllm_model --out day.json
    python bench/agent_day.py --only vllm_model --block-sizes 16,128   # the block model at GPU and CPU block sizes
    python bench/agent_day.py --only vllm --quick   # the quick day on the real vLLM beside the block model (bench/agent_day_vllm.py)

The day: heartbeats every 30 minutes over 16 active hours, 4 cron jobs, 20 chat messages
with 0-5 tool calls each (command output and file contents of 200-4,000 tokens), the
person editing USER.md twice, the agent updating MEMORY.md five times, and compactions
when the session passes its budget. The model's decisions are scripted, the wake and
session ids come from a seeded id source (``build_agent(new_id=seeded_ids(...))``) and the
home's path is fixed (``--workdir``), so the prompts are byte-identical run to run; they are real renders of agentd's compiler (the real wake loop
on a real home).

The naive harness (``naive_requests``) sees the same day: the same events, the same
decisions, the home as it was at each request (home files, file list and git status are
read at that moment). It sends one request wherever a wake of agentd does, built the
common way: a system prompt rebuilt per request (current time, the home's file list and
git status at the top, then AGENT.md, USER.md, MEMORY.md and the tools), then the full
history of its conversation (cron jobs get a fresh one each, as in agentd), with full tool
outputs inlined. It does no memory flush and no compaction; where its context is bounded
(the llama.cpp run) it drops the oldest turns until the request fits, as common harnesses do.

Engines: (1) the real embedded llama.cpp engine (prefill-only requests, cached counts
from the engine) on a home whose prefix is ~3K tokens; (2) a block-level model of vLLM's
prefix cache fed the real token ids, on a large home (prefix ≥ 30K tokens). Token ids are
SmolLM2's (its GGUF's vocabulary and chat template, through llama_cpp).

The floor is counted from the day's content, not from either harness's requests: the
first epoch's whole prefix (rules, tool schemas, home files), then each line new to the
prefix files once (a new line in USER.md, new MEMORY.md entries), whether a steering diff
or a later prefix brings it, each event message, each tool output as it entered agentd's
context (bounded excerpts), and each completion of a wake. It is the same for both
harnesses; overhead = computed / floor. What agentd computes beyond it is overhead, per
cause in ``overhead_causes``: steering diffs beyond their new lines, a new prefix (after its
first changed line) and the session tail re-sent on it, the memory-flush and compaction
requests, the summary that opens the next session. After the day the daemon's new-day
rollover (a new prefix with the day's edits, warmed) is run and reported apart
(``next_day_prefix``). On the real engine the day's first wake is also served cold (a
restarted engine) and warm (after the warm-up): ``wake_ttft``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentd.config import load_config  # noqa: E402
from agentd.context import seeded_ids  # noqa: E402
from agentd.events import Event  # noqa: E402
from agentd.home import Home  # noqa: E402
from agentd.loop import session_kind, wake, warm_up  # noqa: E402
from agentd.steering_diff import STEERING_TAG  # noqa: E402
from agentd.template import init_home  # noqa: E402
from agentd.tools.base import ToolContext, ToolOutcome, ToolRegistry  # noqa: E402
from agentd.wiring import build_agent  # noqa: E402
from engine.cache_model import PrefixCacheModel  # noqa: E402
from engine.types import ChatResult, Usage  # noqa: E402
from memory.compaction import COMPACTION_INSTRUCTION, MEMORY_FLUSH_INSTRUCTION  # noqa: E402

WORDS = ["the", "person", "keeps", "notes", "about", "projects", "family", "travel", "budget", "garden", "health", "reading", "and", "work", "each", "note", "links", "to", "others", "the", "agent", "reads", "them", "before", "acting", "and", "writes", "what", "it", "learns", "meetings", "are", "on", "tuesdays", "invoices", "go", "out", "monthly", "the", "server", "runs", "backups", "at", "night"]
HOME_FILES = ("AGENT.md", "USER.md", "memory/MEMORY.md")
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "agentd-agent-day"
STEP_TIME = timedelta(seconds=4)  # the replay's clock advances this much per engine request
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
        # SmolLM2's template inserts its own system prompt before a conversation without one,
        # so a lone message is measured after a fixed system message.
        self._anchor = [{"role": "system", "content": "-"}]
        self._anchor_len = len(self.ids(self._anchor, generation_prompt=False))

    def ids(self, messages: Sequence[dict[str, Any]], generation_prompt: bool = True) -> list[int]:
        text = self.template.render(messages=list(messages), add_generation_prompt=generation_prompt, bos_token="", eos_token="")
        return list(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def text_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def message_tokens(self, message: dict[str, Any]) -> int:
        """Tokens one message adds to a conversation, its chat-template framing included."""
        if message.get("role") == "system":
            return len(self.ids([message], generation_prompt=False))
        return len(self.ids([*self._anchor, message], generation_prompt=False)) - self._anchor_len


class Backend:
    """Serves prefill-only requests and reports cached tokens (a real engine, or the vLLM model)."""

    name = ""

    def serve(self, messages: list[dict[str, Any]], extra_body: dict[str, Any] | None) -> Usage:
        raise NotImplementedError


class ModelBackend(Backend):
    name = "vllm_model"

    def __init__(self, tok: Tokenizer, capacity_blocks: int, block_size: int = 16) -> None:
        self.tok = tok
        self.cache = PrefixCacheModel(block_size, capacity_blocks)

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


# ---------------------------------------------------------------------- what happened
@dataclass
class Snapshot:
    """The home as a naive harness reads it at one request."""

    files: dict[str, str]
    listing: list[str]
    git_status: str


@dataclass
class Recorded:
    """One request of agentd's day: what was sent, what the engine reported, and why."""

    messages: list[dict[str, Any]]
    usage: Usage
    at: datetime
    purpose: str  # warmup | wake | flush | compaction


@dataclass
class Item:
    """One piece of the day's content, in order; ``index`` is the agentd request it belongs to."""

    index: int
    kind: str  # event | request | completion | tool
    session: str
    at: datetime
    message: dict[str, Any] = field(default_factory=dict)  # as it entered agentd's context
    full: str = ""  # tool: the whole output, as a naive harness inlines it
    snapshot: Snapshot | None = None  # request: the home at that moment


@dataclass
class Day:
    requests: list[Recorded] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)


FULL_OUTPUT = re.compile(r"the whole output \(\d+ characters\) is in (\S+) …")


def snapshot(root: Path) -> Snapshot:
    files = {rel: (root / rel).read_text() for rel in HOME_FILES}
    listing = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts and ".agentd" not in p.parts)
    status = subprocess.run(["git", "-C", str(root), "status", "--short", "--branch", "--untracked-files=all"], capture_output=True, text=True, check=True).stdout
    return Snapshot(files, listing, status)


class ReplayEngine:
    """The model's decisions are scripted; every rendered request is really served (prefill only),
    and the day's content is logged as it happens (see :class:`Item`)."""

    def __init__(self, backend: Backend, clock: dict[str, datetime], root: Path) -> None:
        self.backend = backend
        self.clock = clock
        self.root = root
        self.queue: list[dict[str, Any]] = []
        self.day = Day()
        self.session = "main"
        self.new_wake = False
        self.purpose = "warmup"
        self.next_day = False  # the day is over: the rollover's new prefix, counted apart

    def begin_wake(self, event: Event, actions: list[dict[str, Any]]) -> None:
        self.queue = list(actions)
        self.session = session_kind(event)
        self.new_wake = True

    def chat(self, messages: list[dict[str, Any]], **kw: Any) -> ChatResult:
        last = str(messages[-1].get("content", ""))
        flush_notice = MEMORY_FLUSH_INSTRUCTION.splitlines()[0]
        if kw.get("max_tokens") == 1:
            purpose = "next-day" if self.next_day else "warmup"
        elif COMPACTION_INSTRUCTION.splitlines()[0] in last:
            purpose = "compaction"
        elif any(flush_notice in str(m.get("content", "")) for m in messages[1:]):
            purpose = "flush"
        else:
            purpose = "wake"
        self.purpose = purpose
        usage = self.backend.serve(messages, kw.get("extra_body"))
        index = len(self.day.requests)
        at = self.clock["now"]
        self.clock["now"] = at + STEP_TIME  # the model's turn and the tool take time
        self.day.requests.append(Recorded(messages, usage, at, purpose))
        if purpose == "wake":
            if self.new_wake:
                self.day.items.append(Item(index, "event", self.session, at, messages[-1]))
                self.new_wake = False
            self.day.items.append(Item(index, "request", self.session, at, snapshot=snapshot(self.root)))
        if purpose in ("warmup", "next-day"):
            content = ""
        elif purpose == "flush":
            content = json.dumps({"tool": "done", "arguments": {"summary": "memory is up to date"}})
        elif purpose == "compaction":
            content = "- answered the person's questions\n- reports read: see the journal\n- open: none"
        elif last.startswith("[Heartbeat"):
            content = json.dumps({"tool": "done", "arguments": {"summary": "HEARTBEAT_OK"}})
        else:
            content = json.dumps(self.queue.pop(0) if self.queue else {"tool": "done", "arguments": {"summary": "done"}})
        if purpose == "wake":
            self.day.items.append(Item(index, "completion", self.session, at, {"role": "assistant", "content": content}))
        return ChatResult(content, [], "stop", Usage(usage.prompt_tokens, max(1, len(content) // 4), usage.cached_tokens, usage.ttft_s, usage.total_s), "replay")

    def tokenize(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int] | None:
        return None

    def tool_result(self, outcome: ToolOutcome) -> None:
        """A wake's tool result: as agentd's context holds it, and whole for the naive harness."""
        if self.purpose != "wake":
            return  # the memory flush's turn is agentd's own machinery
        head = f"[result of {outcome.name}]\n"
        full = outcome.text
        stored = FULL_OUTPUT.search(outcome.text)
        if stored and (self.root / stored.group(1)).is_file():  # the path is relative to the home
            full = outcome.text.split("\n", 1)[0] + "\n" + (self.root / stored.group(1)).read_text()
        self.day.items.append(Item(len(self.day.requests) - 1, "tool", self.session, self.clock["now"], {"role": "user", "content": head + outcome.text}, head + full))


class RecordingRegistry(ToolRegistry):
    """agentd's own tools, each outcome also handed to the replay's log."""

    def __init__(self, inner: ToolRegistry, on_outcome: Callable[[ToolOutcome], None]) -> None:
        super().__init__(t for t in (inner.get(n) for n in inner.names) if t is not None)
        self.on_outcome = on_outcome

    def execute(self, ctx: ToolContext, name: str, arguments: str | dict[str, Any]) -> ToolOutcome:
        outcome = super().execute(ctx, name, arguments)
        self.on_outcome(outcome)
        return outcome


# ---------------------------------------------------------------------- (a) agentd
def run_agentd(home: Home, steps: list[Step], backend: Backend, id_seed: int = 2) -> Day:
    """The day through agentd's real wake loop; wake and session ids are drawn from ``id_seed``."""
    clock = {"now": steps[0].at}
    engine = ReplayEngine(backend, clock, home.root)
    agent = build_agent(home, load_config(home.root), engine, model="replay", clock=lambda: clock["now"], new_id=seeded_ids(id_seed))
    agent.registry = RecordingRegistry(agent.registry, engine.tool_result)
    warm_up(agent, "day starts")
    for step in steps:
        clock["now"] = step.at
        if step.kind == "edit_user":
            (home.root / "USER.md").write_text((home.root / "USER.md").read_text() + step.text + "\n")
            continue
        if step.kind == "message":
            (home.root / "inbox" / f"{step.name}.md").write_text(step.text + "\n")
            event = Event("message", step.text, step.at, name=step.name, source=f"inbox/{step.name}.md")
        elif step.kind == "cron":
            event = Event("cron", step.text, step.at, name=step.name)
        else:
            event = Event("heartbeat", "Open items in HEARTBEAT.md:\n- [ ] glance at inbox/ and outbox/ for anything unanswered", step.at)
        engine.begin_wake(event, step.actions)
        wake(agent, event)
    # The day rollover, as the daemon does it overnight: the session ends, the prefix is built
    # from the home as the day left it and warmed. Counted apart ("next-day"): it is the next
    # day's first cost, paid while the agent is idle.
    engine.next_day = True
    agent.compiler.drop_session("main")
    if agent.refresh_prefix("new day"):
        warm_up(agent, "new day")
    return engine.day


# ---------------------------------------------------------------------- (b) the naive harness
def naive_system(at: datetime, snap: Snapshot, tools: str) -> dict[str, Any]:
    return {"role": "system", "content": (
        f"You are a helpful personal agent. Current time: {at:%Y-%m-%d %H:%M:%S}.\n\n"
        "# Files in the home\n" + "\n".join(snap.listing) + f"\n\n# git status\n{snap.git_status}\n"
        + "".join(f"# {rel}\n{text}\n" for rel, text in snap.files.items())
        + "\n# Tools\n" + tools
    )}


def tool_schemas_text(day: Day) -> str:
    """The tools section of agentd's prefix: the naive harness offers the same tools."""
    system = str(day.requests[0].messages[0]["content"])
    return system.split("<<< tools >>>")[1].split("\n<<< ")[0] + "\n"


def naive_requests(day: Day, limit: int | None = None, max_tokens: int | None = None, tok: Tokenizer | None = None) -> list[list[dict[str, Any]]]:
    """The day as common practice would prompt it (see the module docstring); only the
    content of agentd's first ``limit`` requests, when given."""
    tools = tool_schemas_text(day)
    histories: dict[str, list[dict[str, Any]]] = {}
    out = []
    for item in day.items:
        if limit is not None and item.index >= limit:
            break
        if item.kind == "event":
            if item.session != "main":
                histories[item.session] = []  # each cron job is its own short conversation, as in agentd
            histories.setdefault(item.session, []).append(item.message)
        elif item.kind == "completion":
            histories[item.session].append(item.message)
        elif item.kind == "tool":
            histories[item.session].append({"role": "user", "content": item.full})
        elif item.snapshot is not None:
            history = histories[item.session]
            if max_tokens is not None and tok is not None:
                # A bounded window: drop the oldest turns until the request fits (common
                # practice; a turn that fell out of the window stays out).
                while len(history) > 1 and len(tok.ids([naive_system(item.at, item.snapshot, tools), *history])) > max_tokens:
                    del history[0]
            out.append([naive_system(item.at, item.snapshot, tools), *history])
    return out


# ---------------------------------------------------------------------- accounting
FLOOR_PARTS = ("prefixes", "events", "tool_outputs", "completions")
SECTION = re.compile(r"^<<< .+ >>>$", re.MULTILINE)


def prefix_sections(system: str) -> list[str]:
    """agentd's prefix cut into its sections (rules, tools, AGENT.md, USER.md, skills, MEMORY.md)."""
    starts = [m.start() for m in SECTION.finditer(system)] or [0]
    return [system[a:b] for a, b in zip(starts, [*starts[1:], len(system)], strict=True)]


def floor_breakdown(tok: Tokenizer, day: Day, limit: int | None = None) -> dict[str, int]:
    """The day's genuinely new content in tokens, the same for every harness (module docstring).

    The first epoch's prefix counts whole; a later epoch counts the lines of its prefix that
    no earlier epoch had (a person's new line in USER.md, the agent's new MEMORY.md entries),
    since that is all the content it adds. ``prefix_whole_files`` is the coarser count of
    each changed section whole, for reference: a cache that recomputes from the first
    changed token computes less than that, so it is no floor.
    """
    requests = day.requests[:limit]
    seen_lines: Counter[str] = Counter()
    seen_sections: set[str] = set()
    prefix_tokens = whole_files = epochs = 0
    previous = None
    diffs: set[str] = set()
    diff_lines = 0
    for r in requests:
        for m in r.messages[1:]:
            text = str(m.get("content", ""))
            if text.startswith(STEERING_TAG) and text not in diffs:
                # A steering diff's new lines are the edit's content, counted once however it arrives.
                diffs.add(text)
                added = Counter(line[1:] + "\n" for line in text.splitlines() if line.startswith("+") and not line.startswith("+++"))
                diff_lines += sum(n * tok.text_tokens(line) for line, n in (added - seen_lines).items())
                seen_lines |= added
        system = str(r.messages[0]["content"])
        if system == previous:
            continue
        previous = system
        epochs += 1
        lines = Counter(system.splitlines(keepends=True))
        if not seen_lines:
            prefix_tokens += tok.message_tokens(r.messages[0])
            whole_files += tok.message_tokens(r.messages[0])
        else:
            prefix_tokens += sum(n * tok.text_tokens(line) for line, n in (lines - seen_lines).items())
            whole_files += sum(tok.text_tokens(s) for s in prefix_sections(system) if s not in seen_sections)
        seen_lines |= lines
        seen_sections.update(prefix_sections(system))
    out = dict.fromkeys(FLOOR_PARTS, 0) | {"prefixes": prefix_tokens + diff_lines}
    key = {"event": "events", "tool": "tool_outputs", "completion": "completions"}
    for item in day.items:
        if (limit is None or item.index < limit) and item.kind in key:
            out[key[item.kind]] += tok.message_tokens(item.message)
    out["epochs"] = epochs
    out["prefix_whole_files"] = whole_files
    out["prefix_new_lines_in_diffs"] = diff_lines  # part of "prefixes": the edits' new lines, as steering diffs brought them
    return out


def totals(usages: Sequence[Usage], floor: int, wall: float | None = None) -> dict[str, Any]:
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


def agentd_breakdown(tok: Tokenizer, requests: Sequence[Recorded]) -> dict[str, Any]:
    """Where agentd's computed tokens go: per purpose, and on the first request of each new
    prefix (split into the prefix from its first uncached token on, and the session tail)."""
    by_purpose: dict[str, int] = {}
    on_new_prefix = {"requests": 0, "prefix": 0, "tail": 0}
    previous = None
    for r in requests:
        computed = r.usage.prompt_tokens - (r.usage.cached_tokens or 0)
        by_purpose[r.purpose] = by_purpose.get(r.purpose, 0) + computed
        system = r.messages[0]["content"]
        if previous is not None and system != previous:
            prefix = min(tok.message_tokens(r.messages[0]), r.usage.prompt_tokens)
            on_new_prefix["requests"] += 1
            on_new_prefix["prefix"] += max(0, prefix - (r.usage.cached_tokens or 0))
            on_new_prefix["tail"] += r.usage.prompt_tokens - max(prefix, r.usage.cached_tokens or 0)
        previous = system
    return {"computed_by_purpose": by_purpose, "computed_on_new_prefix": on_new_prefix}


def overhead_causes(tok: Tokenizer, requests: Sequence[Recorded], floor_parts: dict[str, int], floor: int, items: Sequence[Item] = ()) -> dict[str, Any]:
    """What agentd computes beyond the floor, per cause, in tokens; the rest is request ends
    (a block cache recomputes each prompt's last partial block and last token) and rounding."""
    computed = sum(r.usage.prompt_tokens - (r.usage.cached_tokens or 0) for r in requests)
    br = agentd_breakdown(tok, requests)
    diffs: dict[tuple[str, int, str], int] = {}
    summaries: dict[tuple[str, str], int] = {}
    switches = 0
    previous = None
    for r in requests:
        system = str(r.messages[0]["content"])
        for i, m in enumerate(r.messages[1:], 1):
            text = str(m.get("content", ""))
            if text.startswith(STEERING_TAG):
                diffs.setdefault((text, i, system), tok.message_tokens(m))
            elif text.startswith("[summary of the previous session]"):
                summaries.setdefault((text, system), tok.message_tokens(m) + tok.message_tokens(r.messages[i + 1]))
        # A prefix switch inside a session: the system message changes under a tail that goes on.
        if previous is not None and system != previous[0] and r.purpose == "wake" and len(r.messages) > 2 and r.messages[1] == previous[1]:
            switches += 1
        previous = (system, r.messages[1] if len(r.messages) > 1 else None)
    by = br["computed_by_purpose"]
    dropped_heartbeats = sum(tok.message_tokens(i.message) for i in items if i.index < len(requests)
                             and i.kind == "completion" and "HEARTBEAT_OK" in str(i.message.get("content", "")))
    causes = {
        "new_prefix_beyond_its_new_lines": br["computed_on_new_prefix"]["prefix"],
        "tail_resent_on_a_new_prefix": br["computed_on_new_prefix"]["tail"],
        "steering_diffs_beyond_their_new_lines": sum(diffs.values()) - floor_parts.get("prefix_new_lines_in_diffs", 0),
        "memory_flush": by.get("flush", 0),
        "compaction_summary_request": by.get("compaction", 0),
        "summary_opening_each_session": sum(summaries.values()),
    }
    # The floor counts every completion, but an empty heartbeat's (HEARTBEAT_OK) is dropped
    # from the tail and never read back: agentd computes that much less than the floor holds.
    causes["empty_heartbeats_never_read_back"] = -dropped_heartbeats
    causes["request_ends_and_rest"] = computed - floor - sum(causes.values())
    return {"excess_tokens": computed - floor, "causes": causes, "steering_diff_messages": len(diffs), "mid_session_prefix_switches": switches}


def digest(requests: Sequence[list[dict[str, Any]]]) -> str:
    """One hash of every request's bytes, in order: equal digests, byte-identical prompts."""
    h = hashlib.sha256()
    for messages in requests:
        h.update(json.dumps(messages, ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()[:16]


def run_engine(label: str, steps: list[Step], prefix_words: int, session_tokens: int, backend_factory: Callable[[], Backend], tok: Tokenizer,
               workdir: Path, limit: int | None = None, naive_max_tokens: int | None = None, rng_seed: int = 2, max_output: int = 8000,
               context_tokens: int = 131072, keep: dict[str, Any] | None = None) -> dict[str, Any]:
    """One engine's figures; ``limit`` keeps agentd's first requests and the naive requests of the same content."""
    root = workdir / label
    shutil.rmtree(root, ignore_errors=True)  # the home's path appears in prompts: the same path every run
    home = make_home(root / "home", random.Random(rng_seed), prefix_words, session_tokens, max_output, context_tokens)
    day = run_agentd(home, steps, backend_factory(), id_seed=rng_seed)
    next_day = [r for r in day.requests if r.purpose == "next-day"]
    day.requests = [r for r in day.requests if r.purpose != "next-day"]
    recorded = day.requests[:limit]
    if keep is not None:
        keep["day"] = day
    floor_parts = floor_breakdown(tok, day, limit)
    floor = sum(floor_parts[k] for k in FLOOR_PARTS)
    naive = naive_requests(day, limit, naive_max_tokens, tok)
    nb = backend_factory()
    naive_usages = [nb.serve(m, None) for m in naive]
    wall = label == "llamacpp"
    a = totals([r.usage for r in recorded], floor, sum(r.usage.total_s for r in recorded) if wall else None)
    b = totals(naive_usages, floor, sum(u.total_s for u in naive_usages) if wall else None)
    return {
        "agentd": a,
        "naive": b,
        "computed_ratio": round(a["computed_tokens"] / b["computed_tokens"], 4) if b["computed_tokens"] else None,
        "prefix_tokens": tok.message_tokens(recorded[0].messages[0]),
        "floor_breakdown": floor_parts,
        "agentd_breakdown": agentd_breakdown(tok, recorded),
        "overhead_causes": overhead_causes(tok, recorded, floor_parts, floor, day.items),
        # The new prefix the day's edits wait for, built and warmed at the rollover (not in the day's figures).
        "next_day_prefix": {"computed_tokens": sum(r.usage.prompt_tokens - (r.usage.cached_tokens or 0) for r in next_day),
                            "overhead_with_it": round((a["computed_tokens"] + sum(r.usage.prompt_tokens - (r.usage.cached_tokens or 0) for r in next_day)) / floor, 3)
                            if floor and limit is None else None},
        "prompt_digest": {"agentd": digest([r.messages for r in recorded]), "naive": digest(naive)},
    }


def wake_ttft(sup: Any, day: Day) -> dict[str, Any]:
    """The day's first wake, served cold (a restarted engine) and warm (after the prefix warm-up), side by side."""
    warmup = next(r for r in day.requests if r.purpose == "warmup")
    first = next(r for r in day.requests if r.purpose == "wake")
    out: dict[str, Any] = {"prompt_tokens": first.usage.prompt_tokens}
    for side in ("cold", "warm"):
        sup.stop()
        sup.start()  # an empty cache
        if side == "warm":
            sup.client().chat(warmup.messages, max_tokens=1)  # what the daemon does while idle
        u = sup.client().chat(first.messages, max_tokens=1, stream=True).usage
        out[f"{side}_ttft_s"] = round(u.ttft_s if u.ttft_s is not None else u.total_s, 3)
        out[f"{side}_cached_tokens"] = u.cached_tokens
    return out


def print_engine(label: str, r: dict[str, Any]) -> None:
    print(f"\n== {label}: prefix {r['prefix_tokens']} tokens ==")
    cols = ["requests", "prompt_tokens", "cached_tokens", "computed_tokens", "hit_rate", "floor_tokens", "overhead", "wall_s"]
    print(f"{'':8}" + "".join(f"{c:>16}" for c in cols))
    for side in ("agentd", "naive"):
        print(f"{side:8}" + "".join(f"{r[side].get(c, '')!s:>16}" for c in cols))
    print(f"computed(agentd) / computed(naive) = {r['computed_ratio']}")
    print(f"floor: {r['floor_breakdown']}")
    print(f"agentd: {r['agentd_breakdown']}")
    print(f"overhead causes: {r['overhead_causes']}")
    print(f"next day's new prefix (rollover, not in the day's figures): {r['next_day_prefix']}")
    if "wake_ttft" in r:
        t = r["wake_ttft"]
        print(f"first wake ({t['prompt_tokens']} prompt tokens): TTFT cold {t['cold_ttft_s']} s ({t['cold_cached_tokens']} cached) "
              f"vs warm {t['warm_ttft_s']} s ({t['warm_cached_tokens']} cached)")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a 3-hour day with 4 messages")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--no-llamacpp", action="store_true", help="skip the real engine (the vLLM model only)")
    ap.add_argument("--llama-requests", type=int, default=16,
                    help="agentd requests of the day kept on a real engine (llamacpp, vllm), after the warm-up (0: all); the naive side replays the same content")
    ap.add_argument("--only", choices=["vllm_model", "llamacpp", "vllm"], help="run one engine only (vllm: the real engine, not run by default)")
    ap.add_argument("--block-sizes", default="16", help="the block model's block sizes, comma-separated (vLLM: 16 on a GPU, 128 on a CPU)")
    ap.add_argument("--vllm-model", help="the HF folder vLLM serves (default: the one `agentd model import smollm2` wrote)")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                    help=f"where the day's homes are made, emptied first (default {DEFAULT_WORKDIR}); the path is part of the prompts")
    args = ap.parse_args(argv)
    tok = Tokenizer()
    results: dict[str, Any] = {}
    day = make_day(random.Random(1), 3 if args.quick else 16, 4 if args.quick else 20)
    if args.only in (None, "vllm_model"):
        for size in (int(b) for b in args.block_sizes.split(",")):
            key = "vllm_model" if size == 16 else f"vllm_model_{size}"
            # The same memory at any block size: 640K tokens of KV (40K blocks of 16).
            results[key] = run_engine(
                key, day, prefix_words=24000, session_tokens=20000,
                backend_factory=lambda size=size: ModelBackend(tok, capacity_blocks=640_000 // size, block_size=size), tok=tok, workdir=args.workdir, rng_seed=2,
            )
            print_engine(f"{key} (block-level model of vLLM APC, {size}-token blocks, {640_000 // size}-block LRU)", results[key])
    if args.only == "vllm":
        from bench import agent_day_vllm
        from engine.models import hf_models_dir

        folder = args.vllm_model or str(hf_models_dir() / "smollm2")
        results["vllm"] = agent_day_vllm.run(tok, args.workdir, args.llama_requests, folder)
        agent_day_vllm.print_side_by_side(results["vllm"])
    if not args.no_llamacpp and args.only in (None, "llamacpp"):
        from engine.supervisor import EngineSupervisor
        from engine.types import EngineSettings

        kept: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as rt:
            # 16K context: a wake with five tool results outgrows SmolLM2's 8K (prefill-only, so quality does not matter here).
            sup = EngineSupervisor(EngineSettings("llamacpp", "smollm2", options={"n_ctx": 16384}), Path(rt))
            sup.start()
            try:
                results["llamacpp"] = run_engine(
                    "llamacpp", make_day(random.Random(1), 3, 4), prefix_words=1100, session_tokens=2500,
                    backend_factory=lambda: LlamaBackend(sup.client()), tok=tok, workdir=args.workdir,
                    limit=args.llama_requests + 1 if args.llama_requests else None, naive_max_tokens=7000, rng_seed=3,
                    max_output=3000, context_tokens=16384, keep=kept,
                )
                results["llamacpp"]["wake_ttft"] = wake_ttft(sup, kept["day"])
            finally:
                sup.stop()
        print_engine(f"llamacpp (real engine, SmolLM2-135M, first {args.llama_requests or 'all'} requests of a 3-hour day)", results["llamacpp"])
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()

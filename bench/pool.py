"""The pool benchmark: agents on a pool of engine replicas, session-keyed dispatch vs the rest.

    python bench/pool.py                     # both parts (the real one needs agentd[cpu,pool])
    python bench/pool.py --only sim          # the simulation only (10,000 agents, 64 replicas)
    python bench/pool.py --only real --homes 6 --steps 6 --out pool.json

*Real*: N llama.cpp replicas behind a real vllm-router (``agentd pool``), homes sending a short
scripted run of growing agent prompts concurrently (a home prefix of its own, then history that
only grows; prefill-only requests, as bench/agent_day.py's llama.cpp part) with their session key;
prompt, cached and computed tokens per home from the engine's own counts, for consistent_hash
and round_robin; then consistent_hash again with one replica SIGKILLed half-way: wakes lost
(requests that failed after the client's retries), homes moved, tokens computed beyond the run
without the kill.

*Simulated*: the block-level prefix-cache model (engine/cache_model.py) with a finite KV capacity
per replica (LRU eviction), agents' requests in the agent-day schedule (heartbeats every 30 min,
4 cron jobs and 20 messages over 16 active hours; 1-4 engine calls a wake, each adding a tool
output or message and a completion to an append-only session, compacted past a budget);
session-hash (a consistent-hash ring, as vllm-router's) vs round-robin vs least-loaded (the
replica that has computed the fewest tokens); one replica lost and one added half-way; and the
hit rate as agents per replica outgrow the KV capacity.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cache_model import PrefixCacheModel  # noqa: E402

BLOCK = 128  # tokens a block (vLLM's CPU default; 16 on a GPU only makes the model slower, not different)


# ---------------------------------------------------------------------- the simulated part


@dataclass
class Agent:
    """One agent's prompt state: its home prefix and its append-only session."""

    id: int
    prefix_blocks: int
    session: int = 0
    history: int = 0  # tokens in the session after the prefix

    def key(self, k: int) -> int:
        # A block's key names the agent, its place, and (past the prefix) the session: as a chained
        # hash it identifies the block with everything before it (the prefix never changes here).
        return (self.id << 32) | ((self.session + 1) << 20 | k if k >= self.prefix_blocks else k)

    def keys(self, tokens: int) -> list[int]:
        return [self.key(k) for k in range((self.prefix_blocks * BLOCK + tokens) // BLOCK)]


@dataclass(frozen=True)
class Call:
    at: float  # hours into the window
    agent: int
    added: int  # tokens this call adds to the session before it (event, tool output)
    completion: int


def schedule(agents: int, hours: float, rng: random.Random) -> list[Call]:
    """Every agent's engine calls in the window, in time order (agent-day rates: 16 active hours)."""
    calls: list[Call] = []
    for a in range(agents):
        phase = rng.uniform(0, 0.5)
        wakes = [phase + 0.5 * i for i in range(int((hours - phase) / 0.5) + 1)]
        wakes += [rng.uniform(0, hours) for _ in range(_poisson(rng, 20 * hours / 16))]
        wakes += [rng.uniform(0, hours) for _ in range(_poisson(rng, 4 * hours / 16))]
        for t in wakes:
            for step in range(rng.randint(1, 4)):
                calls.append(Call(t + step * 1e-4, a, rng.randint(150, 1500) if step == 0 else rng.randint(200, 4000), rng.randint(40, 200)))
    calls.sort(key=lambda c: c.at)
    return calls


def _poisson(rng: random.Random, mean: float) -> int:
    n, t = 0, rng.expovariate(1.0)
    while t < mean:
        n += 1
        t += rng.expovariate(1.0)
    return n


class Ring:
    """Consistent hashing with virtual nodes (vllm-router uses 160 a worker)."""

    def __init__(self, replicas: Sequence[str], vnodes: int = 160) -> None:
        self.points: list[tuple[int, str]] = sorted((_h(f"{r}#{v}"), r) for r in replicas for v in range(vnodes))
        self.hashes = [p for p, _ in self.points]

    def __call__(self, key: str) -> str:
        i = bisect.bisect(self.hashes, _h(key)) % len(self.points)
        return self.points[i][1]


def _h(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big")


@dataclass
class SimResult:
    policy: str
    agents: int
    replicas: int
    capacity_tokens: int
    prompt_tokens: int = 0
    hit_tokens: int = 0
    moved_agents: int = 0
    after: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "hit_tokens": 0})

    @property
    def hit_rate(self) -> float:
        return self.hit_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def row(self) -> dict[str, Any]:
        after = self.after["hit_tokens"] / self.after["prompt_tokens"] if self.after["prompt_tokens"] else None
        return {"policy": self.policy, "agents": self.agents, "replicas": self.replicas, "capacity_tokens": self.capacity_tokens,
                "prompt_tokens": self.prompt_tokens, "computed_tokens": self.prompt_tokens - self.hit_tokens,
                "hit_rate": round(self.hit_rate, 4), "moved_agents": self.moved_agents,
                "hit_rate_after_change": round(after, 4) if after is not None else None}


def simulate(policy: str, calls: list[Call], agents: int, replicas: int, capacity_tokens: int, prefix_tokens: int,
             session_budget: int, change: str | None = None) -> SimResult:
    """Replay ``calls`` on ``replicas`` cache models; ``change`` ("lose"/"add") a replica half-way."""
    names = [f"r{i}" for i in range(replicas)]
    blocks = capacity_tokens // BLOCK or None  # 0: unbounded
    caches = {n: PrefixCacheModel(BLOCK, blocks) for n in names}
    load = dict.fromkeys(names, 0)
    state = [Agent(a, prefix_tokens // BLOCK) for a in range(agents)]
    ring = Ring(names)
    rr = 0
    res = SimResult(policy, agents, replicas, capacity_tokens)
    half = len(calls) // 2
    placed: dict[int, str] = {}
    for i, c in enumerate(calls):
        if i == half and change:
            if change == "lose":
                names.remove("r0")
                del caches["r0"], load["r0"]
            else:
                names.append(f"r{replicas}")
                caches[names[-1]] = PrefixCacheModel(BLOCK, blocks)
                load[names[-1]] = 0
            ring = Ring(names)
            if policy == "session-hash":
                res.moved_agents = sum(1 for a, r in placed.items() if ring(f"agent-{a}") != r)
        ag = state[c.agent]
        if policy == "session-hash":
            target = ring(f"agent-{c.agent}")
        elif policy == "round-robin":
            target = names[rr % len(names)]
            rr += 1
        else:  # least-loaded: the replica that has computed the fewest tokens
            target = min(names, key=load.__getitem__)
        placed[c.agent] = target
        ag.history += c.added
        prompt = ag.prefix_blocks * BLOCK + ag.history
        keys = ag.keys(ag.history + c.completion)
        hit = caches[target].request_blocks(keys, prompt)
        load[target] += prompt - hit
        res.prompt_tokens += prompt
        res.hit_tokens += hit
        if change and i >= half:
            res.after["prompt_tokens"] += prompt
            res.after["hit_tokens"] += hit
        ag.history += c.completion
        if ag.history > session_budget:  # compaction: a new session opens with a summary
            ag.session += 1
            ag.history = 800
    return res


def run_sim(a: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(a.seed)
    calls = schedule(a.agents, a.hours, rng)
    print(f"simulated: {a.agents} agents, {len(calls)} engine calls in {a.hours:g} active hours, {a.replicas} replicas, "
          f"KV capacity {a.capacity:,} tokens a replica, home prefix {a.prefix:,} tokens, block {BLOCK}", flush=True)
    rows: list[dict[str, Any]] = []
    args = (calls, a.agents, a.replicas, a.capacity, a.prefix, a.session_budget)
    # The ceiling: every agent on one engine whose KV never runs out.
    rows.append({**simulate("session-hash", calls, a.agents, 1, 0, a.prefix, a.session_budget).row(), "policy": "single engine, unbounded KV"})
    _print_sim(rows[-1])
    for policy in ("session-hash", "round-robin", "least-loaded"):
        rows.append(simulate(policy, *args).row())
        _print_sim(rows[-1])
    for change in ("lose", "add"):
        rows.append({**simulate("session-hash", *args, change=change).row(), "change": f"replica {'lost' if change == 'lose' else 'added'} half-way"})
        _print_sim(rows[-1])
    # Hit rate as agents per replica grow against a fixed KV capacity (8 replicas stand for any number).
    sweep: list[dict[str, Any]] = []
    for per in a.sweep:
        n = per * 8
        sub = schedule(n, a.hours, random.Random(a.seed + per))
        for policy in ("session-hash", "round-robin"):
            r = simulate(policy, sub, n, 8, a.capacity, a.prefix, a.session_budget).row()
            sweep.append({**r, "agents_per_replica": per})
            print(f"  {per:4d} agents/replica  {policy:13s} hit rate {r['hit_rate']:.1%}", flush=True)
    return {"agents": a.agents, "replicas": a.replicas, "calls": len(calls), "hours": a.hours, "capacity_tokens": a.capacity,
            "prefix_tokens": a.prefix, "block": BLOCK, "policies": rows, "sweep": sweep}


def _print_sim(r: dict[str, Any]) -> None:
    extra = f"  moved {r['moved_agents']} agents, hit rate after {r['hit_rate_after_change']:.1%}" if r.get("change") else ""
    print(f"  {r['policy']:27s} {r.get('change', ''):27s} hit rate {r['hit_rate']:6.1%}  computed {r['computed_tokens']:>13,} of {r['prompt_tokens']:>13,}{extra}", flush=True)


# ---------------------------------------------------------------------- the real part


def _words(rng: random.Random, n: int) -> str:
    vocab = ["memory", "note", "task", "person", "garden", "letter", "plan", "budget", "invoice", "meeting", "river", "window", "morning", "report", "idea"]
    return " ".join(rng.choice(vocab) for _ in range(n))


def home_requests(home: int, steps: int, prefix_words: int) -> list[list[dict[str, str]]]:
    """One home's run: its own prefix, then a session that only grows (the replies are scripted)."""
    rng = random.Random(1000 + home)
    system = f"You are agent {home}. Your home:\n" + _words(rng, prefix_words)
    history: list[dict[str, str]] = []
    out = []
    for s in range(steps):
        history.append({"role": "user", "content": f"event {s}: " + _words(rng, rng.randint(40, 120))})
        out.append([{"role": "system", "content": system}, *history])
        history.append({"role": "assistant", "content": f"noted {s}"})
    return out


@dataclass
class HomeRun:
    prompt: int = 0
    cached: int = 0
    lost: int = 0

    def row(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt, "cached_tokens": self.cached, "computed_tokens": self.prompt - self.cached,
                "hit_rate": round(self.cached / self.prompt, 4) if self.prompt else None, "wakes_lost": self.lost}


def run_homes(state: Any, homes: int, steps: int, prefix_words: int, between: Callable[[int], None] | None = None) -> list[HomeRun]:
    """Every home's requests, homes concurrent, each home's steps in order; ``between(step)`` after each round."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.client import OpenAIClient
    from engine.errors import EngineError

    runs = [HomeRun() for _ in range(homes)]
    plans = [home_requests(h, steps, prefix_words) for h in range(homes)]
    clients = [OpenAIClient(state.router_url, state.api_key, "m", session_key=f"agentd-home-{h}", backoff=0.2) for h in range(homes)]

    def one(h: int, s: int) -> None:
        try:
            r = clients[h].chat(plans[h][s], max_tokens=1, extra_body={"cache_prefix_messages": 1})
        except EngineError as e:
            print(f"    home {h} step {s} lost: {str(e).splitlines()[0][:120]}", flush=True)
            runs[h].lost += 1
            return
        runs[h].prompt += r.usage.prompt_tokens
        runs[h].cached += r.usage.cached_tokens or 0

    with ThreadPoolExecutor(homes) as ex:
        for s in range(steps):
            list(ex.map(lambda h, s=s: one(h, s), range(homes)))
            if between is not None:
                between(s)
    for c in clients:
        c.close()
    return runs


def replica_of_each(state: Any, homes: int) -> list[int]:
    """Which replica serves each home: one tiny request at a time, seen in the replicas' request counters."""
    from engine.client import OpenAIClient
    from engine.metrics import parse

    def counts() -> list[float]:
        out = []
        for url in state.replica_urls:
            c = OpenAIClient(url, state.api_key, "m")
            text = c.metrics_text() or ""
            c.close()
            out.append(sum(v for n, _, v in parse(text) if n == "agentd_engine_requests_total"))
        return out

    where = []
    for h in range(homes):
        before = counts()
        c = OpenAIClient(state.router_url, state.api_key, "m", session_key=f"agentd-home-{h}", backoff=0.2)
        c.chat([{"role": "user", "content": "ping"}], max_tokens=1)
        c.close()
        after = counts()
        where.append(next((i for i, (x, y) in enumerate(zip(before, after, strict=True)) if y > x), -1))
    return where


def run_real(a: argparse.Namespace) -> dict[str, Any]:
    import os
    import signal
    import tempfile

    from engine.pool import PoolSpec, start_pool, stop_pool

    out: dict[str, Any] = {"replicas": a.pool_replicas, "homes": a.homes, "steps": a.steps, "prefix_words": a.prefix_words}
    print(f"real: llama.cpp replicas behind vllm-router ({a.pool_replicas} a pool), {a.homes} homes x {a.steps} requests", flush=True)
    runs = {"single": ("single engine", "consistent_hash", False, 1), "hash": ("consistent_hash", "consistent_hash", False, a.pool_replicas),
            "rr": ("round_robin", "round_robin", False, a.pool_replicas), "kill": ("consistent_hash, replica killed", "consistent_hash", True, a.pool_replicas)}
    for label, policy, kill, replicas in (runs[r] for r in a.runs):
        root = Path(tempfile.mkdtemp(prefix="agentd-pool-bench-"))
        t0 = time.monotonic()
        state = start_pool(PoolSpec(replicas, "llamacpp", "smollm2", policy, {"n_ctx": 4096}), root, timeout=600)
        moved: list[int] = []
        try:
            def between(step: int, state: Any = state, root: Path = root, kill: bool = kill, moved: list[int] = moved) -> None:
                if kill and step == a.steps // 2 - 1:
                    where = replica_of_each(state, a.homes)
                    victim = max(range(a.pool_replicas), key=where.count)
                    pid = json.loads((root / f"replica-{victim}" / "engine.json").read_text())["pid"]
                    os.kill(pid, signal.SIGKILL)
                    print(f"    killed replica-{victim} (served homes {[h for h, r in enumerate(where) if r == victim]})", flush=True)
                    moved.extend(h for h, r in enumerate(where) if r == victim)

            runs = run_homes(state, a.homes, a.steps, a.prefix_words, between)
        finally:
            stop_pool(root)
        total = HomeRun(sum(r.prompt for r in runs), sum(r.cached for r in runs), sum(r.lost for r in runs))
        entry = {"per_home": [r.row() for r in runs], "overall": total.row(), "wall_s": round(time.monotonic() - t0, 1)}
        if kill:
            entry["homes_moved"] = len(moved)
            if "consistent_hash" in out:
                entry["extra_computed_tokens"] = total.row()["computed_tokens"] - out["consistent_hash"]["overall"]["computed_tokens"]
        out[label] = entry
        o = entry["overall"]
        print(f"  {label:32s} hit rate {o['hit_rate']:.1%}  computed {o['computed_tokens']:>7,} of {o['prompt_tokens']:>7,}  "
              f"wakes lost {o['wakes_lost']}" + (f"  homes moved {entry['homes_moved']}  extra computed {entry.get('extra_computed_tokens')}" if kill else ""), flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["sim", "real"])
    p.add_argument("--agents", type=int, default=10_000)
    p.add_argument("--replicas", type=int, default=64)
    p.add_argument("--hours", type=float, default=2.0, help="the busiest hours of the day simulated")
    p.add_argument("--capacity", type=int, default=2_500_000, help="KV tokens a replica holds")
    p.add_argument("--prefix", type=int, default=8192, help="home prefix tokens")
    p.add_argument("--session-budget", type=int, default=16_000)
    p.add_argument("--sweep", type=int, nargs="*", default=[50, 100, 150, 200, 300, 400], help="agents per replica")
    p.add_argument("--pool-replicas", type=int, default=3)
    p.add_argument("--runs", nargs="*", choices=["single", "hash", "rr", "kill"], default=["single", "hash", "rr", "kill"],
                   help="real runs: one engine, the pool by session key, round robin, the pool with a replica killed")
    p.add_argument("--homes", type=int, default=6)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--prefix-words", type=int, default=700)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=Path("pool_bench.json"))
    a = p.parse_args(argv)
    result: dict[str, Any] = {}
    if a.only != "real":
        result["simulated"] = run_sim(a)
    if a.only != "sim":
        result["real"] = run_real(a)
    a.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {a.out}")
    return result


if __name__ == "__main__":
    main()

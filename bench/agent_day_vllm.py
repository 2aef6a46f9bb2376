"""The agent day's quick run on the real vLLM, beside what the block model predicts for the very same requests.

    python bench/agent_day.py --only vllm           # needs vLLM and `agentd model import smollm2`

Every request the day sends is also tokenized by the engine itself (``/tokenize``) and fed
to :class:`engine.cache_model.PrefixCacheModel` with the engine's own block size and block
count (from ``vllm:cache_config_info``), so the two columns differ only where the model of
vLLM's cache is wrong.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

from bench.agent_day import Backend, Step, Tokenizer, make_day, run_engine, totals
from engine.cache_model import PrefixCacheModel
from engine.metrics import prefix_cache_counters
from engine.types import Usage

MAX_MODEL_LEN = 16384  # beyond SmolLM2's 8K (prefill only, as on llama.cpp): a wake with five tool results needs it


class VllmBackend(Backend):
    """The real engine answers (prefill only); the block model is fed the engine's own token ids alongside."""

    name = "vllm"

    def __init__(self, client: Any, model: PrefixCacheModel, log: list[tuple[Usage, int | None]]) -> None:
        self.client = client
        self.model = model
        self.log = log  # (what vLLM reported, what the model predicted), in request order, both sides

    def serve(self, messages: list[dict[str, Any]], extra_body: dict[str, Any] | None) -> Usage:
        ids = self.client.tokenize(messages)
        usage: Usage = self.client.chat(messages, max_tokens=1, extra_body=extra_body).usage
        predicted = self.model.request(ids) if ids is not None else None
        self.log.append((usage, predicted))
        return usage


def model_totals(pairs: list[tuple[Usage, int | None]], floor: int) -> dict[str, Any]:
    """The block model's figures for the same requests: vLLM's prompt counts, the model's cached counts."""
    return totals([Usage(u.prompt_tokens, 0, p, None, 0.0) for u, p in pairs], floor)


def run(tok: Tokenizer, workdir: Path, requests: int, model_folder: str) -> dict[str, Any]:
    from engine.supervisor import EngineSupervisor
    from engine.types import EngineSettings

    os.environ["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] = "1"  # read by the engine process, which inherits it
    day: list[Step] = make_day(random.Random(1), 3, 4)
    with tempfile.TemporaryDirectory() as rt:
        sup = EngineSupervisor(EngineSettings("vllm", model_folder, options={"max_model_len": MAX_MODEL_LEN}), Path(rt), health_timeout=600)
        info = sup.start()
        try:
            config = info.cache_config or {}
            block, blocks = int(config["block_size"]), int(config.get("num_gpu_blocks") or 0) or None
            model = PrefixCacheModel(block, blocks)
            log: list[tuple[Usage, int | None]] = []
            client = sup.client()
            before = prefix_cache_counters(client.metrics_text() or "")
            result = run_engine(
                "vllm", day, prefix_words=1100, session_tokens=2500,
                backend_factory=lambda: VllmBackend(client, model, log), tok=tok, workdir=workdir,
                limit=requests + 1 if requests else None, naive_max_tokens=7000, rng_seed=3,
                max_output=3000, context_tokens=MAX_MODEL_LEN,
            )
            after = prefix_cache_counters(client.metrics_text() or "")
        finally:
            sup.stop()
    agentd_n = len(log) - result["naive"]["requests"]  # the agentd side served its whole day first
    kept = result["agentd"]["requests"]
    agentd_pairs, naive_pairs = log[:kept], log[agentd_n:]
    result["block_model"] = {
        "agentd": model_totals(agentd_pairs, result["agentd"]["floor_tokens"]),
        "naive": model_totals(naive_pairs, result["naive"]["floor_tokens"]),
        "requests_equal": sum(1 for u, p in log if p == (u.cached_tokens or 0)),
        "requests": len(log),
    }
    queries = after.get("prefix_cache_queries_tokens", 0) - before.get("prefix_cache_queries_tokens", 0)
    hits = after.get("prefix_cache_hits_tokens", 0) - before.get("prefix_cache_hits_tokens", 0)
    result["vllm_metrics"] = {"queries_tokens": queries, "hits_tokens": hits, "hit_rate": round(hits / queries, 4) if queries else None}
    result["cache_config"] = config
    return result


def print_side_by_side(r: dict[str, Any]) -> None:
    cfg = r["cache_config"]
    print(f"\n== vllm (real engine, SmolLM2-135M fp32, block_size {cfg.get('block_size')}, {cfg.get('num_gpu_blocks')} blocks, "
          f"hash {cfg.get('prefix_caching_hash_algo')}): reported vs block model, same requests ==")
    cols = ["requests", "prompt_tokens", "cached_tokens", "computed_tokens", "hit_rate", "overhead", "wall_s"]
    print(f"{'':22}" + "".join(f"{c:>16}" for c in cols))
    for side in ("agentd", "naive"):
        print(f"{side + ' (vLLM)':22}" + "".join(f"{r[side].get(c, '')!s:>16}" for c in cols))
        print(f"{side + ' (block model)':22}" + "".join(f"{r['block_model'][side].get(c, '')!s:>16}" for c in cols))
    m, b = r["vllm_metrics"], r["block_model"]
    print(f"vLLM /metrics over the run (both sides, whole agentd day): {m['hits_tokens']} of {m['queries_tokens']} tokens hit, rate {m['hit_rate']}")
    print(f"requests where the model's cached count equals vLLM's: {b['requests_equal']} of {b['requests']}")
    print(f"computed(agentd) / computed(naive) = {r['computed_ratio']}")

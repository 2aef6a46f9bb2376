"""Prometheus text from an engine's /metrics, reduced to the prefix-cache counters we report."""

from __future__ import annotations

import re

_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples as (name, labels, value); comments and malformed lines are skipped."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        labels = dict(_LABEL.findall(m["labels"] or ""))
        out.append((m["name"], labels, value))
    return out


def _sum(samples: list[tuple[str, dict[str, str], float]], *names: str) -> float | None:
    values = [v for n, _, v in samples if n in names]
    return sum(values) if values else None


def prefix_cache_counters(text: str) -> dict[str, object]:
    """Queries and hits (in tokens) and the hit rate, from vLLM's or our adapter's metrics."""
    samples = parse(text)
    queries = _sum(samples, "vllm:prefix_cache_queries_total", "vllm:prefix_cache_queries")
    hits = _sum(samples, "vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits")
    if queries is None:
        queries = _sum(samples, "agentd_engine_prompt_tokens_total")
        hits = _sum(samples, "agentd_engine_cached_tokens_total")
    out: dict[str, object] = {}
    if queries is not None:
        out["prefix_cache_queries_tokens"] = int(queries)
        out["prefix_cache_hits_tokens"] = int(hits or 0)
        out["prefix_cache_hit_rate"] = round((hits or 0) / queries, 4) if queries else None
    usage = _sum(samples, "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
    if usage is not None:
        out["kv_cache_usage"] = usage
    preempt = _sum(samples, "vllm:num_preemptions_total")
    if preempt is not None:
        out["preemptions"] = int(preempt)
    for name, labels, _ in samples:
        if name == "vllm:cache_config_info":
            out["cache_config"] = {k: labels[k] for k in ("block_size", "enable_prefix_caching", "prefix_caching_hash_algo", "num_gpu_blocks") if k in labels}
            break
    pinned = _sum(samples, "agentd_engine_pinned_prefixes")
    if pinned is not None:
        out["pinned_prefixes"] = int(pinned)
    return out

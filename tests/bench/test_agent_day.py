"""The quick agent day on the vLLM cache model: structure and the invariants the benchmark exists to show."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from bench.agent_day import ModelBackend, Tokenizer, make_day, run_engine  # noqa: E402


def test_quick_day_on_the_vllm_model() -> None:
    tok = Tokenizer()
    day = make_day(random.Random(1), 3, 4)
    r = run_engine("vllm_model", day, prefix_words=6000, session_tokens=6000,
                   backend_factory=lambda: ModelBackend(tok, capacity_blocks=40_000), tok=tok,
                   naive_limit=None, naive_max_tokens=None, rng_seed=2)
    a, b = r["agentd"], r["naive"]
    for side in (a, b):
        assert set(side) >= {"requests", "prompt_tokens", "cached_tokens", "computed_tokens", "hit_rate", "floor_tokens", "overhead"}
        assert side["computed_tokens"] == side["prompt_tokens"] - side["cached_tokens"]
    assert a["hit_rate"] > b["hit_rate"]
    assert a["computed_tokens"] < b["computed_tokens"] and r["computed_ratio"] < 0.5
    assert a["computed_tokens"] >= a["floor_tokens"] * 0.95  # nobody beats the floor (block rounding aside)
    assert a["requests"] == b["requests"] + 1  # agentd's extra request is the warm-up


def test_naive_history_holds_each_event_once(tmp_path: Path) -> None:
    """The naive side re-sends its whole history, but never appends a turn twice
    (agentd dropping an empty heartbeat from its tail must not look like a rewrite)."""
    from bench.agent_day import make_home, naive_requests, run_agentd

    tok = Tokenizer()
    day = make_day(random.Random(1), 3, 4)
    home = make_home(tmp_path / "home", random.Random(2), 600, 6000)
    recorded = run_agentd(home, day, ModelBackend(tok, capacity_blocks=40_000))
    last, _ = naive_requests(home, recorded, None, None)[-1]
    events = [str(m["content"]) for m in last if m["role"] == "user" and str(m["content"]).startswith(("[Message", "[Heartbeat", "[Scheduled"))]
    assert events and len(events) == len(set(events))
    assert sum(1 for s in day if s.kind != "edit_user") >= len(events)

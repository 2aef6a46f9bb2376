"""The merge benchmark on a small generated pair: nothing lost, the double's folds and finds checked independently."""

from __future__ import annotations

from bench.merge import _Scripted, run


def test_merge_bench_loses_no_line_and_no_entry() -> None:
    union = run("no model", None, per_side=24, seed=3, days=6)
    double = run("scripted double", _Scripted, per_side=24, seed=3, days=6)
    chunked = run("scripted double, small window", _Scripted, per_side=24, seed=3, days=6, window=900)
    for figures in (union, double, chunked):
        assert figures["lines of either side lost"] == 0
        assert figures["journal entries of either side lost"] == 0
        assert figures["deleted lines that came back"] == 0
    assert chunked["memory files the model's answer was rejected for"] == 0
    assert union["planted contradictions found"] == "0 / 10" and union["near-duplicates left"] == 6
    assert double["planted contradictions found"] == "10 / 10" and double["near-duplicates left"] == 0
    assert double["lines folded by the model (each accounted for)"] == 6

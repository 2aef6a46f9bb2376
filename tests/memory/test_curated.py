"""Curated memory: remember, search, forget; MEMORY.md stays within budget and nothing is lost."""

from __future__ import annotations

from agentd.home import Home
from memory import curated
from memory.search import SearchIndex


def test_remember_then_search(home: Home) -> None:
    changed = curated.remember(home, "Plants", "The fern is watered on Sundays", budget_chars=4000)
    assert "memory/topics/plants.md" in changed and "memory/MEMORY.md" in changed
    assert "- [[topics/plants]] Plants: The fern is watered on Sundays" in (home.root / "memory/MEMORY.md").read_text()
    assert curated.remember(home, "Plants", "The fern is watered on Sundays", budget_chars=4000) == []  # no duplicate
    hit = SearchIndex(home.root)
    hit.update()
    assert hit.search("fern watered")[0].path.startswith("memory/")


def test_budget_folds_old_index_lines_without_losing_them(home: Home) -> None:
    budget = len((home.root / "memory/MEMORY.md").read_text()) + 400
    for i in range(30):
        curated.remember(home, f"topic {i}", f"fact number {i}", budget_chars=budget)
    memory = (home.root / "memory/MEMORY.md").read_text()
    assert len(memory) <= budget
    overflow = (home.root / "memory/topics/index.md").read_text()
    for i in range(30):
        assert f"[[topics/topic-{i}]]" in memory + overflow
        assert f"fact number {i}" in (home.root / f"memory/topics/topic-{i}.md").read_text()


def test_forget(home: Home) -> None:
    curated.remember(home, "pets", "the cat is called Tom", budget_chars=4000)
    curated.forget(home, "pets", "Tom")
    assert "Tom" not in (home.root / "memory/topics/pets.md").read_text()
    assert "[[topics/pets]]" not in (home.root / "memory/MEMORY.md").read_text()

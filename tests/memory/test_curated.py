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


def test_budget_holds_exactly_with_the_link_to_folded_lines(home: Home) -> None:
    import shutil

    start = (home.root / "memory/MEMORY.md").read_text()
    for extra in range(190, 215):  # budgets that land the first fold at every distance from the limit
        (home.root / "memory/MEMORY.md").write_text(start)  # back to HEAD's content
        shutil.rmtree(home.root / "memory/topics", ignore_errors=True)
        home.forget_reads()
        for i in range(12):
            curated.remember(home, f"topic {i}", f"fact number {i} " + "x" * 40, budget_chars=len(start) + extra)
            memory = (home.root / "memory/MEMORY.md").read_text()
            assert len(memory) <= len(start) + extra, (extra, i, len(memory))
        assert "[[topics/index]]" in memory


def test_person_prose_is_never_folded_and_remember_says_why_it_is_over_budget(home: Home) -> None:
    from datetime import UTC, datetime

    from agentd.config import load_config
    from agentd.events import Event
    from agentd.tools.base import ToolContext
    from agentd.wiring import build_registry

    prose = "# Memory\n" + "A paragraph the person wrote. " * 200 + "\n"
    (home.root / "memory/MEMORY.md").write_text(prose)
    home.absorb_person_edits()
    config = load_config(home.root)
    ctx = ToolContext(home, config, Event("message", "x", datetime.now(UTC)), "w")
    out = build_registry().execute(ctx, "remember", {"topic": "pets", "fact": "the cat is called Tom"})
    assert out.ok and "over its budget" in out.text and "person's prose" in out.text and "housekeeping" in out.text
    memory = (home.root / "memory/MEMORY.md").read_text()
    assert memory.startswith(prose.rstrip("\n"))  # the person's words, untouched
    assert "the cat is called Tom" in (home.root / "memory/topics/pets.md").read_text()
    assert curated.budget_note(home, 10**6) is None


def test_forget_refuses_an_empty_text(home: Home) -> None:
    import pytest

    curated.remember(home, "cars", "blue car", budget_chars=4000)
    curated.remember(home, "cars", "red bike", budget_chars=4000)
    for empty in ("", "   "):
        with pytest.raises(ValueError, match="empty text would match every fact"):
            curated.forget(home, "cars", empty)
    assert "blue car" in (home.root / "memory/topics/cars.md").read_text()
    from datetime import UTC, datetime

    from agentd.config import load_config
    from agentd.events import Event
    from agentd.tools.base import ToolContext
    from agentd.wiring import build_registry

    ctx = ToolContext(home, load_config(home.root), Event("message", "x", datetime.now(UTC)), "w")
    out = build_registry().execute(ctx, "forget", {"topic": "cars", "fact": ""})
    assert not out.ok and "must not be empty" in out.text
    assert "red bike" in (home.root / "memory/topics/cars.md").read_text()


def test_forget_clears_folded_index_lines_and_stale_gists(home: Home) -> None:
    budget = len((home.root / "memory/MEMORY.md").read_text()) + 200
    for i in range(8):
        curated.remember(home, f"topic {i}", f"fact number {i}", budget_chars=budget)
    overflow = (home.root / "memory/topics/index.md").read_text()
    assert "[[topics/topic-0]]" in overflow
    curated.forget(home, "topic 0", "fact number 0")
    assert "[[topics/topic-0]]" not in (home.root / "memory/topics/index.md").read_text()
    # A topic keeps its index line, but the line no longer quotes what was forgotten.
    curated.remember(home, "pets", "the dog is Rex", budget_chars=4000)
    curated.remember(home, "pets", "the cat is Tom", budget_chars=4000)
    changed = curated.forget(home, "pets", "Tom")
    memory = (home.root / "memory/MEMORY.md").read_text()
    assert "Tom" not in memory and "- [[topics/pets]] pets: the dog is Rex" in memory and "memory/MEMORY.md" in changed

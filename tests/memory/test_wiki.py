"""The knowledge base with a scripted engine: pages, backlinks, index, incremental recompiles, lint."""

from __future__ import annotations

import json

from agentd.home import AGENT, Home
from memory.wiki import compile_wiki, html_to_markdown, lint_wiki, pending_sources
from tests.doubles.scripted_engine import ScriptedEngine


def page(title: str, summary: str, topics: list[str]) -> str:
    return json.dumps({"title": title, "summary": summary, "topics": topics})


def test_compile_incremental_and_lint(home: Home) -> None:
    raw = home.root / "raw"
    raw.mkdir()
    (raw / "espresso.md").write_text("# Espresso\nEspresso is brewed under pressure.\n")
    (raw / "grinders.txt").write_text("Burr grinders give an even grind for espresso.\n")
    (raw / "tea.html").write_text("<html><head><title>x</title></head><body><h1>Green tea</h1><p>Steep at 80 degrees.</p></body></html>")
    engine = ScriptedEngine()
    engine.enqueue(page("Espresso", "Espresso is coffee brewed under pressure.", ["coffee", "brewing"]))
    engine.enqueue(page("Grinders", "Burr grinders grind evenly.", ["coffee", "tools"]))
    engine.enqueue(page("Green Tea", "Green tea steeps at 80 degrees.", ["tea", "brewing"]))
    report = compile_wiki(home, engine)
    assert report.compiled == ["raw/espresso.md", "raw/grinders.txt", "raw/tea.html"]
    assert "Green tea" in engine.requests[2]["messages"][1]["content"] and "<h1>" not in engine.requests[2]["messages"][1]["content"]
    espresso = (home.root / "wiki/Espresso.md").read_text()
    assert "[[Grinders]]" in espresso and "[[Green Tea]]" in espresso
    index = (home.root / "wiki/index.md").read_text()
    assert all(f"[[{p}]]" in index for p in ("Espresso", "Grinders", "Green Tea"))
    home.commit("wiki", identity=AGENT, all_changes=True)
    assert pending_sources(home) == []

    (raw / "grinders.txt").write_text("Burr grinders give an even grind. Blade grinders do not.\n")
    engine.enqueue(page("Grinders", "Burr grinders grind evenly; blade grinders do not.", ["coffee", "tools"]))
    calls_before = len(engine.requests)
    report = compile_wiki(home, engine)
    assert report.compiled == ["raw/grinders.txt"] and len(engine.requests) == calls_before + 1
    assert "blade grinders" in (home.root / "wiki/Grinders.md").read_text()

    assert lint_wiki(home).broken == [] and lint_wiki(home).orphans == []
    (home.root / "wiki/Notes.md").write_text("# Notes\nSee [[Missing Page]].\n")
    lint = lint_wiki(home)
    assert ("Notes", "Missing Page") in lint.broken and "Notes" in lint.orphans
    assert "broken link: Notes → [[Missing Page]]" in lint.text()


def test_contradiction_heuristic(home: Home) -> None:
    (home.root / "wiki").mkdir()
    (home.root / "wiki/A.md").write_text("# A\nThe server is reachable from outside. See [[B]].\n")
    (home.root / "wiki/B.md").write_text("# B\nThe server is not reachable from outside. See [[A]].\n")
    assert lint_wiki(home).contradictions


def test_html_conversion() -> None:
    md = html_to_markdown("<h2>Title</h2><p>One <a href='http://x'>link</a>.</p><ul><li>a</li><li>b</li></ul><script>evil()</script>")
    assert "## Title" in md and "[link](http://x)" in md and "- a" in md and "evil" not in md

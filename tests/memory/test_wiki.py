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


def _compiled_grinders(home: Home) -> None:
    (home.root / "raw").mkdir()
    (home.root / "raw/g.md").write_text("grinders v1\n")
    engine = ScriptedEngine()
    engine.enqueue(page("Grinders", "v1", ["coffee"]))
    compile_wiki(home, engine)
    home.commit("wiki", identity=AGENT, all_changes=True)


def test_a_page_edited_during_the_compile_is_kept_and_committed_as_the_persons(home: Home) -> None:
    from datetime import UTC, datetime

    from agentd.config import load_config
    from agentd.events import Event
    from agentd.loop import wake
    from agentd.wiring import build_agent
    from engine.types import ChatResult, Usage

    _compiled_grinders(home)
    (home.root / "raw/g.md").write_text("grinders v2\n")
    home.absorb_person_edits()
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    engine = ScriptedEngine()
    engine.enqueue_action("kb_compile")

    def person_edits_the_page_while_the_model_thinks(messages: list[dict[str, object]]) -> ChatResult:
        p = home.root / "wiki/Grinders.md"
        p.write_text(p.read_text() + "\nMY OWN NOTE typed by the person\n")
        return ChatResult(page("Grinders", "v2", ["coffee"]), [], "stop", Usage(0, 5, None, None, 0.0), "s")

    engine.queue.append(person_edits_the_page_while_the_model_thinks)
    engine.enqueue_action("done", summary="compiled")
    wake(build_agent(home, load_config(home.root), engine, clock=lambda: now), Event("cron", "kb", now, name="kb"))

    assert "MY OWN NOTE" in (home.root / "wiki/Grinders.md").read_text()
    log = home.repo.git.log("--format=%an|%s", "--", "wiki/Grinders.md").splitlines()
    assert log[0].startswith("Test Person|person: edited wiki/Grinders.md during a wake"), log
    assert "MY OWN NOTE" in home.repo.git.show("HEAD:wiki/Grinders.md")
    told = engine.requests[2]["messages"][-1]["content"]
    assert "wiki/Grinders.md" in told and "their version is kept" in told
    assert pending_sources(home) == ["raw/g.md"]  # tried again next time


def test_the_page_of_a_deleted_source_goes_through_the_write_ahead_log(home: Home) -> None:
    from agentd.wal import WriteAheadLog

    _compiled_grinders(home)
    (home.root / "raw/g.md").unlink()
    wal = WriteAheadLog(home.runtime)
    wal.begin("test wake")
    report = compile_wiki(home, ScriptedEngine())
    assert "wiki/Grinders.md" in report.pages_written and not (home.root / "wiki/Grinders.md").exists()
    wal.roll_back(home)  # the wake died before its commit: the page comes back
    assert (home.root / "wiki/Grinders.md").read_text().startswith("# Grinders")
    assert home.dirty_paths() == ["raw/g.md"]

    # A page of a deleted source that the person edited meanwhile is theirs: it stays.
    report = compile_wiki(home, ScriptedEngine())
    home.commit("wiki", identity=AGENT, all_changes=True)
    assert "Grinders" not in home.repo.git.ls_files("wiki")
    assert not (home.root / "wiki/Grinders.md").exists()
    assert not (home.runtime / "trash").exists()  # deleted, not kept in a pile nobody empties
    (home.root / "raw/h.md").write_text("hoppers\n")
    engine = ScriptedEngine()
    engine.enqueue(page("Hoppers", "v1", ["coffee"]))
    compile_wiki(home, engine)
    home.commit("wiki", identity=AGENT, all_changes=True)
    (home.root / "raw/h.md").unlink()
    (home.root / "wiki/Hoppers.md").write_text((home.root / "wiki/Hoppers.md").read_text() + "my note\n")
    report = compile_wiki(home, ScriptedEngine())
    assert report.stale == ["wiki/Hoppers.md"] and "my note" in (home.root / "wiki/Hoppers.md").read_text()


def test_a_source_titled_index_does_not_replace_the_index(home: Home) -> None:
    raw = home.root / "raw"
    raw.mkdir()
    (raw / "a.md").write_text("a\n")
    (raw / "b.md").write_text("b\n")
    engine = ScriptedEngine()
    engine.enqueue(page("Index", "About indexes.", ["x"]))
    engine.enqueue(page("Other", "Something else.", ["x"]))
    compile_wiki(home, engine)
    index = (home.root / "wiki/index.md").read_text()
    assert index.startswith("# Wiki index") and "[[Other]]" in index and "[[Index 2]]" in index
    assert (home.root / "wiki/Index 2.md").read_text().startswith("# Index")
    lint = lint_wiki(home)
    assert lint.clashes and "raw/a.md" in lint.clashes[0] and "name clash" in lint.text()

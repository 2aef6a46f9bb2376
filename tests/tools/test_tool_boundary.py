"""The tool boundary: bad text and deep nesting are refused, a tool that raises never aborts the wake,
and files.allow folders outside the home get the same stale-write guard as the home."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.loop import wake
from agentd.tools.base import ToolContext
from agentd.wiring import build_agent, build_registry
from tests.doubles.scripted_engine import ScriptedEngine

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def ctx(home: Home) -> ToolContext:
    return ToolContext(home, load_config(home.root), Event("message", "x", NOW), "w")


def allow_folder(home: Home, folder: Path) -> None:
    path = home.root / "agent.yaml"
    path.write_text(path.read_text().replace("files:\n  allow: []", f"files:\n  allow: [{folder}]"))


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("write_file", '{"path": "a.md", "content": "bad \\ud800 text"}'),
        ("read_file", '{"path": "\\ud800"}'),
        ("list_files", '{"path": "\\udfff"}'),
        ("edit_file", '{"path": "USER.md", "old": "x", "new": "\\ud800"}'),
        ("remember", '{"topic": "t", "fact": "\\ud800"}'),
        ("memory_search", '{"query": "\\ud800 x"}'),
        ("write_file", {"path": "a.md", "content": "\ud800"}),
        ("write_file", {"path": "a.md", "content": "x", "\udc80": 1}),
    ],
)
def test_lone_surrogates_are_refused_with_a_clear_error(home: Home, name: str, arguments: str | dict[str, object]) -> None:
    out = build_registry().execute(ctx(home), name, arguments)
    assert not out.ok and "not valid Unicode text" in out.text, out.text
    out.text.encode("utf-8")  # the error itself can be written anywhere
    assert not (home.root / "a.md").exists()


def test_deep_nesting_is_refused(home: Home) -> None:
    registry = build_registry()
    out = registry.execute(ctx(home), "memory_search", "[" * 100_000 + "]" * 100_000)
    assert not out.ok and "nested too deeply" in out.text
    deep: object = "x"
    for _ in range(200):
        deep = [deep]
    out = registry.execute(ctx(home), "write_file", {"path": "a.md", "content": deep})
    assert not out.ok and "nested more than" in out.text


def test_an_unexpected_exception_becomes_an_error_the_model_reads(home: Home, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from memory.search import SearchIndex

    def broken(self: SearchIndex, query: str, k: int = 8) -> list[object]:
        raise RuntimeError("index exploded")

    monkeypatch.setattr(SearchIndex, "search", broken)
    with caplog.at_level(logging.ERROR, logger="agentd"):
        out = build_registry().execute(ctx(home), "memory_search", {"query": "x"})
    assert not out.ok and out.text.startswith("error:") and "RuntimeError: index exploded" in out.text
    record = next(r for r in caplog.records if "memory_search" in r.getMessage())
    assert record.exc_info is not None  # the developer gets the traceback in the log


def test_a_bad_tool_call_does_not_abort_the_wake(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue('{"tool": "write_file", "arguments": {"path": "notes/a.md", "content": "bad \\ud800 surrogate"}}')
    engine.enqueue_action("reply", text="could not write that")
    (home.root / "inbox/m.md").write_text("hi\n")
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    result = wake(agent, Event("message", "hi", NOW, name="m", source="inbox/m.md"))
    assert result.status == "ok", result.error
    assert "not valid Unicode text" in engine.requests[1]["messages"][-1]["content"]
    assert not (home.root / "notes/a.md").exists() and home.dirty_paths() == []


def test_edit_file_refuses_files_that_are_not_utf8(home: Home, tmp_path: Path) -> None:
    outside = tmp_path / "allowed"
    outside.mkdir()
    allow_folder(home, outside)
    home.absorb_person_edits()
    latin1 = "café\n".encode("latin-1")
    (outside / "l.txt").write_bytes(latin1)
    (home.root / "l.md").write_bytes(latin1)
    registry = build_registry()
    for path in (str(outside / "l.txt"), "l.md"):
        out = registry.execute(ctx(home), "edit_file", {"path": path, "old": "caf", "new": "CAF"})
        assert not out.ok and "not UTF-8 text" in out.text, out.text
    assert (outside / "l.txt").read_bytes() == latin1 and (home.root / "l.md").read_bytes() == latin1


def test_stale_write_guard_in_allowed_folders(home: Home, tmp_path: Path) -> None:
    outside = tmp_path / "allowed"
    outside.mkdir()
    allow_folder(home, outside)
    target = outside / "plans.md"
    target.write_text("# Plans\n- buy milk\n")
    registry = build_registry()
    c = ctx(home)
    # Never read: refused (there is no git history out here to keep the other version in).
    out = registry.execute(c, "write_file", {"path": str(target), "content": "# mine\n"})
    assert not out.ok and "read it first" in out.text and "buy milk" in target.read_text()
    # Read, then the person edits, then the agent writes: refused, the person's text stays.
    assert registry.execute(c, "read_file", {"path": str(target)}).ok
    target.write_text("# Plans\n- buy milk\n- call the plumber (typed by the person)\n")
    out = registry.execute(c, "write_file", {"path": str(target), "content": "# Plans\n- buy oat milk\n"})
    assert not out.ok and "changed since the agent last read it" in out.text, out.text
    assert "typed by the person" in target.read_text()
    # Deleted since it was read: refused too (nothing is recreated over someone's deletion unseen).
    gone = outside / "gone.md"
    gone.write_text("x\n")
    assert registry.execute(c, "read_file", {"path": str(gone)}).ok
    gone.unlink()
    assert not registry.execute(c, "write_file", {"path": str(gone), "content": "y\n"}).ok
    # Read again, then edit (edit_file reads the file itself): fine; and a new file needs no read.
    assert registry.execute(c, "read_file", {"path": str(target)}).ok
    assert registry.execute(c, "edit_file", {"path": str(target), "old": "- buy milk", "new": "- buy oat milk"}).ok
    assert registry.execute(c, "write_file", {"path": str(outside / "new.md"), "content": "new\n"}).ok
    assert registry.execute(c, "edit_file", {"path": str(outside / "new.md"), "old": "new", "new": "newer"}).ok
    assert "oat milk" in target.read_text() and "typed by the person" in target.read_text()

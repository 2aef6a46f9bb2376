"""File tools: confinement, stale writes, exact edits, bounded listings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.tools.base import ToolContext, ToolRegistry
from agentd.tools.files import EditFileTool, ListFilesTool, ReadFileTool, WriteFileTool

REG = ToolRegistry([ReadFileTool(), WriteFileTool(), EditFileTool(), ListFilesTool()])


def ctx(home: Home) -> ToolContext:
    return ToolContext(home, load_config(home.root), Event("message", "x", datetime.now(UTC)), "w")


def test_confinement(home: Home, tmp_path: Path) -> None:
    c = ctx(home)
    (tmp_path / "secret.txt").write_text("outside")
    (home.root / "escape").symlink_to(tmp_path)
    for path in ["../secret.txt", str(tmp_path / "secret.txt"), "escape/secret.txt", ".git/config", ".agentd/ledger.db", "memory/../../x"]:
        out = REG.execute(c, "read_file", {"path": path})
        assert not out.ok and ("outside the home" in out.text or "runtime folder" in out.text or ".git" in out.text), (path, out.text)
    out = REG.execute(c, "write_file", {"path": "escape/new.txt", "content": "x"})
    assert not out.ok and not (tmp_path / "new.txt").exists()


def test_allowed_outside_folder(home: Home, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (home.root / "agent.yaml").write_text((home.root / "agent.yaml").read_text().replace("files:\n  allow: []", f"files:\n  allow: [{notes}]"))
    c = ctx(home)
    assert REG.execute(c, "write_file", {"path": str(notes / "a.md"), "content": "hi\n"}).ok
    assert (notes / "a.md").read_text() == "hi\n"


def test_stale_write_refused(home: Home) -> None:
    c = ctx(home)
    assert REG.execute(c, "read_file", {"path": "USER.md"}).ok
    (home.root / "USER.md").write_text("# the person typed this\n")
    out = REG.execute(c, "write_file", {"path": "USER.md", "content": "agent\n"})
    assert not out.ok and "changed since the agent last read it" in out.text
    assert (home.root / "USER.md").read_text() == "# the person typed this\n"


def test_edit_file_exact_once(home: Home) -> None:
    c = ctx(home)
    REG.execute(c, "write_file", {"path": "t.md", "content": "a b a\n"})
    assert "occurs 2 times" in REG.execute(c, "edit_file", {"path": "t.md", "old": "a", "new": "c"}).text
    assert "not in t.md" in REG.execute(c, "edit_file", {"path": "t.md", "old": "zzz", "new": "c"}).text
    assert REG.execute(c, "edit_file", {"path": "t.md", "old": "a b", "new": "x y"}).ok
    assert (home.root / "t.md").read_text() == "x y a\n"
    assert c.changed == ["t.md"]


def test_read_window_and_list(home: Home) -> None:
    c = ctx(home)
    REG.execute(c, "write_file", {"path": "long.md", "content": "".join(f"line {i}\n" for i in range(1, 1001))})
    out = REG.execute(c, "read_file", {"path": "long.md", "offset_line": 10, "max_lines": 5}).text
    assert "   10  line 10" in out and "offset_line=15" in out
    for i in range(250):
        (home.root / "many" / f"{i:03d}.md").parent.mkdir(exist_ok=True)
        (home.root / "many" / f"{i:03d}.md").write_text("x")
    listing = REG.execute(c, "list_files", {"path": "many", "pattern": "*.md"}).text
    assert listing.startswith("000.md") and "50 more not shown" in listing
    assert ".git/" not in REG.execute(c, "list_files", {}).text


def test_the_agent_cannot_rewrite_its_own_sandbox_settings(home: Home, tmp_path: Path) -> None:
    """agent.yaml says what commands may reach: the agent reads it, only the person changes it."""
    c = ctx(home)
    before = (home.root / "agent.yaml").read_text()
    assert REG.execute(c, "read_file", {"path": "agent.yaml"}).ok
    wider = before.replace("files:\n  allow: []", f"files:\n  allow: [{tmp_path}]")
    write = REG.execute(c, "write_file", {"path": "agent.yaml", "content": wider})
    edit = REG.execute(c, "edit_file", {"path": "agent.yaml", "old": "network: on", "new": "network: off"})
    assert not write.ok and not edit.ok and "only the person changes it" in write.text
    assert (home.root / "agent.yaml").read_text() == before

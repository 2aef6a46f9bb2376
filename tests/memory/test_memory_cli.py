"""The memory and skills CLI: `agentd search`, `agentd reindex`, `agentd skills`, through click."""

from __future__ import annotations

from click.testing import CliRunner

from agentd.cli import cli
from agentd.home import Home


def run(home: Home, *args: str) -> str:
    res = CliRunner().invoke(cli, ["--home", str(home.root), *args])
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


def test_search_finds_the_line_and_says_when_nothing_matches(home: Home) -> None:
    lines = [f"filler line {i}" for i in range(60)]
    lines[41] = "the quokka lives on Rottnest island"
    (home.root / "notes").mkdir()
    (home.root / "notes/animals.md").write_text("\n".join(lines) + "\n")
    out = run(home, "search", "line quokka")
    assert out.splitlines()[0].startswith("notes/animals.md:42: ") and "[quokka]" in out
    assert run(home, "search", "zxqvbnmw").strip() == "no matches"
    (home.root / "notes/more.md").write_text("quokka\n" * 3)
    assert len(run(home, "search", "quokka", "-k", "1").splitlines()) == 1


def test_reindex_rebuilds_from_the_files(home: Home) -> None:
    (home.root / "notes.md").write_text("# Notes\nthe wombat digs\n")
    assert "wombat" in run(home, "search", "wombat")
    db = home.runtime / "search.db"
    db.unlink()  # the index is only a cache of the files
    out = run(home, "reindex")
    tracked = len([p for p in home.repo.git.ls_files("*.md").splitlines() if p]) + 1  # + the untracked notes.md
    assert out.strip() == f"search index rebuilt ({tracked} files)"
    assert run(home, "search", "wombat").startswith("notes.md:2: ")
    (home.root / "notes.md").unlink()
    run(home, "reindex")
    assert run(home, "search", "wombat").strip() == "no matches"


def test_skills_lists_sources_overrides_and_errors(home: Home) -> None:
    out = run(home, "skills")
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert set(rows) == {"daily-briefing", "housekeeping", "knowledge-base"}
    assert all(" built-in " in row for row in rows.values())
    (home.root / "skills/housekeeping").mkdir(parents=True)
    (home.root / "skills/housekeeping/SKILL.md").write_text("---\nname: housekeeping\ndescription: My own way.\n---\nMine.\n")
    (home.root / "skills/broken").mkdir()
    (home.root / "skills/broken/SKILL.md").write_text("---\nname: broken\ndescription: [unclosed\n---\nbody\n")
    out = run(home, "skills")
    housekeeping = next(line for line in out.splitlines() if line.startswith("housekeeping"))
    assert " home " in housekeeping and "My own way." in housekeeping
    error = next(line for line in out.splitlines() if line.startswith("error:"))
    assert "skills/broken/SKILL.md:3:" in error

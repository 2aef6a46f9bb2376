"""FTS5 search: incremental from git, deletions, rebuild equivalence, lines, hostile queries."""

from __future__ import annotations

from agentd.home import AGENT, Home
from memory.search import SearchIndex


def commit(home: Home) -> None:
    home.commit("test", identity=AGENT, all_changes=True)


def test_incremental_update_touches_only_changed_files(home: Home) -> None:
    for i in range(5):
        (home.root / "notes" / f"n{i}.md").parent.mkdir(exist_ok=True)
        (home.root / "notes" / f"n{i}.md").write_text(f"# Note {i}\n\nabout topic{i}\n")
    commit(home)
    idx = SearchIndex(home.root)
    first = idx.update()
    assert first >= 5
    assert idx.update() == 0
    (home.root / "notes/n2.md").write_text("# Note 2\n\nnow about zebras\n")
    commit(home)
    assert idx.update() == 1
    (home.root / "notes/n3.md").write_text("# Note 3\n\nuncommitted giraffes\n")  # a dirty file counts too
    assert idx.update() == 1
    assert idx.search("giraffes")[0].path == "notes/n3.md"
    (home.root / "notes/n4.md").unlink()
    commit(home)
    idx.update()
    assert idx.search("topic4") == []


def test_rebuild_equals_incremental(home: Home) -> None:
    (home.root / "a.md").write_text("alpha beta\n")
    commit(home)
    idx = SearchIndex(home.root)
    idx.update()
    (home.root / "a.md").write_text("alpha gamma\n")
    (home.root / "b.md").write_text("gamma delta\n")
    idx.update()
    incremental = [(h.path, h.line) for h in idx.search("gamma")]
    idx.rebuild()
    assert sorted(incremental) == sorted((h.path, h.line) for h in idx.search("gamma"))


def test_hits_point_at_the_right_line(home: Home) -> None:
    lines = [f"filler line {i}" for i in range(100)]
    lines[73] = "the quokka lives on Rottnest island"
    (home.root / "big.md").write_text("\n".join(lines) + "\n")
    idx = SearchIndex(home.root)
    idx.update()
    hit = idx.search("quokka")[0]
    assert (hit.path, hit.line) == ("big.md", 74)
    assert "[quokka]" in hit.snippet
    # Several words: the line with the most of them, the rarest breaking a tie, else the first.
    for query in ("line quokka", "filler quokka", "quokka island", "Rottnest line"):
        hit = idx.search(query)[0]
        assert (hit.path, hit.line) == ("big.md", 74), (query, hit)
    lines[79] = "a quokka line: the quokka and the island of Rottnest"
    lines[90] = "quokka again"
    (home.root / "big.md").write_text("\n".join(lines) + "\n")
    idx.update()
    assert idx.search("quokka Rottnest line")[0].line == 80  # all three terms beat two
    assert idx.search("filler")[0].line in (1, 41, 81)  # every line ties: the first of its chunk


def test_hostile_queries_do_not_raise(home: Home) -> None:
    idx = SearchIndex(home.root)
    idx.update()
    for q in ['"', "AND OR NOT", "a* OR (", "NEAR(x y)", "'; DROP TABLE files; --", "", "💥", "col:val"]:
        idx.search(q)

"""`agentd fork` and `agentd merge` on real homes: forked and diverged by scripted wakes, unrelated, refused, undone."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from agentd.config import load_config
from agentd.context import build_prefix
from agentd.errors import HomeError, LockedError, SourceError, UserError
from agentd.fileio import file_lock
from agentd.home import AGENT, Home
from agentd.merge.attributes import install_drivers
from agentd.merge.kinds import content_lines, has_markers
from agentd.merge.orchestrator import abort_merge, merge_home
from agentd.template import init_home
from agentd.wiring import build_agent, session_key
from tests.doubles.merge_model import careful_merge, garbage
from tests.doubles.scripted_engine import ScriptedEngine
from tests.merge.conftest import DAY, Pair, git, scripted_wake


def memory_lines(home: Home, commit: str) -> dict[str, set[str]]:
    """Every memory file's content lines at ``commit``."""
    out: dict[str, set[str]] = {}
    for path in git(home.root, "ls-tree", "-r", "--name-only", commit).split():
        if path == "memory/MEMORY.md" or path.startswith("memory/topics/"):
            out[path] = {x.strip() for x in content_lines(git(home.root, "show", f"{commit}:{path}"))}
    return out


def engine_with(*answers: object, n: int = 12) -> ScriptedEngine:
    engine = ScriptedEngine()
    for _ in range(n):
        engine.queue.extend(answers)  # type: ignore[arg-type]
    return engine


def test_fork_has_its_own_id_the_shared_history_and_an_empty_inbox(home: Home, tmp_path: Path) -> None:
    from agentd.merge.orchestrator import fork_home

    (home.root / "inbox" / "waiting.md").write_text("answer me\n")
    forked = fork_home(home, tmp_path / "fork", new_id=lambda: "agentd-fork000000000000")
    assert load_config(forked.root).id == "agentd-fork000000000000"
    assert session_key(forked, load_config(forked.root)) == "agentd-fork000000000000"
    assert session_key(home, load_config(home.root)) != session_key(forked, load_config(forked.root))
    assert not (forked.root / "inbox" / "waiting.md").exists() and (home.root / "inbox" / "waiting.md").exists()
    first = git(home.root, "rev-list", "--max-parents=0", "HEAD").strip()
    assert git(forked.root, "rev-list", "--max-parents=0", "HEAD").strip() == first
    assert (forked.root / ".gitattributes").is_file() and "agentd-memory" in git(forked.root, "config", "--get-regexp", "merge")
    assert forked.dirty_paths() == []


def test_forked_homes_diverged_by_scripted_wakes_merge_with_nothing_lost(forked: Pair) -> None:
    ours, theirs = forked.ours, forked.theirs
    our_id = load_config(ours.root).id
    old = ours.repo.head.commit.hexsha
    their_head = theirs.repo.head.commit.hexsha
    out = merge_home(ours, str(theirs.root), engine=engine_with(careful_merge), merge_id="m1")
    head = ours.repo.head.commit
    assert [p.hexsha for p in head.parents] == [old, their_head] and out.commit == head.hexsha
    before = [memory_lines(ours, old), memory_lines(ours, their_head)]
    after = memory_lines(ours, "HEAD")
    folded = {m.path: m for m in out.memory}
    for side in before:
        for path, lines in side.items():
            missing = lines - after[path]
            assert len(missing) <= (folded[path].folded if path in folded else 0), (path, missing)
    assert out.lines_lost == 0 and out.lines_folded >= 1  # "alice likes tea." went into "Alice likes tea"
    assert any("8080" in a + b and "9090" in a + b for _, a, b in out.contradictions)
    trailers = head.message
    for key in ("Merge-From", "Lines-Ours", "Lines-Theirs", "Lines-Kept", "Lines-Merged", "Contradictions", "Conflicts-For-Person"):
        assert f"\n{key}: " in trailers
    journal = (ours.root / "memory/journal/2026-11-23.md").read_text()
    times = [line[3:8] for line in journal.splitlines() if line.startswith("## ")]
    assert times == sorted(times) and len(times) == 8  # four wakes a side, in time order
    assert load_config(ours.root).id == our_id != load_config(theirs.root).id  # this home stays who it was
    assert out.report and (ours.root / out.report).is_file()  # the contradiction waits for the person
    assert [p for p in ours.dirty_paths() if not p.startswith("inbox/")] == []
    note = [p for p in ours.dirty_paths() if p.startswith("inbox/")]
    assert len(note) == 1 and "merged" in (ours.root / note[0]).read_text()
    git(ours.root, "fsck", "--strict")


def test_unrelated_homes_merge_with_their_histories_joined(tmp_path: Path) -> None:
    a, b = init_home(tmp_path / "a"), init_home(tmp_path / "b")
    # Two inits in one second by one identity make the very same commit; these met as strangers.
    subprocess.run(["git", "commit", "-q", "--amend", "--no-edit", "--date=2025-01-01T00:00:00"], cwd=b.root, check=True,
                   env={**os.environ, "GIT_COMMITTER_DATE": "2025-01-01T00:00:00"})
    assert not subprocess.run(["git", "merge-base", "HEAD", a.repo.head.commit.hexsha], cwd=b.root, capture_output=True).stdout
    scripted_wake(a, DAY, "a0", [("people", "Dana keeps bees")])
    scripted_wake(b, DAY.replace(hour=11), "b0", [("people", "Eve sails"), ("boats", "The boat is in Kiel")])
    out = merge_home(a, str(b.root), engine=engine_with(careful_merge))
    assert out.unrelated and len(a.repo.head.commit.parents) == 2 and out.lines_lost == 0
    people = (a.root / "memory/topics/people.md").read_text()
    assert "Dana keeps bees" in people and "Eve sails" in people
    assert (a.root / "memory/topics/boats.md").is_file()
    assert "## 09:00" in (a.root / "memory/journal/2026-11-22.md").read_text() and "## 11:00" in (a.root / "memory/journal/2026-11-22.md").read_text()


def test_a_model_returning_garbage_keeps_the_union_and_loses_nothing(forked: Pair) -> None:
    out = merge_home(forked.ours, str(forked.theirs.root), engine=engine_with(garbage))
    assert out.memory and all(not m.by_model and m.rejected for m in out.memory)
    assert out.lines_lost == 0 and out.lines_folded == 0
    people = (forked.ours.root / "memory/topics/people.md").read_text()
    assert "alice likes tea." in people and "Ann flies planes" in people


def test_a_steering_conflict_makes_one_report_and_never_a_prefix_with_markers(forked: Pair, tmp_path: Path) -> None:
    ours, theirs = forked.ours, forked.theirs
    for home, rule in ((ours, "Answer in English."), (theirs, "Answer in German.")):
        (home.root / "AGENT.md").write_text((home.root / "AGENT.md").read_text() + f"\n- {rule}\n")
        home.absorb_person_edits()
    out = merge_home(ours, str(theirs.root), engine=engine_with(careful_merge))
    reports = sorted((ours.root / "outbox").glob("merge-*.md"))
    assert len(reports) == 1 and out.report == f"outbox/{reports[0].name}"
    text = reports[0].read_text()
    assert "Answer in English." in text and "Answer in German." in text and "this home (kept)" in text
    assert "Suggested merge (the model's; not applied)" in text
    agent_md = (ours.root / "AGENT.md").read_text()
    assert "Answer in English." in agent_md and "Answer in German." not in agent_md and has_markers(agent_md) is None
    assert "Conflicts-For-Person: 1" in ours.repo.head.commit.message
    # A plain `git merge` of the same two homes (no agentd) leaves markers: the prefix refuses them.
    clone = tmp_path / "plain"
    git(tmp_path, "clone", "-q", str(theirs.root), str(clone))
    install_drivers(clone)
    git(clone, "-c", "user.name=t", "-c", "user.email=t@x", "fetch", "-q", str(ours.root), "HEAD:refs/ours")
    subprocess_result = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x", "merge", "-q", "refs/ours~1"], cwd=clone, capture_output=True)
    assert subprocess_result.returncode != 0 and has_markers((clone / "AGENT.md").read_text()) is not None
    read = lambda rel: (clone / rel).read_text() if (clone / rel).is_file() else None  # noqa: E731
    with pytest.raises(SourceError, match="AGENT.md:.*merge conflict markers"):
        build_prefix(read, [], "", tool_calling="json")


def test_the_prefix_keeps_its_last_good_version_while_markers_wait(home: Home) -> None:
    heard: list[SourceError] = []
    agent = build_agent(home, load_config(home.root), ScriptedEngine(), model="scripted", on_bad_source=heard.append)
    assert agent.refresh_prefix("cold start") is True
    good = agent.compiler.prefix
    (home.root / "USER.md").write_text("<<<<<<< ours\nme\n=======\nthem\n>>>>>>> theirs\n")
    assert agent.refresh_prefix("USER.md edited") is False and agent.compiler.prefix == good
    assert len(heard) == 1 and "USER.md:1" in str(heard[0])


def test_merge_is_refused_while_a_daemon_runs(forked: Pair) -> None:
    with file_lock(forked.ours.runtime / "daemon.lock", timeout=0, purpose="daemon"), pytest.raises(UserError, match="a daemon is running"):
        merge_home(forked.ours, str(forked.theirs.root))


def test_a_second_merge_at_once_is_refused(forked: Pair) -> None:
    with file_lock(forked.ours.runtime / "merge" / "merge.lock", timeout=0, purpose="merge"), pytest.raises(LockedError, match="a merge is already running"):
        merge_home(forked.ours, str(forked.theirs.root))


def test_dry_run_changes_nothing_and_abort_undoes_a_merge(forked: Pair) -> None:
    ours = forked.ours
    old = ours.repo.head.commit.hexsha
    plan = merge_home(ours, str(forked.theirs.root), dry_run=True)
    assert "memory/topics/people.md" in plan.files and plan.commit is None
    assert ours.repo.head.commit.hexsha == old and ours.dirty_paths() == []
    merge_home(ours, str(forked.theirs.root))
    assert ours.repo.head.commit.hexsha != old
    assert "undone" in abort_merge(ours)
    assert ours.repo.head.commit.hexsha == old and ours.dirty_paths() == []
    assert "Ann flies planes" in (ours.root / "memory/topics/people.md").read_text()
    assert "Passport" not in (ours.root / "memory/MEMORY.md").read_text()


def test_an_older_home_gets_the_merge_drivers_and_merging_twice_does_nothing(forked: Pair) -> None:
    ours = forked.ours
    git(ours.root, "rm", "-q", ".gitattributes")
    git(ours.root, "-c", "user.name=p", "-c", "user.email=p@x", "commit", "-qm", "an older home")
    git(ours.root, "config", "--remove-section", "merge.agentd-memory")
    out = merge_home(ours, str(forked.theirs.root))
    assert (ours.root / ".gitattributes").is_file() and "agentd-memory" in git(ours.root, "config", "--get-regexp", "merge")
    assert "merge drivers" in git(ours.root, "log", "--format=%s", "-3")
    assert out.lines_lost == 0
    again = merge_home(ours, str(forked.theirs.root))
    assert again.commit is None and again.up_to_date


def test_merging_a_fork_that_alone_changed_keeps_this_homes_id(home: Home, tmp_path: Path) -> None:
    from agentd.merge.orchestrator import fork_home

    our_id = load_config(home.root).id
    forked = fork_home(home, tmp_path / "fork", new_id=lambda: "agentd-fork000000000000")
    scripted_wake(forked, DAY, "f0", [("boats", "The boat is in Kiel")])
    out = merge_home(home, str(forked.root))
    assert out.commit is not None and len(home.repo.head.commit.parents) == 2
    assert load_config(home.root).id == our_id and (home.root / "memory/topics/boats.md").is_file()


def test_a_path_that_is_not_a_home_is_refused(home: Home, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    git(tmp_path / "plain", "init", "-q")
    with pytest.raises(HomeError, match="is not an agentd home"):
        merge_home(home, str(tmp_path / "plain"))


def test_the_wiki_is_written_again_from_the_union_of_raw(forked: Pair) -> None:
    from memory.wiki import compile_wiki, load_manifest

    for home, name in ((forked.ours, "tea"), (forked.theirs, "sailing")):
        (home.root / "raw").mkdir(exist_ok=True)
        (home.root / "raw" / f"{name}.md").write_text(f"All about {name}.\n")
        home.absorb_person_edits()
        engine = ScriptedEngine()
        engine.enqueue(json.dumps({"title": name.title(), "summary": f"A page on {name}.", "topics": ["hobby"]}))
        with home.lock():
            compile_wiki(home, engine)
            home.commit("wiki", identity=AGENT, all_changes=True)
    out = merge_home(forked.ours, str(forked.theirs.root))
    root = forked.ours.root
    assert sorted(load_manifest(forked.ours)["sources"]) == ["raw/sailing.md", "raw/tea.md"] and out.wiki_pending == []
    index = (root / "wiki" / "index.md").read_text()
    assert "[[Tea]]" in index and "[[Sailing]]" in index
    assert "[[Sailing]]" in (root / "wiki" / "Tea.md").read_text()  # linked by their shared topic, across homes

"""The home: init, atomic writes, the stale-write guard, person edits, crash recovery."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from agentd.errors import HomeError, LockedError, PathError, StaleWriteError
from agentd.fileio import atomic_write
from agentd.home import AGENT, Home, resolve_home_path
from agentd.template import init_home
from agentd.wal import WriteAheadLog


def commits(home: Home) -> list[str]:
    return [str(c.message).splitlines()[0] for c in home.repo.iter_commits()]


def test_init_gives_template_and_one_commit(home: Home) -> None:
    for rel in ["AGENT.md", "USER.md", "HEARTBEAT.md", "CRON.md", "agent.yaml", "memory/MEMORY.md", ".gitignore"]:
        assert (home.root / rel).is_file(), rel
    for rel in ["memory/journal", "skills", "inbox", "outbox"]:
        assert (home.root / rel).is_dir(), rel
    assert not (home.root / "__init__.py").exists()
    assert commits(home) == ["home: created by agentd init"]
    assert ".agentd/" in (home.root / ".gitignore").read_text()
    assert home.dirty_paths() == []


def test_init_refuses_existing_home_and_nonempty_dir(home: Home, tmp_path: Path) -> None:
    with pytest.raises(HomeError, match="already an agentd home"):
        init_home(home.root)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(HomeError, match="not empty"):
        init_home(other)
    assert (other / "notes.txt").read_text() == "mine"
    assert not (other / ".git").exists()


def refuse_to_sign(user: Path) -> None:
    """Every commit must be signed, by a gpg program that always fails."""
    with open(user / ".gitconfig", "a") as fh:
        fh.write("[commit]\n\tgpgsign = true\n[gpg]\n\tprogram = false\n")


def test_init_is_all_or_nothing(tmp_path: Path, isolated_user: Path) -> None:
    refuse_to_sign(isolated_user)
    target = tmp_path / "new" / "home"
    with pytest.raises(HomeError, match=r"could not create a home at .*nothing was left behind.*git commit failed"):
        init_home(target)
    assert not (tmp_path / "new").exists()  # the folders it made are gone too
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HomeError, match="could not create a home"):
        init_home(empty)
    assert empty.is_dir() and list(empty.iterdir()) == []  # the person's folder stays, empty
    (isolated_user / ".gitconfig").write_text("[user]\n\tname = Test Person\n\temail = person@example.com\n")
    home = init_home(target)  # the retry is not told "already an agentd home"
    assert commits(home) == ["home: created by agentd init"]


def test_init_failure_is_one_line_in_the_cli(tmp_path: Path, isolated_user: Path) -> None:
    from click.testing import CliRunner

    from agentd.cli import cli

    refuse_to_sign(isolated_user)
    res = CliRunner().invoke(cli, ["init", str(tmp_path / "h")])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception
    assert "Error: could not create a home" in res.output and not (tmp_path / "h").exists()


def test_home_location_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_home_path(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("AGENTD_HOME", str(tmp_path / "env"))
    assert resolve_home_path(None) == tmp_path / "env"
    monkeypatch.delenv("AGENTD_HOME")
    assert resolve_home_path(None) == Path(os.environ["XDG_DATA_HOME"]) / "agentd" / "home"


def test_open_refuses_non_home(tmp_path: Path) -> None:
    with pytest.raises(HomeError, match="no agentd home"):
        Home.open(tmp_path / "missing")
    with pytest.raises(HomeError, match="not an agentd home"):
        Home.open(tmp_path)


def test_atomic_write_crash_before_rename_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "note.md"
    target.write_text("old content\n")

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated crash between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        atomic_write(target, "new content that must not appear half-written\n")
    monkeypatch.undo()
    assert target.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["note.md"]


def test_atomic_write_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "script.sh"
    target.write_text("#!/bin/sh\n")
    target.chmod(0o755)
    atomic_write(target, "#!/bin/sh\necho hi\n")
    assert target.stat().st_mode & 0o777 == 0o755


def test_stale_write_guard_refuses_after_person_edit(home: Home) -> None:
    text = home.read_text("USER.md")
    (home.root / "USER.md").write_text(text + "- Name: Ada\n")  # the person edits meanwhile
    with pytest.raises(StaleWriteError, match="changed since the agent last read it"):
        home.write_text("USER.md", text + "- agent's line\n")
    assert "Ada" in (home.root / "USER.md").read_text()


def test_stale_write_guard_uses_head_for_unread_files(home: Home) -> None:
    (home.root / "AGENT.md").write_text("# person is editing\n")
    with pytest.raises(StaleWriteError, match="not committed yet"):
        home.write_text("AGENT.md", "# agent\n")
    home.write_text("memory/topics/new.md", "# new file is fine\n")
    home.read_text("AGENT.md")
    home.write_text("AGENT.md", "# agent, after reading\n")


def test_paths_are_confined(home: Home, tmp_path: Path) -> None:
    with pytest.raises(PathError):
        home.rel("../outside.md")
    with pytest.raises(PathError):
        home.rel(tmp_path / "elsewhere.md")
    with pytest.raises(PathError):
        home.rel(".git/config")
    (home.root / "link").symlink_to(tmp_path)
    with pytest.raises(PathError):
        home.rel("link/x.md")


def test_person_edits_absorbed_as_their_own_commit(home: Home) -> None:
    (home.root / "USER.md").write_text("# About you\n- Name: Ada\n")
    sha = home.absorb_person_edits()
    assert sha is not None
    c = home.repo.commit(sha)
    assert c.author.name == "Test Person" and c.author.email == "person@example.com"
    assert str(c.message).startswith("person: edited USER.md")
    assert home.absorb_person_edits() is None


def test_commit_trailers_and_agent_identity(home: Home) -> None:
    home.write_text("memory/topics/a.md", "fact\n")
    sha = home.commit("wake message: noted a fact", identity=AGENT, all_changes=True, trailers={"Wake-Trigger": "message", "Cached-Tokens": "42"})
    assert sha is not None
    c = home.repo.commit(sha)
    assert c.author.email == AGENT.email
    assert "Wake-Trigger: message" in str(c.message) and "Cached-Tokens: 42" in str(c.message)
    assert home.commit("nothing", identity=AGENT) is None


def test_lock_is_exclusive(home: Home) -> None:
    with home.lock(purpose="test"):
        other = Home(home.root)
        with pytest.raises(LockedError, match="locked by pid"), other.lock(timeout=0.1):
            pass


def test_recovery_undoes_unfinished_wake_but_keeps_person_edit(home: Home) -> None:
    (home.root / "inbox" / "m1.md").write_text("hello\n")
    home.absorb_person_edits()
    wal = WriteAheadLog(home.runtime)
    wal.begin("w1 message")
    home.write_text("memory/topics/new.md", "agent wrote this\n")
    home.read_text("USER.md")
    home.write_text("USER.md", "agent changed USER.md\n")
    home.move("inbox/m1.md", "inbox/done/m1.md")
    (home.root / "AGENT.md").write_text("# the person's edit during the wake\n")
    # the process dies here: no commit, the log stays open
    undone = Home(home.root).recover()
    assert any("new.md" in u for u in undone)
    assert not (home.root / "memory/topics/new.md").exists()
    assert (home.root / "USER.md").read_bytes() == home.head_bytes("USER.md")
    assert (home.root / "inbox/m1.md").read_text() == "hello\n"
    assert not (home.root / "inbox/done/m1.md").exists()
    assert (home.root / "AGENT.md").read_text() == "# the person's edit during the wake\n"
    assert not wal.active()


def test_template_examples_work_as_their_comments_say(home: Home) -> None:
    from scheduler.cron import parse_cron_md
    from scheduler.heartbeat import parse_heartbeat_md

    cron = (home.root / "CRON.md").read_text()
    assert parse_cron_md(cron, "CRON.md").jobs == []
    enabled = "\n".join(ln for ln in cron.splitlines() if ln.strip() not in ("<!--", "-->"))
    parsed = parse_cron_md(enabled, "CRON.md")
    assert [j.name for j in parsed.jobs] == ["Morning briefing"] and parsed.errors == []
    assert cron.split("-->", 1)[1].split("<!--", 1)[0].strip() == ""  # the first comment ends where it should
    beat = (home.root / "HEARTBEAT.md").read_text()
    assert parse_heartbeat_md(beat, "HEARTBEAT.md").is_empty
    beat = beat.replace("## Open items\n", "## Open items\n- [ ] check the backup\n").replace("## Checks\n", "## Checks\n- `true` always quiet\n")
    plan = parse_heartbeat_md(beat, "HEARTBEAT.md")
    assert [i.text for i in plan.open_items] == ["check the backup"] and [c.command for c in plan.checks] == ["true"]


def test_a_live_index_lock_is_waited_for_and_a_stale_one_cleared(home: Home, caplog: pytest.LogCaptureFixture) -> None:
    import threading

    lock = home.root / ".git" / "index.lock"
    still_there: list[bool] = []

    def other_git() -> None:  # the person's `git status`, holding the lock a moment
        time.sleep(0.5)
        still_there.append(lock.exists())
        lock.unlink(missing_ok=True)

    lock.write_text("")
    (home.root / "notes.md").write_text("one\n")
    t = threading.Thread(target=other_git)
    t.start()
    with home.lock():
        home.commit("agent: notes", identity=AGENT, all_changes=True)
    t.join()
    assert still_there == [True], "a lock another git held was deleted under it"
    assert "stale git index.lock" not in caplog.text
    # A lock nobody releases (a git killed mid-commit) is cleared after the wait.
    lock.write_text("")
    (home.root / "notes.md").write_text("two\n")
    with home.lock():
        home.commit("agent: notes again", identity=AGENT, all_changes=True)
    assert "stale git index.lock" in caplog.text and not lock.exists()
    assert home.dirty_paths() == []


def test_delete_and_commit_removes_the_file_from_git(home: Home) -> None:
    home.write_text("memory/topics/old.md", "outdated\n")
    home.commit("agent: old note", identity=AGENT, all_changes=True)
    home.delete("memory/topics/old.md")
    assert not (home.root / "memory/topics/old.md").exists()
    home.commit("agent: dropped the old note", identity=AGENT, all_changes=True)
    assert "memory/topics/old.md" not in home.repo.git.ls_files("memory")
    assert home.dirty_paths() == []
    # What the agent itself wrote in this wake and never committed may go too.
    home.write_text("scratch.md", "mine\n")
    home.delete("scratch.md")
    assert not (home.root / "scratch.md").exists()
    home.write_text("scratch.md", "again, after the delete\n")  # a deleted file is not "changed behind" the agent
    assert home.changed_behind_agent() == []
    with pytest.raises(PathError):
        home.delete("../outside.md")
    with pytest.raises(PathError):
        home.delete(".git/config")
    with pytest.raises(PathError, match="no file"):
        home.delete("memory/topics/never.md")


def test_delete_refused_when_the_person_edited_the_file(home: Home) -> None:
    text = home.read_text("USER.md")
    (home.root / "USER.md").write_text(text + "- Name: Ada\n")  # edited after the agent read it
    with pytest.raises(StaleWriteError, match="changed since the agent last read it"):
        home.delete("USER.md")
    assert "Ada" in (home.root / "USER.md").read_text()
    home.read_text("USER.md")  # read again: the person's uncommitted text is still not the agent's to drop
    with pytest.raises(StaleWriteError, match="not committed yet"):
        home.delete("USER.md")
    (home.root / "AGENT.md").write_text("# the person's draft\n")  # never read by the agent
    with pytest.raises(StaleWriteError, match="not committed yet"):
        home.delete("AGENT.md")
    # During a wake, the person's version goes into history as theirs.
    with home.lock(), pytest.raises(StaleWriteError):
        home.delete("AGENT.md")
    assert (home.root / "AGENT.md").read_text() == "# the person's draft\n"
    assert commits(home)[0] == "person: edited AGENT.md during a wake"


def test_recovery_restores_a_file_deleted_by_an_unfinished_wake(home: Home) -> None:
    (home.root / "plans.md").write_text("# Plans\n- keep me\n")
    home.absorb_person_edits()
    wal = WriteAheadLog(home.runtime)
    wal.begin("w1 message")
    home.delete("plans.md")
    home.read_text("USER.md")
    home.write_text("USER.md", "edited, then deleted in the same wake\n")
    home.delete("USER.md")
    home.write_text("memory/topics/tmp.md", "new, then deleted\n")
    home.delete("memory/topics/tmp.md")
    # the process dies here: no commit, the log stays open
    undone = Home(home.root).recover()
    assert any("plans.md" in u for u in undone)
    assert (home.root / "plans.md").read_text() == "# Plans\n- keep me\n"
    assert (home.root / "USER.md").read_bytes() == home.head_bytes("USER.md")
    assert not (home.root / "memory/topics/tmp.md").exists()
    assert home.dirty_paths() == [] and not wal.active()


def test_recovery_keeps_a_file_the_person_recreated_after_the_agent_deleted_it(home: Home) -> None:
    (home.root / "plans.md").write_text("# Plans\n")
    home.absorb_person_edits()
    WriteAheadLog(home.runtime).begin("w1")
    home.delete("plans.md")
    (home.root / "plans.md").write_text("# Plans, rewritten by the person\n")
    Home(home.root).recover()
    assert (home.root / "plans.md").read_text() == "# Plans, rewritten by the person\n"


class GitWithAddDouble:
    """A double of GitPython's ``repo.git``: ``add`` replaced, every other git command the real one."""

    def __init__(self, real: Any, add: Any) -> None:
        self._real, self.add = real, add

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_commit_stages_again_when_a_file_vanished_under_git_add(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """A temp file listed by `git add -A` and gone before git read it fails the add; the
    next attempt no longer lists it, so the commit goes through instead of failing the wake."""
    import git

    real_add = home.repo.git.add
    calls: list[tuple[str, ...]] = []

    def add_with_one_vanished_file(*args: str) -> str:  # a double of git's race, with git's own words
        calls.append(args)
        if len(calls) == 1:
            raise git.GitCommandError(["git", "add", *args], 128, stderr='error: open("notes/.swp"): No such file or directory\nerror: unable to index file \'notes/.swp\'\nfatal: adding files failed')
        return str(real_add(*args))

    monkeypatch.setattr(home.repo, "git", GitWithAddDouble(home.repo.git, add_with_one_vanished_file))
    (home.root / "USER.md").write_text("# User\n\nName: Ada\n", encoding="utf-8")
    sha = home.commit("person edit", identity=AGENT, all_changes=True)
    assert sha is not None and len(calls) == 2
    assert "Name: Ada" in home.repo.git.show(f"{sha}:USER.md")


def test_commit_does_not_retry_other_git_add_failures(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    import git

    calls: list[tuple[str, ...]] = []

    def add_failing(*args: str) -> str:
        calls.append(args)
        raise git.GitCommandError(["git", "add", *args], 128, stderr="fatal: Unable to create '.git/index.lock': File exists.")

    monkeypatch.setattr(home.repo, "git", GitWithAddDouble(home.repo.git, add_failing))
    (home.root / "USER.md").write_text("changed\n", encoding="utf-8")
    with pytest.raises(git.GitCommandError):
        home.commit("person edit", identity=AGENT, all_changes=True)
    assert len(calls) == 1

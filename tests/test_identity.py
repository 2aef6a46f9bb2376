"""The agent's id: written by `agentd init`, kept by a clone or a move, renewed for a copy and a fork."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from agentd import identity
from agentd.cli import cli
from agentd.config import load_config
from agentd.home import Home
from agentd.merge.gitops import git
from agentd.template import init_home
from agentd.wiring import session_key


def test_init_writes_an_id_committed_in_agent_yaml_and_used_as_the_session_key(home: Home, tmp_path: Path) -> None:
    agent_id = load_config(home.root).id
    assert agent_id and agent_id.startswith("agentd-")
    assert session_key(home) == agent_id
    assert f"agent id  {agent_id}\n" in CliRunner().invoke(cli, ["--home", str(home.root), "status"]).output
    assert f"id: {agent_id}" in git(home.root, "show", "HEAD:agent.yaml"), "committed, so it follows the home"
    assert git(home.root, "status", "--porcelain").strip() == ""
    other = init_home(tmp_path / "other")
    assert load_config(other.root).id != agent_id


def test_a_clone_and_a_moved_home_are_the_same_agent(home: Home, tmp_path: Path) -> None:
    agent_id = load_config(home.root).id
    git(tmp_path, "clone", "--quiet", str(home.root), str(tmp_path / "clone"))
    clone = Home(tmp_path / "clone")
    assert load_config(clone.root).id == agent_id
    assert identity.check(clone, agent_id) is None, "a clone (on another machine) carries no record: the same agent"
    moved = Path(shutil.move(str(home.root), str(tmp_path / "moved")))
    assert identity.check(Home(moved), agent_id) is None, "the old path is gone: moved, not copied"
    assert identity.check(Home(moved), agent_id) is None, "and the record followed it"


def test_a_copied_home_is_told_apart_and_init_gives_it_its_own_id(home: Home, tmp_path: Path) -> None:
    agent_id = load_config(home.root).id
    copy = Home(Path(shutil.copytree(home.root, tmp_path / "copy", symlinks=True)))
    found = identity.check(copy, agent_id)
    assert found is not None and found.original == home.root and found.id == agent_id
    assert f"agentd init {copy.root}" in found.notice(copy.root)
    status = CliRunner().invoke(cli, ["--home", str(copy.root), "status"]).output
    assert f"agent id  {agent_id} (a copy of {home.root}: agentd init {copy.root} gives it its own)" in status, status
    result = CliRunner().invoke(cli, ["init", str(copy.root)])
    assert result.exit_code == 0, result.output
    assert f"was a copy of {home.root}" in result.output
    new_id = load_config(copy.root).id
    assert new_id and new_id != agent_id and session_key(copy) == new_id
    assert git(copy.root, "log", "-1", "--format=%s").startswith("home: a new agent id (a copy of")
    assert git(copy.root, "status", "--porcelain").strip() == ""
    assert identity.check(copy, new_id) is None and identity.check(home, agent_id) is None
    assert load_config(home.root).id == agent_id, "the original keeps its id"


def test_init_on_an_ordinary_home_still_has_nothing_to_do(home: Home) -> None:
    result = CliRunner().invoke(cli, ["init", str(home.root)])
    assert result.exit_code != 0 and "already an agentd home; nothing to do" in result.output


def test_init_gives_a_home_made_before_ids_one(home: Home) -> None:
    text = (home.root / "agent.yaml").read_text()
    (home.root / "agent.yaml").write_text("\n".join(line for line in text.splitlines() if not line.startswith("id:")) + "\n")
    home.absorb_person_edits()
    assert load_config(home.root).id is None
    result = CliRunner().invoke(cli, ["init", str(home.root)])
    assert result.exit_code == 0 and "had no agent id" in result.output
    assert load_config(home.root).id


def test_a_fork_has_a_new_id_and_is_not_taken_for_a_copy(home: Home, tmp_path: Path) -> None:
    from agentd.merge.orchestrator import fork_home

    agent_id = load_config(home.root).id
    forked = fork_home(home, tmp_path / "fork")
    fork_id = load_config(forked.root).id
    assert fork_id and fork_id != agent_id and fork_id.startswith("agentd-")
    assert identity.check(forked, fork_id) is None and identity.check(home, agent_id) is None

"""The CLI: init, config get/set, log, and every error as one clear line (never a traceback)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agentd.cli import cli
from agentd.home import Home


def failed_cleanly(res: Result, *expected: str) -> bool:
    """Exit 1 through click's error path (CliRunner swallows a traceback, so check how it ended)."""
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), f"not turned into one line: {res.exception!r}"
    assert any(line.startswith("Error: ") for line in res.output.splitlines()), res.output
    for text in expected:
        assert text in res.output, res.output
    return True


def test_init_then_log(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["init", str(tmp_path / "h")])
    assert res.exit_code == 0, res.output
    again = runner.invoke(cli, ["init", str(tmp_path / "h")])
    assert failed_cleanly(again, "already an agentd home")
    h = ["--home", str(tmp_path / "h")]
    assert runner.invoke(cli, [*h, "config", "set", "heartbeat.every", "1h"]).exit_code == 0
    log = runner.invoke(cli, [*h, "log"], color=False)
    assert log.exit_code == 0, log.output
    lines = log.output.splitlines()
    assert len(lines) == 2
    # newest first: the person's config change, then the agent's init commit
    assert lines[0].split()[3:5] == ["person", "config:"], lines[0]
    assert lines[1].split()[3:5] == ["agent", "home:"], lines[1]


def test_home_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTD_HOME", str(tmp_path / "envhome"))
    runner = CliRunner()
    assert runner.invoke(cli, ["init"]).exit_code == 0
    assert (tmp_path / "envhome" / "AGENT.md").is_file()


def test_config_get_set_commits_and_keeps_comments(home: Home) -> None:
    runner = CliRunner()
    h = ["--home", str(home.root)]
    assert runner.invoke(cli, [*h, "config", "get", "heartbeat.every"]).output.strip() == "30m"
    res = runner.invoke(cli, [*h, "config", "set", "heartbeat.every", "2h"])
    assert res.exit_code == 0, res.output
    assert "every: 2h" in (home.root / "agent.yaml").read_text()
    assert "# agent.yaml: how this agent runs" in (home.root / "agent.yaml").read_text()
    head = home.repo.head.commit
    assert str(head.message).startswith("config: heartbeat.every: 30m → 2h")
    assert head.author.email == "person@example.com"
    bad = runner.invoke(cli, [*h, "config", "set", "budgets.max_steps", "lots"])
    assert failed_cleanly(bad, "agent.yaml:", "expected a whole number")


def test_config_set_mistakes_are_one_line_and_change_nothing(home: Home) -> None:
    runner = CliRunner()
    h = ["--home", str(home.root)]
    head, before = home.repo.head.commit.hexsha, (home.root / "agent.yaml").read_text()
    assert failed_cleanly(runner.invoke(cli, [*h, "config", "set", "name", "[unclosed"]), "name: '[unclosed' is not a YAML value", "quote it")
    typo = runner.invoke(cli, [*h, "config", "set", "heartbeat.evry", "1h"])
    assert failed_cleanly(typo, "did you mean heartbeat.every?", "known under heartbeat: active_hours, every")
    option = runner.invoke(cli, [*h, "config", "set", "engine.llamacpp.n_ctx", "banana"])
    n_ctx = next(i for i, ln in enumerate(before.splitlines(), 1) if "n_ctx:" in ln)
    assert failed_cleanly(option, f"agent.yaml:{n_ctx}: engine.llamacpp.n_ctx: expected a whole number")
    assert home.repo.head.commit.hexsha == head and (home.root / "agent.yaml").read_text() == before
    ok = runner.invoke(cli, [*h, "config", "set", "engine.llamacpp.n_ctx", "4096"])
    assert ok.exit_code == 0 and "n_ctx: 4096" in (home.root / "agent.yaml").read_text()


def test_openai_backend_without_url_is_a_config_error(home: Home) -> None:
    runner = CliRunner()
    h = ["--home", str(home.root)]
    path = home.root / "agent.yaml"
    path.write_text(path.read_text().replace("backend: llamacpp", "backend: openai"))
    for args in (["status"], ["engine", "start"], ["say", "hi"]):
        assert failed_cleanly(runner.invoke(cli, [*h, *args]), "agent.yaml:9: engine.url is required for backend: openai")
    assert not list((home.root / "inbox").glob("*.md"))


def break_engine(home: Home) -> None:
    res = CliRunner().invoke(cli, ["--home", str(home.root), "config", "set", "engine.model", "/nonexistent/m.gguf"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("args", [["engine", "start"], ["say", "hi"], ["run"], ["wake", "cron", "nothing"]])
def test_engine_errors_are_one_line(home: Home, args: list[str]) -> None:
    break_engine(home)
    res = CliRunner().invoke(cli, ["--home", str(home.root), *args])
    if args[0] == "wake":  # no such job: a user error before any engine is started
        assert failed_cleanly(res, "no cron job 'nothing'")
        return
    # "no GGUF model", or "llama-cpp-python is not installed" where the cpu extra is missing
    assert failed_cleanly(res, "Error: engine: ")
    assert "/nonexistent/m.gguf" in res.output or "not installed" in res.output


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_missing_backend_is_one_line(home: Home) -> None:
    runner = CliRunner()
    h = ["--home", str(home.root)]
    assert runner.invoke(cli, [*h, "config", "set", "engine.backend", "vllm"]).exit_code == 0
    assert failed_cleanly(runner.invoke(cli, [*h, "engine", "start"]), "engine: vLLM is not installed")


def test_say_that_could_not_start_the_engine_leaves_no_message_behind(home: Home) -> None:
    break_engine(home)
    head = home.repo.head.commit.hexsha
    res = CliRunner().invoke(cli, ["--home", str(home.root), "say", "are you there?"])
    assert failed_cleanly(res, "engine: ")
    # The person saw the error and will send it again; a copy in inbox/ would be answered twice.
    assert [p.name for p in (home.root / "inbox").iterdir() if p.suffix == ".md"] == []
    assert home.dirty_paths() == [] and home.repo.head.commit.hexsha == head


def test_person_edits_absorbed_by_a_command_are_scanned_for_secrets(home: Home) -> None:
    (home.root / "creds.md").write_text("aws AKIAIOSFODNN7EXAMPLE\n")
    (home.root / "notes.md").write_text("buy milk\n")
    res = CliRunner().invoke(cli, ["--home", str(home.root), "config", "set", "heartbeat.every", "2h"])
    assert res.exit_code == 0, res.output
    assert "AKIA" not in home.repo.git.log("-p", "--all")
    assert home.repo.git.ls_files("notes.md") == "notes.md"  # the rest of the person's edits went in
    assert home.dirty_paths() == ["creds.md"]
    assert "creds.md:1 (AWS access key id)" in (home.root / "outbox/notices.md").read_text()


def test_commands_outside_a_home_fail_cleanly(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["--home", str(tmp_path / "nowhere"), "log"])
    assert failed_cleanly(res, "no agentd home")


def test_version() -> None:
    res = CliRunner().invoke(cli, ["--version"])
    assert res.exit_code == 0 and "agentd, version" in res.output

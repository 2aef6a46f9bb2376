"""The CLI skeleton: init, config get/set, log, errors as one clear line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from agentd.cli import cli
from agentd.home import Home


def test_init_then_log(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["init", str(tmp_path / "h")])
    assert res.exit_code == 0, res.output
    again = runner.invoke(cli, ["init", str(tmp_path / "h")])
    assert again.exit_code == 1 and "already an agentd home" in again.output
    assert "Traceback" not in again.output
    log = runner.invoke(cli, ["--home", str(tmp_path / "h"), "log"])
    assert log.exit_code == 0 and "home: created by agentd init" in log.output and "agent" in log.output


def test_home_from_environment(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
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
    assert bad.exit_code == 1 and "agent.yaml:" in bad.output and "expected a whole number" in bad.output
    assert "Traceback" not in bad.output


def test_commands_outside_a_home_fail_cleanly(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["--home", str(tmp_path / "nowhere"), "log"])
    assert res.exit_code == 1 and "no agentd home" in res.output and "Traceback" not in res.output


def test_version() -> None:
    res = CliRunner().invoke(cli, ["--version"])
    assert res.exit_code == 0 and "agentd, version" in res.output

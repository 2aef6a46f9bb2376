"""`agentd fork` and `agentd merge` from the command line, as the README shows them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from agentd.cli import cli
from agentd.home import Home


def test_fork_then_merge_dry_run_merge_and_abort_from_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    a, b = tmp_path / "agent", tmp_path / "agent-travel"
    assert runner.invoke(cli, ["init", str(a)]).exit_code == 0
    forked = runner.invoke(cli, ["--home", str(a), "fork", str(b)])
    assert forked.exit_code == 0 and "agent id agentd-" in forked.output
    (b / "memory" / "MEMORY.md").write_text((b / "memory" / "MEMORY.md").read_text() + "- Lisbon in May\n")
    (a / "memory" / "MEMORY.md").write_text((a / "memory" / "MEMORY.md").read_text() + "- Porto in June\n")
    Home.open(a).absorb_person_edits()
    Home.open(b).absorb_person_edits()
    plan = runner.invoke(cli, ["--home", str(a), "merge", str(b), "--dry-run"])
    assert plan.exit_code == 0 and "memory/MEMORY.md: both changed, union of lines" in plan.output and "dry run" in plan.output
    done = runner.invoke(cli, ["--home", str(a), "merge", str(b), "--no-model"])
    assert done.exit_code == 0 and "merge commit" in done.output, done.output
    text = (a / "memory" / "MEMORY.md").read_text()
    assert "Lisbon in May" in text and "Porto in June" in text
    undone = runner.invoke(cli, ["--home", str(a), "merge", "--abort"])
    assert undone.exit_code == 0 and "undone" in undone.output
    assert "Lisbon in May" not in (a / "memory" / "MEMORY.md").read_text()
    missing = runner.invoke(cli, ["--home", str(a), "merge"])
    assert missing.exit_code != 0 and "--abort" in missing.output

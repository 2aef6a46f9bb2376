"""Heartbeat checks obey the shell tool's policy: ask parks them for approval, deny never wakes the model."""

from __future__ import annotations

from datetime import UTC, datetime

from click.testing import CliRunner

from agentd import heartbeat
from agentd.cli import cli
from agentd.config import load_config
from agentd.home import AGENT, Home

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def setup(home: Home, mode: str, check: str) -> None:
    (home.root / "HEARTBEAT.md").write_text(f"# Heartbeat\n\n## Checks\n- `{check}`  leaves a mark\n")
    yaml = home.root / "agent.yaml"
    yaml.write_text(yaml.read_text().replace("mode: auto", f"mode: {mode}"))
    home.absorb_person_edits()


def test_ask_mode_parks_a_check_and_runs_it_only_once_approved(home: Home) -> None:
    setup(home, "ask", "echo ran >> marks.txt; echo changed")
    config = load_config(home.root)
    first = heartbeat.prepare(home, config, NOW)
    assert first.event is None and not (home.root / "marks.txt").exists()
    [(key, text)] = first.notices
    approval_id = key.split(":")[1]
    assert f"agentd approve {approval_id}" in text and "HEARTBEAT.md:4" in text
    assert home.dirty_paths() == []  # the parked check is committed
    again = heartbeat.prepare(home, config, NOW)
    assert again.event is None and again.notices == first.notices  # parked once, not every heartbeat
    assert len(list((home.root / "outbox/approvals").glob("*.md"))) == 1

    res = CliRunner().invoke(cli, ["--home", str(home.root), "approve", approval_id])
    assert res.exit_code == 0, res.output
    assert (home.root / "marks.txt").read_text() == "ran\n"
    after = heartbeat.prepare(home, config, NOW)
    assert after.event is not None and "changed" in after.event.text
    assert (home.root / "marks.txt").read_text() == "ran\nran\n"


def test_an_approval_the_agent_wrote_itself_does_not_count(home: Home) -> None:
    setup(home, "ask", "echo ran >> marks.txt")
    config = load_config(home.root)
    [(key, _)] = heartbeat.prepare(home, config, NOW).notices
    rel = f"outbox/approvals/{key.split(':')[1]}.md"
    path = home.root / rel
    path.write_text(path.read_text().replace("status: pending", "status: approved"))
    home.commit("wake heartbeat: approved it myself", identity=AGENT, paths=[rel])
    assert heartbeat.prepare(home, config, NOW).event is None
    assert not (home.root / "marks.txt").exists()


def test_deny_mode_check_never_runs_nor_wakes_the_model(home: Home) -> None:
    setup(home, "deny", "echo ran >> marks.txt")
    config = load_config(home.root)
    for _ in range(2):
        d = heartbeat.prepare(home, config, NOW)
        assert d.event is None
        [(key, text)] = d.notices
        assert key == "check-refused:echo ran >> marks.txt" and "refused by the shell policy" in text
    assert not (home.root / "marks.txt").exists()


def test_denied_approval_is_not_run(home: Home) -> None:
    setup(home, "ask", "echo ran >> marks.txt")
    config = load_config(home.root)
    [(key, _)] = heartbeat.prepare(home, config, NOW).notices
    res = CliRunner().invoke(cli, ["--home", str(home.root), "deny", key.split(":")[1]])
    assert res.exit_code == 0 and "denied: echo ran" in res.output
    d = heartbeat.prepare(home, config, NOW)
    assert d.event is None and "was denied" in d.notices[0][1]
    assert not (home.root / "marks.txt").exists()

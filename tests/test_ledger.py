"""The ledger: unknown cached counts stay unknown; `agentd stats --json` matches the ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from click.testing import CliRunner

from agentd.cli import cli
from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.ledger import summarize
from agentd.loop import wake
from agentd.wiring import build_agent
from tests.doubles.scripted_engine import ScriptedEngine

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def test_unknown_cached_and_stats_json(home: Home) -> None:
    engine = ScriptedEngine(report_cached=False)
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    engine.enqueue_action("list_files", path=".")
    engine.enqueue_action("reply", text="hi")
    (home.root / "inbox/a.md").write_text("hello\n")
    result = wake(agent, Event("message", "hello", NOW, name="a", source="inbox/a.md"))
    rows = agent.ledger.rows()
    assert [r["cached_tokens"] for r in rows] == [None, None]
    assert result.cached_tokens is None and "Cached-Tokens: unknown" in str(home.repo.head.commit.message)
    engine2 = ScriptedEngine()
    agent2 = build_agent(home, load_config(home.root), engine2, clock=lambda: NOW)
    engine2.enqueue_action("done", summary="job done")
    wake(agent2, Event("cron", "do it", NOW, name="job"))
    out = CliRunner().invoke(cli, ["--home", str(home.root), "stats", "--json", "--since", "1d"])
    assert out.exit_code == 0, out.output
    stats = json.loads(out.output)
    assert stats == json.loads(json.dumps(summarize(agent.ledger.rows())))
    assert stats["by_trigger"]["message"]["cached_tokens"] is None and stats["by_trigger"]["message"]["cached_unknown_requests"] == 2
    assert set(stats["by_trigger"]) == {"message", "cron:job"}
    text = CliRunner().invoke(cli, ["--home", str(home.root), "stats"]).output
    assert "cache breaks:" in text and "cold start" in text
    bad = CliRunner().invoke(cli, ["--home", str(home.root), "stats", "--since", "yesterday-ish"])
    assert bad.exit_code == 1 and "--since: expected" in bad.output

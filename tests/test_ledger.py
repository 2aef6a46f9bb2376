"""The ledger: unknown cached counts stay unknown; `agentd stats --json` matches the ledger;
every cache break is recorded once, with its cause and the first section that changed."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from agentd.cli import cli
from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.ledger import Ledger, Record, day_summary, format_stats, summarize, today_since, totals
from agentd.loop import Agent, wake, warm_up
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
    # Totals: cached %, cached and computed over the requests whose cached count is known.
    message, cron, total = stats["by_trigger"]["message"], stats["by_trigger"]["cron:job"], stats["total"]
    assert message["computed_tokens"] is None and message["hit_rate"] is None
    assert cron["cached_unknown_requests"] == 0 and cron["computed_tokens"] == cron["prompt_tokens"] - cron["cached_tokens"]
    assert total["cached_unknown_requests"] == 2 and total["computed_tokens"] == cron["computed_tokens"]
    assert total["cached_unknown_prompt_tokens"] == message["prompt_tokens"]
    text = CliRunner().invoke(cli, ["--home", str(home.root), "stats"]).output
    assert "cache breaks:" in text and "cold start" in text
    bad = CliRunner().invoke(cli, ["--home", str(home.root), "stats", "--since", "yesterday-ish"])
    assert bad.exit_code == 1 and "--since: expected" in bad.output


# ---------------------------------------------------------------- cache breaks, once each
def _agent(home: Home, engine: ScriptedEngine, clock: datetime = NOW) -> Agent:
    return build_agent(home, load_config(home.root), engine, clock=lambda: clock)


def _say(agent: Agent, home: Home, text: str, name: str) -> None:
    (home.root / "inbox" / f"{name}.md").write_text(text + "\n")
    wake(agent, Event("message", text, NOW, name=name, source=f"inbox/{name}.md"))


def _causes(agent: Agent) -> list[str]:
    return [r["cache_break"] for r in agent.ledger.rows() if r["cache_break"]]


def test_warm_up_is_recorded_and_its_break_is_reported_once(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue("")
    agent = _agent(home, engine)
    warm_up(agent, "daemon started")
    engine.enqueue_action("reply", text="one")
    _say(agent, home, "first", "a")
    # The person edits USER.md between wakes: the daemon starts the epoch and warms the engine.
    (home.root / "USER.md").write_text("# About you\n- Name: Ada\n")
    home.absorb_person_edits()
    assert agent.refresh_prefix("USER.md edited by the person")
    engine.enqueue("")
    warm_up(agent, "USER.md edited")
    engine.enqueue_action("reply", text="two")
    _say(agent, home, "second", "b")
    rows = agent.ledger.rows()
    assert [(r["purpose"], r["trigger"]) for r in rows] == [("warmup", "warmup"), ("wake", "message"), ("warmup", "warmup"), ("wake", "message")]
    assert _causes(agent) == ["cold start", "USER.md edited by the person"]
    assert rows[2]["changed_section"] == "USER.md" and rows[3]["cache_break"] is None
    # The next wake finds the prefix as the warm-up left it.
    assert rows[3]["expected_cached"] is not None and rows[3]["expected_cached"] >= rows[2]["prompt_tokens"]


def test_user_md_edit_absorbed_by_the_wake_keeps_what_is_shared(home: Home) -> None:
    engine = ScriptedEngine()
    agent = _agent(home, engine)
    engine.enqueue_action("reply", text="one")
    _say(agent, home, "first", "a")
    (home.root / "USER.md").write_text((home.root / "USER.md").read_text() + "- Name: Ada\n")
    engine.enqueue_action("reply", text="two")
    _say(agent, home, "second", "b")
    # Mid-session the edit is a steering diff: no break, everything sent before is cached.
    row = agent.ledger.rows()[-1]
    assert row["cache_break"] is None and row["cached_tokens"] == row["expected_cached"] > 0
    assert [r["sections"] for r in agent.ledger.steering_rows()] == ["USER.md"]
    # At a session boundary (a new day, here) the prefix is built anew from the edited file.
    agent.compiler.drop_session("main")
    (home.root / "USER.md").write_text((home.root / "USER.md").read_text() + "- City: Lyon\n")
    engine.enqueue_action("reply", text="three")
    _say(agent, home, "third", "c")
    row = agent.ledger.rows()[-1]
    assert row["cache_break"] == "USER.md edited by the person" and row["changed_section"] == "USER.md"
    # The rules, tools, skills and AGENT.md before USER.md are still cached, and the check says so.
    assert row["cached_tokens"] > 0 and row["common_chars"] > 0
    assert abs(row["expected_cached"] - row["cached_tokens"]) <= 0.05 * row["cached_tokens"]
    assert _causes(agent).count("USER.md edited by the person") == 1


def test_compaction_is_the_cause_of_the_next_break(home: Home) -> None:
    path = home.root / "agent.yaml"
    path.write_text(path.read_text().replace("session_tokens: 6000", "session_tokens: 500"))
    home.absorb_person_edits()
    (home.root / "notes.md").write_text("".join(f"- note {i}: the fern wants water on Sundays\n" for i in range(60)))
    engine = ScriptedEngine()
    agent = _agent(home, engine)
    engine.enqueue_action("read_file", path="notes.md")
    engine.enqueue_action("reply", text="read it")
    _say(agent, home, "read notes.md", "a")
    engine.enqueue_action("done", summary="memory is up to date")  # the memory flush
    engine.enqueue("- read notes.md for the person")  # the summary
    engine.enqueue_action("reply", text="fresh")
    _say(agent, home, "next", "b")
    rows = agent.ledger.rows()
    assert [r["purpose"] for r in rows][-3:] == ["flush", "compaction", "wake"]
    assert rows[-1]["cache_break"] == "compaction" and rows[-1]["changed_section"] == "tail"
    assert _causes(agent).count("compaction") == 1
    assert rows[-1]["expected_cached"] is not None and rows[-1]["cached_tokens"] >= rows[-1]["expected_cached"] * 0.9


def test_engine_restart_is_reported_once(home: Home) -> None:
    engine = ScriptedEngine()
    agent = _agent(home, engine)
    engine.enqueue_action("reply", text="one")
    _say(agent, home, "first", "a")
    # Without a warm-up, the next wake reports it, expecting nothing cached.
    engine.restart()
    agent.compiler.note_break("engine restarted")
    engine.enqueue_action("reply", text="two")
    _say(agent, home, "second", "b")
    row = agent.ledger.rows()[-1]
    assert row["cache_break"] == "engine restarted" and row["expected_cached"] == 0 and row["cached_tokens"] == 0
    # With a warm-up, the warm-up reports it and the wake starts on the warm prefix.
    engine.restart()
    agent.compiler.note_break("engine restarted")
    engine.enqueue("")
    warm_up(agent, "engine restarted")
    engine.enqueue_action("reply", text="three")
    _say(agent, home, "third", "c")
    rows = agent.ledger.rows()
    assert (rows[-2]["purpose"], rows[-2]["cache_break"], rows[-1]["cache_break"]) == ("warmup", "engine restarted", None)
    assert rows[-1]["expected_cached"] is not None and rows[-1]["cached_tokens"] >= 0.9 * rows[-1]["expected_cached"]
    assert _causes(agent).count("engine restarted") == 2  # two restarts, one record each


# ---------------------------------------------------------------- unknown stays unknown
def _row(prompt: int, cached: int | None, completion: int = 10) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "cached_tokens": cached, "completion_tokens": completion, "ttft_s": None}


def test_totals_keep_unknown_cached_apart() -> None:
    t = totals([_row(1000, 900), _row(2000, None), _row(500, 100)])
    assert t["prompt_tokens"] == 3500 and t["cached_tokens"] == 1000
    assert t["computed_tokens"] == 500 and t["hit_rate"] == round(1000 / 1500, 4)
    assert t["cached_unknown_requests"] == 1 and t["cached_unknown_prompt_tokens"] == 2000
    text = day_summary(t, wakes=2)
    assert "served from cache: 1000 (66.7%), computed: 500" in text and "unknown for 1" in text
    none = totals([_row(1000, None), _row(2000, None)])
    assert none["cached_tokens"] is None and none["computed_tokens"] is None and none["hit_rate"] is None
    text = day_summary(none, wakes=2)
    assert "served from cache: unknown" in text and "0.0%" not in text and "computed: 0" not in text
    assert "n/a" in format_stats(summarize([{**_row(1000, None), "trigger": "message", "day": "2026-11-22", "ts": 0.0, "cache_break": None}]))


def test_daily_budget_counts_unknown_cached_as_computed(home: Home) -> None:
    ledger = Ledger(home.runtime / "ledger.db")
    ledger.record(Record("message", "wake", 1000, 900, 10, day="2026-11-22"))
    ledger.record(Record("heartbeat", "wake", 2000, None, 10, day="2026-11-22"))
    ledger.record(Record("heartbeat", "wake", 5000, None, 10, day="2026-11-21"))
    assert ledger.tokens_on("2026-11-22") == (1000 - 900 + 10) + (2000 + 10)


def test_ledger_day_is_the_agents_day(home: Home) -> None:
    engine = ScriptedEngine()
    # 23:30 UTC is already the next day on Kiritimati (UTC+14), where the agent lives.
    there = datetime(2026, 11, 22, 23, 30, tzinfo=UTC).astimezone(ZoneInfo("Pacific/Kiritimati"))
    agent = _agent(home, engine, there)
    engine.enqueue_action("done", summary="job done")
    wake(agent, Event("cron", "do it", there, name="job"))
    assert [r["day"] for r in agent.ledger.rows()] == ["2026-11-23"]
    assert agent.ledger.tokens_on("2026-11-23") > 0 and agent.ledger.tokens_on("2026-11-22") == 0


OLD_SCHEMA = """CREATE TABLE requests (id INTEGER PRIMARY KEY, ts REAL NOT NULL, day TEXT NOT NULL, session TEXT,
    trigger TEXT NOT NULL, purpose TEXT NOT NULL, model TEXT, prompt_tokens INTEGER NOT NULL, cached_tokens INTEGER,
    expected_cached INTEGER, completion_tokens INTEGER NOT NULL, ttft_s REAL, total_s REAL, cache_break TEXT)"""


def test_an_old_ledger_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with sqlite3.connect(path) as db:
        db.execute(OLD_SCHEMA)
    ledger = Ledger(path)
    ledger.record(Record("message", "wake", 10, None, 1, common_chars=5, changed_section="USER.md"))
    assert ledger.rows()[0]["changed_section"] == "USER.md"


def test_today_starts_at_midnight_in_the_agents_zone() -> None:
    zone = ZoneInfo("Pacific/Kiritimati")
    start = datetime.fromtimestamp(today_since(zone), zone)
    assert (start.hour, start.minute, start.second) == (0, 0, 0)


def test_a_miss_behind_a_pool_is_recorded_as_replica_moved(home: Home) -> None:
    engine = ScriptedEngine()
    for backend, cause in (("llamacpp", "engine cache miss (evicted or restarted)"), ("pool", "replica-moved")):
        config = load_config(home.root)
        config = replace(config, engine=replace(config.engine, backend=backend))
        agent = build_agent(home, config, engine, clock=lambda: NOW)
        engine.enqueue_action("reply", text="one")
        _say(agent, home, "first", f"a-{backend}")
        engine.restart()  # the prefix is gone from where the next request lands (a replica died)
        engine.enqueue_action("reply", text="two")
        _say(agent, home, "second", f"b-{backend}")
        assert agent.ledger.rows()[-1]["cache_break"] == cause


def test_expected_cached_counts_whole_blocks_of_the_engines_real_size(home: Home) -> None:
    """A 520-token prompt sharing 500 tokens: vLLM with 128-token blocks serves 384; that is no cache miss."""
    from agentd.agent import record_usage
    from agentd.context import SelfCheck
    from engine.types import Usage

    agent = _agent(home, ScriptedEngine())
    check = SelfCheck(common_messages=3, extends_previous=True, expected_cached=500, cause=None)
    served = Usage(prompt_tokens=520, completion_tokens=5, cached_tokens=384, ttft_s=None, total_s=0.1)
    agent.cache_block = lambda: 128  # as the supervisor read it from vllm:cache_config_info
    record_usage(agent, served, trigger="message", purpose="wake", check=check)
    agent.cache_block = lambda: None  # an engine that caches any prefix (llama.cpp): 384 of 500 is a miss
    record_usage(agent, served, trigger="message", purpose="wake", check=check)
    vllm, any_prefix = agent.ledger.rows()[-2:]
    assert (vllm["expected_cached"], vllm["cache_break"]) == (384, None)
    assert (any_prefix["expected_cached"], any_prefix["cache_break"]) == (500, "engine cache miss (evicted or restarted)")


def test_the_wired_agent_reads_the_block_size_the_supervisor_recorded(home: Home) -> None:
    agent = _agent(home, ScriptedEngine())
    assert agent.cache_block() is None
    (home.runtime / "engine.json").write_text(json.dumps({"pid": 1, "cache_config": {"block_size": "128"}}))
    assert agent.cache_block() == 128, "read at each request: a restarted engine may use another size"

"""Steering diffs: a prefix file changed mid-session enters the tail, the prefix stays; the budget; the order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import agentd.prefix as prefix_module
from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.ledger import Ledger, format_stats, summarize
from agentd.loop import Agent, wake
from agentd.prefix import DEFAULT_ORDER, change_counts, section_order
from agentd.steering_diff import DIFF_BUDGET_TOKENS, STEERING_TAG, render_hunks
from agentd.wiring import build_agent
from tests.doubles.scripted_engine import ScriptedEngine

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def _agent(home: Home) -> tuple[Agent, ScriptedEngine]:
    engine = ScriptedEngine()
    return build_agent(home, load_config(home.root), engine, clock=lambda: NOW), engine


def _say(agent: Agent, engine: ScriptedEngine, home: Home, text: str, name: str) -> list[dict]:
    engine.enqueue_action("reply", text=f"re: {text}")
    (home.root / "inbox" / f"{name}.md").write_text(text)
    wake(agent, Event("message", text, NOW, name=name, source=f"inbox/{name}.md"))
    return engine.requests[-1]["messages"]


def _diffs(messages: list[dict]) -> list[str]:
    return [str(m["content"]) for m in messages if str(m.get("content", "")).startswith(STEERING_TAG)]


def test_a_persons_edit_is_a_diff_marked_as_theirs_and_authoritative(home: Home) -> None:
    agent, engine = _agent(home)
    first = _say(agent, engine, home, "hello", "a")
    user = home.root / "USER.md"
    user.write_text(user.read_text().replace("# About you", "# About you\n- Name: Ada\n- City: Lyon"))
    second = _say(agent, engine, home, "what is my name?", "b")
    assert second[0] == first[0], "the prefix is the same bytes"
    assert second[: len(first) - 1] == first[:-1], "nothing sent before is rewritten"
    (diff,) = _diffs(second)
    assert diff.splitlines()[0] == "[steering diff · USER.md · edited by the person]"
    assert "From now on this holds" in diff and "+- Name: Ada" in diff and "+- City: Lyon" in diff
    assert second[-2]["content"] == diff  # right before the event
    # The next wake sees the same diff once, where it was: the tail is append-only.
    third = _say(agent, engine, home, "thanks", "c")
    assert _diffs(third) == [diff] and third[0] == first[0]
    # A second edit is diffed against what the session shows now (the first diff applied).
    user.write_text(user.read_text().replace("- City: Lyon", "- City: Paris"))
    fourth = _say(agent, engine, home, "moved", "d")
    last = _diffs(fourth)[-1]
    assert "-- City: Lyon" in last and "+- City: Paris" in last and "Name: Ada" not in last.split("@@", 1)[1].replace("- Name: Ada\n", "")
    assert [r["cache_break"] for r in agent.ledger.rows()][1:] == [None] * (len(agent.ledger.rows()) - 1)


def test_the_agents_own_memory_edit_is_marked_as_its_own(home: Home) -> None:
    agent, engine = _agent(home)
    engine.enqueue_action("remember", topic="plants", fact="the fern needs water on Sundays")
    _say(agent, engine, home, "remember the fern", "a")
    (diff,) = _diffs(_say(agent, engine, home, "next", "b"))
    assert diff.startswith("[steering diff · MEMORY.md · edited by you (the agent)]") and "plants" in diff


def test_a_rewrite_past_the_budget_starts_a_new_prefix_at_once(home: Home) -> None:
    agent, engine = _agent(home)
    first = _say(agent, engine, home, "hello", "a")
    words = " ".join(f"word{i}" for i in range(DIFF_BUDGET_TOKENS // 2))  # ~4K characters: past the budget
    (home.root / "USER.md").write_text(f"# About you\n{words}\n")
    second = _say(agent, engine, home, "hi again", "b")
    assert second[0] != first[0] and "word1" in second[0]["content"] and not _diffs(second)
    assert second[1:len(first) - 1] == first[1:-1], "the session goes on, on the new prefix"
    cause = agent.ledger.rows()[-1]["cache_break"]
    assert cause.startswith("USER.md edited by the person: steering diffs past their budget")
    assert agent.ledger.steering_rows() == []


def test_many_small_edits_pile_up_to_the_budget_then_a_new_prefix(home: Home) -> None:
    agent, engine = _agent(home)
    first = _say(agent, engine, home, "hello", "a")
    user = home.root / "USER.md"
    for i in range(40):
        user.write_text(user.read_text() + f"- preference {i}: " + "x" * 120 + "\n")
        messages = _say(agent, engine, home, f"edit {i}", f"m{i}")
        if messages[0] != first[0]:
            break
    assert 3 <= i < 39  # several diffs went in first
    assert len(agent.ledger.steering_rows()) == i and "past their budget" in agent.ledger.rows()[-1]["cache_break"]


def test_a_change_to_the_rules_starts_a_new_prefix_at_once(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    agent, engine = _agent(home)
    first = _say(agent, engine, home, "hello", "a")
    monkeypatch.setattr(prefix_module, "SYSTEM_RULES", prefix_module.SYSTEM_RULES + "\nA new rule.")
    second = _say(agent, engine, home, "hi", "b")
    assert second[0] != first[0] and "A new rule." in second[0]["content"] and not _diffs(second)
    assert agent.ledger.rows()[-1]["cache_break"] == "rules changed"


def test_order_by_change_frequency_is_deterministic() -> None:
    log = "\0\nAGENT.md\nUSER.md\nmemory/MEMORY.md\nskills/x/SKILL.md\n" + "\0\nUSER.md\n" * 12 + "\0\nmemory/MEMORY.md\n" * 3
    counts = change_counts(log)
    assert counts == {"skills": 1, "AGENT.md": 1, "USER.md": 13, "MEMORY.md": 4}
    assert section_order(counts) == ("skills", "AGENT.md", "MEMORY.md", "USER.md")  # the person edits USER.md most
    assert section_order(dict.fromkeys(DEFAULT_ORDER, 0)) == DEFAULT_ORDER
    # One edit more does not reorder a young home: a section must change PRIOR_COMMITS times more.
    assert section_order({"skills": 0, "AGENT.md": 1, "USER.md": 3, "MEMORY.md": 1}) == DEFAULT_ORDER
    assert section_order({"skills": 9, "AGENT.md": 0, "USER.md": 0, "MEMORY.md": 0})[-1] == "MEMORY.md"


def test_the_prefix_is_built_in_the_homes_order_at_a_boundary(home: Home) -> None:
    agent, engine = _agent(home)
    _say(agent, engine, home, "hello", "a")
    user = home.root / "USER.md"
    for i in range(12):
        user.write_text(user.read_text() + f"- fact {i}\n")
        home.absorb_person_edits()
    agent.compiler.drop_session("main")  # a new day
    system = _say(agent, engine, home, "good morning", "b")[0]["content"]
    names = [line[4:-4] for line in system.splitlines() if line.startswith("<<< ") and line.endswith(" >>>")]
    assert names == ["rules", "tools", "skills", "AGENT.md", "MEMORY.md", "USER.md"]
    assert "- fact 11" in system


def test_compaction_carries_the_diff_and_keeps_the_prefix(home: Home) -> None:
    path = home.root / "agent.yaml"
    path.write_text(path.read_text().replace("session_tokens: 6000", "session_tokens: 500"))
    home.absorb_person_edits()
    agent, engine = _agent(home)
    first = _say(agent, engine, home, "hello " * 200, "a")
    (home.root / "USER.md").write_text((home.root / "USER.md").read_text() + "- Name: Ada\n")
    engine.enqueue_action("done", summary="memory is up to date")  # the memory flush
    engine.enqueue("- said hello")  # the summary
    after = _say(agent, engine, home, "who am I?", "b")
    assert after[0] == first[0], "compaction kept the prefix"
    assert after[1]["content"].startswith("[summary of the previous session]")
    (diff,) = _diffs(after)
    assert "+- Name: Ada" in diff


def test_stats_show_steering_diffs_and_the_tokens_they_saved(home: Home) -> None:
    agent, engine = _agent(home)
    _say(agent, engine, home, "hello", "a")
    (home.root / "USER.md").write_text((home.root / "USER.md").read_text() + "- Name: Ada\n")
    _say(agent, engine, home, "hi", "b")
    ledger = Ledger(home.runtime / "ledger.db")
    (row,) = ledger.steering_rows()
    assert row["trigger"] == "message" and row["sections"] == "USER.md" and row["diff_tokens"] > 0
    assert row["saved_prefix_tokens"] > row["diff_tokens"]
    summary = summarize(ledger.rows(), ledger.steering_rows())
    assert summary["steering_diffs"]["count"] == 1
    assert summary["steering_diffs"]["saved_prefix_tokens"] == row["saved_prefix_tokens"]
    kinds = [b["purpose"] for b in summary["cache_breaks"]]
    assert "steering-diff" in kinds
    text = format_stats(summary)
    assert "steering-diff: USER.md edited by the person (prefix kept" in text
    assert f"prefix tokens saved: {row['saved_prefix_tokens']}" in text


def test_render_hunks_is_compact() -> None:
    before = "".join(f"line {i}\n" for i in range(50))
    after = before.replace("line 25\n", "line 25 changed\n")
    hunks = render_hunks(before, after)
    assert hunks.splitlines() == ["@@ -25,3 +25,3 @@", " line 24", "-line 25", "+line 25 changed", " line 26"]

"""The wake loop with a scripted engine: tool use, recovery from bad calls, budgets, one commit per wake."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentd.config import load_config
from agentd.context import IdSource, random_id, seeded_ids
from agentd.events import Event
from agentd.home import Home
from agentd.loop import Agent, wake
from agentd.template import init_home
from agentd.tools.base import ToolRegistry
from agentd.wal import WriteAheadLog
from agentd.wiring import build_agent, build_registry
from engine.errors import EngineUnavailable
from engine.types import ChatResult, Usage
from tests.doubles.scripted_engine import FaultyTool, ScriptedEngine

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def make_agent(home: Home, engine: ScriptedEngine) -> Agent:
    return build_agent(home, load_config(home.root), engine, model="scripted", clock=lambda: NOW)


def set_config(home: Home, old: str, new: str) -> None:
    path = home.root / "agent.yaml"
    path.write_text(path.read_text().replace(old, new))
    home.absorb_person_edits()


def commit_count(home: Home) -> int:
    return len(list(home.repo.iter_commits()))


def message(home: Home, text: str, name: str = "m1") -> Event:
    (home.root / "inbox" / f"{name}.md").write_text(text + "\n")
    return Event("message", text, NOW, name=name, source=f"inbox/{name}.md")


def test_multi_step_tool_use_then_reply(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue_action("read_file", path="USER.md")
    engine.enqueue_action("write_file", path="memory/topics/plants.md", content="# Plants\n- water the fern on Sundays\n")
    engine.enqueue_action("reply", text="Noted: the fern gets water on Sundays.")
    event = message(home, "Remember: water the fern on Sundays")
    before = commit_count(home)
    result = wake(make_agent(home, engine), event)

    assert result.status == "ok" and result.steps == 3
    assert result.reply == "Noted: the fern gets water on Sundays."
    assert (home.root / "memory/topics/plants.md").read_text().startswith("# Plants")
    # exactly one commit: the message arrives in the same commit as its answer
    log = list(home.repo.iter_commits())
    assert commit_count(home) == before + 1
    assert "inbox/done/m1.md" in home.repo.git.show("--name-only", "--format=", log[0].hexsha)
    msg = str(log[0].message)
    assert msg.startswith("wake message:m1: Noted") and "Wake-Trigger: message:m1" in msg
    assert "memory/topics/plants.md" in home.repo.git.show("--name-only", "--format=", log[0].hexsha)
    # inbox message moved in the same commit, reply delivered, journal written
    assert not (home.root / "inbox/m1.md").exists() and (home.root / "inbox/done/m1.md").exists()
    assert "the fern gets water" in (home.root / "outbox/2026-11-22.md").read_text()
    journal = (home.root / "memory/journal/2026-11-22.md").read_text()
    assert "message:m1" in journal and "memory/topics/plants.md" in journal
    assert home.dirty_paths() == []


def test_event_and_clock_come_last(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue_action("reply", text="hi")
    wake(make_agent(home, engine), message(home, "hello"))
    messages = engine.requests[0]["messages"]
    assert messages[0]["role"] == "system" and "2026" not in messages[0]["content"]
    assert "2026-11-22 09:30" in messages[-1]["content"] and messages[-1]["role"] == "user"
    schema = engine.requests[0]["response_format"]["json_schema"]["schema"]
    assert {v["properties"]["tool"]["enum"][0] for v in schema["anyOf"]} >= {"reply", "done", "shell", "read_file"}


def test_malformed_and_unknown_calls_go_back_to_the_model(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue("this is not json")
    engine.enqueue_action("teleport", to="mars")
    engine.enqueue(json.dumps({"tool": "read_file", "arguments": {"path": 7}}))
    engine.enqueue_action("reply", text="sorry, done now")
    result = wake(make_agent(home, engine), message(home, "do it"))
    assert result.status == "ok" and result.steps == 4 and result.reply == "sorry, done now"
    second = engine.requests[1]["messages"][-1]["content"]
    assert "[error]" in second and "JSON" in second
    third = engine.requests[2]["messages"][-1]["content"]
    assert "unknown tool 'teleport'" in third
    fourth = engine.requests[3]["messages"][-1]["content"]
    assert "must be of type string" in fourth


def test_deeply_nested_action_goes_back_to_the_model(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue('{"tool": "reply", "arguments": ' + "[" * 3_000 + "]" * 3_000 + "}")
    engine.enqueue('{"tool": "memory_search", "arguments": "{\\"query\\": ' + "[" * 3_000 + "]" * 3_000 + '}"}')
    engine.enqueue_action("reply", text="flat now")
    result = wake(make_agent(home, engine), message(home, "nest"))
    assert result.status == "ok" and result.reply == "flat now"
    assert "nested too deeply" in engine.requests[1]["messages"][-1]["content"]
    assert "nested too deeply" in engine.requests[2]["messages"][-1]["content"]


def test_budget_stop_is_recorded(home: Home) -> None:
    set_config(home, "max_steps: 8", "max_steps: 2")
    engine = ScriptedEngine()
    for _ in range(3):
        engine.enqueue_action("list_files", path=".")
    result = wake(make_agent(home, engine), Event("cron", "tidy up", NOW, name="tidy"))
    assert result.status == "budget" and "step budget of 2" in (result.error or "")
    head = str(home.repo.head.commit.message)
    assert "[budget]" in head and "Wake-Status: budget" in head
    assert "(budget)" in (home.root / "memory/journal/2026-11-22.md").read_text()


def test_failure_mid_wake_still_commits_what_changed(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue_action("write_file", path="notes/draft.md", content="half of a plan\n")
    engine.enqueue_error(EngineUnavailable("engine went away"))
    result = wake(make_agent(home, engine), Event("cron", "plan the week", NOW, name="plan"))
    assert result.status == "failed" and "engine went away" in (result.error or "")
    head = home.repo.head.commit
    assert "[failed]" in str(head.message)
    assert "notes/draft.md" in home.repo.git.show("--name-only", "--format=", head.hexsha)
    assert "(failed)" in (home.root / "memory/journal/2026-11-22.md").read_text()
    assert home.dirty_paths() == []


def test_engine_down_leaves_message_in_inbox_and_home_as_it_was(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue_error(EngineUnavailable("connection refused"))
    event = message(home, "are you there?")
    result = wake(make_agent(home, engine), event)
    assert result.status == "failed" and result.commit is None
    assert (home.root / "inbox/m1.md").exists()
    assert home.dirty_paths() == ["inbox/m1.md"]  # the message waits; nothing else changed


def test_empty_heartbeat_leaves_no_trace(home: Home) -> None:
    agent = make_agent(home, ScriptedEngine())
    engine = agent.engine
    assert isinstance(engine, ScriptedEngine)
    engine.enqueue_action("reply", text="hello")
    wake(agent, message(home, "hi"))
    tail_before = agent.compiler.load_session("main").tail  # type: ignore[union-attr]
    head_before = home.repo.head.commit.hexsha
    engine.enqueue_action("done", summary="HEARTBEAT_OK")
    result = wake(agent, Event("heartbeat", "Open items:\n- [ ] check mail", NOW))
    assert result.status == "heartbeat_ok" and result.commit is None
    assert home.repo.head.commit.hexsha == head_before
    assert agent.compiler.load_session("main").tail == tail_before  # type: ignore[union-attr]
    assert agent.ledger.rows()[-1]["trigger"] == "heartbeat"
    # The dropped heartbeat was a suffix: the next request shares everything before it.
    engine.enqueue_action("reply", text="again")
    wake(agent, message(home, "and now?", "m2"))
    row = agent.ledger.rows()[-1]
    assert row["cache_break"] is None and row["changed_section"] is None
    assert row["expected_cached"] is not None and abs(row["expected_cached"] - row["cached_tokens"]) <= 0.05 * row["cached_tokens"]


def test_native_tool_calls_run_in_order_in_one_round_trip(home: Home) -> None:
    set_config(home, "tool_calling: json", "tool_calling: native")
    engine = ScriptedEngine()
    engine.enqueue_calls(
        ("write_file", {"path": "a.md", "content": "first\n"}),
        ("edit_file", {"path": "a.md", "old": "first", "new": "second"}),
    )
    engine.enqueue("All set.")
    result = wake(make_agent(home, engine), message(home, "make a.md"))
    assert result.status == "ok" and result.steps == 2 and result.reply == "All set."
    assert (home.root / "a.md").read_text() == "second\n"
    second = engine.requests[1]["messages"]
    assert [m["role"] for m in second[-3:]] == ["assistant", "tool", "tool"]
    assert engine.requests[0]["tools"][0]["function"]["name"] == "reply"


def test_shell_runs_in_the_home(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue_action("shell", command="ls memory")
    engine.enqueue_action("reply", text="listed")
    wake(make_agent(home, engine), message(home, "ls"))
    result_text = engine.requests[1]["messages"][-1]["content"]
    assert "MEMORY.md" in result_text and "journal" in result_text


def test_ledger_records_every_request(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue_action("list_files", path=".")
    engine.enqueue_action("reply", text="ok")
    agent = make_agent(home, engine)
    wake(agent, message(home, "hi"))
    rows = agent.ledger.rows()
    assert [r["purpose"] for r in rows] == ["wake", "wake"]
    assert rows[1]["cached_tokens"] is not None and rows[1]["cached_tokens"] > 0
    assert rows[1]["expected_cached"] == rows[0]["prompt_tokens"]


def test_stale_write_inside_a_wake_is_refused_not_lost(home: Home, tmp_path: Path) -> None:
    engine = ScriptedEngine()
    engine.enqueue_action("read_file", path="USER.md")

    def person_edits_then_agent_writes(messages: list[dict[str, object]]) -> object:
        (home.root / "USER.md").write_text("# About you\n- Name: Ada (typed by the person)\n")
        from engine.types import ChatResult, Usage

        return ChatResult(json.dumps({"tool": "write_file", "arguments": {"path": "USER.md", "content": "agent version\n"}}), [], "stop", Usage(0, 5, None, None, 0.0), "s")

    engine.queue.append(person_edits_then_agent_writes)
    engine.enqueue_action("reply", text="could not write")
    wake(make_agent(home, engine), message(home, "update USER.md"))
    assert "typed by the person" in (home.root / "USER.md").read_text()
    assert "changed since the agent last read it" in engine.requests[2]["messages"][-1]["content"]
    history = home.repo.git.log("-p", "--format=%s", "--", "USER.md")
    assert "typed by the person" in history


# ---------------------------------------------------------------- budgets
def test_completion_budget_stops_the_wake(home: Home) -> None:
    set_config(home, "max_completion_tokens: 2048", "max_completion_tokens: 20")
    engine = ScriptedEngine()
    for _ in range(5):
        engine.enqueue_action("list_files", path=".")  # 8 completion tokens each
    result = wake(make_agent(home, engine), Event("cron", "tidy up", NOW, name="tidy"))
    assert result.status == "budget" and "completion budget of 20 tokens" in (result.error or "")
    assert result.steps == 3 and result.completion_tokens == 24
    assert [r["max_tokens"] for r in engine.requests] == [20, 12, 4]  # never asks past what is left
    assert "Wake-Status: budget" in str(home.repo.head.commit.message)


class SteppingClock:
    """A monotonic clock double that moves only when told: no sleeping, no real time."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_wall_time_budget_stops_the_wake(home: Home) -> None:
    engine = ScriptedEngine()
    agent = make_agent(home, engine)
    assert agent.config.budgets.max_wall_seconds == 300
    clock = SteppingClock()
    agent.monotonic = clock

    def slow_step(messages: list[dict[str, object]]) -> ChatResult:
        clock.t += 200  # each engine call takes 200 s of the 300 s budget
        return ChatResult(json.dumps({"tool": "list_files", "arguments": {"path": "."}}), [], "stop", Usage(0, 8, None, None, 0.0), "s")

    for _ in range(4):
        engine.queue.append(slow_step)
    result = wake(agent, Event("cron", "tidy up", NOW, name="tidy"))
    assert result.status == "budget" and result.error == "wall-time budget used up"
    assert result.steps == 2 and len(engine.queue) == 2


# ---------------------------------------------------------------- whatever goes wrong
def test_any_exception_part_way_ends_in_the_failure_commit(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue_action("write_file", path="notes/draft.md", content="half of a plan\n")
    engine.enqueue_error(RuntimeError("a bug in the client"))
    agent = make_agent(home, engine)
    with pytest.raises(RuntimeError, match="a bug in the client"):
        wake(agent, Event("cron", "plan the week", NOW, name="plan"))
    head = home.repo.head.commit
    assert "[failed]" in str(head.message) and "RuntimeError: a bug in the client" in str(head.message)
    assert "notes/draft.md" in home.repo.git.show("--name-only", "--format=", head.hexsha)
    assert "RuntimeError: a bug in the client" in (home.root / "memory/journal/2026-11-22.md").read_text()
    assert home.dirty_paths() == [] and not WriteAheadLog(home.runtime).active()


def test_any_exception_before_a_change_leaves_the_message_waiting(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue_error(KeyError("usage"))
    before = home.repo.head.commit.hexsha
    with pytest.raises(KeyError):
        wake(make_agent(home, engine), message(home, "are you there?"))
    assert home.repo.head.commit.hexsha == before and home.dirty_paths() == ["inbox/m1.md"]
    assert not WriteAheadLog(home.runtime).active()


def test_a_tool_raising_runtime_error_never_leaves_the_wake_open(home: Home) -> None:
    engine = ScriptedEngine()
    agent = make_agent(home, engine)
    base = build_registry()
    agent.registry = ToolRegistry([*(t for t in (base.get(n) for n in base.names) if t is not None), FaultyTool()])
    engine.enqueue_action("write_file", path="notes/draft.md", content="draft\n")
    engine.enqueue_action("faulty", what="x")
    engine.enqueue_action("done", summary="gave up on the faulty tool")
    try:
        wake(agent, Event("cron", "use the faulty tool", NOW, name="faulty"))
    except RuntimeError:
        pass  # a registry that lets the bug through: the loop still committed first
    head = home.repo.head.commit
    assert "Wake-Trigger: cron:faulty" in str(head.message)
    assert "notes/draft.md" in home.repo.git.show("--name-only", "--format=", head.hexsha)
    assert home.dirty_paths() == [] and not WriteAheadLog(home.runtime).active()


def _overflowing_wakes(root: Path, new_id: IdSource) -> tuple[list[dict], list[str]]:
    """Two wakes on a fresh home, each storing two long shell outputs; the requests sent and the wake ids."""
    home = init_home(root)
    set_config(home, "max_output: 8000", "max_output: 200")
    engine = ScriptedEngine()
    agent = build_agent(home, load_config(home.root), engine, model="scripted", clock=lambda: NOW, new_id=new_id)
    ids = []
    for name in ("m1", "m2"):
        engine.enqueue_action("shell", command="seq 1 3000")
        engine.enqueue_action("shell", command="seq 5 2000")
        engine.enqueue_action("reply", text="counted")
        ids.append(wake(agent, message(home, f"count for {name}", name)).wake_id)
    return engine.requests, ids


def test_a_seeded_id_source_makes_wakes_render_identical_requests(tmp_path: Path) -> None:
    one, ids = _overflowing_wakes(tmp_path / "a", seeded_ids(7))
    two, ids_two = _overflowing_wakes(tmp_path / "elsewhere" / "b", seeded_ids(7))
    assert ids == ids_two and ids[0] != ids[1]
    # Byte-identical, though the homes are in different directories: stored outputs are
    # named per wake and relative to the home.
    assert json.dumps(one) == json.dumps(two)
    text = json.dumps(one)
    for wake_id in ids:
        assert f"is in .agentd/outputs/{wake_id}-1.txt" in text and f"is in .agentd/outputs/{wake_id}-2.txt" in text
        assert (tmp_path / "a" / ".agentd" / "outputs" / f"{wake_id}-2.txt").read_text().startswith("5\n6\n")
    assert str(tmp_path) not in text
    # The default source is random: the ids, and so the stored outputs' names, differ.
    three, ids_three = _overflowing_wakes(tmp_path / "c", random_id)
    assert set(ids_three).isdisjoint(ids) and json.dumps(three) != text

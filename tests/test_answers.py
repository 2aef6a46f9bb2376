"""A message wake always answers: the last step may only reply, a call failing twice is not run again, the reply streams."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.loop import LAST_STEP_NOTE, Agent, wake
from agentd.wiring import build_agent
from engine.types import ChatResult, Usage
from tests.doubles.scripted_engine import ScriptedEngine

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
REPLY_ONLY = {"type": "function", "function": {"name": "reply"}}


def make_agent(home: Home, engine: ScriptedEngine) -> Agent:
    return build_agent(home, load_config(home.root), engine, model="scripted", clock=lambda: NOW)


def set_config(home: Home, old: str, new: str) -> None:
    path = home.root / "agent.yaml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    home.absorb_person_edits()


def message(home: Home, text: str, name: str = "m1") -> Event:
    (home.root / "inbox" / f"{name}.md").write_text(text + "\n")
    return Event("message", text, NOW, name=name, source=f"inbox/{name}.md")


def allowed_tools(request: dict[str, object]) -> set[str]:
    schema = request["response_format"]["json_schema"]["schema"]  # type: ignore[index]
    return {v["properties"]["tool"]["enum"][0] for v in schema["anyOf"]}


def test_last_step_of_a_message_wake_may_only_reply(home: Home) -> None:
    set_config(home, "max_steps: 8", "max_steps: 3")
    engine = ScriptedEngine()
    engine.enqueue_action("list_files", path=".")
    engine.enqueue_action("list_files", path="memory")
    engine.enqueue_action("reply", text="Your name is Ada.")
    result = wake(make_agent(home, engine), message(home, "What is my name?"))
    assert result.status == "ok" and result.reply == "Your name is Ada." and result.steps == 3
    assert allowed_tools(engine.requests[0]) >= {"reply", "list_files", "edit_file"}
    assert allowed_tools(engine.requests[1]) >= {"reply", "list_files"}
    assert allowed_tools(engine.requests[2]) == {"reply"}
    assert engine.requests[2]["messages"][-1]["content"] == LAST_STEP_NOTE
    assert LAST_STEP_NOTE not in json.dumps(engine.requests[1]["messages"])


def test_last_step_on_native_tool_calls_forces_reply_with_tool_choice(home: Home) -> None:
    set_config(home, "tool_calling: json", "tool_calling: native")
    set_config(home, "max_steps: 8", "max_steps: 2")
    engine = ScriptedEngine()
    engine.enqueue_calls(("list_files", {"path": "."}))
    engine.enqueue_calls(("reply", {"text": "Here."}))
    result = wake(make_agent(home, engine), message(home, "What is there?"))
    assert result.reply == "Here." and result.status == "ok"
    assert engine.requests[0]["tool_choice"] == "auto"
    assert engine.requests[1]["tool_choice"] == REPLY_ONLY
    # the tools themselves do not change: they are part of the cached prefix
    assert engine.requests[1]["tools"] == engine.requests[0]["tools"]


def test_cron_wakes_are_not_forced_to_reply(home: Home) -> None:
    set_config(home, "max_steps: 8", "max_steps: 2")
    engine = ScriptedEngine()
    engine.enqueue_action("list_files", path=".")
    engine.enqueue_action("list_files", path="memory")
    result = wake(make_agent(home, engine), Event("cron", "tidy up", NOW, name="tidy"))
    assert result.status == "budget" and result.reply is None
    assert "reply" in allowed_tools(engine.requests[1]) and "list_files" in allowed_tools(engine.requests[1])


def test_a_call_failing_twice_is_not_run_a_third_time(home: Home) -> None:
    engine = ScriptedEngine()
    for _ in range(3):
        engine.enqueue_action("edit_file", path="notes/missing.md", old="a", new="b")
    engine.enqueue_action("reply", text="I could not find that file.")
    result = wake(make_agent(home, engine), message(home, "What is my name?"))
    assert result.reply == "I could not find that file." and result.steps == 4
    second, third = (engine.requests[i]["messages"] for i in (2, 3))
    assert "[result of edit_file]" in second[-1]["content"] and "not run" not in second[-1]["content"]
    refused = [m["content"] for m in third if "[result of edit_file]" in m.get("content", "")][-1]
    assert "not run: this exact call already failed twice" in refused
    assert allowed_tools(engine.requests[3]) == {"reply"}  # the wake moves to its answer


def test_a_different_call_after_two_failures_still_runs(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue_action("read_file", path="nope.md")
    engine.enqueue_action("read_file", path="nope.md")
    engine.enqueue_action("read_file", path="USER.md")
    engine.enqueue_action("reply", text="ok")
    result = wake(make_agent(home, engine), message(home, "read"))
    assert result.reply == "ok"
    third_result = engine.requests[3]["messages"][-1]["content"]
    assert "not run" not in third_result and "[result of read_file]" in third_result
    assert "reply" in allowed_tools(engine.requests[3]) and "read_file" in allowed_tools(engine.requests[3])


class SteppingClock:
    """A monotonic clock double that moves only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_wall_time_stop_still_gets_the_models_answer(home: Home) -> None:
    engine = ScriptedEngine()
    agent = make_agent(home, engine)
    clock = SteppingClock()
    agent.monotonic = clock

    def slow_step(messages: list[dict[str, object]]) -> ChatResult:
        clock.t += 400  # past the 300 s budget in one step
        return ChatResult(json.dumps({"tool": "list_files", "arguments": {"path": "."}}), [], "stop", Usage(0, 8, None, None, 0.0), "s")

    engine.queue.append(slow_step)
    engine.enqueue_action("reply", text="Short answer: yes.")
    result = wake(agent, message(home, "Is it done?"))
    assert result.reply == "Short answer: yes." and result.steps == 2
    assert allowed_tools(engine.requests[1]) == {"reply"}


@pytest.mark.parametrize(
    ("cut", "delivered"),
    [
        ('{"tool": "reply", "arguments": {"text": "Your name is Ada and you live in', "Your name is Ada and you live in"),
        # raw newlines, as llama.cpp's grammar lets them into JSON strings
        ('{ "tool": "reply", "arguments": { "text" : "Ana lives\nin Krakow and', "Ana lives\nin Krakow and"),
    ],
)
def test_a_reply_cut_short_by_max_tokens_is_still_delivered(home: Home, cut: str, delivered: str) -> None:
    set_config(home, "max_steps: 8", "max_steps: 1")
    engine = ScriptedEngine()
    engine.enqueue(cut)
    result = wake(make_agent(home, engine), message(home, "Who am I?"))
    assert result.status == "ok" and result.reply == delivered


def test_no_message_wake_ends_without_an_answer_when_the_model_loops(home: Home) -> None:
    engine = ScriptedEngine()
    for _ in range(7):
        engine.enqueue_action("list_files", path=".")  # a model stuck exploring
    engine.enqueue_action("reply", text="Best I have: nothing found.")
    result = wake(make_agent(home, engine), message(home, "Find it"))
    assert result.status == "ok" and result.reply == "Best I have: nothing found." and result.steps == 8
    assert [allowed_tools(r) == {"reply"} for r in engine.requests] == [False] * 7 + [True]
    assert "(I could not finish" not in (home.root / "outbox/2026-11-22.md").read_text()


def test_the_reply_streams_piece_by_piece_from_a_json_action(home: Home) -> None:
    engine = ScriptedEngine(piece_chars=3)
    engine.enqueue_action("read_file", path="USER.md")
    engine.enqueue('{"tool": "reply", "arguments": {"text": "Caf\\u00e9 \\"Ada\\" \\ud83d\\ude00\\nbye"}}')
    pieces: list[str] = []
    result = wake(make_agent(home, engine), message(home, "hi"), on_delta=pieces.append)
    assert result.reply == 'Café "Ada" 😀\nbye'
    assert "".join(pieces) == result.reply and len(pieces) > 5  # token by token, none of the read_file action


def test_the_reply_streams_piece_by_piece_from_a_native_tool_call(home: Home) -> None:
    set_config(home, "tool_calling: json", "tool_calling: native")
    engine = ScriptedEngine(piece_chars=3)
    engine.enqueue_calls(("read_file", {"path": "USER.md"}))
    engine.enqueue_calls(("reply", {"text": 'Caf\u00e9 "Ada" \U0001f600\nbye'}))
    pieces: list[str] = []
    result = wake(make_agent(home, engine), message(home, "hi"), on_delta=pieces.append)
    assert result.reply == 'Café "Ada" 😀\nbye'
    assert "".join(pieces) == result.reply and len(pieces) > 5  # token by token, none of read_file's arguments


def test_a_raw_newline_inside_the_reply_text_is_accepted(home: Home) -> None:
    # llama.cpp's grammar lets raw control characters into JSON strings; strict parsing wasted the step
    engine = ScriptedEngine()
    engine.enqueue('{"tool": "reply", "arguments": {"text": "line one\nline two"}}')
    result = wake(make_agent(home, engine), message(home, "two lines?"))
    assert result.status == "ok" and result.reply == "line one\nline two" and result.steps == 1


def test_a_message_wake_quotes_the_matching_lines_of_user_md_and_a_cron_wake_does_not(home: Home) -> None:
    (home.root / "USER.md").write_text("# About you\n\n- Name: Ada\n- My partner: Tomas\n")
    home.absorb_person_edits()
    engine = ScriptedEngine()
    engine.enqueue_action("reply", text="Tomas.")
    wake(make_agent(home, engine), message(home, "Who is my partner?"))
    assert engine.requests[0]["messages"][-1]["content"].endswith("(USER.md) My partner: Tomas")
    engine.enqueue_action("done", summary="tidied")
    wake(make_agent(home, engine), Event("cron", "Who is my partner?", NOW, name="tidy"))
    assert "(USER.md)" not in engine.requests[1]["messages"][-1]["content"]

"""The person and the agent edit the same file at once: no lost update, both versions in git history."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.loop import wake
from agentd.wiring import build_agent
from engine.types import ChatResult, Usage
from tests.doubles.scripted_engine import ScriptedEngine

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_person_edit_during_agent_edit(home: Home) -> None:
    (home.root / "plans.md").write_text("# Plans\n- buy milk\n")
    home.absorb_person_edits()
    engine = ScriptedEngine()
    engine.enqueue_action("read_file", path="plans.md")

    def person_types_then_agent_edits(messages: list[dict[str, object]]) -> ChatResult:
        (home.root / "plans.md").write_text("# Plans\n- buy milk\n- call the plumber (typed by the person)\n")
        action = {"tool": "write_file", "arguments": {"path": "plans.md", "content": "# Plans\n- buy oat milk\n"}}
        return ChatResult(json.dumps(action), [], "stop", Usage(0, 5, None, None, 0.0), "s")

    engine.queue.append(person_types_then_agent_edits)
    engine.enqueue_action("read_file", path="plans.md")
    engine.enqueue_action("edit_file", path="plans.md", old="- buy milk", new="- buy oat milk")
    engine.enqueue_action("done", summary="updated the plan")
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    wake(agent, Event("cron", "tidy the plans", NOW, name="tidy"))

    final = (home.root / "plans.md").read_text()
    assert "call the plumber (typed by the person)" in final and "buy oat milk" in final
    refused = engine.requests[2]["messages"][-1]["content"]
    assert "changed since the agent last read it" in refused
    log = home.repo.git.log("--format=%an|%s", "--", "plans.md").splitlines()
    assert log[0].startswith("agentd|wake cron:tidy") and log[1].startswith("Test Person|person: edited plans.md during a wake")
    person_version = home.repo.git.show("HEAD~1:plans.md")
    assert "typed by the person" in person_version and "oat" not in person_version

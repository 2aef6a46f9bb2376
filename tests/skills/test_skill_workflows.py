"""The built-in skills' workflows, driven end to end by a scripted wake (the model's moves are scripted;
the tools, files and git are real)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.loop import wake
from agentd.wiring import build_agent
from tests.doubles.scripted_engine import ScriptedEngine

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def last_tool_result(engine: ScriptedEngine, request: int) -> str:
    content = engine.requests[request]["messages"][-1]["content"]
    return str(content)


def test_daily_briefing_writes_the_outbox_briefing(home: Home) -> None:
    (home.root / "HEARTBEAT.md").write_text("# Heartbeat\n- [ ] renew the passport\n")
    (home.root / "memory/journal/2026-11-21.md").write_text("# 2026-11-21\n\n## 10:00 · message\n\nBooked the dentist.\n")
    home.absorb_person_edits()
    briefing = "# Briefing 2026-11-22\n\n## Yesterday\n- Booked the dentist.\n\n## Today\n- Renew the passport.\n\n## Waiting on you\n- nothing\n"
    engine = ScriptedEngine()
    engine.enqueue_action("read_skill", name="daily-briefing")
    engine.enqueue_action("briefing_inputs")
    engine.enqueue_action("write_file", path="outbox/briefing-2026-11-22.md", content=briefing)
    engine.enqueue_action("done", summary="outbox/briefing-2026-11-22.md")
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    result = wake(agent, Event("cron", "Write my daily briefing.", NOW, name="daily-briefing"))

    assert result.status == "ok", result.error
    system = str(engine.requests[0]["messages"][0]["content"])
    assert "daily-briefing" in system and "Keep it under 25 lines" not in system  # only name + description in the prefix
    assert "Keep it under 25 lines" in last_tool_result(engine, 1)  # the body, read on demand
    inputs = last_tool_result(engine, 2)
    assert "outbox/briefing-2026-11-22.md" in inputs and "renew the passport" in inputs and "Booked the dentist" in inputs
    assert (home.root / "outbox/briefing-2026-11-22.md").read_text() == briefing
    assert "outbox/briefing-2026-11-22.md" in home.repo.git.show("--name-only", "--format=", "HEAD").splitlines()
    assert home.dirty_paths() == []


def test_housekeeping_moves_detail_into_topics_and_brings_memory_within_budget(home: Home) -> None:
    budget = 700
    yaml = home.root / "agent.yaml"
    yaml.write_text(re.sub(r"max_steps: \d+", "max_steps: 16", re.sub(r"memory_chars: \d+", f"memory_chars: {budget}", yaml.read_text())))
    details = [
        ("garden", "The tomatoes in the south bed get watered every morning before nine, and twice on hot days."),
        ("garden", "The fig tree was pruned in March; the next pruning is due after the harvest in October."),
        ("car", "The car is a 2014 blue Skoda Octavia estate; its next service is at 120,000 km at the Müller garage."),
        ("car", "The winter tyres are stored in the garage loft and go on the car in the first week of November."),
        ("health", "Dentist appointments are with Dr. Alvarez on Baker Street; the next check-up is in February."),
        ("health", "The person is allergic to penicillin, which every new doctor must be told before a prescription."),
    ]
    memory = home.root / "memory/MEMORY.md"
    original = memory.read_text()
    memory.write_text(original.rstrip("\n") + "\n\n## Notes\n" + "".join(f"- {fact}\n" for _, fact in details))
    home.absorb_person_edits()
    assert len(memory.read_text()) > budget

    engine = ScriptedEngine()
    engine.enqueue_action("read_skill", name="housekeeping")
    engine.enqueue_action("read_file", path="memory/MEMORY.md")
    for topic, fact in details:
        engine.enqueue_action("remember", topic=topic, fact=fact)
    engine.enqueue_action("read_file", path="memory/MEMORY.md")
    engine.queue.append(lambda messages: _remove_moved_notes(home, details))
    engine.enqueue_action("done", summary="moved 6 lines into 3 topics")
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    result = wake(agent, Event("cron", "Weekly housekeeping.", NOW, name="housekeeping"))

    assert result.status == "ok", result.error
    assert all("error" not in last_tool_result(engine, i)[:10] for i in range(1, len(engine.requests)))
    after = memory.read_text()
    assert len(after) <= budget, len(after)
    for topic, fact in details:
        assert fact in (home.root / f"memory/topics/{topic}.md").read_text()
        assert fact not in after
    index = after + ((home.root / "memory/topics/index.md").read_text() if (home.root / "memory/topics/index.md").exists() else "")
    assert all(f"[[topics/{t}]]" in index for t in ("garden", "car", "health"))
    # Nothing lost: the person's notes are in history as they wrote them.
    assert "penicillin" in home.repo.git.show("HEAD~1:memory/MEMORY.md")
    assert home.dirty_paths() == []


def _remove_moved_notes(home: Home, details: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    """The model's edit_file call removing the moved notes (built from the file as it now is)."""
    import json

    from engine.types import ChatResult, Usage

    text = (home.root / "memory/MEMORY.md").read_text()
    block = "## Notes\n" + "".join(f"- {fact}\n" for _, fact in details)
    assert block in text
    action = {"tool": "edit_file", "arguments": {"path": "memory/MEMORY.md", "old": block, "new": ""}}
    return ChatResult(json.dumps(action), [], "stop", Usage(0, 5, None, None, 0.0), "s")

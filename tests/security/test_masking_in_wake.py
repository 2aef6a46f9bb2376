"""A secret printed by a shell command never reaches the engine, the ledger or git."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.loop import wake
from agentd.wiring import build_agent
from tests.doubles.scripted_engine import ScriptedEngine


def test_shell_output_is_masked(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "dt-91f0c3a7e2b4")
    from agentd.config import set_value

    text, _ = set_value(home.root, "secrets.env", "[DEPLOY_TOKEN]")
    (home.root / "agent.yaml").write_text(text)
    text, _ = set_value(home.root, "shell.env", "[DEPLOY_TOKEN]")
    (home.root / "agent.yaml").write_text(text)
    home.absorb_person_edits()
    engine = ScriptedEngine()
    engine.enqueue_action("shell", command="echo token=$DEPLOY_TOKEN; echo AKIAIOSFODNN7EXAMPLE")
    engine.enqueue_action("reply", text="done")
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    (home.root / "inbox/m.md").write_text("show me\n")
    wake(agent, Event("message", "show me", datetime(2026, 11, 22, 9, 0, tzinfo=UTC), name="m", source="inbox/m.md"))
    sent = str(engine.requests[1]["messages"][-1]["content"])  # the tool result, as the engine saw it
    assert "dt-91f0c3a7e2b4" not in sent and "AKIAIOSFODNN7EXAMPLE" not in sent
    assert "[REDACTED:$DEPLOY_TOKEN]" in sent
    assert "dt-91f0c3a7e2b4" not in home.repo.git.log("-p", "--all")

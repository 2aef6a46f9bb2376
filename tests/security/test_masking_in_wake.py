"""A secret printed by a shell command never reaches the engine, the ledger or git."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.loop import wake
from agentd.wiring import build_agent
from tests.doubles.scripted_engine import ScriptedEngine


def test_shell_output_is_masked(home: Home, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A secret never enters a command's environment (agent.yaml refuses that), but a command
    # can still read one from a file it may see: its output is masked before the model reads it.
    monkeypatch.setenv("DEPLOY_TOKEN", "dt-91f0c3a7e2b4")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "deploy.env").write_text("DEPLOY_TOKEN=dt-91f0c3a7e2b4\n")
    from agentd.config_edit import set_values

    text, _ = set_values(home.root, {"secrets.env": "[DEPLOY_TOKEN]", "shell.read_only": f"[{creds}]"})
    (home.root / "agent.yaml").write_text(text)
    home.absorb_person_edits()
    engine = ScriptedEngine()
    engine.enqueue_action("shell", command=f"cut -d= -f2 {creds}/deploy.env | sed 's/^/token=/'; echo AKIAIOSFODNN7EXAMPLE")
    engine.enqueue_action("reply", text="done")
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    (home.root / "inbox/m.md").write_text("show me\n")
    wake(agent, Event("message", "show me", datetime(2026, 11, 22, 9, 0, tzinfo=UTC), name="m", source="inbox/m.md"))
    sent = str(engine.requests[1]["messages"][-1]["content"])  # the tool result, as the engine saw it
    assert "dt-91f0c3a7e2b4" not in sent and "AKIAIOSFODNN7EXAMPLE" not in sent
    assert "[REDACTED:$DEPLOY_TOKEN]" in sent
    assert "dt-91f0c3a7e2b4" not in home.repo.git.log("-p", "--all")

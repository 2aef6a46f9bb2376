"""Homes for the merge tests: one forked in two and diverged by scripted wakes, with planted overlaps."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.loop import wake
from agentd.merge.orchestrator import fork_home
from agentd.template import init_home
from agentd.wiring import build_agent
from tests.doubles.scripted_engine import ScriptedEngine

DAY = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
# topic → facts: "people" overlaps (one line on both sides, one near-duplicate),
# "server" plants a contradiction, the rest is one side's own.
OURS_FACTS = [("people", "Alice likes tea"), ("people", "Ann flies planes"), ("server", "The backup server runs on port 8080"), ("garden", "Water the fern on Sundays")]
THEIRS_FACTS = [("people", "Alice likes tea"), ("people", "alice likes tea."), ("server", "The backup server runs on port 9090"), ("travel", "Passport expires in May")]


def scripted_wake(home: Home, at: datetime, name: str, facts: list[tuple[str, str]]) -> None:
    """One message wake whose scripted model remembers ``facts`` and replies."""
    engine = ScriptedEngine()
    for topic, fact in facts:
        engine.enqueue_action("remember", topic=topic, fact=fact)
    engine.enqueue_action("reply", text=f"noted {len(facts)} facts")
    agent = build_agent(home, load_config(home.root), engine, model="scripted", clock=lambda: at)
    (home.root / "inbox" / f"{name}.md").write_text(f"remember these ({name})\n")
    wake(agent, Event("message", f"remember these ({name})", at, name=name, source=f"inbox/{name}.md"))


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


@dataclass
class Pair:
    ours: Home
    theirs: Home


@pytest.fixture
def forked(tmp_path: Path) -> Pair:
    """A home with a first wake, forked; each side then lives a day of its own."""
    ours = init_home(tmp_path / "ours")
    scripted_wake(ours, DAY, "m0", [("people", "Carol runs the book club")])
    theirs = fork_home(ours, tmp_path / "theirs", new_id=lambda: "agentd-theirs00000000")
    for i, fact in enumerate(OURS_FACTS):
        scripted_wake(ours, DAY + timedelta(days=1, hours=i * 2), f"o{i}", [fact])
    for i, fact in enumerate(THEIRS_FACTS):
        scripted_wake(theirs, DAY + timedelta(days=1, hours=i * 2 + 1), f"t{i}", [fact])
    return Pair(ours, theirs)

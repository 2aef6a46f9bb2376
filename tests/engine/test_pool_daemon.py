"""A real daemon on ``engine.backend: pool``: the replica serving it is killed mid-run; no wake is lost, the agent moves."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentd.config_edit import set_values
from agentd.home import Home
from agentd.ledger import Ledger
from engine.pool import PoolSpec, PoolState, pool_status, start_pool, stop_pool
from tests.doubles import PYTHONPATH
from tests.engine.conftest import NEEDS_ROUTER
from tests.test_daemon import Daemon, outbox_text, post, wait_for

pytestmark = NEEDS_ROUTER


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PoolState]:
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    monkeypatch.setenv("RESPONDER_DELAY", "1")  # each answer takes a while: the kill lands inside a wake
    state = start_pool(PoolSpec(3, "engine-double", "m", "consistent_hash", {"mode": "agent-replica"}), tmp_path / "pool", timeout=120)
    monkeypatch.delenv("RESPONDER_DELAY")
    yield state
    stop_pool(tmp_path / "pool")


def seen(root: Path) -> list[int]:
    """Prompt tokens each replica's own metrics counted (on arrival: before the answer)."""
    return [int(r.get("prefix_cache_queries_tokens") or 0) for r in pool_status(root)["replicas"]]


def serving(root: Path) -> set[int]:
    """The replicas (by index) that saw requests."""
    return {i for i, n in enumerate(seen(root)) if n}


def test_a_replica_killed_mid_run_loses_no_wake_and_the_agent_moves(pool: PoolState, home: Home, tmp_path: Path) -> None:
    root = tmp_path / "pool"
    text = (home.root / "agent.yaml").read_text().replace("every: 30m", "every: 1h").replace('active_hours: "08:00-22:00"', "active_hours: always")
    (home.root / "agent.yaml").write_text(text)
    set_values_text, _ = set_values(home.root, {"engine.backend": "pool", "engine.model": "m", "engine.pool.dir": str(root)})
    (home.root / "agent.yaml").write_text(set_values_text)
    home.absorb_person_edits()
    d = Daemon(home).start()
    try:
        post(home, "m1", "first question")
        wait_for(lambda: "answer to m1" in outbox_text(home), 60, "the first reply")
        (first,) = serving(root)  # the warm-up and the wake went to one replica
        pid = json.loads((root / f"replica-{first}" / "engine.json").read_text())["pid"]
        before = seen(root)[first]
        for n in (2, 3, 4):
            post(home, f"m{n}", f"question {n}")
        wait_for(lambda: seen(root)[first] > before, 30, "the wake of m2 reaching its replica")
        os.kill(pid, signal.SIGKILL)  # while it holds the request (RESPONDER_DELAY)
        def answered() -> bool:  # the reply is written inside the wake, the message removed at its commit
            return all(f"answer to m{n}" in outbox_text(home) for n in (2, 3, 4)) and not list((home.root / "inbox").glob("*.md"))

        wait_for(answered, 90, lambda: d.output()[-3000:])  # every message answered, none left behind
        assert all(outbox_text(home).count(f"answer to m{n}") == 1 for n in (1, 2, 3, 4)), "each exactly once"
        assert serving(root) - {first}, "another replica served the agent after the kill"
        breaks = [r["cache_break"] for r in Ledger(home.runtime / "ledger.db").rows() if r["purpose"] == "wake"]
        assert "replica-moved" in breaks, breaks
        notices = (home.root / "outbox" / "notices.md").read_text()
        assert "moved this agent to another replica" in notices, notices
    finally:
        assert d.stop() == 0, d.output()[-3000:]

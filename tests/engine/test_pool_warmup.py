"""The warm-up goes through the router with the home's session key: it warms the replica that then serves the home."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentd.config_edit import set_values
from agentd.events import Event
from agentd.home import Home
from agentd.ledger import Ledger
from agentd.loop import wake, warm_up
from agentd.wiring import build_agent, make_supervisor
from engine.pool import PoolSpec, PoolState, pool_status, start_pool, stop_pool
from tests.doubles import PYTHONPATH
from tests.engine.conftest import NEEDS_ROUTER

pytestmark = NEEDS_ROUTER


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PoolState]:
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    state = start_pool(PoolSpec(3, "engine-double", "m", "consistent_hash", {"mode": "replica"}), tmp_path / "pool", timeout=120)
    yield state
    stop_pool(tmp_path / "pool")


def per_replica(root: Path) -> dict[str, tuple[int, int]]:
    """Each replica's (prompt tokens seen, of them found cached), from its own /metrics."""
    return {r["url"]: (r["prefix_cache_queries_tokens"], r["prefix_cache_hits_tokens"]) for r in pool_status(root)["replicas"]}


def test_the_warm_up_lands_on_the_replica_that_serves_the_home(pool: PoolState, home: Home, tmp_path: Path) -> None:
    root = tmp_path / "pool"
    _, config = set_values(home.root, {"engine.backend": "pool", "engine.model": "m", "engine.pool.dir": str(root)})
    agent = build_agent(home, config, make_supervisor(home, config).client(), model="m")
    assert set(per_replica(root).values()) == {(0, 0)}
    prefix_tokens = warm_up(agent, "daemon started")
    assert prefix_tokens
    warmed = [url for url, (queries, _) in per_replica(root).items() if queries]
    assert len(warmed) == 1, ("the warm-up reached one replica", per_replica(root))
    before = per_replica(root)[warmed[0]]
    wake(agent, Event("message", "hello there", datetime(2026, 11, 29, 10, tzinfo=UTC), name="m1", source="inbox/m1.md"))
    after = per_replica(root)
    assert [url for url, (queries, _) in after.items() if queries] == warmed, ("the wake went where the warm-up went", after)
    assert after[warmed[0]][1] - before[1] >= 0.9 * before[0], "and found the prefix the warm-up left there"
    rows = Ledger(home.runtime / "ledger.db").rows()
    first_wake = next(r for r in rows if r["purpose"] == "wake")
    assert first_wake["cache_break"] is None and first_wake["cached_tokens"] >= 0.9 * prefix_tokens

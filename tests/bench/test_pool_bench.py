"""The pool benchmark's simulation: session-hash keeps the cache, a ring moves about 1/R of the agents."""

from __future__ import annotations

import random

from bench.pool import Ring, schedule, simulate


def test_session_hash_keeps_what_round_robin_loses_and_a_lost_replica_moves_its_share() -> None:
    calls = schedule(200, 1.0, random.Random(3))
    args = (calls, 200, 8, 0, 2048, 8000)  # unbounded KV
    single = simulate("session-hash", calls, 200, 1, 0, 2048, 8000).hit_rate
    hashed = simulate("session-hash", *args)
    assert abs(hashed.hit_rate - single) < 0.01, "with unbounded KV the pool matches one engine"
    assert simulate("round-robin", *args).hit_rate < hashed.hit_rate - 0.3
    assert simulate("least-loaded", *args).hit_rate < hashed.hit_rate - 0.3
    lost = simulate("session-hash", *args, change="lose")
    assert 0 < lost.moved_agents <= 200 * 2 / 8, "only the lost replica's agents move"


def test_the_kv_capacity_bounds_the_hit_rate() -> None:
    calls = schedule(64, 1.0, random.Random(4))
    roomy = simulate("session-hash", calls, 64, 2, 0, 2048, 8000).hit_rate
    tight = simulate("session-hash", calls, 64, 2, 60_000, 2048, 8000).hit_rate
    assert tight < roomy - 0.1


def test_the_ring_is_stable_for_the_replicas_that_stay() -> None:
    before = Ring([f"r{i}" for i in range(10)])
    after = Ring([f"r{i}" for i in range(1, 10)])
    keys = [f"agent-{a}" for a in range(2000)]
    moved = [k for k in keys if before(k) != after(k)]
    assert all(before(k) == "r0" for k in moved) and 100 < len(moved) < 320

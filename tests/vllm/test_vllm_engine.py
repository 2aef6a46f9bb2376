"""The real vLLM under agentd's supervisor: start, metrics, cached tokens, adoption, a killed engine restarted with no wake lost.

One engine serves the whole module (each start is about a minute on 2 cores); the
kill-and-restart test comes last, since it replaces that engine.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import psutil
import pytest
from click.testing import CliRunner

from agentd import config as cfg
from agentd import config_edit
from agentd.cli import cli
from agentd.fileio import atomic_write
from agentd.home import Home
from agentd.ledger import Ledger
from agentd.template import init_home
from agentd.wiring import make_supervisor
from engine.models import is_vllm_cpu
from engine.supervisor import EngineInfo, EngineSupervisor, recorded_block_size
from tests.test_daemon import Daemon, agentd, outbox_text, post, wait_for
from tests.vllm.conftest import START_TIMEOUT_S, need_vllm, vllm_settings

pytestmark = pytest.mark.vllm


def use_vllm(home: Home, model: str) -> None:
    text, _ = config_edit.set_values(home.root, vllm_settings(model))
    atomic_write(home.root / cfg.CONFIG_FILE, text)
    home.absorb_person_edits()


def supervisor(home: Home) -> EngineSupervisor:
    sup = make_supervisor(home, cfg.load_config(home.root))
    sup.health_timeout = START_TIMEOUT_S
    return sup


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Home, EngineInfo]]:
    """One home on vLLM, its engine started by `agentd engine start` (which also prefills the home's prefix)."""
    folder = need_vllm()
    with pytest.MonkeyPatch.context() as mp:
        user = tmp_path_factory.mktemp("vllm-user")
        (user / ".gitconfig").write_text("[user]\n\tname = Test Person\n\temail = person@example.com\n[init]\n\tdefaultBranch = main\n")
        mp.setenv("GIT_CONFIG_GLOBAL", str(user / ".gitconfig"))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        home = init_home(tmp_path_factory.mktemp("vllm-home") / "home")
        use_vllm(home, str(folder))
        sup = supervisor(home)
        info = sup.start()
        try:
            yield home, info
        finally:
            last = json.loads((home.runtime / "engine.json").read_text()).get("pid") if (home.runtime / "engine.json").exists() else None
            supervisor(home).stop()
            assert last is None or not psutil.pid_exists(last), "no vLLM left running"


def test_vllm_starts_under_the_supervisor_and_its_metrics_give_the_block_size(shared: tuple[Home, EngineInfo]) -> None:
    home, info = shared
    assert info.backend == "vllm" and info.pid is not None and info.url.startswith("http://127.0.0.1:")
    argv = psutil.Process(info.pid).cmdline()
    assert "vllm.entrypoints.openai.api_server" in argv and info.api_key not in " ".join(argv)
    assert info.cache_config is not None, "vllm:cache_config_info read from /metrics"
    block = int(info.cache_config["block_size"])
    assert block == (128 if is_vllm_cpu() else 16)
    assert info.cache_config.get("prefix_caching_hash_algo")
    assert recorded_block_size(home.runtime) == block
    status = supervisor(home).status()
    assert status["healthy"] and status["pid"] == info.pid
    assert status["prefix_cache"]["cache_config"]["block_size"] == str(block)
    assert (home.runtime / "vllm-cache").is_dir(), "VLLM_CACHE_ROOT under the home's .agentd/"


def test_second_say_on_the_home_prefix_reports_cached_tokens(shared: tuple[Home, EngineInfo]) -> None:
    home, info = shared
    runner = CliRunner()
    for text in ("Hello! Reply with a short greeting.", "Thanks. Reply with one word."):
        res = runner.invoke(cli, ["--home", str(home.root), "say", text])
        assert res.exit_code == 0, res.output
        assert res.output.strip()
    block = int((info.cache_config or {})["block_size"])
    said = [r for r in Ledger(home.runtime / "ledger.db").rows() if r["trigger"].startswith("message")]
    assert len(said) >= 2
    second = said[-1]
    assert second["cached_tokens"] is not None and second["cached_tokens"] >= block, "the home prefix came from vLLM's cache"
    assert second["cached_tokens"] % block == 0, "vLLM caches whole blocks only"
    # The self-check expects whole blocks of the real size: no false "engine cache miss".
    assert second["expected_cached"] is not None and second["expected_cached"] % block == 0
    assert second["cached_tokens"] >= 0.9 * second["expected_cached"] - block
    assert not any(r["cache_break"] == "engine cache miss (evicted or restarted)" for r in said)
    counters = supervisor(home).status()["prefix_cache"]
    assert counters["prefix_cache_hits_tokens"] > 0 and counters["prefix_cache_queries_tokens"] > counters["prefix_cache_hits_tokens"]


def test_a_second_agentd_adopts_the_running_engine(shared: tuple[Home, EngineInfo]) -> None:
    home, info = shared
    status = agentd(home, "engine", "status", "--json", timeout=120)
    assert status.returncode == 0, status.stderr
    seen = json.loads(status.stdout)
    assert seen["healthy"] and seen["pid"] == info.pid
    said = agentd(home, "say", "Are you there? Reply briefly.", timeout=300)
    assert said.returncode == 0, said.stderr
    assert said.stdout.strip()
    assert json.loads((home.runtime / "engine.json").read_text())["pid"] == info.pid, "adopted, not restarted"
    assert psutil.pid_exists(info.pid)


def test_engine_killed_under_the_daemon_is_restarted_and_no_wake_is_lost(shared: tuple[Home, EngineInfo]) -> None:
    home, info = shared
    assert info.pid is not None
    d = Daemon(home).start()
    try:
        post(home, "v1", "Hello, reply with a greeting.")
        wait_for(lambda: (home.root / "inbox/done/v1.md").exists(), 300, "the first message answered on the adopted engine")
        assert json.loads((home.runtime / "engine.json").read_text())["pid"] == info.pid, "the daemon adopted the engine"
        os.killpg(info.pid, signal.SIGKILL)
        post(home, "v2", "The engine restarted. Reply with a greeting.")
        wait_for(lambda: (home.root / "inbox/done/v2.md").exists(), START_TIMEOUT_S, lambda: f"the second message answered after the restart:\n{d.output()[-2000:]}")
        new_pid = json.loads((home.runtime / "engine.json").read_text())["pid"]
        assert new_pid != info.pid and psutil.pid_exists(new_pid)
        assert not list((home.root / "inbox").glob("*.md")), "no message left behind"
        wait_for(lambda: home.dirty_paths() == [], 30, "a clean home")
    finally:
        assert d.stop() == 0
    assert outbox_text(home).strip(), "the replies are in the outbox"

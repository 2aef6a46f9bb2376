"""The built-in engine backends (llama.cpp embedded, vLLM, any OpenAI-compatible URL), registered like any plugin."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.backends import Backend, LaunchSpec
from engine.errors import BackendMissing
from engine.models import DEFAULT_ALIAS, find_smollm2_gguf, list_gguf, resolve_gguf
from engine.options import Option, arguments, number, text, whole_number
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
    """vLLM on a GPU: prefix caching on, cached tokens reported, never sleep mode."""

    id = "vllm"
    options = {
        "tool_call_parser": Option(text),
        "max_model_len": Option(whole_number(256)),  # vLLM's own: the model's length
        "gpu_memory_utilization": Option(number(0, 1, what="a fraction of GPU memory above 0 and at most 1, e.g. 0.85")),
        "kv_offloading_size": Option(number(0, what="a size in GiB above 0")),
        "prefix_caching_hash_algo": Option(text),
        "extra_args": Option(arguments),
    }

    def context_window(self, options: Mapping[str, Any]) -> int | None:
        size = self.option(options, "max_model_len")
        return int(size) if size else None

    def model_lines(self) -> list[str]:
        return ["vllm: engine.model is a Hugging Face model id or a local folder; vLLM finds it itself"]

    def command(self) -> list[str]:
        exe = shutil.which("vllm")
        if exe:
            return [exe]
        if importlib.util.find_spec("vllm") is not None:
            return [sys.executable, "-m", "vllm.entrypoints.cli.main"]
        raise BackendMissing("vLLM is not installed: pip install 'agentd[vllm]' (it needs an NVIDIA GPU), or use backend: llamacpp")

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        opts = settings.options
        argv = [*self.command(), "serve", settings.model, "--host", "127.0.0.1", "--port", str(port),
                "--enable-prefix-caching",        # on by default in V1; said explicitly
                "--enable-prompt-tokens-details"]  # so usage.prompt_tokens_details.cached_tokens is reported
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
        # vLLM reads the key from VLLM_API_KEY, so it never shows in `ps`.
        return LaunchSpec(argv, {"VLLM_API_KEY": api_key}, port, api_key, self.id, settings.model)


class OpenAIBackend(Backend):
    """Any OpenAI-compatible URL someone else runs; not supervised."""

    id = "openai"
    supervised = False

    def model_lines(self) -> list[str]:
        return ["openai: engine.model is a name the server at engine.url serves"]

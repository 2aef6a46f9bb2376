"""One small class per backend: how to launch it (or where it already runs)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from engine.errors import BackendMissing
from engine.models import DEFAULT_ALIAS, resolve_gguf
from engine.types import EngineSettings


@dataclass(frozen=True)
class LaunchSpec:
    """A supervised engine's command line (the API key travels in ``env``, never in argv)."""

    argv: list[str]
    env: dict[str, str]
    port: int
    api_key: str
    backend: str
    model: str
    health_path: str = "/health"


class Backend:
    id: ClassVar[str]
    supervised: ClassVar[bool] = True

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        raise NotImplementedError


LLAMACPP_DEFAULT_N_CTX = 8192


def model_dirs() -> list[Path]:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return [base / "agentd" / "models", Path.home() / "models"]


class LlamaCppBackend(Backend):
    """The embedded default: our adapter around llama-cpp-python, on a GGUF model."""

    id = "llamacpp"

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        if importlib.util.find_spec("llama_cpp") is None:
            raise BackendMissing("llama-cpp-python is not installed: pip install 'agentd[cpu]'")
        path = resolve_gguf(settings.model or DEFAULT_ALIAS, model_dirs())
        opts = settings.options
        argv = [sys.executable, "-m", "engine.llamacpp_server", "--model", str(path), "--port", str(port),
                "--n-ctx", str(int(opts.get("n_ctx", LLAMACPP_DEFAULT_N_CTX))), "--pinned", str(int(opts.get("pinned_prefixes", 4)))]
        if opts.get("n_threads"):
            argv += ["--threads", str(int(opts["n_threads"]))]
        return LaunchSpec(argv, {"AGENTD_ENGINE_API_KEY": api_key}, port, api_key, self.id, path.name)


class VllmBackend(Backend):
    """vLLM on a GPU: prefix caching on, cached tokens reported, never sleep mode."""

    id = "vllm"

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

    def url_and_key(self, settings: EngineSettings) -> tuple[str, str | None]:
        if not settings.url:
            raise BackendMissing("engine.url is required for backend: openai (e.g. http://127.0.0.1:8000/v1)")
        key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
        if settings.api_key_env and not key:
            raise BackendMissing(f"the environment variable {settings.api_key_env} (engine.api_key_env) is not set")
        return settings.url, key


BACKENDS: dict[str, type[Backend]] = {b.id: b for b in (LlamaCppBackend, VllmBackend, OpenAIBackend)}


def backend_for(settings: EngineSettings) -> Backend:
    try:
        return BACKENDS[settings.backend]()
    except KeyError:
        raise BackendMissing(f"unknown engine backend {settings.backend!r} (known: {', '.join(BACKENDS)})") from None

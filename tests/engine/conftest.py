"""The real embedded engine (llama.cpp + SmolLM2-135M-Instruct), started once per session by the supervisor."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.supervisor import EngineSupervisor
from engine.types import EngineSettings

# The pool tests need vllm-router's binary beside this Python (or on PATH).
NEEDS_ROUTER = pytest.mark.skipif(
    shutil.which("vllm-router") is None and not (Path(sys.executable).parent / "vllm-router").exists(),
    reason="vllm-router is not installed (pip install 'agentd[pool]')",
)


def have_embedded_engine() -> bool:
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    try:
        from engine.models import find_smollm2_gguf

        find_smollm2_gguf()
    except Exception:  # noqa: BLE001 - any failure means "not installed"
        return False
    return True


def embedded_engine(tmp_path_factory: pytest.TempPathFactory, *, n_ctx: int, name: str) -> Iterator[EngineSupervisor]:
    """The embedded engine on SmolLM2, started by the supervisor for a fixture, stopped after it."""
    if not have_embedded_engine():
        pytest.skip("the embedded engine is not installed (pip install -e '.[cpu]')")
    sup = EngineSupervisor(EngineSettings("llamacpp", "smollm2", options={"n_ctx": n_ctx}), tmp_path_factory.mktemp(name), backoff=0.2)
    sup.start()
    yield sup
    sup.stop()


@pytest.fixture(scope="session")
def real_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineSupervisor]:
    yield from embedded_engine(tmp_path_factory, n_ctx=4096, name="engine-rt")

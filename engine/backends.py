"""The door for engine backends: one class per engine, registered in the ``agentd.backends`` entry-point group."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from engine.errors import BackendMissing
from engine.options import Option
from engine.types import EngineSettings

GROUP = "agentd.backends"
# Set by a pool for its replicas: vllm-router probes GET /health without a key (as vLLM serves
# it), so an engine agentd runs leaves that one route open when it sees OPEN_HEALTH_ENV=1.
OPEN_HEALTH_ENV = "AGENTD_ENGINE_OPEN_HEALTH"


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
    """Everything agentd knows of one kind of engine; a subclass sets ``id`` and overrides what applies.

    It is found through its entry point, as the built-in ones are (pyproject.toml)::

        [project.entry-points."agentd.backends"]
        mine = "my_package.backend:MyBackend"      # the name is engine.backend in agent.yaml
    """

    id: ClassVar[str]
    # False: someone else runs it, at engine.url (with the key in engine.api_key_env).
    supervised: ClassVar[bool] = True
    # An unsupervised backend that finds its own URL (the pool: its state file) sets this False.
    needs_url: ClassVar[bool] = True
    # Its section of agent.yaml, engine.<id>: every option it reads is listed, so a
    # typo is reported with its line instead of being ignored.
    options: ClassVar[Mapping[str, Option]] = {}
    # How long a start may take before the supervisor gives up on it (loading the model included).
    start_timeout_s: ClassVar[float] = 180.0

    def option(self, options: Mapping[str, Any], name: str) -> Any:
        value = options.get(name)
        return self.options[name].default if value is None else value

    def context_window(self, options: Mapping[str, Any]) -> int | None:
        """Tokens one request may hold (prompt + completion) with these options; None when unknown."""
        return None

    def request_extras(self) -> dict[str, Any] | None:
        """Fields this engine understands beyond the OpenAI request, sent with every chat."""
        return None

    def model_lines(self) -> list[str]:
        """What ``agentd model list`` says: the models it finds by name, and only the places it searches."""
        return []

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        raise NotImplementedError(f"the {self.id} backend is not supervised")

    def runtime_env(self, runtime_dir: Path) -> dict[str, str]:
        """Environment for the engine process that depends on the home (its runtime folder, ``.agentd/``)."""
        return {}

    def url_and_key(self, settings: EngineSettings) -> tuple[str, str | None]:
        """Where an engine someone else runs answers, and its key (from the environment)."""
        if not settings.url:
            raise BackendMissing(f"engine.url is required for backend: {self.id} (e.g. http://127.0.0.1:8000/v1)")
        key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
        if settings.api_key_env and not key:
            raise BackendMissing(f"the environment variable {settings.api_key_env} (engine.api_key_env) is not set")
        return settings.url, key

    def check(self, settings: EngineSettings) -> None:
        """Raise what starting this engine would raise (not installed, no model, no URL), starting nothing."""
        if self.supervised:
            self.launch_spec(settings, 0, "check")
        else:
            self.url_and_key(settings)


def installed() -> dict[str, type[Backend]]:
    """The registered backends by name; of two with one name, the first on sys.path wins (as imports do)."""
    return dict(_scan(tuple(sys.path)))


@functools.lru_cache(maxsize=4)
def _scan(path: tuple[str, ...]) -> tuple[tuple[str, type[Backend]], ...]:
    # Keyed on sys.path: a folder of plugins put on the path is seen at once.
    found: dict[str, type[Backend]] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name not in found:
            found[ep.name] = _load(ep)
    return tuple(sorted(found.items()))


def _load(ep: importlib.metadata.EntryPoint) -> type[Backend]:
    try:
        cls = ep.load()
    except Exception as e:  # noqa: BLE001 - a plugin can fail to import in any way; say which one
        raise BackendMissing(f"the engine backend {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)) or getattr(cls, "id", None) != ep.name:
        raise BackendMissing(f"the engine backend {ep.name!r} ({ep.value}) is not a Backend class whose id is {ep.name!r}")
    return cls


def backend_class(name: str) -> type[Backend]:
    found = installed()
    if name not in found:
        names = ", ".join(found) or "none (is agentd installed? pip install -e .)"
        raise BackendMissing(f"unknown engine backend {name!r} (installed: {names})")
    return found[name]


def backend_for(settings: EngineSettings) -> Backend:
    return backend_class(settings.backend)()


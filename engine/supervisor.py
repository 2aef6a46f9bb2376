"""Supervising a colocated engine: start on loopback with a random key, health, restart with backoff, stop, adopt."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from engine.backends import Backend, LaunchSpec, OpenAIBackend, backend_for
from engine.client import OpenAIClient, Timeouts
from engine.errors import EngineStartError
from engine.metrics import prefix_cache_counters
from engine.types import EngineSettings

LOG_TAIL_LINES = 40


@dataclass
class EngineInfo:
    backend: str
    model: str
    url: str  # base URL ending in /v1
    api_key: str | None
    pid: int | None
    port: int | None
    started: float
    argv: list[str] | None = None

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("api_key")
        d.pop("argv")
        return d


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


class EngineSupervisor:
    """Owns one engine process for one home (``runtime_dir`` is the home's ``.agentd/``)."""

    def __init__(
        self,
        settings: EngineSettings,
        runtime_dir: Path,
        *,
        health_timeout: float = 180.0,
        max_restarts: int = 5,
        backoff: float = 1.0,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.settings = settings
        self.runtime_dir = runtime_dir
        self.backend: Backend = backend_for(settings)
        self.health_timeout = health_timeout
        self.max_restarts = max_restarts
        self.backoff = backoff
        self.timeouts = timeouts or Timeouts()
        self.info: EngineInfo | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.on_event: Callable[[str, str], None] | None = None
        self._monitor: threading.Thread | None = None
        self._stop_monitor = threading.Event()
        self._lock = threading.RLock()
        self.restarts = 0

    # ------------------------------------------------------------ files
    @property
    def state_file(self) -> Path:
        return self.runtime_dir / "engine.json"

    @property
    def log_file(self) -> Path:
        return self.runtime_dir / "logs" / "engine.log"

    def _save(self, info: EngineInfo) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the API key
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(info), fh)
        os.replace(tmp, self.state_file)

    def _load(self) -> EngineInfo | None:
        try:
            return EngineInfo(**json.loads(self.state_file.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    # ------------------------------------------------------------ lifecycle
    def _external(self) -> EngineInfo:
        assert isinstance(self.backend, OpenAIBackend)
        url, key = self.backend.url_and_key(self.settings)
        self.info = EngineInfo("openai", self.settings.model, url, key, None, None, time.time())
        return self.info

    def start(self, *, port: int | None = None, api_key: str | None = None) -> EngineInfo:
        """Start the engine on 127.0.0.1 and wait until it answers its health check."""
        with self._lock:
            if not self.backend.supervised:
                return self._external()
            port = port or free_port()
            api_key = api_key or secrets.token_urlsafe(24)
            spec = self.backend.launch_spec(self.settings, port, api_key)
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_file, "ab") as log:
                log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {spec.backend} {spec.model} on 127.0.0.1:{port}\n".encode())
                env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
                # Its own process group, so stop() reaches every worker it forks.
                self._proc = subprocess.Popen(spec.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
            info = EngineInfo(spec.backend, spec.model, f"http://127.0.0.1:{port}/v1", api_key, self._proc.pid, port, time.time(), spec.argv)
            self._wait_healthy(info, spec)
            self.info = info
            self._save(info)
            return info

    def _wait_healthy(self, info: EngineInfo, spec: LaunchSpec) -> None:
        client = self._client_for(info)
        deadline = time.monotonic() + self.health_timeout
        try:
            while time.monotonic() < deadline:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise EngineStartError(f"the {spec.backend} engine exited with code {self._proc.returncode} while starting", log_tail(self.log_file))
                if client.health():
                    return
                time.sleep(0.2)
        finally:
            client.close()
        self._kill_group(info.pid, grace=5.0)
        raise EngineStartError(f"the {spec.backend} engine did not become healthy within {self.health_timeout:.0f}s", log_tail(self.log_file))

    def adopt(self) -> EngineInfo | None:
        """Reuse a healthy engine this home started before (pid file + psutil + health)."""
        with self._lock:
            if not self.backend.supervised:
                return self._external()
            info = self._load()
            if info is None or info.pid is None or not _alive(info.pid):
                return None
            if info.backend != self.settings.backend:
                return None
            try:
                cmdline = " ".join(psutil.Process(info.pid).cmdline())
            except psutil.Error:
                return None
            if "engine.llamacpp_server" not in cmdline and "vllm" not in cmdline:
                return None
            client = self._client_for(info)
            try:
                healthy = client.health()
            finally:
                client.close()
            if not healthy:
                return None
            self.info = info
            return info

    def ensure_running(self) -> EngineInfo:
        return self.adopt() or self.start()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the engine's process group, SIGKILL after ``grace``; nothing is left behind."""
        with self._lock:
            info = self.info or self._load()
            if info is not None and info.pid is not None:
                self._kill_group(info.pid, grace)
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(1.0)
                self._proc = None
            self.state_file.unlink(missing_ok=True)
            self.info = None

    def _kill_group(self, pid: int | None, grace: float) -> None:
        if pid is None:
            return
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            return
        procs = []
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(pid)
            procs = [parent, *parent.children(recursive=True)]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=grace)
        if alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            psutil.wait_procs(alive, timeout=5.0)
        if self._proc is not None and self._proc.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(1.0)

    def restart(self) -> EngineInfo:
        """Same port and key, so clients keep working across the restart."""
        with self._lock:
            old = self.info
            self.stop()
            if old is None:
                return self.start()
            return self.start(port=old.port, api_key=old.api_key)

    # ------------------------------------------------------------ watching
    def alive(self) -> bool:
        if not self.backend.supervised:
            return True
        info = self.info
        if info is None or info.pid is None:
            return False
        if self._proc is not None and self._proc.pid == info.pid:
            return self._proc.poll() is None
        return _alive(info.pid)

    def check(self) -> None:
        """Restart a dead engine with exponential backoff; give up after ``max_restarts`` in a row."""
        if self.alive() or self.info is None:
            return
        code = self._proc.poll() if self._proc is not None else None
        self._event("engine died", f"exit code {code}; restarting (see {self.log_file})")
        while self.restarts < self.max_restarts and not self._stop_monitor.is_set():
            delay = self.backoff * (2**self.restarts)
            self.restarts += 1
            self._stop_monitor.wait(delay)
            try:
                self.restart()
            except EngineStartError as e:
                self._event("engine restart failed", str(e).splitlines()[0])
                continue
            self._event("engine restarted", f"attempt {self.restarts}")
            return
        self._event("engine gave up", f"{self.restarts} restarts failed; last log lines:\n{log_tail(self.log_file, 10)}")

    def _event(self, kind: str, detail: str) -> None:
        if self.on_event is not None:
            self.on_event(kind, detail)

    def start_monitor(self, interval: float = 1.0) -> None:
        if not self.backend.supervised or self._monitor is not None:
            return
        self._stop_monitor.clear()

        def loop() -> None:
            while not self._stop_monitor.wait(interval):
                self.check()
                if self.alive():
                    self.restarts = 0

        self._monitor = threading.Thread(target=loop, name="engine-monitor", daemon=True)
        self._monitor.start()

    def stop_monitor(self) -> None:
        self._stop_monitor.set()
        if self._monitor is not None:
            self._monitor.join(5.0)
            self._monitor = None

    # ------------------------------------------------------------ clients and status
    def _client_for(self, info: EngineInfo) -> OpenAIClient:
        external = info.backend == "openai"
        return OpenAIClient(
            info.url,
            info.api_key,
            self.settings.model if external else info.model,
            timeouts=self.timeouts,
            session_key=self.settings.session_key,
            send_prompt_cache_key=external,
        )

    def client(self) -> OpenAIClient:
        info = self.info or self.ensure_running()
        return self._client_for(info)

    def info_dict(self) -> dict[str, Any] | None:
        return self.info.public() if self.info is not None else None

    def status(self) -> dict[str, Any]:
        info = self.info or self.adopt() if self.backend.supervised else self._external()
        out: dict[str, Any] = {"backend": self.settings.backend, "model": self.settings.model, "url": None, "pid": None, "uptime_s": None, "healthy": False}
        if info is None:
            return out
        out.update(url=info.url, pid=info.pid, model=info.model, uptime_s=round(time.time() - info.started))
        client = self._client_for(info)
        try:
            out["healthy"] = client.health()
            text = client.metrics_text() if out["healthy"] else None
            if text:
                out["prefix_cache"] = prefix_cache_counters(text)
        finally:
            client.close()
        return out


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False

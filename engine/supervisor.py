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
from enum import StrEnum
from pathlib import Path
from typing import Any

import psutil

from engine.backends import Backend, LaunchSpec, backend_for
from engine.client import OpenAIClient, Timeouts
from engine.errors import EngineError, EngineStartError
from engine.metrics import prefix_cache_counters
from engine.types import EngineSettings

LOG_TAIL_LINES = 40
# psutil derives a start time from the boot time, which moves a little with clock adjustments.
CREATE_TIME_SLACK_S = 1.0


class EngineEvent(StrEnum):
    """What the monitor reports to ``on_event``: typed, so a listener never matches a substring."""

    DIED = "engine died"
    RESTART_FAILED = "engine restart failed"
    RESTARTED = "engine restarted"
    GAVE_UP = "engine gave up"


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
    create_time: float | None = None  # the process's start time: with pid, its identity
    # vLLM's vllm:cache_config_info labels as its /metrics said once healthy (block_size,
    # prefix_caching_hash_algo, num_gpu_blocks); None for an engine that does not report them.
    cache_config: dict[str, str] | None = None

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("api_key")
        d.pop("argv")
        d.pop("create_time")
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
        health_timeout: float | None = None,
        max_restarts: int = 5,
        backoff: float = 1.0,
        timeouts: Timeouts | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.settings = settings
        self.runtime_dir = runtime_dir
        # ``backend``: a process that is no home's engine (a pool's replica or router), supervised alike.
        self.backend: Backend = backend or backend_for(settings)
        self.health_timeout = health_timeout or self.backend.start_timeout_s
        self.max_restarts = max_restarts
        self.backoff = backoff
        self.timeouts = timeouts or Timeouts.from_env()
        self.info: EngineInfo | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.on_event: Callable[[EngineEvent, str], None] | None = None
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
        url, key = self.backend.url_and_key(self.settings)
        self.info = EngineInfo(self.backend.id, self.settings.model, url, key, None, None, time.time())
        return self.info

    def start(self, *, port: int | None = None, api_key: str | None = None) -> EngineInfo:
        """Start the engine on 127.0.0.1 and wait until it answers its health check.

        An engine this home started before (one that ``adopt`` refused: another model or
        other options) is stopped first; its state file would be overwritten otherwise.
        """
        with self._lock:
            if not self.backend.supervised:
                return self._external()
            self.stop()
            port = port or free_port()
            api_key = api_key or secrets.token_urlsafe(24)
            spec = self.backend.launch_spec(self.settings, port, api_key)
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_file, "ab") as log:
                log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {spec.backend} {spec.model} on 127.0.0.1:{port}\n".encode())
                env = {**os.environ, **self.backend.runtime_env(self.runtime_dir), **spec.env, "PYTHONUNBUFFERED": "1"}
                # Its own process group, so stop() reaches every worker it forks.
                self._proc = subprocess.Popen(spec.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
            try:
                create_time: float | None = psutil.Process(self._proc.pid).create_time()
            except psutil.Error:
                create_time = None  # it already exited: the health wait reports it
            info = EngineInfo(spec.backend, spec.model, f"http://127.0.0.1:{port}/v1", api_key, self._proc.pid, port, time.time(), spec.argv, create_time)
            # Recorded before the (possibly long) health wait: if this process dies meanwhile,
            # the next one still finds the engine to adopt or stop, never an unrecorded one.
            self._save(info)
            try:
                self._wait_healthy(info, spec)
            except EngineError:
                self.state_file.unlink(missing_ok=True)
                raise
            info.cache_config = self._read_cache_config(info)
            self._save(info)
            self.info = info
            return info

    def _read_cache_config(self, info: EngineInfo) -> dict[str, str] | None:
        """The block size and hash the engine uses, from its own metrics: never assumed (16 on a GPU, 128 on a CPU)."""
        client = self._client_for(info)
        try:
            text = client.metrics_text()
        finally:
            client.close()
        config = prefix_cache_counters(text).get("cache_config") if text else None
        return dict(config) if isinstance(config, dict) else None

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
        self._kill_own_child(grace=5.0)
        raise EngineStartError(f"the {spec.backend} engine did not become healthy within {self.health_timeout:g}s", log_tail(self.log_file))

    def adopt(self) -> EngineInfo | None:
        """Reuse a healthy engine this home started before, if it runs what the config asks for.

        It must be the very process that was started (pid and start time, or its command
        line), of the configured backend, and launched with the command line the config
        gives now (model and options): after ``engine.model`` changes, the old engine is
        not adopted, and ``start`` replaces it.
        """
        with self._lock:
            if not self.backend.supervised:
                return self._external()
            info = self._load()
            if info is None or _verified(info) is None or not self._runs_config(info):
                return None
            client = self._client_for(info)
            try:
                healthy = client.health()
            finally:
                client.close()
            if not healthy:
                return None
            if info.cache_config is None:  # recorded by an agentd from before it was read (llama.cpp reports none)
                info.cache_config = self._read_cache_config(info)
                if info.cache_config is not None:
                    self._save(info)
            self.info = info
            return info

    def _runs_config(self, info: EngineInfo) -> bool:
        if info.backend != self.backend.id or info.port is None or info.api_key is None or info.argv is None:
            return False
        try:
            wanted = self.backend.launch_spec(self.settings, info.port, info.api_key)
        except EngineError:
            return False  # start() reports why (a missing model, a missing package)
        # The program (argv[0]) is left out: the same engine launched through another path
        # to the interpreter (a venv's python vs python3, a systemd unit) is still the engine
        # the config asks for, and refusing it would have one agentd kill another's engine.
        return wanted.argv[1:] == info.argv[1:] and wanted.model == info.model

    def ensure_running(self) -> EngineInfo:
        return self.adopt() or self.start()

    def stop(self, grace: float = 10.0) -> bool:
        """SIGTERM the engine's process group, SIGKILL after ``grace``; nothing is left behind.

        Only a process verified to be the engine that was started (pid and start time, or
        its command line) is signalled: a state file naming a pid that now belongs to
        another process is stale, and is only removed. Returns whether an engine was stopped.
        """
        with self._lock:
            stopped = False
            if self._proc is not None and self._proc.poll() is None:
                self._kill_own_child(grace)
                stopped = True
            for info in (self.info, self._load()):
                proc = _verified(info) if info is not None else None
                if proc is not None:
                    _kill_tree(proc, grace)
                    stopped = True
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(1.0)
                self._proc = None
            self.state_file.unlink(missing_ok=True)
            self.info = None
            return stopped

    def _kill_own_child(self, grace: float) -> None:
        """The process this supervisor spawned (its Popen handle proves it is ours, until reaped)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        with contextlib.suppress(psutil.Error):
            _kill_tree(psutil.Process(self._proc.pid), grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(1.0)

    def restart(self) -> EngineInfo:
        """Same port and key, so clients keep working across the restart."""
        with self._lock:
            old = self.info  # start() stops what runs now; the port and key are kept from here
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
        return _verified(info) is not None

    def check(self) -> None:
        """Restart a dead engine with exponential backoff; give up after ``max_restarts`` in a row.

        Every attempt reuses the dead engine's port and key. After the last failure the
        supervisor forgets the engine (``info`` is None, so later checks do nothing) and
        reports ``engine gave up`` with the attempts made and the engine log's last lines.
        """
        dead = self.info
        if dead is None or self.alive():
            return
        code = self._proc.poll() if self._proc is not None else None
        self._event(EngineEvent.DIED, f"exit code {code}; restarting (see {self.log_file})")
        last_error = ""
        while self.restarts < self.max_restarts:
            delay = self.backoff * (2**self.restarts)
            self.restarts += 1
            if self._stop_monitor.wait(delay):
                return
            try:
                self.start(port=dead.port, api_key=dead.api_key)  # stops what is left of the dead one first
            except EngineError as e:
                last_error = str(e).splitlines()[0]
                self._event(EngineEvent.RESTART_FAILED, f"attempt {self.restarts} of {self.max_restarts}: {last_error}")
                continue
            self._event(EngineEvent.RESTARTED, f"attempt {self.restarts}")
            return
        self._event(
            EngineEvent.GAVE_UP,
            f"{self.restarts} restarts in a row failed (last: {last_error or 'none tried'}); the engine stays down "
            f"until it is started again. Last lines of {self.log_file}:\n{log_tail(self.log_file, 10)}",
        )

    def _event(self, kind: EngineEvent, detail: str) -> None:
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
        external = not self.backend.supervised  # a server someone else runs: send it the session key too
        return OpenAIClient(
            info.url,
            info.api_key,
            self.settings.model if external else info.model,
            timeouts=self.timeouts,
            session_key=self.settings.session_key,
            session_header=self.settings.session_header,
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


def recorded_block_size(runtime_dir: Path) -> int | None:
    """The KV block size of the engine this home runs, as its metrics said at start; None when unknown.

    Read from the supervisor's state file, so whoever wires an agent (the daemon, a
    command) sees the block size of the engine actually running, after every restart.
    """
    try:
        config = json.loads((runtime_dir / "engine.json").read_text()).get("cache_config") or {}
        size = int(config.get("block_size", 0))
    except (FileNotFoundError, json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None
    return size if size > 0 else None


def _verified(info: EngineInfo) -> psutil.Process | None:
    """The process ``info`` names, if it is still the engine started then.

    A pid is reused once its process is gone, so the pid alone proves nothing: the
    process's start time must match the recorded one, or its command line must end with
    the recorded command (the random port makes that unique). A state file with
    neither cannot be verified, and its process is never touched.
    """
    if info.pid is None:
        return None
    try:
        proc = psutil.Process(info.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if info.create_time is not None and abs(proc.create_time() - info.create_time) <= CREATE_TIME_SLACK_S:
            return proc
        if info.argv and proc.cmdline()[-len(info.argv):] == info.argv:
            return proc
    except psutil.Error:
        return None
    return None


def _kill_tree(proc: psutil.Process, grace: float) -> None:
    """SIGTERM the engine and its workers, SIGKILL what is left after ``grace``.

    The engine was started in a session of its own, so its process group is its own pid:
    the group is signalled only then (it reaches workers that re-parented away); any other
    group belongs to someone else, and only the engine's own descendants are signalled.
    """
    procs = [proc]
    with contextlib.suppress(psutil.Error):
        procs += proc.children(recursive=True)
    own_group = False
    with contextlib.suppress(OSError):
        own_group = os.getpgid(proc.pid) == proc.pid

    def signal_all(sig: signal.Signals, targets: list[psutil.Process]) -> None:
        if own_group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        for p in targets:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)

    signal_all(signal.SIGTERM, procs)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    if alive:
        signal_all(signal.SIGKILL, alive)
        psutil.wait_procs(alive, timeout=5.0)

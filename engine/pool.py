"""A pool of engine replicas behind vllm-router on loopback, one key, each process restarted on crash.

``agentd pool start`` runs ``python -m engine.pool run ...`` in the background: that process starts
N replicas (any supervised backend; each an :class:`EngineSupervisor` of its own) and vllm-router
in front, records the pool in ``pool.json`` and keeps every process alive until SIGTERM. The pool
lives in one directory per machine (``$XDG_DATA_HOME/agentd/pool``), so many homes share it
through ``engine.backend: pool``. Replicas already running elsewhere (any OpenAI-compatible server,
e.g. ``vllm serve`` on another machine) join by URL: the router gets them as workers beside the
local ones, and the pool watches their health but supervises only its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from engine.backends import OPEN_HEALTH_ENV, Backend, LaunchSpec, backend_class
from engine.errors import BackendMissing, EngineError, EngineStartError
from engine.options import Option, text
from engine.supervisor import CREATE_TIME_SLACK_S, EngineSupervisor, free_port, log_tail
from engine.types import EngineSettings

STATE = "pool.json"
LOG = "pool.log"
POLICIES = ("consistent_hash", "round_robin", "sticky_least_loaded", "power_of_two", "random")


def pool_dir() -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "agentd" / "pool"


@dataclass(frozen=True)
class PoolSpec:
    """What a pool runs: ``replicas`` of one backend and model, and the router's policy."""

    replicas: int
    backend: str = "llamacpp"
    model: str = "smollm2"
    policy: str = "consistent_hash"
    options: dict[str, Any] = field(default_factory=dict)  # the backend's own, as in agent.yaml's engine.<backend>
    remote: list[str] = field(default_factory=list)  # replicas on other machines, by URL; not supervised here
    api_key_env: str | None = None  # the pool's key from this variable (remote replicas must accept it), else a random one


@dataclass
class PoolState:
    """pool.json (mode 0600: it holds the key); ``pid``/``create_time`` name the pool process."""

    spec: dict[str, Any]
    pid: int
    create_time: float
    api_key: str
    router_url: str = ""  # ending in /v1; empty until the pool is ready
    replica_urls: list[str] = field(default_factory=list)
    remote_urls: list[str] = field(default_factory=list)  # ending in /v1, as given by --remote

    @property
    def ready(self) -> bool:
        return bool(self.router_url)


def remote_url(url: str) -> str:
    """A remote replica's URL as the router wants it (no ``/v1``); a malformed one is one clear line."""
    base = url.strip().rstrip("/").removesuffix("/v1").rstrip("/")
    scheme, sep, rest = base.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
        raise BackendMissing(f"remote replica {url!r}: expected http://HOST:PORT (an OpenAI-compatible server, e.g. vllm serve)")
    return base


def check_remote(urls: list[str], timeout: float = 5.0) -> None:
    """Each remote replica answers ``GET /health`` (the only thing the router asks of it), else say which."""
    import httpx

    for url in urls:
        try:
            ok = httpx.get(url + "/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok:
            raise BackendMissing(f"remote replica {url} does not answer GET /health: start it, or leave it out of --remote")


def router_command() -> list[str]:
    exe = shutil.which("vllm-router") or (str(Path(sys.executable).parent / "vllm-router"))
    if not Path(exe).exists():
        raise BackendMissing("vllm-router is not installed: pip install 'agentd[pool]'")
    return [exe]


class RouterBackend(Backend):
    """vllm-router in front of the replicas; it probes only ``GET /health``, which replicas leave open."""

    id = "vllm-router"

    def __init__(self, worker_urls: list[str], policy: str) -> None:
        self.worker_urls = worker_urls
        self.policy = policy

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        # The router forwards each client's Authorization header, so the replicas check the key;
        # it is never in argv. A failed replica is left after 2 errors; health is probed every 2 s.
        argv = [*router_command(), "--host", "127.0.0.1", "--port", str(port), "--policy", self.policy,
                "--worker-urls", *self.worker_urls, "--worker-startup-check-interval", "1",
                "--health-check-interval-secs", "2", "--cb-failure-threshold", "2", "--log-level", "warning",
                # Its own metrics listener: on loopback, and on a free port (the default one is shared).
                "--prometheus-host", "127.0.0.1", "--prometheus-port", str(free_port())]
        return LaunchSpec(argv, {}, port, api_key, self.id, "router")


class ReplicaBackend(Backend):
    """One replica: the backend's own command, with ``/health`` open and (vLLM) its own GPU."""

    id = "pool-replica"

    def __init__(self, inner: Backend, index: int) -> None:
        self.inner = inner
        self.index = index

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        spec = self.inner.launch_spec(settings, port, api_key)
        env = {**spec.env, OPEN_HEALTH_ENV: "1"}
        if self.inner.id == "vllm":
            env["CUDA_VISIBLE_DEVICES"] = str(self.index)
        return LaunchSpec(spec.argv, env, spec.port, spec.api_key, spec.backend, spec.model, spec.health_path)


def _settings(spec: PoolSpec) -> EngineSettings:
    return EngineSettings(spec.backend, spec.model, options=dict(spec.options))


class Pool:
    """The replicas and the router, each under its own supervisor (``root/replica-N``, ``root/router``)."""

    def __init__(self, root: Path, spec: PoolSpec, *, health_timeout: float = 300.0, backoff: float = 1.0) -> None:
        if spec.replicas < 0 or spec.replicas + len(spec.remote) < 1:
            raise BackendMissing("a pool needs at least one replica (--replicas N, or --remote URL)")
        self.remote = [remote_url(u) for u in spec.remote]
        if spec.policy not in POLICIES:
            raise BackendMissing(f"unknown router policy {spec.policy!r} (one of {', '.join(POLICIES)})")
        self.root = root
        self.spec = spec
        inner = backend_class(spec.backend)()
        if not inner.supervised:
            raise BackendMissing(f"backend {spec.backend} is not one agentd runs; a pool's replicas must be (llamacpp, vllm)")
        settings = _settings(spec)
        if spec.replicas:
            inner.check(settings)  # not installed, no model: said before anything starts
        self.replicas = [
            EngineSupervisor(settings, root / f"replica-{i}", health_timeout=health_timeout, backoff=backoff, backend=ReplicaBackend(inner, i))
            for i in range(spec.replicas)
        ]
        self.router: EngineSupervisor | None = None
        self.health_timeout = health_timeout
        self.backoff = backoff

    def start(self, api_key: str, on_event: Any = None) -> PoolState:
        router_command()  # before anything starts: a missing router says how to install it
        check_remote(self.remote)
        with ThreadPoolExecutor(max_workers=max(1, len(self.replicas))) as ex:
            infos = list(ex.map(lambda s: s.start(api_key=api_key), self.replicas))
        urls = [i.url.removesuffix("/v1") for i in infos] + self.remote
        self.router = EngineSupervisor(
            EngineSettings("vllm-router", "router"), self.root / "router",
            health_timeout=60.0, backoff=self.backoff, backend=RouterBackend(urls, self.spec.policy),
        )
        router = self.router.start(api_key=api_key)
        for sup in [*self.replicas, self.router]:
            sup.on_event = on_event
            sup.start_monitor()
        proc = psutil.Process()
        return PoolState(asdict(self.spec), proc.pid, proc.create_time(), api_key, router.url, [i.url for i in infos],
                         [u + "/v1" for u in self.remote])

    def stop(self) -> None:
        for sup in [self.router, *self.replicas]:
            if sup is not None:
                sup.stop_monitor()
                sup.stop(grace=5.0)


# ---------------------------------------------------------------------- state


def save_state(root: Path, state: PoolState) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (STATE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(state), fh)
    os.replace(tmp, root / STATE)


def load_state(root: Path) -> PoolState | None:
    """The pool recorded in ``root``, if its process still runs (a stale file is ignored)."""
    try:
        state = PoolState(**json.loads((root / STATE).read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None
    return state if _pool_process(state) is not None else None


def _pool_process(state: PoolState) -> psutil.Process | None:
    try:
        proc = psutil.Process(state.pid)
        if proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - state.create_time) <= CREATE_TIME_SLACK_S:
            return proc
    except psutil.Error:
        pass
    return None


# ---------------------------------------------------------------------- what the CLI calls


def start_pool(spec: PoolSpec, root: Path | None = None, *, timeout: float = 600.0) -> PoolState:
    """Run the pool process in the background and wait until its router answers (or it fails)."""
    root = root or pool_dir()
    running = load_state(root)
    if running is not None:
        raise BackendMissing(f"a pool already runs from {root} (pid {running.pid}): agentd pool stop first")
    pool = Pool(root, spec)  # bad arguments and a missing backend or router fail here, in this process
    router_command()
    check_remote(pool.remote)
    if spec.api_key_env and not os.environ.get(spec.api_key_env):
        raise BackendMissing(f"--api-key-env {spec.api_key_env}: that variable is not set")
    root.mkdir(parents=True, exist_ok=True)
    (root / STATE).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "engine.pool", "run", "--dir", str(root), "--replicas", str(spec.replicas),
            "--backend", spec.backend, "--model", spec.model, "--policy", spec.policy, "--options", json.dumps(spec.options),
            *(a for u in spec.remote for a in ("--remote", u)), *(("--api-key-env", spec.api_key_env) if spec.api_key_env else ())]
    with open(root / LOG, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = load_state(root)
        if state is not None and state.ready:
            return state
        if proc.poll() is not None:
            raise EngineStartError(f"the pool exited with code {proc.returncode} while starting", log_tail(root / LOG, 15))
        time.sleep(0.2)
    stop_pool(root)
    raise EngineStartError(f"the pool did not become ready within {timeout:g}s", log_tail(root / LOG, 15))


def stop_pool(root: Path | None = None, grace: float = 30.0) -> bool:
    """SIGTERM the pool process (it stops the router and the replicas); whatever it left is stopped here."""
    root = root or pool_dir()
    stopped = False
    try:
        raw = PoolState(**json.loads((root / STATE).read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        raw = None
    proc = _pool_process(raw) if raw is not None else None
    if proc is not None:
        proc.terminate()
        with contextlib.suppress(psutil.TimeoutExpired):
            proc.wait(grace)
        stopped = True
    # A pool process killed outright leaves its children recorded in their own engine.json.
    for sub in sorted(root.glob("replica-*")) + [root / "router"]:
        sup = EngineSupervisor(EngineSettings("vllm-router", "x"), sub, backend=RouterBackend([], "random"))
        stopped = sup.stop(grace=5.0) or stopped
    (root / STATE).unlink(missing_ok=True)
    return stopped


def pool_status(root: Path | None = None) -> dict[str, Any]:
    """The router's and each replica's health, and each replica's prefix-cache hit rate from its metrics."""
    from engine.client import OpenAIClient
    from engine.metrics import prefix_cache_counters

    root = root or pool_dir()
    state = load_state(root)
    if state is None or not state.ready:
        return {"running": False, "dir": str(root)}
    out: dict[str, Any] = {"running": True, "dir": str(root), "pid": state.pid, "router": state.router_url,
                           "policy": state.spec["policy"], "backend": state.spec["backend"], "model": state.spec["model"], "replicas": []}
    rows = [("router", state.router_url), *((f"replica-{i}", u) for i, u in enumerate(state.replica_urls)),
            *((f"remote-{i}", u) for i, u in enumerate(state.remote_urls))]
    for name, url in rows:
        client = OpenAIClient(url, state.api_key, state.spec["model"])
        try:
            healthy = client.health()
            row: dict[str, Any] = {"name": name, "url": url, "healthy": healthy, "remote": name.startswith("remote-")}
            text = client.metrics_text() if healthy and name != "router" else None
            if text:
                row.update(prefix_cache_counters(text))
        finally:
            client.close()
        if name == "router":
            out["router_healthy"] = healthy
        else:
            out["replicas"].append(row)
    return out


# ---------------------------------------------------------------------- a home's side


class PoolBackend(Backend):
    """``engine.backend: pool``: the machine's pool (``agentd pool start``); its router's URL and key come from pool.json."""

    id = "pool"
    supervised = False  # the pool process supervises it, for every home at once
    needs_url = False
    options = {"dir": Option(text)}  # another pool directory than $XDG_DATA_HOME/agentd/pool

    def _state(self, options: Any = None) -> tuple[Path, PoolState | None]:
        root = Path(str((options or {}).get("dir") or pool_dir())).expanduser()
        return root, load_state(root)

    def url_and_key(self, settings: EngineSettings) -> tuple[str, str | None]:
        root, state = self._state(settings.options)
        if state is None or not state.ready:
            raise BackendMissing(f"no pool is running in {root}: start one with agentd pool start --replicas 3")
        return state.router_url, state.api_key

    def _replica_backend(self, options: Any = None) -> tuple[Backend, dict[str, Any]]:
        _, state = self._state(options)
        spec = state.spec if state is not None else asdict(PoolSpec(1))
        return backend_class(spec["backend"])(), dict(spec["options"])

    def context_window(self, options: Any) -> int | None:
        backend, replica_options = self._replica_backend(options)
        return backend.context_window(replica_options)

    def request_extras(self) -> dict[str, Any] | None:
        return self._replica_backend()[0].request_extras()  # what the replicas understand (pinned prefixes)

    def model_lines(self) -> list[str]:
        return ["pool: engine.model is the model the pool serves (agentd pool status)"]


# ---------------------------------------------------------------------- the pool process


def run(root: Path, spec: PoolSpec) -> None:
    """Start the pool, record it, keep it alive until SIGTERM or SIGINT, then stop every process."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    def event(kind: str, detail: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {kind}: {detail}", flush=True)

    pool = Pool(root, spec)
    try:
        key = os.environ.get(spec.api_key_env or "") or secrets.token_urlsafe(24)
        state = pool.start(key, on_event=event)
        save_state(root, state)
        event("pool ready", f"{spec.replicas} x {spec.backend} {spec.model} and {len(spec.remote)} remote behind {state.router_url} ({spec.policy})")
        done.wait()
    except EngineError as e:
        event("pool failed", str(e))
        raise SystemExit(1) from None
    finally:
        (root / STATE).unlink(missing_ok=True)
        pool.stop()
        event("pool stopped", "")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="agentd's pool process (started by `agentd pool start`)")
    p.add_argument("command", choices=["run"])
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--replicas", type=int, required=True)
    p.add_argument("--backend", default="llamacpp")
    p.add_argument("--model", default="smollm2")
    p.add_argument("--policy", default="consistent_hash")
    p.add_argument("--options", default="{}", help="the backend's options as JSON")
    p.add_argument("--remote", action="append", default=[], help="a replica on another machine, by URL")
    p.add_argument("--api-key-env", default=None)
    a = p.parse_args(argv)
    run(a.dir, PoolSpec(a.replicas, a.backend, a.model, a.policy, json.loads(a.options), a.remote, a.api_key_env))


if __name__ == "__main__":
    main()

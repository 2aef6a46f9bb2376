"""The engine's network surface, without the real engine: loopback only, every route behind the generated key."""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from engine import builtin_backends, llamacpp_http, llamacpp_server
from engine.backends import installed
from engine.builtin_backends import LlamaCppBackend, VllmBackend
from engine.supervisor import EngineSupervisor
from engine.types import EngineSettings
from tests.doubles.llamacpp_engine import LlamaEngineDouble

KEY = "the-generated-key-0123456789abcdef"
ROUTES = [
    ("GET", "/health", None),
    ("GET", "/v1/models", None),
    ("GET", "/metrics", None),
    ("POST", "/tokenize", {"prompt": "hi"}),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
]


@pytest.fixture
def engine_server() -> Iterator[tuple[str, LlamaEngineDouble, int]]:
    engine = LlamaEngineDouble()
    server = llamacpp_http.make_server(engine, KEY, 0)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield str(host), engine, int(port)
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[r[1] for r in ROUTES])
@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {KEY[:-1]}x", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", KEY, f"bearer {KEY}", "Bearer", "Bearer \xff\xfe"],
    ids=["none", "wrong", "longer", "prefix", "no-scheme", "lowercase-scheme", "empty", "non-ascii"],
)
def test_every_route_refuses_a_missing_or_wrong_key(engine_server: tuple[str, LlamaEngineDouble, int], method: str, path: str, body: object, authorization: str | None) -> None:
    host, engine, port = engine_server
    headers = {} if authorization is None else {"Authorization": authorization.encode("latin-1")}
    r = httpx.request(method, f"http://{host}:{port}{path}", json=body, headers=headers)
    assert r.status_code == 401
    assert engine.calls == [], "a refused request never reaches the engine"


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[r[1] for r in ROUTES])
def test_the_key_opens_every_route(engine_server: tuple[str, LlamaEngineDouble, int], method: str, path: str, body: object) -> None:
    host, engine, port = engine_server
    r = httpx.request(method, f"http://{host}:{port}{path}", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200
    if path == "/v1/chat/completions":
        assert r.json()["choices"][0]["message"]["content"] == "hello from the double"


def test_the_server_listens_on_loopback_only(engine_server: tuple[str, LlamaEngineDouble, int]) -> None:
    host, _, port = engine_server
    assert host == "127.0.0.1"
    others = [
        a.address for addrs in psutil.net_if_addrs().values() for a in addrs
        if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback
    ]
    for address in others:
        with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
            pass


def test_the_server_has_no_way_to_widen_its_address_or_drop_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit):
        llamacpp_server.main(["--model", "/nonexistent.gguf", "--port", "0", "--host", "0.0.0.0"])
    monkeypatch.delenv(llamacpp_server.API_KEY_ENV, raising=False)
    with pytest.raises(SystemExit, match=llamacpp_server.API_KEY_ENV):
        llamacpp_server.main(["--model", "/nonexistent.gguf", "--port", "0"])
    with pytest.raises(ValueError, match="API key"):
        llamacpp_http.make_server(LlamaEngineDouble(), "", 0)  # type: ignore[arg-type]


def launch_settings(backend: str, tmp_path: Path) -> EngineSettings:
    if backend == "llamacpp":
        model = tmp_path / "tiny.gguf"
        model.write_bytes(b"GGUF")
        return EngineSettings("llamacpp", str(model))
    return EngineSettings(backend, "Qwen/Qwen2.5-7B-Instruct", options={"extra_args": ["--seed", "1"]})


BUILT_IN = {name: cls for name, cls in installed().items() if cls.__module__ == builtin_backends.__name__}
SUPERVISED = sorted(name for name, cls in BUILT_IN.items() if cls.supervised)


def test_every_supervised_backend_is_covered() -> None:
    assert SUPERVISED == ["llamacpp", "vllm"], "a new backend needs its launch command checked below"


@pytest.mark.parametrize("name", SUPERVISED)
def test_launch_commands_bind_loopback_and_carry_the_key_out_of_sight(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VllmBackend, "command", lambda self: ["vllm"])
    monkeypatch.setattr(builtin_backends.importlib.util, "find_spec", lambda mod: object())  # llama_cpp need not be installed
    spec = BUILT_IN[name]().launch_spec(launch_settings(name, tmp_path), 8123, KEY)
    argv = spec.argv
    assert KEY not in " ".join(argv), "the key never shows in `ps`"
    if name == "vllm":
        assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv.count("--host") == 1
        assert spec.env["VLLM_API_KEY"] == KEY, "vLLM reads its --api-key from VLLM_API_KEY"
        assert [k for k, v in spec.env.items() if KEY in v] == ["VLLM_API_KEY"]
    else:
        assert BUILT_IN[name] is LlamaCppBackend
        assert argv[1:3] == ["-m", "engine.llamacpp_server"] and "--host" not in argv  # it binds LOOPBACK, fixed
        assert spec.env == {llamacpp_server.API_KEY_ENV: KEY}
    assert argv[argv.index("--port") + 1] == "8123"


def test_supervisor_generates_a_fresh_key_and_the_engine_requires_it(tmp_path: Path) -> None:
    sup = EngineSupervisor(EngineSettings("engine-double", "m"), tmp_path / ".agentd")
    first = sup.start()
    try:
        assert first.url.startswith("http://127.0.0.1:") and first.api_key and len(first.api_key) >= 32
        assert first.pid is not None
        proc = psutil.Process(first.pid)
        assert first.api_key not in " ".join(proc.cmdline())
        assert proc.environ().get("AGENTD_ENGINE_API_KEY") == first.api_key
        root = first.url.removesuffix("/v1")
        assert httpx.get(root + "/health").status_code == 401
        assert httpx.get(root + "/health", headers={"Authorization": f"Bearer {first.api_key}"}).status_code == 200
        state = tmp_path / ".agentd" / "engine.json"
        assert oct(os.stat(state).st_mode & 0o777) == "0o600", "the state file holds the key"
        sup.stop()
        second = sup.start()
        assert second.api_key != first.api_key
    finally:
        sup.stop()

"""`agentd engine` and `agentd model`: the supervised engine, and swapping the model it serves."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from agentd import config as cfg
from agentd import config_edit, daemon
from agentd.config import Config, load_config
from agentd.fileio import atomic_write
from agentd.home import Home
from agentd.loop import warm_up
from agentd.wiring import build_agent, engine_settings, make_supervisor
from engine.errors import EngineError
from engine.supervisor import EngineSupervisor


@contextlib.contextmanager
def engine_for(home: Home, config: Config) -> Iterator[tuple[EngineSupervisor, Any]]:
    """Adopt a running engine, or start one for the duration of a command and stop it after."""
    sup = make_supervisor(home, config)
    adopted = sup.adopt()
    info = adopted or sup.start()
    try:
        yield sup, info
    finally:
        if adopted is None:
            sup.stop()


def engine_start(home: Home) -> str:
    """Start (or adopt) the engine and, unless a daemon owns it, prefill the home's prefix.

    The warm-up is what the daemon does after it starts an engine: the next `agentd say`
    finds the stable prefix cached instead of computing it cold.
    """
    config = load_config(home.root)
    sup = make_supervisor(home, config)
    info = sup.ensure_running()
    line = f"{info.backend}:{info.model} at {info.url} (pid {info.pid})"
    if daemon.read_state(home) is not None:
        return line  # the running daemon warms its engine itself
    agent = build_agent(home, config, sup.client(), model=info.model)
    try:
        tokens = warm_up(agent, "engine started")
    except EngineError as e:
        return f"{line}; the warm-up failed: {e}"
    return f"{line}; home prefix of {tokens} tokens prefilled"


def engine_stop(home: Home) -> str:
    config = load_config(home.root)
    # stop() signals only a process verified to be this home's engine, adopted or not
    # (e.g. one started with other options), and says whether there was one.
    return "engine stopped" if make_supervisor(home, config).stop() else "engine was not running"


def engine_status(home: Home) -> dict[str, Any]:
    config = load_config(home.root)
    st = make_supervisor(home, config).status()
    return st if isinstance(st, dict) else dict(vars(st))


def model_list(home: Home) -> list[str]:
    from engine.backends import backend_class

    config = load_config(home.root)
    lines = [f"configured: {config.engine.backend}:{config.engine.model} (tool calling: {config.engine.tool_calling})"]
    return lines + backend_class(config.engine.backend)().model_lines()


def model_use(home: Home, name: str, backend: str | None) -> Iterator[str]:
    """Swap the model: config (comments kept) + one commit, engine restarted, a self-test request."""
    from agentd.wiring import build_registry

    old = load_config(home.root)
    new_backend = backend or old.engine.backend
    changes = {"engine.model": json_scalar(name), **({"engine.backend": backend} if backend else {})}
    # The new setting must work before it is written: a model that cannot be found
    # (or a backend that is not installed) leaves the home as it was.
    check_engine(home, config_edit.set_values(home.root, changes)[1])
    with home.lock(purpose="model use"):
        home.absorb_person_edits()
        text, _ = config_edit.set_values(home.root, changes)
        atomic_write(home.root / cfg.CONFIG_FILE, text)
        sha = home.commit(
            f"model: {old.engine.backend}:{old.engine.model} → {new_backend}:{name}",
            identity=home.person_identity(),
            paths=[cfg.CONFIG_FILE],
        )
    yield f"agent.yaml updated ({sha[:8] if sha else 'unchanged'}): {old.engine.backend}:{old.engine.model} → {new_backend}:{name}"
    if daemon.read_state(home) is not None:
        yield "the daemon picks the change up and restarts its engine"
        return
    config = load_config(home.root)
    old_sup = make_supervisor(home, old)
    was_running = old_sup.adopt() is not None
    if was_running:
        old_sup.stop()
        yield "stopped the previous engine"
    sup = make_supervisor(home, config)
    info = sup.start()
    yield f"engine running: {info.model} at {info.url} (pid {info.pid})"
    try:
        yield self_test(sup.client(), config.engine.tool_calling, build_registry().schemas())
    finally:
        if not was_running:
            sup.stop()  # started only for the self-test


def check_engine(home: Home, config: Config) -> None:
    """Raise the EngineError that starting this engine would raise, without starting it:
    the backend installed, the model file found, an external URL and its key given."""
    from engine.backends import backend_for

    settings = engine_settings(home, config)
    backend_for(settings).check(settings)


def json_scalar(value: str) -> str:
    """Quote a value for YAML so paths and names stay strings."""
    import json

    return json.dumps(value)


def self_test(client: Any, tool_calling: str, schemas: list[dict[str, Any]]) -> str:
    """One request with a tool schema; reports whether the model produced a usable call."""
    import json

    messages = [
        {"role": "system", "content": "You are a test. Use the reply tool."},
        {"role": "user", "content": "Say hello with the reply tool."},
    ]
    reply_schema = next(s for s in schemas if s["function"]["name"] == "reply")
    try:
        if tool_calling == "native":
            r = client.chat(messages, tools=[reply_schema], tool_choice="auto", max_tokens=64)
            ok = any(c.name == "reply" for c in r.tool_calls)
            got = r.tool_calls[0].arguments if r.tool_calls else r.content
        else:
            schema = {"type": "object", "properties": {"tool": {"type": "string", "enum": ["reply"]}, "arguments": reply_schema["function"]["parameters"]}, "required": ["tool", "arguments"]}
            r = client.chat(messages, response_format={"type": "json_schema", "json_schema": {"name": "action", "schema": schema}}, max_tokens=64)
            got = r.content
            try:
                ok = json.loads(got).get("tool") == "reply"
            except (json.JSONDecodeError, AttributeError):
                ok = False
    except Exception as e:  # noqa: BLE001 - any failure is the self-test's result
        return f"self-test FAILED: {e}"
    return f"self-test {'passed' if ok else 'FAILED'}: {got[:120]!r} ({r.usage.prompt_tokens} prompt tokens)"

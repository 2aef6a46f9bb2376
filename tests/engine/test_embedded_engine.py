"""Against the real embedded engine: text, JSON schema, streaming, cached tokens, pinned prefixes, restarts."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import psutil
import pytest

from engine.supervisor import EngineSupervisor

pytestmark = pytest.mark.engine
SYSTEM = {"role": "system", "content": "You are a careful assistant for a person who keeps notes in Markdown. " * 20}


def test_chat_returns_text(real_engine: EngineSupervisor) -> None:
    r = real_engine.client().chat([{"role": "user", "content": "Say hello."}], max_tokens=16)
    assert r.content.strip() and r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.cached_tokens is not None


def test_json_schema_output_is_valid(real_engine: EngineSupervisor) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]}
    r = real_engine.client().chat(
        [{"role": "user", "content": "Give a person's name and age as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
        max_tokens=64,
    )
    data = json.loads(r.content)
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


def test_stream_assembles_the_same_text(real_engine: EngineSupervisor) -> None:
    msgs = [{"role": "user", "content": "Name three colours."}]
    c = real_engine.client()
    other = [{"role": "system", "content": "Unrelated."}, {"role": "user", "content": "x"}]
    # Same cache state before each (reused KV can change greedy picks in the last digits).
    c.chat(other, max_tokens=1)
    plain = c.chat(msgs, max_tokens=24)
    c.chat(other, max_tokens=1)
    pieces: list[str] = []
    streamed = c.chat(msgs, max_tokens=24, stream=True, on_delta=pieces.append)
    assert streamed.content == plain.content == "".join(pieces)
    assert streamed.usage.ttft_s is not None


def test_prefix_then_extension_is_cached(real_engine: EngineSupervisor) -> None:
    c = real_engine.client()
    p = [SYSTEM, {"role": "user", "content": "First question: what is a note?"}]
    first = c.chat(p, max_tokens=1)
    longer = [*p, {"role": "assistant", "content": "A note is text."}, {"role": "user", "content": "And a journal?"}]
    second = c.chat(longer, max_tokens=1)
    assert second.usage.cached_tokens is not None
    assert second.usage.cached_tokens >= first.usage.prompt_tokens - 16


def test_pinned_prefix_survives_an_unrelated_prompt(real_engine: EngineSupervisor) -> None:
    c = real_engine.client()
    pin = {"cache_prefix_messages": 1}
    prefix_tokens = len(c.tokenize([SYSTEM]) or [])
    c.chat([SYSTEM, {"role": "user", "content": "A chat message."}], max_tokens=1, extra_body=pin)
    c.chat([{"role": "user", "content": "Something else entirely, no shared prefix."}], max_tokens=1)
    cron = c.chat([SYSTEM, {"role": "user", "content": "A scheduled job's own session."}], max_tokens=1, extra_body=pin)
    assert cron.usage.cached_tokens is not None and cron.usage.cached_tokens >= prefix_tokens - 16
    status = real_engine.status()
    assert status["prefix_cache"]["pinned_prefixes"] >= 1


def test_api_key_required_and_loopback_only(real_engine: EngineSupervisor) -> None:
    info = real_engine.info
    assert info is not None and info.port is not None
    resp = httpx.post(f"http://127.0.0.1:{info.port}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 401
    assert httpx.get(f"http://127.0.0.1:{info.port}/health").status_code == 401
    listening = [c for c in psutil.Process(info.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening)


def test_kill9_is_followed_by_restart(real_engine: EngineSupervisor) -> None:
    events: list[str] = []
    real_engine.on_event = lambda kind, detail: events.append(kind)
    old = real_engine.info
    assert old is not None and old.pid is not None
    os.kill(old.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and real_engine.alive():
        time.sleep(0.05)
    real_engine.check()  # what the monitor thread does every second
    assert "engine restarted" in events
    assert real_engine.info is not None and real_engine.info.pid != old.pid and real_engine.info.port == old.port
    assert real_engine.client().chat([{"role": "user", "content": "still there?"}], max_tokens=4).content


def test_stop_leaves_no_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from engine.types import EngineSettings
    from tests.engine.conftest import have_embedded_engine

    if not have_embedded_engine():
        pytest.skip("embedded engine not installed")
    sup = EngineSupervisor(EngineSettings("llamacpp", "smollm2", options={"n_ctx": 1024}), tmp_path)
    info = sup.start()
    assert info.pid is not None
    tree = [psutil.Process(info.pid), *psutil.Process(info.pid).children(recursive=True)]
    again = EngineSupervisor(EngineSettings("llamacpp", "smollm2", options={"n_ctx": 1024}), tmp_path)
    try:
        assert again.adopt() is not None and again.info.pid == info.pid  # type: ignore[union-attr]
        again.stop()
    finally:
        sup.stop()  # a failed assertion above must not leave an engine running
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    assert not (tmp_path / "engine.json").exists()


def test_requests_extend_each_other_in_tokens(real_engine: EngineSupervisor, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Append-only, checked through the engine's own tokenizer and chat template."""
    from datetime import UTC, datetime

    from agentd.config import load_config
    from agentd.events import Event
    from agentd.loop import wake
    from agentd.template import init_home
    from agentd.wiring import build_agent
    from tests.doubles.scripted_engine import ScriptedEngine

    home = init_home(tmp_path / "home")
    engine = ScriptedEngine()
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: now)
    for i in range(3):
        engine.enqueue_action("list_files", path="memory")
        engine.enqueue_action("reply", text=f"answer {i}")
        (home.root / f"inbox/m{i}.md").write_text(f"question {i}\n")
        wake(agent, Event("message", f"question {i}", now, name=f"m{i}", source=f"inbox/m{i}.md"))
    client = real_engine.client()
    token_lists = [client.tokenize(r["messages"]) for r in engine.requests]
    for prev, cur in zip(token_lists, token_lists[1:], strict=False):
        assert prev is not None and cur is not None
        assert cur[: len(prev)] == prev


def test_embedded_engine_counts_completion_tokens_not_streamed_pieces(real_engine: EngineSupervisor) -> None:
    # SmolLM2 writes a Japanese character or an emoji as several tokens, and
    # llama-cpp-python streams such a character as one piece.
    pieces: list[str] = []
    msgs = [{"role": "user", "content": "Say hello in Japanese and Chinese, with emoji."}]
    r = real_engine.client().chat(msgs, max_tokens=40, stream=True, on_delta=pieces.append)
    assert r.finish_reason == "length"
    assert r.usage.completion_tokens == 40, "cut at max_tokens, it generated exactly max_tokens tokens"
    assert len(pieces) < 40, f"the text came in fewer pieces than tokens, so counting pieces is wrong: {pieces}"

"""The client against a scripted HTTP server: usage, retries, truncated streams, timeouts, tool-call deltas."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from engine.client import OpenAIClient, Timeouts
from engine.errors import EngineHTTPError, EngineProtocolError, EngineTimeout, EngineUnavailable
from tests.doubles.openai_server import Reply, ScriptedServer

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer(api_key="k").start()
    yield s
    s.stop()


def client(server: ScriptedServer, **kw: object) -> OpenAIClient:
    return OpenAIClient(server.url, "k", "m", backoff=0.01, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", [False, True])
def test_cached_tokens_reported_or_none(server: ScriptedServer, stream: bool) -> None:
    server.enqueue(Reply(content="a b", prompt_tokens=50, cached_tokens=32), Reply(content="c", cached_tokens=None))
    c = client(server)
    first = c.chat(MSG, stream=stream)
    assert first.content == "a b" and first.usage.prompt_tokens == 50 and first.usage.cached_tokens == 32
    second = c.chat(MSG, stream=stream)
    assert second.usage.cached_tokens is None, "absent means unknown, never 0"


def test_500_is_retried_then_raised(server: ScriptedServer) -> None:
    server.enqueue(Reply(status=500), Reply(content="ok"))
    assert client(server).chat(MSG).content == "ok"
    server.enqueue(*[Reply(status=503)] * 4)
    with pytest.raises(EngineHTTPError, match="503"):
        client(server, retries=3).chat(MSG)
    assert len(server.requests) == 6


def test_4xx_is_not_retried(server: ScriptedServer) -> None:
    server.enqueue(Reply(status=400, content="bad"), Reply(content="never"))
    with pytest.raises(EngineHTTPError, match="400"):
        client(server).chat(MSG)
    assert len(server.requests) == 1


def test_truncated_stream_is_a_retriable_protocol_error(server: ScriptedServer) -> None:
    server.enqueue(*[Reply(content="one two three", truncate_after=2)] * 2)
    with pytest.raises(EngineProtocolError, match="truncated|cut off"):
        client(server, retries=1).chat(MSG, stream=True)
    assert len(server.requests) == 2
    server.enqueue(Reply(content="one two three", truncate_after=2), Reply(content="whole"))
    assert client(server, retries=1).chat(MSG, stream=True).content == "whole"


def test_malformed_json_is_a_protocol_error(server: ScriptedServer) -> None:
    server.enqueue(*[Reply(malformed=True)] * 2)
    with pytest.raises(EngineProtocolError, match="malformed"):
        client(server, retries=1).chat(MSG)


def timed(server: ScriptedServer, *, first_byte: float = 30, idle: float = 30, total: float = 60) -> OpenAIClient:
    return client(server, retries=0, timeouts=Timeouts(connect=2, first_byte=first_byte, idle=idle, total=total))


# Each timeout is given a value far from the others, so the message names the one that fired.
@pytest.mark.parametrize(
    ("reply", "stream", "limits", "fired"),
    [
        # The engine stalls between chunks: idle fires, not the longer first-byte timeout.
        (Reply(content="a b c", stall_after=2, hang=5), True, {"first_byte": 30, "idle": 0.3}, "idle timeout"),
        # Headers sent, no token yet (vLLM during prefill): first-byte fires, not the longer idle.
        (Reply(content="a b c", stall_after=0, hang=5), True, {"first_byte": 0.3, "idle": 30}, "first-byte timeout"),
        # Nothing at all, not even headers.
        (Reply(content="a", hang=5), True, {"first_byte": 0.3, "idle": 30}, "first-byte timeout"),
        # Tokens flow, then the request outlives its total while within first-byte and idle.
        (Reply(content="a b c", stall_after=1, hang=5), True, {"first_byte": 30, "idle": 30, "total": 0.5}, "total timeout"),
        # Whole responses: total and first-byte each fire at their own value.
        (Reply(content="x", hang=5), False, {"first_byte": 30, "idle": 30, "total": 0.5}, "total timeout"),
        (Reply(content="x", hang=5), False, {"first_byte": 0.3, "idle": 30, "total": 60}, "first-byte timeout"),
    ],
    ids=["stream-idle", "stream-first-token", "stream-no-headers", "stream-total", "whole-total", "whole-first-byte"],
)
def test_each_timeout_fires_at_its_own_value(server: ScriptedServer, reply: Reply, stream: bool, limits: dict[str, float], fired: str) -> None:
    server.enqueue(reply)
    with pytest.raises(EngineTimeout, match=fired) as info:
        timed(server, **limits).chat(MSG, stream=stream)
    value = limits["total" if fired == "total timeout" else "idle" if fired == "idle timeout" else "first_byte"]
    assert f"{value:g}s" in str(info.value), "the message names the value that fired"


def test_slow_phases_within_their_own_limits_succeed(server: ScriptedServer) -> None:
    # A prefill longer than idle is fine: idle starts with the first token.
    server.enqueue(Reply(content="a b c", stall_after=0, hang=0.6))
    assert timed(server, first_byte=30, idle=0.2).chat(MSG, stream=True).content == "a b c"
    # A pause between chunks longer than first-byte is fine: first-byte ended with the first token.
    server.enqueue(Reply(content="a b c", stall_after=2, hang=0.6))
    assert timed(server, first_byte=0.2, idle=30).chat(MSG, stream=True).content == "a b c"


def test_timed_out_attempts_are_retried_and_leave_no_watchdog(server: ScriptedServer) -> None:
    server.enqueue(Reply(content="a", hang=5), Reply(content="second"))
    c = client(server, retries=1, timeouts=Timeouts(connect=2, first_byte=0.3, idle=30, total=60))
    assert c.chat(MSG, stream=True).content == "second"
    assert len(server.requests) == 2
    assert not [t for t in threading.enumerate() if t.name == "engine-watchdog"]


def test_text_already_streamed_is_never_delivered_twice(server: ScriptedServer) -> None:
    server.enqueue(Reply(content="one two three", truncate_after=2), Reply(content="one two three"))
    seen: list[str] = []
    with pytest.raises(EngineProtocolError) as info:
        client(server, retries=3).chat(MSG, stream=True, on_delta=seen.append)
    assert seen == ["one", " two"], "each piece reached on_delta once"
    assert info.value.partial_output == "one two" and info.value.retriable
    assert len(server.requests) == 1, "not retried behind the caller's back"
    # The caller, who knows what it showed, asks again from the start.
    assert client(server).chat(MSG, stream=True, on_delta=seen.append).content == "one two three"


def test_failure_before_any_text_is_retried_with_on_delta(server: ScriptedServer) -> None:
    server.enqueue(Reply(content="one two", truncate_after=0), Reply(content="one two"))
    seen: list[str] = []
    assert client(server, retries=1).chat(MSG, stream=True, on_delta=seen.append).content == "one two"
    assert seen == ["one", " two"]


def test_timeouts_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTD_ENGINE_TIMEOUTS", "first_byte=600, idle=2.5")
    assert Timeouts.from_env() == Timeouts(first_byte=600, idle=2.5)
    monkeypatch.setenv("AGENTD_ENGINE_TIMEOUTS", "idel=3")
    with pytest.raises(ValueError, match="AGENTD_ENGINE_TIMEOUTS"):
        Timeouts.from_env()
    monkeypatch.delenv("AGENTD_ENGINE_TIMEOUTS")
    assert Timeouts.from_env() == Timeouts()


def test_unreachable_engine(server: ScriptedServer) -> None:
    url = server.url
    server.stop()
    with pytest.raises(EngineUnavailable):
        OpenAIClient(url, "k", "m", retries=1, backoff=0.01).chat(MSG)


def test_tool_call_deltas_assembled(server: ScriptedServer) -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": json.dumps({"command": "ls -la memory"})}},
        {"id": "c2", "type": "function", "function": {"name": "read_file", "arguments": json.dumps({"path": "USER.md"})}},
    ]
    server.enqueue(Reply(tool_calls=calls), Reply(tool_calls=calls))
    for stream in (True, False):
        r = client(server).chat(MSG, tools=[], stream=stream)
        assert [(c.id, c.name, json.loads(c.arguments)) for c in r.tool_calls] == [("c1", "shell", {"command": "ls -la memory"}), ("c2", "read_file", {"path": "USER.md"})]


def test_session_key_header(server: ScriptedServer) -> None:
    server.enqueue(Reply(content="x"))
    OpenAIClient(server.url, "k", "m", session_key="agentd-abc", send_prompt_cache_key=True).chat(MSG)
    assert server.requests[-1]["prompt_cache_key"] == "agentd-abc"
    assert server.requests[-1]["user"] == "agentd-abc"
    sent = {k.lower(): v for k, v in server.headers[-1].items()}
    assert sent["x-session-id"] == "agentd-abc" and sent["x-smg-routing-key"] == "agentd-abc"


def test_session_header_name_is_configurable(server: ScriptedServer) -> None:
    server.enqueue(Reply(content="x"))
    OpenAIClient(server.url, "k", "m", session_key="agentd-abc", session_header="X-Agent").chat(MSG)
    sent = {k.lower(): v for k, v in server.headers[-1].items()}
    assert sent["x-agent"] == "agentd-abc" and "x-session-id" not in sent
    assert "prompt_cache_key" not in server.requests[-1], "a supervised engine gets no body key"

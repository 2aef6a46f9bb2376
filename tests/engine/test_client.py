"""The client against a scripted HTTP server: usage, retries, truncated streams, timeouts, tool-call deltas."""

from __future__ import annotations

import json
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


def test_idle_timeout_fires(server: ScriptedServer) -> None:
    server.enqueue(Reply(content="a b c", stall_after=2, hang=3.0))
    with pytest.raises(EngineTimeout):
        client(server, retries=0, timeouts=Timeouts(connect=2, first_byte=0.5, idle=0.5, total=10)).chat(MSG, stream=True)


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

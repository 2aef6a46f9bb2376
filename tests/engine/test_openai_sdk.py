"""The embedded engine through the official ``openai`` SDK: chat, streaming with usage, JSON schema, native tool calls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.supervisor import EngineSupervisor

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.engine

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False},
    },
}
NOTE = {
    "type": "function",
    "function": {
        "name": "add_note",
        "description": "Save a short note.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
}
ASK = [{"role": "system", "content": "You help with the weather."}, {"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def sdk(real_engine: EngineSupervisor) -> Any:
    info = real_engine.info
    assert info is not None
    return openai.OpenAI(base_url=info.url, api_key=info.api_key, max_retries=0, timeout=300)


def model(sdk: Any) -> str:
    return str(sdk.models.list().data[0].id)


def test_sdk_chat(sdk: Any) -> None:
    r = sdk.chat.completions.create(model=model(sdk), messages=[{"role": "user", "content": "Say hello."}], max_tokens=8)
    assert r.choices[0].message.content and r.choices[0].message.tool_calls is None
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 8
    assert r.usage.prompt_tokens_details.cached_tokens is not None


def test_sdk_stream_with_include_usage(sdk: Any) -> None:
    chunks = list(sdk.chat.completions.create(
        model=model(sdk), messages=[{"role": "user", "content": "Name two colours."}], max_tokens=8,
        stream=True, stream_options={"include_usage": True},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_sdk_response_format_json_schema(sdk: Any) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"], "additionalProperties": False}
    r = sdk.chat.completions.create(
        model=model(sdk), messages=[{"role": "user", "content": "Pick a colour, as JSON."}], max_tokens=24,
        response_format={"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}},
    )
    assert isinstance(json.loads(r.choices[0].message.content)["colour"], str)


def test_sdk_tool_choice_forced_answers_with_tool_calls(sdk: Any) -> None:
    r = sdk.chat.completions.create(
        model=model(sdk), messages=ASK, tools=[NOTE, WEATHER], max_tokens=32,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_sdk_tools_auto_calls_or_answers_and_the_history_goes_back(sdk: Any) -> None:
    first = sdk.chat.completions.create(model=model(sdk), messages=ASK, tools=[WEATHER], tool_choice="auto", max_tokens=32)
    msg = first.choices[0].message
    assert msg.tool_calls or msg.content  # either a call or words, never neither
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call]}, {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"}]
    again = sdk.chat.completions.create(model=model(sdk), messages=history, tools=[WEATHER], tool_choice="none", max_tokens=16)
    assert again.choices[0].message.content and again.choices[0].finish_reason in ("stop", "length")


def test_sdk_streamed_tool_call_arrives_in_pieces(sdk: Any) -> None:
    stream = sdk.chat.completions.create(
        model=model(sdk), messages=ASK, tools=[WEATHER], max_tokens=32, tool_choice="required",
        stream=True, stream_options={"include_usage": True},
    )
    name, args, pieces, finish, usage = "", "", 0, None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                name += tc.function.name or ""
                if tc.function.arguments:
                    args += tc.function.arguments
                    pieces += 1
    assert name == "get_weather" and finish == "tool_calls" and pieces > 1
    assert isinstance(json.loads(args)["city"], str) and usage is not None

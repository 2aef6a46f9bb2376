"""Tool calls for a template without tools: the prompt, the grammar's schema, the answer read as it streams (no model)."""

from __future__ import annotations

import json

import pytest

from engine.partial_json import StringField, ValueSpan
from engine.tool_calls import (
    OutputReader,
    ToolRequestError,
    output_schema,
    template_messages,
    tools_text,
)

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "The  weather.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
NOTE = {"type": "function", "function": {"name": "add_note", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}}


def test_tools_open_the_system_message_and_history_is_rendered_as_the_model_writes_it() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
    ]
    out, inserted = template_messages(messages, [WEATHER])
    assert inserted == 0 and [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"] == tools_text([WEATHER]) + "\n\nBe brief."
    assert out[1]["content"] == "Weather?"
    assert json.loads(out[2]["content"]) == {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    assert out[3]["content"] == "[result of get_weather]\nSunny"
    # the same tools always give the same bytes (a cacheable prefix), whatever the key order
    reordered = {"function": dict(reversed(list(WEATHER["function"].items()))), "type": "function"}
    assert tools_text([reordered]) == tools_text([WEATHER])


def test_a_system_message_is_inserted_when_there_is_none() -> None:
    out, inserted = template_messages([{"role": "user", "content": "hi"}], [WEATHER])
    assert inserted == 1 and out[0]["role"] == "system" and "get_weather" in out[0]["content"]
    assert template_messages([{"role": "user", "content": "hi"}], None) == ([{"role": "user", "content": "hi"}], 0)


def test_tool_choice_shapes_the_schema() -> None:
    auto = output_schema([WEATHER, NOTE], "auto")
    assert len(auto["anyOf"]) == 2 and "response" in auto["anyOf"][1]["properties"]
    required = output_schema([WEATHER, NOTE], "required")
    names = {v["properties"]["name"]["enum"][0] for v in required["properties"]["tool_call"]["anyOf"]}
    assert names == {"get_weather", "add_note"} and "anyOf" not in required
    forced = output_schema([WEATHER, NOTE], {"type": "function", "function": {"name": "add_note"}})
    assert forced["properties"]["tool_call"]["properties"]["name"]["enum"] == ["add_note"]
    with pytest.raises(ToolRequestError, match="not among the tools"):
        output_schema([WEATHER], {"type": "function", "function": {"name": "nope"}})
    with pytest.raises(ToolRequestError, match="each tool must be"):
        output_schema([{"type": "function"}], "auto")


def test_a_streamed_call_yields_its_name_then_its_arguments_in_pieces() -> None:
    raw = '{"tool_call": {"name": "get_weather", "arguments": {"city": "Pa}r\\"is", "days": [1, {"a": 2}]}}}'
    reader, events = OutputReader(), []
    for ch in raw:
        events += list(reader.feed(ch))
    assert events[0] == {"call": "get_weather"} and reader.called
    args = [e["arguments"] for e in events[1:]]
    assert len(args) > 5 and json.loads("".join(args)) == {"city": 'Pa}r"is', "days": [1, {"a": 2}]}


def test_words_stream_as_text() -> None:
    reader, text = OutputReader(), ""
    for ch in '{"response": "It is \\u00e9t\\u00e9.\\n"}':
        text += "".join(e["text"] for e in reader.feed(ch))
    assert text == "It is été.\n" and not reader.called


def test_a_half_received_escape_is_held_back() -> None:
    field = StringField("text", when=("tool", "reply"))
    assert field.feed('{"tool": "rep') == ""
    assert field.feed('ly", "arguments": {"text": "a\\') == "a"
    assert field.feed("u00") == ""
    assert field.feed("e9\\ud83d") == "é"  # a high surrogate waits for its pair
    assert field.feed('\\ude00b"}}') == "😀b"
    other = StringField("text", when=("tool", "reply"))
    assert other.feed('{"tool": "remember", "arguments": {"text": "x"}}') == ""


def test_a_scalar_value_span_ends_at_its_delimiter() -> None:
    span = ValueSpan("arguments")
    assert span.feed('{"arguments": 12') == "12" and not span.done
    assert span.feed("}") == "" and span.done

"""Reading one step of the model: the action it chose, the messages that record it, the reply streamed out of it.

Two ways to call tools (``engine.tool_calling``): native OpenAI tool calls, or one
constrained JSON action per step. Everything that differs between them is here, so the
wake loop (:mod:`agentd.loop`) reads both the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentd.context import Message
from agentd.tools.base import ToolOutcome
from engine.partial_json import StringField, field_text
from engine.types import ChatResult

REPLY = "reply"


@dataclass
class Turn:
    """What one engine response asked for."""

    calls: list[tuple[str, str | dict[str, Any], str | None]]  # (tool, arguments, call id)
    final_text: str | None  # a plain answer without a tool call (native mode)
    problem: str | None  # the response was not a usable action (json mode)


def parse_turn(result: ChatResult, tool_calling: str, reply_only: bool = False) -> Turn:
    if tool_calling == "native":
        if result.tool_calls:
            return Turn([(c.name, c.arguments, c.id) for c in result.tool_calls], None, None)
        return Turn([], result.content.strip(), None)
    text = result.content.strip()
    try:
        # strict=False: llama.cpp's grammar lets raw control characters (a newline) into strings.
        action = json.loads(text, strict=False)
    except json.JSONDecodeError as e:
        cut = field_text(text, "text") if reply_only else None
        if cut is not None and cut[0].strip():
            # A reply cut short by max_tokens: what the person would have read so far is the answer.
            return Turn([(REPLY, {"text": cut[0]}, None)], None, None)
        return Turn([], None, f"your answer was not a JSON action ({e.msg}); answer with {{\"tool\": …, \"arguments\": {{…}}}}")
    except RecursionError:  # nesting deeper than the parser's stack: a malformed action, not a crash
        return Turn([], None, "your answer's JSON is nested too deeply; answer with one flat action")
    if not isinstance(action, dict) or not isinstance(action.get("tool"), str):
        return Turn([], None, 'your answer needs a "tool" name and "arguments"')
    args = action.get("arguments", {})
    return Turn([(action["tool"], args if isinstance(args, (dict, str)) else json.dumps(args), None)], None, None)


def assistant_message(result: ChatResult, tool_calling: str) -> Message:
    if tool_calling == "native" and result.tool_calls:
        return {
            "role": "assistant",
            "content": result.content,
            "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in result.tool_calls
            ],
        }
    return {"role": "assistant", "content": result.content}


def result_message(outcome: ToolOutcome, call_id: str | None, tool_calling: str) -> Message:
    if tool_calling == "native" and call_id is not None:
        return {"role": "tool", "tool_call_id": call_id, "content": outcome.text}
    return {"role": "user", "content": f"[result of {outcome.name}]\n{outcome.text}"}


def reply_stream(sink: Callable[[str], None]) -> Callable[[str], None]:
    """Reads a streamed JSON action; passes the reply tool's text on as it is generated."""
    field = StringField("text", when=("tool", REPLY))

    def feed(piece: str) -> None:
        if text := field.feed(piece):
            sink(text)

    return feed


def reply_call_stream(sink: Callable[[str], None]) -> Callable[[str, str], None]:
    """Reads a streamed native tool call; passes the reply tool's text on as it is generated."""
    field = StringField("text")

    def feed(name: str, piece: str) -> None:
        if name == REPLY and (text := field.feed(piece)):
            sink(text)

    return feed

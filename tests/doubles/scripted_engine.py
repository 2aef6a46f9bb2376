"""ScriptedEngine: an in-process test double of the engine client, fed canned responses with enqueue().

It speaks the same ChatEngine protocol as the real client, records every request,
and reports usage like a prefix-caching engine would (cached = the longest common
prefix with any earlier request since the last ``restart()``, counted in 4-character
"tokens"), so the ledger and the self-check can be tested without a model.
``FaultyTool`` is a tool double whose bug (a RuntimeError) tests what a wake survives.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from agentd.tools.base import Tool, ToolContext, ToolOutcome
from engine.types import ChatResult, ToolCall, Usage


def _chars(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    return json.dumps(tools, sort_keys=True) + "".join(json.dumps(m, sort_keys=True) for m in messages)


def _common(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


class ScriptedEngine:
    """Returns enqueued responses in order; an enqueued exception is raised instead."""

    def __init__(self, *, report_cached: bool = True, piece_chars: int = 0) -> None:
        self.piece_chars = piece_chars  # > 0: streamed text reaches on_delta in pieces this long, like tokens
        self.queue: deque[ChatResult | BaseException | Callable[[list[dict[str, Any]]], ChatResult]] = deque()
        self.requests: list[dict[str, Any]] = []
        self.report_cached = report_cached
        self._cache: list[str] = []  # every request since the last restart, like an unbounded prefix cache

    # ------------------------------------------------------------ scripting
    def enqueue(self, content: str = "", tool_calls: list[ToolCall] | None = None, completion_tokens: int = 8) -> None:
        self.queue.append(ChatResult(content, tool_calls or [], "tool_calls" if tool_calls else "stop", Usage(0, completion_tokens, None, 0.01, 0.02), "scripted"))

    def enqueue_action(self, tool: str, **arguments: Any) -> None:
        """A constrained-JSON action, as the json tool-calling mode expects."""
        self.enqueue(json.dumps({"tool": tool, "arguments": arguments}))

    def enqueue_calls(self, *calls: tuple[str, dict[str, Any]]) -> None:
        """Native tool calls, several in one response."""
        self.enqueue("", [ToolCall(f"call_{i}", name, json.dumps(args)) for i, (name, args) in enumerate(calls)])

    def enqueue_error(self, error: BaseException) -> None:
        self.queue.append(error)

    def restart(self) -> None:
        """The engine restarted: its prefix cache is empty."""
        self._cache.clear()

    # ------------------------------------------------------------ ChatEngine
    def chat(self, messages: list[dict[str, Any]], **kwargs: Any) -> ChatResult:
        self.requests.append({"messages": json.loads(json.dumps(messages)), **kwargs})
        if not self.queue:
            raise AssertionError("ScriptedEngine: no response enqueued for this request")
        item = self.queue.popleft()
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            item = item(messages)
        text = _chars(messages, kwargs.get("tools"))
        common = max((_common(seen, text) for seen in self._cache), default=0)
        self._cache.append(text)
        usage = Usage(
            prompt_tokens=len(text) // 4,
            completion_tokens=item.usage.completion_tokens,
            cached_tokens=common // 4 if self.report_cached else None,
            ttft_s=0.01,
            total_s=0.02,
        )
        on_delta = kwargs.get("on_delta")
        if on_delta and item.content:
            step = self.piece_chars or len(item.content)
            for i in range(0, len(item.content), step):
                on_delta(item.content[i : i + step])
        on_call_delta = kwargs.get("on_call_delta")
        for call in item.tool_calls if on_call_delta else []:
            step = self.piece_chars or len(call.arguments) or 1
            for i in range(0, len(call.arguments), step):
                on_call_delta(call.name, call.arguments[i : i + step])
        return ChatResult(item.content, item.tool_calls, item.finish_reason, usage, item.model)

    def tokenize(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int] | None:
        return None


class FaultyTool(Tool):
    """A tool double with a bug: it raises a plain RuntimeError, as a tool's own bug would."""

    name = "faulty"
    description = "A tool double that always raises RuntimeError."
    parameters = {"type": "object", "properties": {"what": {"type": "string"}}, "required": []}

    def run(self, ctx: ToolContext, **args: Any) -> ToolOutcome | str:
        raise RuntimeError("the faulty tool double broke")

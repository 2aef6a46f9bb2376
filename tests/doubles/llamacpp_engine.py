"""A test double of ``engine.llamacpp_server.Engine`` (no llama.cpp, no model): canned text, every call recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class LlamaEngineDouble:
    """What the HTTP handler needs of the engine; ``calls`` shows whether a request reached it."""

    model_name = "engine-double.gguf"

    def __init__(self, text: str = "hello from the double") -> None:
        self.text = text
        self.calls: list[str] = []

    def render(self, messages: list[dict[str, Any]], *, generation_prompt: bool) -> str:
        self.calls.append("render")
        return "".join(str(m.get("content", "")) for m in messages)

    def chat_messages(self, messages: Any, tools: Any) -> tuple[list[dict[str, Any]], int]:
        self.calls.append("chat_messages")
        return list(messages), 0

    def tokens(self, text: str) -> list[int]:
        self.calls.append("tokens")
        return [ord(c) for c in text]

    def complete(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        self.calls.append("complete")
        for i, word in enumerate(self.text.split(" ")):
            yield {"text": word if i == 0 else " " + word}
        usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4, "prompt_tokens_details": {"cached_tokens": 0}}
        yield {"done": {"finish_reason": "stop", "usage": usage, "timings": {"cache_n": 0, "prompt_n": 3, "prompt_ms": 1.0}}}

    def metrics(self) -> str:
        self.calls.append("metrics")
        return "agentd_engine_requests_total 0\n"

"""What crosses the engine boundary: messages in; text, tool calls and usage (with cached tokens) out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # the raw JSON text the model produced


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None  # usage.prompt_tokens_details.cached_tokens; absent => None, never 0
    ttft_s: float | None
    total_s: float


@dataclass(frozen=True)
class ChatResult:
    content: str
    tool_calls: list[ToolCall]
    finish_reason: str
    usage: Usage
    model: str


class ChatEngine(Protocol):
    """One protocol for every backend: OpenAI-compatible chat completions."""

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        response_format: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        stream: bool = False,
        on_delta: Callable[[str], None] | None = None,
        extra_body: dict[str, Any] | None = None,
        on_call_delta: Callable[[str, str], None] | None = None,
    ) -> ChatResult: ...

    def tokenize(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int] | None: ...


@dataclass(frozen=True)
class EngineSettings:
    """What agentd's config hands the engine layer."""

    backend: str  # an installed backend's name (llamacpp, vllm, openai or a plugin's); engine/backends.py
    model: str
    url: str | None = None
    api_key_env: str | None = None
    session_key: str | None = None
    session_header: str = "X-Session-ID"  # where the session key goes (a router keys on it)
    options: Mapping[str, Any] = field(default_factory=dict)

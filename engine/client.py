"""An OpenAI-compatible chat client: tools, JSON schema, streaming, timeouts, retries, cached-token usage."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from engine.errors import (
    EngineError,
    EngineHTTPError,
    EngineProtocolError,
    EngineTimeout,
    EngineUnavailable,
)
from engine.types import ChatResult, ToolCall, Usage


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    first_byte: float = 300.0  # prefill of a long cold prompt on a CPU can take minutes
    idle: float = 60.0  # between stream chunks
    total: float = 900.0


def parse_usage(data: dict[str, Any] | None, ttft: float | None, total: float) -> Usage:
    """``cached_tokens`` comes from ``prompt_tokens_details`` (vLLM, OpenAI, our adapter) or
    llama.cpp's ``timings.cache_n``; when neither is there it is None — unknown, never 0."""
    data = data or {}
    details = data.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        cached_tokens=int(cached) if isinstance(cached, int) else None,
        ttft_s=ttft,
        total_s=total,
    )


def _cached_from_timings(body: dict[str, Any], usage: Usage) -> Usage:
    timings = body.get("timings")
    if usage.cached_tokens is None and isinstance(timings, dict) and isinstance(timings.get("cache_n"), int):
        return Usage(usage.prompt_tokens, usage.completion_tokens, timings["cache_n"], usage.ttft_s, usage.total_s)
    return usage


class OpenAIClient:
    """Speaks ``POST /v1/chat/completions`` to vLLM, llama.cpp, our adapter, or a hosted API."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        timeouts: Timeouts | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        session_key: str | None = None,
        send_prompt_cache_key: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeouts = timeouts = timeouts or Timeouts()
        self.retries = retries
        self.backoff = backoff
        self.session_key = session_key
        self.send_prompt_cache_key = send_prompt_cache_key
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if session_key:
            # Cache-aware routers (vLLM router --routing-logic session, SGLang, Ray) key on this.
            headers["x-session-id"] = session_key
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(connect=timeouts.connect, read=max(timeouts.first_byte, timeouts.idle), write=30.0, pool=30.0),
        )

    @property
    def root_url(self) -> str:
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ chat
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
    ) -> ChatResult:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        if response_format is not None:
            body["response_format"] = response_format
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if self.session_key and self.send_prompt_cache_key:
            body["prompt_cache_key"] = self.session_key
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if extra_body:
            body.update(extra_body)
        return self._with_retries(lambda: self._stream(body, on_delta) if stream else self._once(body))

    def _with_retries(self, call: Callable[[], ChatResult]) -> ChatResult:
        attempt = 0
        while True:
            try:
                return call()
            except EngineError as e:
                if not e.retriable or attempt >= self.retries:
                    raise
                attempt += 1
                # Exponential backoff with jitter, so a restarting engine is not hammered.
                time.sleep(self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return self._http.post(self.base_url + path, json=body)
        except httpx.ConnectError as e:
            raise EngineUnavailable(f"cannot connect to {self.base_url}: {e}") from None
        except httpx.TimeoutException as e:
            raise EngineTimeout(f"{type(e).__name__} after {self.timeouts.first_byte:.0f}s waiting for {self.base_url}") from None
        except httpx.TransportError as e:
            raise EngineProtocolError(f"transport error talking to {self.base_url}: {e}") from None

    def _once(self, body: dict[str, Any]) -> ChatResult:
        start = time.monotonic()
        resp = self._post("/chat/completions", body)
        elapsed = time.monotonic() - start
        if resp.status_code != 200:
            raise EngineHTTPError(resp.status_code, resp.text)
        try:
            data = resp.json()
            choice = data["choices"][0]
            msg = choice["message"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as e:
            raise EngineProtocolError(f"malformed response from the engine ({type(e).__name__}): {resp.text[:200]!r}") from None
        calls = [
            ToolCall(c.get("id") or f"call_{i}", c["function"]["name"], c["function"].get("arguments") or "{}")
            for i, c in enumerate(msg.get("tool_calls") or [])
        ]
        usage = _cached_from_timings(data, parse_usage(data.get("usage"), elapsed, elapsed))
        return ChatResult(msg.get("content") or "", calls, choice.get("finish_reason") or "stop", usage, data.get("model", self.model))

    def _stream(self, body: dict[str, Any], on_delta: Callable[[str], None] | None) -> ChatResult:
        start = time.monotonic()
        t = self.timeouts
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish: str | None = None
        usage_data: dict[str, Any] | None = None
        timings_body: dict[str, Any] = {}
        model = self.model
        ttft: float | None = None
        done = False
        try:
            with self._http.stream("POST", self.base_url + "/chat/completions", json=body) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise EngineHTTPError(resp.status_code, resp.text)
                last = time.monotonic()
                for payload in _sse_payloads(resp.iter_lines()):
                    now = time.monotonic()
                    if ttft is None and now - start > t.first_byte:
                        raise EngineTimeout(f"no first byte within {t.first_byte:.0f}s")
                    if ttft is not None and now - last > t.idle:
                        raise EngineTimeout(f"stream idle for more than {t.idle:.0f}s")
                    if now - start > t.total:
                        raise EngineTimeout(f"request took more than {t.total:.0f}s")
                    last = now
                    if payload == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = json.loads(payload)
                    except json.JSONDecodeError:
                        raise EngineProtocolError(f"malformed stream chunk: {payload[:200]!r}") from None
                    model = chunk.get("model", model)
                    if chunk.get("usage"):
                        usage_data = chunk["usage"]
                    if isinstance(chunk.get("timings"), dict):
                        timings_body = {"timings": chunk["timings"]}
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            if ttft is None:
                                ttft = time.monotonic() - start
                            text.append(delta["content"])
                            if on_delta is not None:
                                on_delta(delta["content"])
                        for tc in delta.get("tool_calls") or []:
                            if ttft is None:
                                ttft = time.monotonic() - start
                            slot = calls.setdefault(int(tc.get("index", 0)), {"id": "", "name": "", "arguments": ""})
                            slot["id"] = tc.get("id") or slot["id"]
                            fn = tc.get("function") or {}
                            slot["name"] += fn.get("name") or ""
                            slot["arguments"] += fn.get("arguments") or ""
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
        except httpx.ConnectError as e:
            raise EngineUnavailable(f"cannot connect to {self.base_url}: {e}") from None
        except httpx.TimeoutException:
            raise EngineTimeout(f"stream stalled (no bytes for {max(t.first_byte, t.idle):.0f}s)") from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as e:
            raise EngineProtocolError(f"stream cut off mid-way: {e}") from None
        if not done and finish is None:
            raise EngineProtocolError("stream ended before the engine said it was done (truncated)")
        elapsed = time.monotonic() - start
        tool_calls = [ToolCall(c["id"] or f"call_{i}", c["name"], c["arguments"] or "{}") for i, c in sorted(calls.items())]
        usage = _cached_from_timings(timings_body, parse_usage(usage_data, ttft, elapsed))
        return ChatResult("".join(text), tool_calls, finish or "stop", usage, model)

    # ------------------------------------------------------------ the rest of the surface
    def tokenize(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int] | None:
        """Token ids of a chat as the engine renders it (vLLM and our adapter); None where unsupported."""
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            body["tools"] = tools
        try:
            resp = self._http.post(self.root_url + "/tokenize", json=body)
        except httpx.HTTPError:
            return None
        if resp.status_code != 200:
            return None
        tokens = resp.json().get("tokens")
        return [int(t) for t in tokens] if isinstance(tokens, list) else None

    def health(self) -> bool:
        for path in ("/health", "/v1/models"):
            try:
                if self._http.get(self.root_url + path, timeout=3.0).status_code == 200:
                    return True
            except httpx.HTTPError:
                continue
        return False

    def metrics_text(self) -> str | None:
        try:
            resp = self._http.get(self.root_url + "/metrics", timeout=3.0)
        except httpx.HTTPError:
            return None
        return resp.text if resp.status_code == 200 else None


def _sse_payloads(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if line.startswith("data:"):
            yield line[5:].strip()

"""An OpenAI-compatible chat client: tools, JSON schema, streaming, timeouts, retries, cached-token usage."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
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

TIMEOUTS_ENV = "AGENTD_ENGINE_TIMEOUTS"


@dataclass(frozen=True)
class Timeouts:
    """Seconds; each fires at its own value, per attempt, streamed or not.

    - ``connect``: opening the connection;
    - ``first_byte``: until the engine's first output: the first generated token of a
      stream (a chunk without text, like vLLM's opening role chunk, does not count) or
      the first byte of a whole response. It covers the prefill, which for a long cold
      prompt on a CPU can take minutes;
    - ``idle``: between stream chunks (between reads of a whole response) once output flows;
    - ``total``: the whole attempt.
    """

    connect: float = 5.0
    first_byte: float = 300.0
    idle: float = 60.0
    total: float = 900.0

    @classmethod
    def from_env(cls, base: Timeouts | None = None) -> Timeouts:
        """``base`` (the defaults when None), overridden by ``AGENTD_ENGINE_TIMEOUTS`` (e.g. ``first_byte=600,idle=120``)."""
        base = base or cls()
        spec = os.environ.get(TIMEOUTS_ENV, "").strip()
        if not spec:
            return base
        names = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for part in spec.split(","):
            name, sep, value = part.partition("=")
            name = name.strip()
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not sep or name not in names or not math.isfinite(seconds) or seconds <= 0:
                raise ValueError(f"{TIMEOUTS_ENV}: expected name=seconds pairs ({', '.join(sorted(names))}), got {part!r}")
            values[name] = seconds
        return replace(base, **values)


def _secs(x: float) -> str:
    return f"{x:g}s"


class _Watchdog:
    """Cuts the connection when a deadline passes, so a silent engine cannot outlast its timeouts.

    httpx has one read timeout per socket read; first-byte, idle and total deadlines need
    a clock of their own. The socket comes from httpcore's trace of the connection it
    opens (the client keeps no idle connections, so every request opens one); shutting
    it down wakes the read blocked on it, which then fails or ends, and ``fired`` says why.
    """

    def __init__(self, timeouts: Timeouts) -> None:
        self.t = timeouts
        self.start = time.monotonic()
        self.flowing = False  # output has started: the idle deadline applies
        self.last = self.start
        self.fired: str | None = None
        self._sock: socket.socket | None = None
        self._done = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="engine-watchdog", daemon=True)
        self._thread.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event in ("connection.connect_tcp.complete", "connection.connect_unix_socket.complete", "connection.start_tls.complete"):
            sock = info["return_value"].get_extra_info("socket")
            with self._cv:
                self._sock = sock
                if self.fired is not None:
                    self._cut()

    def progress(self, output: bool = True) -> None:
        """Bytes arrived; ``output`` says whether they carry the engine's output (ending the first-byte wait)."""
        with self._cv:
            self.flowing = self.flowing or output
            if self.flowing:
                self.last = time.monotonic()
            self._cv.notify()

    def _deadline(self) -> tuple[float, str]:
        phase = (self.last + self.t.idle, "idle") if self.flowing else (self.start + self.t.first_byte, "first_byte")
        return min(phase, (self.start + self.t.total, "total"))

    def _run(self) -> None:
        with self._cv:
            while not self._done:
                at, kind = self._deadline()
                wait = at - time.monotonic()
                if wait <= 0:
                    self.fired = kind
                    self._cut()
                    return
                self._cv.wait(wait)

    def _cut(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                # socket.socket's own shutdown: on a TLS socket it leaves the SSL object in
                # place for the reader, which then sees the end of the stream.
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def close(self) -> None:
        with self._cv:
            self._done = True
            self._cv.notify()
        self._thread.join()

    def error(self, kind: str | None = None) -> EngineTimeout:
        kind = kind or self.fired or ("idle" if self.flowing else "first_byte")
        if kind == "total":
            return EngineTimeout(f"the request took more than {_secs(self.t.total)} (total timeout)")
        if kind == "idle":
            return EngineTimeout(f"the engine sent nothing for more than {_secs(self.t.idle)} mid-response (idle timeout)")
        return EngineTimeout(f"no output from the engine within {_secs(self.t.first_byte)} (first-byte timeout)")


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
        session_header: str = "X-Session-ID",
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
            # Cache-aware routers key on a header: vllm-router and Ray on X-Session-ID (production-stack's
            # on the one it is told, engine.session_header), sglang-router on X-SMG-Routing-Key.
            headers[session_header] = session_key
            headers["X-SMG-Routing-Key"] = session_key
        self._http = httpx.Client(
            headers=headers,
            # A backstop only: the watchdog enforces first-byte, idle and total deadlines.
            timeout=httpx.Timeout(connect=timeouts.connect, read=max(timeouts.first_byte, timeouts.idle), write=30.0, pool=30.0),
            # Every request opens its own connection, so the watchdog always knows its socket.
            limits=httpx.Limits(max_keepalive_connections=0),
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
        on_call_delta: Callable[[str, str], None] | None = None,
    ) -> ChatResult:
        """One chat completion; retriable failures are retried with backoff (``retries`` times).

        ``on_delta`` receives each piece of streamed text exactly once; ``on_call_delta``
        each piece of a streamed tool call's arguments, with the call's name. A stream that fails
        after text reached ``on_delta`` is therefore not retried here: the error is raised
        with that text in ``partial_output`` (and stays retriable), and the caller, which
        has shown it, decides whether to ask again from the start.
        """
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
            body["prompt_cache_key"] = body["user"] = self.session_key  # hosted APIs' and some routers' keys
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if extra_body:
            body.update(extra_body)
        return self._with_retries(lambda: self._stream(body, on_delta, on_call_delta) if stream else self._once(body))

    def _with_retries(self, call: Callable[[], ChatResult]) -> ChatResult:
        attempt = 0
        while True:
            try:
                return call()
            except EngineError as e:
                if not e.retriable or attempt >= self.retries or e.partial_output:
                    raise
                attempt += 1
                # Exponential backoff with jitter, so a restarting engine is not hammered.
                time.sleep(self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))

    @contextlib.contextmanager
    def _exchange(self, body: dict[str, Any]) -> Iterator[tuple[httpx.Response, _Watchdog]]:
        """POST a chat request under the watchdog; transport failures become engine errors."""
        watch = _Watchdog(self.timeouts)
        try:
            with self._http.stream("POST", self.base_url + "/chat/completions", json=body, extensions={"trace": watch.trace}) as resp:
                yield resp, watch
        except httpx.ConnectTimeout:
            raise EngineTimeout(f"could not connect to {self.base_url} within {_secs(self.timeouts.connect)} (connect timeout)") from None
        except httpx.ConnectError as e:
            raise EngineUnavailable(f"cannot connect to {self.base_url}: {e}") from None
        except (httpx.TransportError, EngineProtocolError) as e:
            if watch.fired is not None:
                raise watch.error() from None
            if isinstance(e, httpx.TimeoutException):
                raise watch.error() from None  # the backstop fired first: the watchdog's own phase says which
            if isinstance(e, EngineProtocolError):
                raise
            raise EngineProtocolError(f"the connection to {self.base_url} broke mid-response: {e}") from None
        finally:
            watch.close()

    def _once(self, body: dict[str, Any]) -> ChatResult:
        with self._exchange(body) as (resp, watch):
            watch.progress()  # the status line is the first byte of a whole response
            parts: list[bytes] = []
            for part in resp.iter_bytes():
                watch.progress()
                parts.append(part)
            if watch.fired is not None:
                raise watch.error()  # cut short by the watchdog, whatever the body looks like
            raw = b"".join(parts)
            elapsed = time.monotonic() - watch.start
        text = raw.decode("utf-8", errors="replace")
        if resp.status_code != 200:
            raise EngineHTTPError(resp.status_code, text)
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            msg = choice["message"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as e:
            raise EngineProtocolError(f"malformed response from the engine ({type(e).__name__}): {text[:200]!r}") from None
        calls = [
            ToolCall(c.get("id") or f"call_{i}", c["function"]["name"], c["function"].get("arguments") or "{}")
            for i, c in enumerate(msg.get("tool_calls") or [])
        ]
        usage = _cached_from_timings(data, parse_usage(data.get("usage"), elapsed, elapsed))
        return ChatResult(msg.get("content") or "", calls, choice.get("finish_reason") or "stop", usage, data.get("model", self.model))

    def _stream(
        self, body: dict[str, Any], on_delta: Callable[[str], None] | None, on_call_delta: Callable[[str, str], None] | None = None
    ) -> ChatResult:
        delivered: list[str] = []
        try:
            return self._stream_once(body, on_delta, delivered, on_call_delta)
        except EngineError as e:
            if delivered:
                e.partial_output = "".join(delivered)
            raise

    def _stream_once(
        self,
        body: dict[str, Any],
        on_delta: Callable[[str], None] | None,
        delivered: list[str],
        on_call_delta: Callable[[str, str], None] | None = None,
    ) -> ChatResult:
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish: str | None = None
        usage_data: dict[str, Any] | None = None
        timings_body: dict[str, Any] = {}
        model = self.model
        ttft: float | None = None
        done = False
        with self._exchange(body) as (resp, watch):
            start = watch.start
            if resp.status_code != 200:
                resp.read()
                raise EngineHTTPError(resp.status_code, resp.text)
            for payload in _sse_payloads(resp.iter_lines()):
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
                output = False
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        output = True
                        if ttft is None:
                            ttft = time.monotonic() - start
                        text.append(delta["content"])
                        if on_delta is not None:
                            delivered.append(delta["content"])
                            on_delta(delta["content"])
                    for tc in delta.get("tool_calls") or []:
                        output = True
                        if ttft is None:
                            ttft = time.monotonic() - start
                        slot = calls.setdefault(int(tc.get("index", 0)), {"id": "", "name": "", "arguments": ""})
                        slot["id"] = tc.get("id") or slot["id"]
                        fn = tc.get("function") or {}
                        slot["name"] += fn.get("name") or ""
                        slot["arguments"] += fn.get("arguments") or ""
                        if on_call_delta is not None and fn.get("arguments"):
                            delivered.append(fn["arguments"])  # shown: a failure after it is not retried here
                            on_call_delta(slot["name"], fn["arguments"])
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                watch.progress(output)
            if not done and watch.fired is not None:
                raise watch.error()  # the watchdog ended the stream
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

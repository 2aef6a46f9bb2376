"""The embedded engine's HTTP side: OpenAI-compatible routes over an ``Engine``, loopback only, every route keyed.

Kept apart from :mod:`engine.llamacpp_server` (the model and its KV cache) so the wire
format can be read, and tested with a double, without llama.cpp.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.llamacpp_server import Engine

LOOPBACK = "127.0.0.1"  # the only address it listens on: no option widens it


class BadRequest(Exception):
    """A request the engine cannot serve as asked: answered with HTTP 400 and this text."""


def make_handler(engine: Engine, api_key: str, open_health: bool = False) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {api_key}".encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # one line per request would drown the engine log

        def _authorized(self) -> bool:
            # Constant time, so response timing does not reveal how much of a guess was right.
            if hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected):
                return True
            self._json(401, {"error": {"message": "missing or wrong API key", "type": "unauthorized"}})
            return False

        def _json(self, status: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            n = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(n) or b"{}")
            except json.JSONDecodeError as e:
                raise BadRequest(f"request body is not JSON: {e}") from None
            if not isinstance(body, dict):
                raise BadRequest("request body must be a JSON object")
            return body

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            if open_health and self.path == "/health":
                self._json(200, {"status": "ok"})  # says nothing else without the key
                return
            if not self._authorized():
                return
            if self.path == "/health":
                self._json(200, {"status": "ok", "model": engine.model_name})
            elif self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": engine.model_name, "object": "model", "owned_by": "agentd"}]})
            elif self.path == "/metrics":
                data = engine.metrics().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            if not self._authorized():
                return
            try:
                body = self._body()
                if self.path == "/tokenize":
                    if "messages" in body:
                        messages, _ = engine.chat_messages(body["messages"], body.get("tools"))
                        text = engine.render(messages, generation_prompt=bool(body.get("add_generation_prompt", True)))
                    else:
                        text = str(body.get("prompt", ""))
                    toks = engine.tokens(text)
                    self._json(200, {"tokens": toks, "count": len(toks)})
                elif self.path == "/v1/chat/completions":
                    self._chat(body)
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
            except BadRequest as e:
                self._json(400, {"error": {"message": str(e), "type": "invalid_request_error"}})

        def _chat(self, body: dict[str, Any]) -> None:
            rid = "chatcmpl-" + uuid.uuid4().hex[:16]
            created = int(time.time())
            gen = engine.complete(body)
            call_id = "call_" + uuid.uuid4().hex[:16]
            if not body.get("stream"):
                text, done = [], {}
                name, args = None, []
                for piece in gen:
                    if "text" in piece:
                        text.append(piece["text"])
                    elif "call" in piece:
                        name = piece["call"]
                    elif "arguments" in piece:
                        args.append(piece["arguments"])
                    else:
                        done = piece["done"]
                message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if name is None else None}
                if name is not None:
                    message["tool_calls"] = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": "".join(args) or "{}"}}]
                self._json(200, {
                    "id": rid, "object": "chat.completion", "created": created, "model": engine.model_name,
                    "choices": [{"index": 0, "message": message, "finish_reason": done["finish_reason"]}],
                    "usage": done["usage"], "timings": done["timings"],
                })
                return
            first = next(gen)  # errors in the request surface before the stream starts
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()

            def send(obj: dict[str, Any] | str) -> None:
                payload = obj if isinstance(obj, str) else json.dumps(obj)
                self.wfile.write(f"data: {payload}\n\n".encode())
                self.wfile.flush()

            def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
                return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": engine.model_name,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

            send(chunk({"role": "assistant"}))
            for piece in _chain(first, gen):
                if "text" in piece:
                    send(chunk({"content": piece["text"]}))
                elif "call" in piece:
                    fn = {"name": piece["call"], "arguments": ""}
                    send(chunk({"tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": fn}]}))
                elif "arguments" in piece:
                    send(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece["arguments"]}}]}))
                else:
                    done = piece["done"]
                    send(chunk({}, done["finish_reason"]))
                    if (body.get("stream_options") or {}).get("include_usage"):
                        send({"id": rid, "object": "chat.completion.chunk", "created": created, "model": engine.model_name,
                              "choices": [], "usage": done["usage"], "timings": done["timings"]})
            send("[DONE]")
            self.close_connection = True

    return Handler


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


def make_server(engine: Engine, api_key: str, port: int, open_health: bool = False) -> ThreadingHTTPServer:
    """The HTTP server on 127.0.0.1 only; every route needs ``api_key`` (``/health`` too unless ``open_health``)."""
    if not api_key:
        raise ValueError("an API key is required")
    return ThreadingHTTPServer((LOOPBACK, port), make_handler(engine, api_key, open_health))

"""A scripted OpenAI-compatible server (a test double): canned replies, faults, or a responder function.

In a thread::

    server = ScriptedServer(api_key="k"); server.enqueue(Reply(content="hi")); server.start()

Or as a process, for daemon tests (writes its port to a file)::

    python -m tests.doubles.openai_server --port-file F --responder tests.doubles.agent_responder:respond
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    prompt_tokens: int = 100
    cached_tokens: int | None = 0  # None: no prompt_tokens_details at all
    completion_tokens: int = 5
    hang: float = 0.0  # seconds to stall before answering
    malformed: bool = False  # send a body that is not JSON
    truncate_after: int | None = None  # streamed: cut the connection after N chunks
    stall_after: int | None = None  # streamed: stall (hang seconds) after N chunks (0: after the headers)
    stall_marker: str | None = None  # streamed: a file created when the stall begins (the reply is mid-way)


Responder = Callable[[dict[str, Any]], Reply]


class ScriptedServer:
    def __init__(
        self,
        api_key: str | None = None,
        responder: Responder | None = None,
        port: int = 0,
        *,
        open_health: bool = False,
        metrics: Callable[[], str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.responder = responder
        self.open_health = open_health  # GET /health without the key, as vLLM answers it (a router probes it so)
        self.metrics = metrics  # the Prometheus text of GET /metrics, when given
        self.queue: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # each request's headers, in order
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def enqueue(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    def start(self) -> ScriptedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def next_reply(self, body: dict[str, Any]) -> Reply:
        if self.queue:
            return self.queue.popleft()
        if self.responder is not None:
            return self.responder(body)
        return Reply(status=500, content="no reply scripted")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _send(self, status: int, data: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _auth(self) -> bool:
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._send(401, b'{"error": {"message": "unauthorized"}}')
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/health" and server.open_health:
                    self._send(200, b'{"status": "ok"}')
                elif self.path == "/metrics" and server.metrics is not None:
                    # As vLLM's: /metrics answers without the key.
                    self._send(200, server.metrics().encode(), "text/plain; version=0.0.4")
                elif self._auth():
                    self._send(200, b'{"status": "ok", "data": []}')

            def do_POST(self) -> None:  # noqa: N802
                if not self._auth():
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                server.requests.append(body)
                server.headers.append(dict(self.headers.items()))
                reply = server.next_reply(body)
                if reply.hang and reply.stall_after is None:
                    time.sleep(reply.hang)
                if reply.status != 200:
                    self._send(reply.status, json.dumps({"error": {"message": reply.content}}).encode())
                    return
                if reply.malformed:
                    self._send(200, b'{"choices": [ this is not json')
                    return
                usage: dict[str, Any] = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
                if reply.cached_tokens is not None:
                    usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
                if body.get("stream"):
                    self._stream(body, reply, usage)
                    return
                message: dict[str, Any] = {"role": "assistant", "content": reply.content}
                if reply.tool_calls:
                    message["tool_calls"] = reply.tool_calls
                out = {"id": "x", "object": "chat.completion", "model": body.get("model", "m"),
                       "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}], "usage": usage}
                self._send(200, json.dumps(out).encode())

            def _stream(self, body: dict[str, Any], reply: Reply, usage: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                chunks: list[dict[str, Any]] = []
                words = reply.content.split(" ") if reply.content else []
                for i, w in enumerate(words):
                    chunks.append({"choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w}, "finish_reason": None}]})
                for i, tc in enumerate(reply.tool_calls):
                    args = tc["function"]["arguments"]
                    half = len(args) // 2
                    chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "id": tc["id"], "function": {"name": tc["function"]["name"], "arguments": args[:half]}}]}, "finish_reason": None}]})
                    chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]}, "finish_reason": None}]})
                chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}]})
                chunks.append({"choices": [], "usage": usage})
                try:
                    for n, chunk in enumerate(chunks):
                        if reply.truncate_after is not None and n >= reply.truncate_after:
                            return  # the connection closes without [DONE]
                        if reply.stall_after is not None and n == reply.stall_after:
                            if reply.stall_marker:
                                with open(reply.stall_marker, "w"):
                                    pass
                            time.sleep(reply.hang)
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                finally:
                    self.close_connection = True

        return Handler


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--responder", required=True, help="module:function returning a Reply for a request body")
    args = p.parse_args()
    module, func = args.responder.split(":")
    responder = getattr(importlib.import_module(module), func)
    server = ScriptedServer(api_key=os.environ.get("SCRIPTED_API_KEY"), responder=responder, port=args.port)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(str(server.httpd.server_address[1]))
    os.replace(tmp, args.port_file)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()

"""Chat and the message API: a message goes into the inbox (durable), its reply streams back over SSE."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from markdown_it import MarkdownIt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentd import inbox
from agentd.inbox import MAX_MESSAGE_CHARS
from agentd.web.app import page, refuse, web_of

MESSAGE_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
POLL_S = 0.1
SETTLE_S = 10.0  # a message with no wake running and no reply note: told as it is after this long
STREAM_LIMIT_S = 1800.0  # a stream no wake ever answers ends; the page then asks for the reply note
MD = MarkdownIt("commonmark", {"html": False})


def _post(request: Request, text: str) -> Response:
    if not text.strip():
        return refuse(request, 400, "an empty message")
    if len(text) > MAX_MESSAGE_CHARS:
        return refuse(request, 413, f"a message over {MAX_MESSAGE_CHARS} characters")
    msg_id = inbox.post(web_of(request).home, text, datetime.now().astimezone())
    return JSONResponse({"id": msg_id, "status": "queued"}, status_code=202)


def reply_of(request: Request, msg_id: str) -> dict[str, Any]:
    """What is known of the message's answer: the reply note, else whether it still waits."""
    home = web_of(request).home
    note = inbox.read_reply_note(home, msg_id)
    if note is not None:
        return dict(note)
    if (home.root / "inbox" / f"{msg_id}.md").is_file():
        status = "waiting"
    elif (home.root / "inbox" / "done" / f"{msg_id}.md").is_file():
        status = "answered"  # its wake committed; the reply note follows (or is in outbox/)
    else:
        status = "unknown"
    return {"id": msg_id, "status": status, "reply": None}


async def chat_page(request: Request) -> Response:
    home = web_of(request).home
    day = datetime.now().astimezone().strftime("%Y-%m-%d")
    path = home.root / "outbox" / f"{day}.md"
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return page(request, "chat.html", active="chat", day=day, conversation=MD.render(text) if text else "", pending=len(inbox.pending(home)))


async def send(request: Request) -> Response:
    form = await request.form()
    return _post(request, str(form.get("text", "")))


async def stream(request: Request) -> Response:
    """SSE: ``delta`` events while the wake streams, then one ``reply`` event with the final note."""
    msg_id = request.path_params["id"]
    if not MESSAGE_ID.fullmatch(msg_id):
        return refuse(request, 404, f"no message {msg_id!r}")
    hub = web_of(request).replies

    async def events() -> AsyncIterator[str]:
        sent, waited, settled = 0, 0.0, 0.0
        while waited < STREAM_LIMIT_S:
            current = hub.get(msg_id)
            if current is not None and len(current.text) > sent:
                yield f"event: delta\ndata: {json.dumps(current.text[sent:])}\n\n"
                sent = len(current.text)
            note = reply_of(request, msg_id)
            # The wake's stream ends a moment before its reply note is written: wait for the
            # note, unless there is nothing left to wait for (no wake, no message) for a while.
            idle = note["status"] in ("unknown", "answered") and (current is None or current.finished)
            settled = settled + POLL_S if idle else 0.0
            if note["status"] not in ("waiting", "unknown", "answered") or settled >= SETTLE_S:
                yield f"event: reply\ndata: {json.dumps(note)}\n\n"
                return
            await asyncio.sleep(POLL_S)
            waited += POLL_S
        yield "event: timeout\ndata: {}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


async def reply(request: Request) -> Response:
    msg_id = request.path_params["id"]
    if not MESSAGE_ID.fullmatch(msg_id):
        return refuse(request, 404, f"no message {msg_id!r}")
    return JSONResponse(reply_of(request, msg_id))


async def api_post(request: Request) -> Response:
    """``POST /api/messages``: JSON ``{"text": ...}`` or a plain-text body; answers ``{"id"}``."""
    body = (await request.body()).decode("utf-8", errors="replace")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(body)
        except json.JSONDecodeError as e:
            return refuse(request, 400, f"body is not JSON: {e}")
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return refuse(request, 400, 'expected {"text": "..."}')
        body = data["text"]
    return _post(request, body)


async def api_get(request: Request) -> Response:
    msg_id = request.path_params["id"]
    if not MESSAGE_ID.fullmatch(msg_id):
        return refuse(request, 404, f"no message {msg_id!r}")
    note = reply_of(request, msg_id)
    if note["status"] == "unknown":
        return refuse(request, 404, f"no message {msg_id}")
    return JSONResponse(note)


routes = [
    Route("/", chat_page),
    Route("/chat/send", send, methods=["POST"]),
    Route("/chat/stream/{id}", stream),
    Route("/chat/reply/{id}", reply),
    Route("/api/messages", api_post, methods=["POST"]),
    Route("/api/messages/{id}", api_get),
    Route("/api/messages/{id}/stream", stream),
]

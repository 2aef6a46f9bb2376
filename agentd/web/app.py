"""The web app: a Starlette application over one home, its pages split by concern into sibling modules.

Every request passes ``Guard`` first: a body over ``MAX_BODY`` is refused (413), a page
needs the session cookie, ``/api/`` needs the bearer token, and every state-changing
page request carries the session's CSRF token; each refusal is logged and writes nothing.
Pages only read (files, read-only git); they never wait on the home lock to render.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentd.home import Home
from agentd.services.replies import ReplyHub
from agentd.web import auth

log = logging.getLogger("agentd")

HERE = Path(__file__).parent
MAX_BODY = 1_000_000  # bytes: a Mind page or a message; anything bigger is refused
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
PUBLIC = ("/login", "/static/")


@dataclass
class Web:
    """What the routes share: the home, the reply hub, the sessions, the templates."""

    home: Home
    replies: ReplyHub
    sessions: auth.Sessions
    templates: Environment


def web_of(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


def page(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render a page with the nav and the session's CSRF token."""
    web = web_of(request)
    csrf = web.sessions.csrf(request.cookies.get(auth.COOKIE)) or ""
    html = web.templates.get_template(template).render(request=request, csrf=csrf, **values)
    return HTMLResponse(html, status_code=status_code)


def refuse(request: Request, status: int, why: str) -> Response:
    """A clear 4xx, logged; JSON for the API and scripts, text otherwise."""
    log.warning("web: %s %s refused (%d): %s", request.method, request.url.path, status, why)
    if request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"error": why}, status_code=status)
    return PlainTextResponse(why + "\n", status_code=status)


class BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, f"request body over {MAX_BODY} bytes")


class Guard:
    """Size limit, login, bearer token and CSRF, before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        web: Web = scope["app"].state.web
        path, method = request.url.path, request.method
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            await refuse(request, 413, f"request body over {MAX_BODY} bytes")(scope, receive, send)
            return
        if path.startswith("/api/"):
            if not auth.check_bearer(web.home, request.headers.get("authorization")):
                await refuse(request, 401, "missing or bad bearer token (see .agentd/api-token)")(scope, receive, send)
                return
            await self.app(scope, _limited(receive), send)
            return
        if path.startswith(PUBLIC):
            await self.app(scope, receive, send)
            return
        sid = request.cookies.get(auth.COOKIE)
        if web.sessions.csrf(sid) is None:
            if method in SAFE_METHODS and "text/html" in request.headers.get("accept", ""):
                await page(request, "login.html", status_code=401)(scope, receive, send)
                return
            await refuse(request, 401, "not logged in: open the link `agentd open` prints")(scope, receive, send)
            return
        if method in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await refuse(request, 413, f"request body over {MAX_BODY} bytes")(scope, receive, send)
            return
        offered = request.headers.get("x-csrf-token")
        if offered is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            offered = next(iter(parse_qs(body.decode("utf-8", errors="replace")).get("csrf", [])), None)
        if not web.sessions.check_csrf(sid, offered):
            await refuse(request, 403, "missing or bad CSRF token; reload the page")(scope, receive, send)
            return
        await self.app(scope, _replay(body), send)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None once it passes MAX_BODY (a chunked body has no length to check first)."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _limited(receive: Receive) -> Receive:
    size = 0

    async def limited() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > MAX_BODY:
            raise BodyTooLarge()
        return message

    return limited


async def login(request: Request) -> Response:
    """The link from ``agentd open``: a good one-time token becomes a session cookie."""
    web = web_of(request)
    if not auth.take_login_token(web.home, request.query_params.get("token", "")):
        return refuse(request, 403, "this login link is used or wrong: run `agentd open` for a new one")
    response = RedirectResponse("/", status_code=303)
    secure = request.url.scheme == "https"
    response.set_cookie(auth.COOKIE, web.sessions.create(), httponly=True, samesite="strict", secure=secure)
    return response


async def not_found(request: Request, exc: Exception) -> Response:
    return refuse(request, 404, f"no such page: {request.url.path}")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return refuse(request, exc.status_code, str(exc.detail))


def create_app(home: Home, *, replies: ReplyHub | None = None) -> Starlette:
    """The app for ``home``; ``replies`` is the daemon's hub (a fresh one when run alone, as in tests)."""
    from agentd.web import admin, chat, mind, wakes

    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    routes: list[BaseRoute] = [
        Route("/login", login),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        *chat.routes, *wakes.routes, *mind.routes, *admin.routes,
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, HTTPException: http_error})
    app.state.web = Web(home, replies or ReplyHub(), auth.Sessions(), templates)
    app.add_middleware(Guard)
    return app

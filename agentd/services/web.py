"""The web app as a daemon service: uvicorn on its own thread, on loopback unless agent.yaml names a host.

Every page needs the login session and every API call the bearer token (``agentd.web.auth``),
whatever the host. The bound address goes to ``.agentd/web.json`` so ``agentd open``
builds the link even when the port was taken and another one chosen.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from agentd.fileio import atomic_write
from agentd.home import Home
from agentd.services.base import Hub, Service
from agentd.services.replies import ReplyHub

log = logging.getLogger("agentd")

START_TIMEOUT_S = 10.0
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def address_path(home: Home) -> Path:
    return home.runtime / "web.json"


def read_address(home: Home) -> dict[str, Any] | None:
    """{"host", "port", "pid"} of the web app the running daemon serves, or None."""
    try:
        data: dict[str, Any] = json.loads(address_path(home).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port in use falls back to any free port (logged)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        if e.errno != errno.EADDRINUSE or port == 0:
            sock.close()
            raise
        log.warning("web: port %d is in use; serving on a free port instead (`agentd open` has the link)", port)
        sock.bind((host, 0))
    sock.listen(64)
    sock.set_inheritable(False)
    return sock


class WebService(Service):
    """Serves ``agentd.web``'s app while the daemon runs (``web.enabled``, on by default)."""

    def __init__(self, hub: Hub, replies: ReplyHub) -> None:
        self.hub = hub
        self.replies = replies
        self.server: Any = None
        self.thread: threading.Thread | None = None
        self.port: int | None = None

    def start(self) -> None:
        web = self.hub.config.web
        if not web.enabled:
            return
        import uvicorn

        from agentd.web.app import create_app

        if web.host not in LOOPBACK:
            log.warning("web: serving on %s (web.host in agent.yaml): beyond this machine; the login token is required", web.host)
        try:
            sock = bind(web.host, web.port)
        except OSError as e:
            log.error("web: cannot listen on %s:%d: %s (the daemon runs without the web app)", web.host, web.port, e)
            return
        self.port = sock.getsockname()[1]
        app = create_app(self.hub.home, replies=self.replies)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[sock])), name="web", daemon=True)
        self.thread.start()
        atomic_write(address_path(self.hub.home), json.dumps({"host": web.host, "port": self.port, "pid": os.getpid()}))
        log.info("web app on http://%s:%d/ (`agentd open` prints the login link)", web.host, self.port)

    def stop(self) -> None:
        if self.server is None or self.thread is None:
            return
        self.server.should_exit = True
        self.thread.join(START_TIMEOUT_S)
        address_path(self.hub.home).unlink(missing_ok=True)
        self.server = self.thread = None

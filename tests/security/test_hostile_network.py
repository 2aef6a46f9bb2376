"""``shell.network: off`` puts commands in a network namespace of their own: not even 127.0.0.1 answers.

Run under the default policy (no allow rule): connecting somewhere is not the policy's business,
so only the sandbox can keep this promise.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.sandbox import probe
from agentd.tools.base import ToolContext, ToolRegistry
from agentd.tools.shell import ShellTool
from tests.security.hostile_corpus import set_in_section


class CountingServer(http.server.ThreadingHTTPServer):
    """A web server on 127.0.0.1 that counts every connection it accepts."""

    connections = 0

    def get_request(self) -> tuple[socket.socket, object]:
        request = super().get_request()
        self.connections += 1
        return request


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[CountingServer]:
    server = CountingServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def shell_with_network(home: Home, network: str, command: str) -> str:
    path = home.root / "agent.yaml"
    path.write_text(set_in_section(path.read_text(), "shell", {"network": network})[0])
    ctx = ToolContext(home, load_config(home.root), Event("message", "x", datetime.now(UTC)), "w1")
    return ToolRegistry([ShellTool()]).execute(ctx, "shell", {"command": command}).text


@pytest.mark.parametrize("network", ["off", "on"])
def test_network_off_reaches_nothing_and_on_reaches_the_listener(home: Home, listener: CountingServer, network: str) -> None:
    if not probe().available:
        pytest.skip(f"no sandbox here: {probe().describe()}")
    port = listener.server_address[1]
    out = shell_with_network(
        home, network,
        f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo tcp-connected'; "
        f"curl -s -m 3 -o /dev/null -w 'http-%{{http_code}}' http://127.0.0.1:{port}/",
    )
    assert "refused by the shell policy" not in out and "parked" not in out, out
    if network == "off":
        assert "tcp-connected" not in out and "http-200" not in out, out
        assert listener.connections == 0
    else:
        assert "tcp-connected" in out and "http-200" in out, out
        assert listener.connections >= 2

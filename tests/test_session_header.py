"""A home's session key reaches any external engine under the header agent.yaml names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentd.config_edit import set_values
from agentd.home import Home
from agentd.wiring import make_supervisor, session_key
from tests.doubles.openai_server import Reply, ScriptedServer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer().start()
    yield s
    s.stop()


@pytest.mark.parametrize("header", [None, "X-Agent-Session"])
def test_the_session_key_goes_in_the_configured_header(home: Home, server: ScriptedServer, header: str | None) -> None:
    changes = {"engine.backend": "openai", "engine.url": server.url}
    if header:
        changes["engine.session_header"] = header
    _, config = set_values(home.root, changes)
    server.enqueue(Reply(content="hi"))
    make_supervisor(home, config).client().chat([{"role": "user", "content": "hi"}])
    sent = {k.lower(): v for k, v in server.headers[-1].items()}
    assert sent[(header or "X-Session-ID").lower()] == session_key(home)
    assert sent["x-smg-routing-key"] == session_key(home)
    assert server.requests[-1]["prompt_cache_key"] == session_key(home)

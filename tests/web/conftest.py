"""Fixtures for the web app: a logged-in test client over a real home, and the scripted engine for live daemons."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from agentd.home import Home
from agentd.web import auth
from agentd.web.app import create_app
from tests.services.conftest import EngineScript, engine, server  # noqa: F401 - fixtures shared with the service tests


class Browser:
    """A TestClient logged in through the one-time link, and the session's CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        token = auth.new_login_token(client.app.state.web.home)  # type: ignore[attr-defined]
        response = client.get(f"/login?token={token}", follow_redirects=False)
        assert response.status_code == 303
        sid = response.cookies[auth.COOKIE]
        self.csrf = client.app.state.web.sessions.csrf(sid)  # type: ignore[attr-defined]

    def post(self, url: str, data: dict[str, str] | None = None, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.post(url, data={"csrf": self.csrf, **(data or {})}, **kw)  # type: ignore[arg-type]


@pytest.fixture
def client(home: Home) -> Iterator[TestClient]:
    with TestClient(create_app(home), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def browser(client: TestClient) -> Browser:
    return Browser(client)


__all__ = ["Browser", "EngineScript"]

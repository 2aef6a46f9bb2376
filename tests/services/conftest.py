"""Fixtures for the service tests: a scripted engine the test can slow down or take down."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.doubles.agent_responder import respond
from tests.doubles.openai_server import Reply, ScriptedServer


class EngineScript:
    """The scripted server's answers: down (a 400) or slow for events holding a marker; counted."""

    def __init__(self) -> None:
        self.down_for: str | None = None
        self.slow_for: str | None = None
        self.slow_s = 0.0
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> Reply:
        self.bodies.append(body)
        last = str(body["messages"][-1].get("content", ""))
        if body.get("max_tokens") != 1:
            if self.down_for is not None and self.down_for in last:
                return Reply(status=400, content="the engine is down")
            if self.slow_for is not None and self.slow_for in last:
                time.sleep(self.slow_s)
        return respond(body)

    def asked(self, marker: str) -> int:
        """Engine calls of wakes (not warm-ups) whose event holds ``marker``."""
        return sum(1 for b in self.bodies if b.get("max_tokens") != 1 and marker in str(b["messages"][-1].get("content", "")))


@pytest.fixture
def engine() -> EngineScript:
    return EngineScript()


@pytest.fixture
def server(engine: EngineScript) -> Iterator[ScriptedServer]:
    s = ScriptedServer(responder=engine).start()
    yield s
    s.stop()

"""Engine faults at the daemon level: a failing engine is retried, reported once, and the message is answered."""

from __future__ import annotations

from typing import Any

from agentd.home import Home
from tests.doubles.agent_responder import respond
from tests.doubles.openai_server import Reply, ScriptedServer
from tests.test_daemon import Daemon, configure, post, wait_for


def test_persistent_failure_reported_once_then_recovers(home: Home) -> None:
    state = {"failing": True, "failures": 0}

    def responder(body: dict[str, Any]) -> Reply:
        if state["failing"] and body.get("max_tokens") != 1:
            state["failures"] += 1
            return Reply(status=500, content="CUDA error: out of memory")
        return respond(body)

    server = ScriptedServer(responder=responder).start()
    configure(home, server.url, every="1h")
    d = Daemon(home).start()
    try:
        post(home, "q1", "are you there?")
        wait_for(lambda: state["failures"] >= 12, 60, "several failed attempts (4 per wake, with retries)")
        assert (home.root / "inbox/q1.md").exists(), "the message stays in the inbox while the engine fails"
        notices = (home.root / "outbox/notices.md").read_text()
        assert notices.count("The engine is failing") == 1
        state["failing"] = False
        wait_for(lambda: (home.root / "inbox/done/q1.md").exists(), 60, "the message answered once the engine is back")
        wait_for(lambda: home.dirty_paths() == [], 10, "a clean home")
    finally:
        assert d.stop() == 0
        server.stop()
    assert "answer to q1" in "".join(p.read_text() for p in (home.root / "outbox").glob("20*.md"))


def test_truncated_streams_and_malformed_json_are_retried(home: Home) -> None:
    faults = [Reply(content='{"tool": "reply"', truncate_after=1), Reply(malformed=True)]

    def responder(body: dict[str, Any]) -> Reply:
        if body.get("max_tokens") != 1 and faults:
            return faults.pop(0)
        return respond(body)

    server = ScriptedServer(responder=responder).start()
    configure(home, server.url, every="1h")
    d = Daemon(home).start()
    try:
        post(home, "q2", "hello")
        wait_for(lambda: (home.root / "inbox/done/q2.md").exists(), 60, "answered despite the faults")
    finally:
        assert d.stop() == 0
        server.stop()
    assert not faults

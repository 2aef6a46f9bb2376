"""Engine faults at the daemon level: failing, hung or killed mid-stream, the engine is retried, reported once, and the message answered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentd.home import Home
from tests import test_daemon
from tests.doubles.agent_responder import respond
from tests.doubles.openai_server import Reply, ScriptedServer
from tests.test_daemon import Daemon, configure, outbox_text, post, wait_for


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


def test_hung_engine_times_out_and_the_wake_is_retried_until_it_answers(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """No bytes at all: the first-byte timeout fires, the wake fails, is retried with backoff, then answered."""
    state = {"hanging": True, "hung": 0}

    def responder(body: dict[str, Any]) -> Reply:
        if state["hanging"]:
            if body.get("max_tokens") != 1:
                state["hung"] += 1
            return Reply(content="too late", hang=3.0)  # longer than the timeouts below
        return respond(body)

    monkeypatch.setitem(test_daemon.ENV, "AGENTD_ENGINE_TIMEOUTS", "connect=2,first_byte=0.5,idle=0.5,total=10")
    server = ScriptedServer(responder=responder).start()
    configure(home, server.url, every="1h")
    d = Daemon(home).start()
    try:
        post(home, "q3", "are you awake?")
        wait_for(lambda: state["hung"] >= 8, 90, "two wakes' attempts timed out (4 per wake, with retries)")
        assert (home.root / "inbox/q3.md").exists(), "the message waits in the inbox while the engine hangs"
        notices = (home.root / "outbox/notices.md").read_text()
        assert notices.count("The engine is failing") == 1
        assert "first-byte timeout" in notices, "the wake's own timeout fired, at its configured value"
        state["hanging"] = False
        wait_for(lambda: (home.root / "inbox/done/q3.md").exists(), 60, "the message answered once the engine responds")
        wait_for(lambda: home.dirty_paths() == [], 10, "a clean home")
    finally:
        assert d.stop() == 0
        server.stop()
    assert outbox_text(home).count("answer to q3") == 1
    assert (home.root / ".agentd/logs/daemon.log").read_text().count("q3.md will be retried in") >= 1


def stalling_responder(body: dict[str, Any]) -> Reply:
    """For the server process below: the answer's first chunk, then a stall (the test kills the server there)."""
    reply = respond(body)
    if body.get("max_tokens") != 1:
        reply.stall_after, reply.hang, reply.stall_marker = 1, 300.0, os.environ["STALL_MARKER"]
    return reply


def serve_in_process(home: Home, port_file: Path, responder: str, port: int = 0) -> subprocess.Popen[bytes]:
    port_file.unlink(missing_ok=True)
    env = {**test_daemon.ENV, "STALL_MARKER": str(home.root / ".agentd" / "stalled")}
    argv = [sys.executable, "-m", "tests.doubles.openai_server", "--port-file", str(port_file), "--responder", responder, "--port", str(port)]
    with open(home.root / ".agentd" / "test-engine.out", "ab") as log:
        proc = subprocess.Popen(argv, env=env, cwd=test_daemon.ROOT, stdout=log, stderr=log)
    try:
        wait_for(lambda: port_file.exists() or proc.poll() is not None, 30, "the engine double listening")
        assert proc.poll() is None
    except BaseException:
        proc.kill()  # a failed start leaves no server behind
        proc.wait(10)
        raise
    return proc


def test_engine_killed_mid_stream_then_back_answers_the_message_once(home: Home) -> None:
    port_file = home.root / ".agentd" / "engine.port"
    engine = serve_in_process(home, port_file, "tests.reliability.test_engine_faults:stalling_responder")
    port = int(port_file.read_text())
    configure(home, f"http://127.0.0.1:{port}/v1", every="1h")
    d = Daemon(home).start()
    try:
        post(home, "q4", "tell me something")
        wait_for(lambda: (home.root / ".agentd" / "stalled").exists(), 60, "the answer half-way through its stream")
        engine.send_signal(signal.SIGKILL)  # the connection drops mid-response
        engine.wait(10)
        wait_for(lambda: (home.root / "outbox/notices.md").exists(), 60, "the failed wake reported")
        assert "The engine is failing" in (home.root / "outbox/notices.md").read_text()
        assert (home.root / "inbox/q4.md").exists(), "the message waits in the inbox"
        engine = serve_in_process(home, port_file, "tests.doubles.agent_responder:respond", port)
        wait_for(lambda: (home.root / "inbox/done/q4.md").exists(), 60, "the message answered once the engine is back")
        wait_for(lambda: home.dirty_paths() == [], 10, "a clean home")
    finally:
        assert d.stop() == 0
        engine.kill()
        engine.wait(10)
    assert outbox_text(home).count("answer to q4") == 1, "answered exactly once, nothing of the cut answer kept"

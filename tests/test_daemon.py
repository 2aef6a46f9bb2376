"""The daemon as a real process against a scripted engine: heartbeats, inbox, cron, steering, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from agentd.home import Home
from tests.doubles.agent_responder import respond
from tests.doubles.openai_server import Reply, ScriptedServer

ROOT = Path(__file__).resolve().parents[1]


class CountingResponder:
    """Answers like the agent responder; counts requests in flight (wakes must never overlap)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.bodies.append(body)
        try:
            time.sleep(self.delay)
            return respond(body)
        finally:
            with self.lock:
                self.in_flight -= 1

    def wakes(self, marker: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b.get("max_tokens") != 1 and marker in str(b["messages"][-1].get("content", ""))]


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def responder() -> CountingResponder:
    return CountingResponder()


@pytest.fixture
def server(responder: CountingResponder) -> Iterator[ScriptedServer]:
    s = ScriptedServer(responder=responder).start()
    yield s
    s.stop()


def configure(home: Home, url: str, *, every: str = "1s") -> None:
    text = (home.root / "agent.yaml").read_text()
    text = text.replace("backend: llamacpp", "backend: openai").replace("# url: http://127.0.0.1:8000/v1", f"url: {url}")
    text = text.replace("every: 30m", f"every: {every}").replace('active_hours: "08:00-22:00"', "active_hours: always")
    (home.root / "agent.yaml").write_text(text)
    home.absorb_person_edits()


class Daemon:
    def __init__(self, home: Home) -> None:
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.log = open(self.home.root / ".agentd" / "test-daemon.out", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "agentd", "--home", str(self.home.root), "run"], stdout=self.log, stderr=self.log, env=env)
        wait_for(lambda: (self.home.root / ".agentd" / "daemon.json").exists() or self.proc.poll() is not None, 30, "daemon ready")  # type: ignore[union-attr]
        assert self.proc.poll() is None, self.output()
        return self

    def output(self) -> str:
        return (self.home.root / ".agentd" / "test-daemon.out").read_text(errors="replace")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture
def daemon(home: Home) -> Iterator[Callable[[], Daemon]]:
    started: list[Daemon] = []

    def make() -> Daemon:
        d = Daemon(home)
        started.append(d)
        return d.start()

    yield make
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


def post(home: Home, name: str, text: str) -> None:
    tmp = home.root / "inbox" / f".{name}.tmp"
    tmp.write_text(f"{text}\nMSGID:{name}\n")
    tmp.rename(home.root / "inbox" / f"{name}.md")


def outbox_text(home: Home) -> str:
    return "".join(p.read_text() for p in (home.root / "outbox").glob("20*.md"))


def test_heartbeat_with_nothing_open_costs_no_engine_call(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[[], Daemon]) -> None:
    configure(home, server.url, every="1s")
    d = daemon()
    wait_for(lambda: "skip heartbeat: HEARTBEAT.md has no open items" in (home.root / ".agentd/logs/daemon.log").read_text(), 20, "a skipped heartbeat")
    assert responder.wakes("[Heartbeat") == []
    # An open item makes the heartbeat wake the model; HEARTBEAT_OK leaves no commit.
    head = home.repo.head.commit.hexsha
    (home.root / "HEARTBEAT.md").write_text((home.root / "HEARTBEAT.md").read_text() + "\n- [ ] look at the weather\n")
    wait_for(lambda: len(responder.wakes("[Heartbeat")) >= 2, 20, "heartbeat wakes")
    assert "look at the weather" in str(responder.wakes("[Heartbeat")[0]["messages"][-1]["content"])
    assert d.stop() == 0
    subjects = [str(c.message).splitlines()[0] for c in home.repo.iter_commits(f"{head}..HEAD")]
    assert not any(s.startswith("wake heartbeat") for s in subjects), subjects


def test_message_gives_one_wake_and_one_reply(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[[], Daemon]) -> None:
    configure(home, server.url, every="1h")
    responder.delay = 0.3
    d = daemon()
    for i in range(3):
        post(home, f"m{i}", f"question {i}")
    wait_for(lambda: all((home.root / "inbox/done" / f"m{i}.md").exists() for i in range(3)), 30, "three answered messages")
    wait_for(lambda: home.dirty_paths() == [], 10, "a clean home")
    assert d.stop() == 0
    text = outbox_text(home)
    for i in range(3):
        assert text.count(f"answer to m{i}") == 1
        assert len(responder.wakes(f"MSGID:m{i}")) == 1
    assert responder.max_in_flight == 1, "wakes never overlap"
    wake_commits = [c for c in home.repo.iter_commits() if str(c.message).startswith("wake message:m")]
    assert len(wake_commits) == 3


def test_say_goes_through_the_running_daemon(home: Home, server: ScriptedServer, daemon: Callable[[], Daemon]) -> None:
    configure(home, server.url, every="1h")
    d = daemon()
    out = subprocess.run([sys.executable, "-m", "agentd", "--home", str(home.root), "say", "hello"], capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("answer to")
    status = subprocess.run([sys.executable, "-m", "agentd", "--home", str(home.root), "status"], capture_output=True, text=True, timeout=60)
    assert "daemon    running" in status.stdout and "last wake message:" in status.stdout
    assert d.stop() == 0


def test_live_steering_and_bad_cron_edit(home: Home, server: ScriptedServer, daemon: Callable[[], Daemon]) -> None:
    configure(home, server.url, every="1h")
    d = daemon()
    import json

    def jobs() -> list[str]:
        return json.loads((home.root / ".agentd/daemon.json").read_text()).get("jobs", [])

    (home.root / "CRON.md").write_text("# Jobs\n\n## Morning\n`0 8 * * *`\nBrief me.\n")
    wait_for(lambda: jobs() == ["morning"], 15, "the new job scheduled")
    (home.root / "CRON.md").write_text("# Jobs\n\n## Morning\n`0 8 * * *`\nBrief me.\n\n## Broken\n`99 * * * *`\nNever.\n\n## Evening\n`0 20 * * *`\nSum up.\n")
    wait_for(lambda: jobs() == ["evening", "morning"], 15, "good jobs kept, the bad one rejected")
    wait_for(lambda: (home.root / "outbox/notices.md").exists(), 15, "a notice")
    notice = (home.root / "outbox/notices.md").read_text()
    assert "CRON.md:8:" in notice and "Broken" in notice
    assert d.stop() == 0


def test_second_daemon_refused_and_stop_leaves_nothing(home: Home, server: ScriptedServer, daemon: Callable[[], Daemon]) -> None:
    configure(home, server.url, every="1h")
    d = daemon()
    second = subprocess.run([sys.executable, "-m", "agentd", "--home", str(home.root), "run"], capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert f"pid {d.proc.pid}" in second.stderr  # type: ignore[union-attr]
    stop = subprocess.run([sys.executable, "-m", "agentd", "--home", str(home.root), "stop"], capture_output=True, text=True, timeout=90)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert d.proc.wait(10) == 0  # type: ignore[union-attr]
    assert not psutil.pid_exists(d.proc.pid) or psutil.Process(d.proc.pid).status() == psutil.STATUS_ZOMBIE  # type: ignore[union-attr]
    assert not (home.root / ".agentd/daemon.json").exists()


def test_kill9_mid_wake_then_restart(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[[], Daemon]) -> None:
    configure(home, server.url, every="1h")
    responder.delay = 3.0
    d = daemon()
    post(home, "crash1", "answer me even if you crash")
    wait_for(lambda: len(responder.wakes("MSGID:crash1")) >= 1, 20, "the wake in flight")
    (home.root / "USER.md").write_text("# About you\n- typed while the agent was thinking\n")
    d.kill9()
    responder.delay = 0.0
    d2 = daemon()
    wait_for(lambda: (home.root / "inbox/done/crash1.md").exists(), 30, "the message answered after restart")
    wait_for(lambda: home.dirty_paths() == [], 10, "a clean home")
    assert d2.stop() == 0
    assert outbox_text(home).count("answer to crash1") == 1
    fsck = subprocess.run(["git", "-C", str(home.root), "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert "typed while the agent was thinking" in home.repo.git.log("-p", "--", "USER.md")


def test_person_edit_to_prefix_warms_the_engine_before_the_next_wake(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[[], Daemon]) -> None:
    configure(home, server.url, every="1h")
    d = daemon()
    wait_for(lambda: any(b.get("max_tokens") == 1 for b in responder.bodies), 20, "the first warm-up")
    (home.root / "USER.md").write_text("# About you\n- Name: Ada, prefers short answers\n")
    wait_for(lambda: any(b.get("max_tokens") == 1 and "Ada, prefers short answers" in b["messages"][0]["content"] for b in responder.bodies), 20, "a warm-up with the new prefix")
    assert str(home.repo.head.commit.message).startswith("person: edited USER.md")
    assert d.stop() == 0
    assert "warm-up (USER.md edited)" in (home.root / ".agentd/logs/daemon.log").read_text()


def test_message_that_keeps_failing_is_set_aside_not_retried_forever(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[[], Daemon]) -> None:
    """A message holding a credential can never be committed: after a few backed-off
    wakes it moves to .agentd/failed/ (outside git), the person is told once, and the
    daemon goes on serving."""
    configure(home, server.url, every="1h")
    key = "AKIA" + "Q" * 16
    d = daemon()
    post(home, "leaky", f"my key is {key}")
    kept = home.root / ".agentd/failed/leaky.md"
    wait_for(kept.exists, 60, "the message set aside")
    assert not (home.root / "inbox/leaky.md").exists() and not (home.root / "inbox/done/leaky.md").exists()
    post(home, "after", "are you still there?")
    wait_for(lambda: (home.root / "inbox/done/after.md").exists(), 30, "the next message answered")
    time.sleep(3)  # no further attempts at the set-aside message
    assert d.stop() == 0
    assert len(responder.wakes("MSGID:leaky")) == 3  # MESSAGE_ATTEMPTS, with backoff between them
    assert key in kept.read_text()
    notices = (home.root / "outbox/notices.md").read_text()
    assert notices.count("set it aside in .agentd/failed/leaky.md") == 1 and key not in notices
    assert key not in home.repo.git.log("-p", "--all")
    assert subprocess.run(["git", "-C", str(home.root), "fsck", "--strict"], capture_output=True).returncode == 0

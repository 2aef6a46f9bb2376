"""The daemon as a real process against a scripted engine: heartbeats, inbox, cron, steering, crashes."""

from __future__ import annotations

import json
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
from tests import doubles
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


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str | Callable[[], str] = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


@pytest.fixture
def responder() -> CountingResponder:
    return CountingResponder()


@pytest.fixture
def server(responder: CountingResponder) -> Iterator[ScriptedServer]:
    s = ScriptedServer(responder=responder).start()
    yield s
    s.stop()


def configure(home: Home, url: str | None, *, every: str = "1s") -> None:
    """The external scripted server at ``url``; or, with None, the supervised engine double."""
    text = (home.root / "agent.yaml").read_text()
    if url is not None:
        text = text.replace("backend: llamacpp", "backend: openai").replace("# url: http://127.0.0.1:8000/v1", f"url: {url}")
    else:
        text = text.replace("backend: llamacpp", "backend: agent-double")  # a real supervised process, no model
    text = text.replace("every: 30m", f"every: {every}").replace('active_hours: "08:00-22:00"', "active_hours: always")
    (home.root / "agent.yaml").write_text(text)
    home.absorb_person_edits()


AGENTD = [sys.executable, "-m", "agentd"]
ENV = {**os.environ, "PYTHONPATH": doubles.PYTHONPATH}  # the backend doubles are plugins found there


def agentd(home: Home, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    argv = [*AGENTD, "--home", str(home.root), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT)


class Daemon:
    def __init__(self, home: Home, argv: list[str] | None = None) -> None:
        self.home = home
        self.argv = argv or AGENTD
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        self.log = open(self.home.root / ".agentd" / "test-daemon.out", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([*self.argv, "--home", str(self.home.root), "run"], stdout=self.log, stderr=self.log, env=ENV, cwd=ROOT)
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
def daemon(home: Home) -> Iterator[Callable[..., Daemon]]:
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
    engine_pid = _engine_pid(home)
    if engine_pid is not None and psutil.pid_exists(engine_pid):  # never leave an engine double behind
        os.killpg(os.getpgid(engine_pid), signal.SIGKILL)


def _engine_pid(home: Home) -> int | None:
    try:
        pid = json.loads((home.root / ".agentd/engine.json").read_text()).get("pid")
    except FileNotFoundError:
        return None
    return pid if isinstance(pid, int) else None


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


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
    wait_for(lambda: home.dirty_paths() == [], 10, lambda: f"a clean home (dirty: {home.dirty_paths()})")
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


# ---------------------------------------------------------------------- the queue
def test_heartbeats_that_come_due_while_waiting_are_coalesced() -> None:
    from datetime import datetime

    from agentd.daemon import WakeQueue
    from agentd.events import Event

    q = WakeQueue()
    for minute in range(3):
        q.put(Event("heartbeat", "", datetime(2026, 1, 1, 9, minute)))
    q.put(Event("message", "", datetime(2026, 1, 1, 9, 5), name="a", source="inbox/a.md"))
    first = q.get(0)
    assert first is not None and first.source == "inbox/a.md", "messages first"
    second = q.get(0)
    assert second is not None and (second.kind, second.at) == ("heartbeat", datetime(2026, 1, 1, 9, 0))
    assert q.get(0) is None and q.coalesced == 2
    assert not q.put(Event("heartbeat", "", datetime(2026, 1, 1, 9, 9))), "one running is one pending"
    q.done(second)
    assert q.put(Event("heartbeat", "", datetime(2026, 1, 1, 9, 9)))


def test_heartbeat_due_during_a_wake_is_coalesced(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[..., Daemon]) -> None:
    configure(home, server.url, every="1s")
    (home.root / "HEARTBEAT.md").write_text("# Heartbeat\n\n- [ ] look outside\n")
    responder.delay = 2.5
    d = daemon()
    state = home.root / ".agentd/daemon.json"
    # Heartbeats fire every second during each 2.5 s wake: one waits, the others are coalesced.
    wait_for(lambda: json.loads(state.read_text()).get("queue_coalesced", 0) >= 1, 30, "a coalesced heartbeat")
    assert d.stop() == 0
    assert responder.max_in_flight == 1
    done = (home.root / ".agentd/logs/daemon.log").read_text().count("wake heartbeat ")
    assert done == len(responder.wakes("[Heartbeat")), "each heartbeat wake is one engine call, none twice"


# ---------------------------------------------------------------------- lifecycle
def test_sigterm_mid_wake_finishes_the_wake_then_exits_0(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[..., Daemon]) -> None:
    configure(home, server.url, every="1h")
    responder.delay = 2.0
    d = daemon()
    post(home, "late", "answer before you go")
    wait_for(lambda: len(responder.wakes("MSGID:late")) >= 1, 20, "the wake in flight")
    assert d.stop() == 0
    assert (home.root / "inbox/done/late.md").exists()
    assert outbox_text(home).count("answer to late") == 1
    assert home.dirty_paths() == []
    assert "daemon stopped" in (home.root / ".agentd/logs/daemon.log").read_text()


def test_prefix_edit_while_stopped_is_in_the_first_warm_up(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[..., Daemon]) -> None:
    configure(home, server.url, every="1h")
    post(home, "first", "hello")
    d = daemon()
    wait_for(lambda: (home.root / "inbox/done/first.md").exists(), 30, "a first wake (an epoch is saved)")
    assert d.stop() == 0
    (home.root / "USER.md").write_text("# About you\n- Name: Ada, edited while the daemon was down\n")
    responder.bodies.clear()
    d = daemon()
    wait_for(lambda: any(b.get("max_tokens") == 1 for b in responder.bodies), 20, "the warm-up")
    warm = next(b for b in responder.bodies if b.get("max_tokens") == 1)
    assert "edited while the daemon was down" in warm["messages"][0]["content"]
    post(home, "second", "who am I?")
    wait_for(lambda: len(responder.wakes("MSGID:second")) == 1, 30, "the next wake")
    assert "edited while the daemon was down" in responder.wakes("MSGID:second")[0]["messages"][0]["content"]
    assert d.stop() == 0
    assert "new epoch at start: USER.md changed" in (home.root / ".agentd/logs/daemon.log").read_text()


def test_a_skill_with_bad_front_matter_is_reported_once_and_the_daemon_runs(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[..., Daemon]) -> None:
    configure(home, server.url, every="1h")
    bad = home.root / "skills" / "broken" / "SKILL.md"
    bad.parent.mkdir(parents=True)
    bad.write_text("---\nname: broken\ndescription: [unclosed\n---\nDo things.\n")
    d = daemon()
    post(home, "first", "hello")
    wait_for(lambda: len(responder.wakes("MSGID:first")) == 1, 30, "the wake")
    assert d.stop() == 0
    notices = (home.root / "outbox" / "notices.md").read_text()
    assert notices.count("A skill was skipped") == 1 and "skills/broken/SKILL.md:3" in notices
    assert "MSGID:first" in (home.root / "inbox/done/first.md").read_text()


def test_a_bad_skill_found_during_a_wake_is_told_after_it(home: Home) -> None:
    """A wake rebuilding the prefix holds the home lock: the notice waits for the main loop."""
    from agentd.daemon import Daemon as AgentDaemon
    from agentd.errors import FrontMatterError

    d = AgentDaemon(home)
    err = FrontMatterError(home.root / "skills/x/SKILL.md", 3, "description: expected a string")
    with home.lock(timeout=1, purpose="a wake"):
        d._bad_skill(err)  # must neither wait for the lock nor lose the notice
    assert not (home.root / "outbox/notices.md").exists()
    d.notices.flush()  # what the main loop does between wakes
    d.notices.flush()
    notices = (home.root / "outbox/notices.md").read_text()
    assert notices.count("skills/x/SKILL.md:3") == 1
    assert home.dirty_paths() == []


def test_a_hung_warm_up_does_not_stop_the_daemon_listening(home: Home) -> None:
    """The warm-up runs on the worker like a wake: while it hangs, steering is still read."""
    from agentd.ledger import Ledger

    warmups: list[dict[str, Any]] = []
    release = threading.Event()

    def responder(body: dict[str, Any]) -> Reply:
        if body.get("max_tokens") == 1:
            warmups.append(body)
            if len(warmups) == 1:
                release.wait(60)  # the engine hangs on the first warm-up until the test lets go
        return respond(body)

    server = ScriptedServer(responder=responder).start()
    configure(home, server.url, every="1h")
    d = Daemon(home).start()
    try:
        wait_for(lambda: len(warmups) == 1, 20, "the warm-up under way")
        (home.root / "CRON.md").write_text("# Jobs\n\n## Broken\n`99 * * * *`\nNever.\n")
        notices = home.root / "outbox/notices.md"
        wait_for(lambda: notices.exists() and "CRON.md:4" in notices.read_text(), 30, "the bad edit reported while the warm-up hangs")
        assert not release.is_set()
        assert not [r for r in Ledger(home.runtime / "ledger.db").rows() if r["purpose"] == "warmup"], "the warm-up had not answered yet"
    finally:
        release.set()
        assert d.stop() == 0
        server.stop()


def test_message_written_in_two_parts_is_read_whole(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[..., Daemon]) -> None:
    """A writer that pauses mid-file (no write-then-rename): the message is taken once it settled."""
    configure(home, server.url, every="1h")
    d = daemon()
    with open(home.root / "inbox/slow.md", "w") as fh:
        fh.write("PART-ONE\n")
        fh.flush()
        time.sleep(2.5)
        fh.write("PART-TWO\nMSGID:slow\n")
    wait_for(lambda: (home.root / "inbox/done/slow.md").exists(), 30, "the message answered")
    wait_for(lambda: home.dirty_paths() == [], 10, "a clean home")
    assert d.stop() == 0
    seen = responder.wakes("MSGID:slow")
    assert len(seen) == 1 and "PART-ONE\nPART-TWO" in seen[0]["messages"][-1]["content"]
    assert responder.wakes("PART-ONE") == seen
    assert home.repo.git.show("HEAD:inbox/done/slow.md") == "PART-ONE\nPART-TWO\nMSGID:slow"


# ---------------------------------------------------------------------- live steering
def test_live_agent_yaml_edits_and_a_bad_edit_keeps_the_last_good_config(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[..., Daemon]) -> None:
    configure(home, server.url, every="1h")
    (home.root / "HEARTBEAT.md").write_text("# Heartbeat\n\n- [ ] water the plants\n")
    d = daemon()
    time.sleep(2)
    assert responder.wakes("[Heartbeat") == []  # hourly: none yet
    yaml = home.root / "agent.yaml"
    yaml.write_text(yaml.read_text().replace("every: 1h", "every: 1s"))
    wait_for(lambda: len(responder.wakes("[Heartbeat")) >= 1, 20, "heartbeats at the new interval")
    assert "water the plants" in str(responder.wakes("[Heartbeat")[0]["messages"][-1]["content"])
    (home.root / "HEARTBEAT.md").write_text("# Heartbeat\n\n- [ ] feed the cat\n")
    wait_for(lambda: any("feed the cat" in str(b["messages"][-1]["content"]) for b in responder.wakes("[Heartbeat")), 20, "the HEARTBEAT.md edit used")
    lines = yaml.read_text().splitlines()
    bad = next(i for i, line in enumerate(lines, 1) if line.strip().startswith("every:"))
    yaml.write_text(yaml.read_text().replace("every: 1s", "every: often"))
    wait_for(lambda: (home.root / "outbox/notices.md").exists(), 15, "a notice")
    notice = (home.root / "outbox/notices.md").read_text()
    assert f"agent.yaml:{bad}" in notice, notice
    n = len(responder.wakes("[Heartbeat"))
    wait_for(lambda: len(responder.wakes("[Heartbeat")) > n, 20, "heartbeats go on at the last good interval")
    assert d.stop() == 0


# ---------------------------------------------------------------------- the engine
def test_daemon_stops_only_the_engine_it_started(home: Home, daemon: Callable[..., Daemon]) -> None:
    configure(home, None, every="1h")
    d = daemon()
    pid = _engine_pid(home)
    assert pid is not None and psutil.pid_exists(pid)
    assert d.stop() == 0
    wait_for(lambda: gone(pid), 20, "the daemon's own engine stopped")
    # An engine the person started is adopted, used, and left running.
    started = agentd(home, "engine", "start")
    assert started.returncode == 0, started.stderr
    theirs = _engine_pid(home)
    assert theirs is not None and theirs != pid
    d = daemon()
    assert f"(pid {theirs})" in d.output()
    assert d.stop() == 0
    assert not gone(theirs), "an adopted engine is not the daemon's to stop"
    assert "leaving the engine" in (home.root / ".agentd/logs/daemon.log").read_text()
    assert agentd(home, "engine", "stop").returncode == 0
    wait_for(lambda: gone(theirs), 20, "the person's engine stopped by them")


def test_engine_of_a_killed_daemon_is_not_orphaned(home: Home, daemon: Callable[..., Daemon]) -> None:
    from agentd.daemon import stop_orphaned_engine

    configure(home, None, every="1h")
    d = daemon()
    pid = _engine_pid(home)
    assert pid is not None
    d.kill9()  # what `agentd stop` does to a daemon that did not stop within 60 s
    assert not gone(pid)
    # The next daemon adopts it as its own, so it stops it.
    d = daemon()
    assert _engine_pid(home) == pid
    d.kill9()
    assert not gone(pid)
    assert stop_orphaned_engine(home) == pid
    wait_for(lambda: gone(pid), 20, "the orphan stopped")


def test_stop_that_has_to_kill_the_daemon_stops_its_engine_too(home: Home, daemon: Callable[..., Daemon]) -> None:
    from agentd.commands.background import stop_background

    configure(home, None, every="1h")
    d = daemon()
    pid = _engine_pid(home)
    assert pid is not None and d.proc is not None
    # A grace too short for the daemon to finish: `stop` has to SIGKILL it.
    assert stop_background(home, timeout=0.001) == d.proc.pid
    d.proc.wait(10)
    wait_for(lambda: gone(pid), 20, "the killed daemon's engine stopped by `agentd stop`")


def test_engine_failure_is_reported_once_across_restarts(home: Home, server: ScriptedServer, responder: CountingResponder, daemon: Callable[..., Daemon]) -> None:
    configure(home, server.url, every="1h")
    broken = {"on": True}

    def answer(body: dict[str, Any]) -> Reply:
        if broken["on"] and body.get("max_tokens") != 1:
            return Reply(status=400, content="the model fell over")
        return responder(body)

    server.responder = answer
    post(home, "q", "are you there?")
    d = daemon()
    wait_for(lambda: (home.root / "outbox/notices.md").exists(), 30, "the failure reported")
    assert d.stop() == 0
    calls = len(server.requests)
    d = daemon()
    wait_for(lambda: len(server.requests) > calls + 1, 30, "the message tried again after the restart")
    assert (home.root / "outbox/notices.md").read_text().count("The engine is failing") == 1
    broken["on"] = False
    wait_for(lambda: (home.root / "inbox/done/q.md").exists(), 60, "answered once the engine works")
    wait_for(lambda: "engine-failing" not in (home.root / ".agentd/reported.json").read_text(), 10, "the report cleared")
    assert d.stop() == 0

"""The daemon's core and its services in-process: a toy trigger, cron retries, message backoff, engine events."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from agentd.daemon import Daemon, build_daemon
from agentd.events import Event, EventKind, register_kind
from agentd.home import Home
from agentd.ledger import Ledger
from agentd.services.base import Hub, Outcome, Service
from agentd.services.cron import CronService
from agentd.services.engine_owner import EngineNews
from agentd.services.retries import RetrySchedule
from engine.supervisor import EngineEvent
from tests.doubles.openai_server import ScriptedServer
from tests.services.conftest import EngineScript
from tests.services.harness import FakeMonotonic, idle, run_until, running
from tests.test_daemon import configure, post

# ---------------------------------------------------------------------- a toy trigger, one file's worth
PING = register_kind(EventKind("ping", "Ping from {name}", priority=1))


class PingService(Service):
    """Publishes one ping when the daemon starts, and keeps how it ended."""

    kinds = (PING,)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.outcomes: list[Outcome] = []

    def start(self) -> None:
        self.hub.publish(Event(PING.name, "Say pong.", self.hub.now(), name="the-test"))

    def finished(self, event: Event, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


# ---------------------------------------------------------------------- helpers
def cron_home(home: Home, server: ScriptedServer) -> None:
    configure(home, server.url, every="1h")
    (home.root / "CRON.md").write_text("# Jobs\n\n## Tidy\n`0 3 * * *`\nTidy the notes.\n")
    home.absorb_person_edits()


def cron_outage(home: Home, server: ScriptedServer, engine: EngineScript) -> tuple[Daemon, CronService, FakeMonotonic]:
    """A daemon whose retries wait 60 s on a clock the test moves; the engine down for the job."""
    cron_home(home, server)
    clock = FakeMonotonic()
    d = build_daemon(home, poll_s=0.02, retries=RetrySchedule(clock=clock, backoff=lambda attempt: 60.0))
    engine.down_for = "[Scheduled job: tidy"
    return d, next(s for s in d.services if isinstance(s, CronService)), clock


def subjects(home: Home, prefix: str) -> list[str]:
    return [str(c.message).splitlines()[0] for c in home.repo.iter_commits() if str(c.message).startswith(prefix)]


# ---------------------------------------------------------------------- tests
def test_a_toy_trigger_added_through_the_public_door(home: Home, server: ScriptedServer, engine: EngineScript) -> None:
    configure(home, server.url, every="1h")
    d = build_daemon(home, poll_s=0.02)
    ping = d.add(PingService(d))  # the one line a new trigger adds to build_daemon()
    with running(d):
        run_until(d, lambda: bool(ping.outcomes), what="the ping's wake")
    result = ping.outcomes[0].result
    assert result is not None and result.commit, ping.outcomes
    assert engine.asked("[Ping from the-test ·") == 1, "the kind's own heading in the event message"
    assert subjects(home, "wake ping:the-test"), "one commit, labelled with the kind"
    rows = [r for r in Ledger(home.runtime / "ledger.db").rows() if r["purpose"] != "warmup"]
    assert {r["trigger"] for r in rows} == {"ping"}


def test_a_kind_is_registered_once_and_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered differently"):
        register_kind(EventKind("ping", "Another heading"))
    with pytest.raises(ValueError, match="unknown event kind 'pong'"):
        Event("pong", "", datetime(2026, 1, 1))


def test_cron_retried_after_engine_outage(home: Home, server: ScriptedServer, engine: EngineScript) -> None:
    """A cron wake the engine could not serve is undone and retried after its backoff, then done once."""
    d, cron, clock = cron_outage(home, server, engine)
    with running(d):
        due = d.now() - timedelta(minutes=1)
        assert cron.queue_run("tidy", due)
        run_until(d, lambda: d.retries.waiting() == {"cron:tidy"}, what="the failed run waiting for its retry")
        idle(d)
        assert engine.asked("[Scheduled job: tidy") == 1, "no retry before its backoff"
        clock.advance(30)
        idle(d)
        assert engine.asked("[Scheduled job: tidy") == 1
        clock.advance(30)
        run_until(d, lambda: engine.asked("[Scheduled job: tidy") == 2, what="the second attempt")
        run_until(d, lambda: d.retries.waiting() == {"cron:tidy"}, what="the second retry")
        engine.down_for = None  # the engine is back
        clock.advance(60)
        run_until(d, lambda: cron.runs.get("tidy").last_run == due, what="the run done")
    assert subjects(home, "wake cron:tidy") == [subjects(home, "wake cron:tidy")[0]], "one commit for the run"
    assert "[failed]" not in subjects(home, "wake cron:tidy")[0]
    runs = cron.runs.get("tidy")
    assert runs.pending is None and runs.last_commit and runs.last_skip is None


def test_cron_retried_after_engine_outage_gives_up_past_its_grace(home: Home, server: ScriptedServer, engine: EngineScript) -> None:
    d, cron, clock = cron_outage(home, server, engine)
    with running(d):
        due = d.now() - cron.grace + timedelta(seconds=1)  # within its grace for one more second
        assert cron.queue_run("tidy", due)
        run_until(d, lambda: engine.asked("[Scheduled job: tidy") == 1, what="the first attempt")
        while d.now() - due <= cron.grace:
            idle(d, 5)
        clock.advance(60)
        run_until(d, lambda: cron.runs.get("tidy").last_skip is not None, what="the run given up")
    runs = cron.runs.get("tidy")
    assert runs.pending is None and runs.last_run is None
    assert runs.skip_reason is not None and "grace" in runs.skip_reason and "engine" in runs.skip_reason
    assert d.retries.waiting() == set()


def test_message_not_retried_before_its_backoff(home: Home, server: ScriptedServer, engine: EngineScript) -> None:
    """The inbox poll and the worker share the retry schedule: a failed message waits out its backoff."""
    configure(home, server.url, every="1h")
    clock = FakeMonotonic()
    d = build_daemon(home, poll_s=0.02, retries=RetrySchedule(clock=clock, backoff=lambda attempt: 100.0))
    engine.down_for = "MSGID:q"
    with running(d):
        post(home, "q", "are you there?")
        run_until(d, lambda: d.retries.waiting() == {"inbox/q.md"}, what="the message waiting for its retry")
        idle(d, 100)  # the inbox is polled every tick: the file is there, still not queued
        assert engine.asked("MSGID:q") == 1
        engine.down_for = None
        clock.advance(100)
        run_until(d, lambda: (home.root / "inbox/done/q.md").exists(), what="the message answered")
    assert engine.asked("MSGID:q") == 2


def test_engine_restart_failure_is_not_taken_for_a_restart(home: Home, server: ScriptedServer) -> None:
    """The monitor's events are typed: "engine restart failed" no longer matches "restart"."""
    configure(home, server.url, every="1h")
    d = build_daemon(home, poll_s=0.02)
    news: list[EngineNews] = []
    with running(d):
        d.engine.on_news = lambda kind, detail: news.append(kind)
        assert d.engine.supervisor is not None and d.engine.supervisor.on_event is not None
        d.need_warmup = None
        d.engine.supervisor.on_event(EngineEvent.RESTART_FAILED, "attempt 1 of 5: refused")
        assert news == [] and d.need_warmup is None
        d.engine.supervisor.on_event(EngineEvent.GAVE_UP, "5 restarts in a row failed")
        assert "could not be restarted" in (home.root / "outbox/notices.md").read_text()
        d.engine.on_news = d._engine_news
        d.engine.supervisor.on_event(EngineEvent.RESTARTED, "attempt 2")
        assert d.need_warmup == "engine restarted"
    assert json.loads((home.runtime / "reported.json").read_text()) == ["engine-gave-up"]


def test_a_daemon_without_a_sandbox_says_so_once_and_commands_wait(home: Home, server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentd import sandbox

    configure(home, server.url, every="1h")
    home.absorb_person_edits()
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    sandbox.probe.cache_clear()
    try:
        for _ in range(2):  # a restart does not tell it again
            with running(build_daemon(home, poll_s=0.02)) as d:
                idle(d, 5)
        notices = (home.root / "outbox/notices.md").read_text()
        assert notices.count("Commands cannot run in a sandbox here: bubblewrap is not installed") == 1
        assert "shell.mode auto works as ask" in notices and "apt install bubblewrap" in notices
    finally:
        sandbox.probe.cache_clear()


def test_a_steering_file_with_conflict_markers_is_reported_as_such_and_the_prefix_kept(home: Home, server: ScriptedServer) -> None:
    configure(home, server.url, every="1h")
    home.absorb_person_edits()
    with running(build_daemon(home, poll_s=0.02)) as d:
        assert d.agent is not None
        before = d.agent.compiler.prefix
        agent_md = home.root / "AGENT.md"
        agent_md.write_text(agent_md.read_text() + "\n<<<<<<< ours\nbe brief\n=======\nbe thorough\n>>>>>>> theirs\n")
        notices = home.root / "outbox/notices.md"
        run_until(d, lambda: notices.is_file() and "steering file cannot be used" in notices.read_text(), what="the notice")
        assert "AGENT.md" in notices.read_text() and "A skill was skipped" not in notices.read_text()
        assert d.agent.compiler.prefix == before


def test_a_user_md_edit_mid_session_reaches_the_next_wake_as_a_steering_diff_on_the_same_prefix(home: Home, server: ScriptedServer, engine: EngineScript) -> None:
    configure(home, server.url, every="1h")
    with running(build_daemon(home, poll_s=0.02)) as d:
        assert d.agent is not None
        post(home, "first", "hello")
        run_until(d, lambda: (home.root / "inbox/done/first.md").exists() and not d.wake_running(), what="the first wake")
        idle(d, 10)  # its warm-up, if any
        prefix = d.agent.compiler.prefix
        user = home.root / "USER.md"
        user.write_text(user.read_text() + "- Name: Ada Lovelace\n")
        run_until(d, lambda: any(s.startswith("person: edited USER.md") for s in subjects(home, "person:")), what="the edit committed")
        idle(d, 20)
        assert d.agent.compiler.prefix == prefix, "a session is open: no new prefix, no warm-up"
        post(home, "second", "what is my name?")
        run_until(d, lambda: (home.root / "inbox/done/second.md").exists(), what="the second wake")
        body = next(b for b in reversed(engine.bodies) if "what is my name?" in str(b["messages"][-1]["content"]))
        first = next(b for b in engine.bodies if "hello" in str(b["messages"][-1]["content"]) and b.get("max_tokens") != 1)
        messages = body["messages"]
        assert messages[0] == first["messages"][0] and "Ada Lovelace" not in messages[0]["content"]
        diff = str(messages[-2]["content"])
        assert diff.startswith("[steering diff · USER.md · edited by the person]") and "+- Name: Ada Lovelace" in diff
        assert d.agent.compiler.prefix == prefix
    steering = Ledger(home.runtime / "ledger.db").steering_rows()
    assert [r["sections"] for r in steering] == ["USER.md"] and steering[0]["saved_prefix_tokens"] > 0


def test_a_skipped_heartbeat_is_recorded_with_its_reason_for_the_schedule(home: Home, server: ScriptedServer) -> None:
    from agentd.services.heartbeat import last_skip

    configure(home, server.url, every="1h")
    (home.root / "HEARTBEAT.md").write_text("# Heartbeat\n\nNothing to check.\n")
    home.absorb_person_edits()
    d = build_daemon(home, poll_s=0.02)
    with running(d):
        assert d.publish(Event("heartbeat", "", d.now()))
        run_until(d, lambda: last_skip(home) is not None, what="the heartbeat's skip recorded")
    skipped = last_skip(home)
    assert skipped is not None and skipped[1], "when and why"
    assert not any(s.startswith("heartbeat") for s in subjects(home, "")), "a skip commits nothing"

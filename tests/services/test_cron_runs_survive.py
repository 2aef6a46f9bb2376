"""Hole 2: a cron run is never lost silently; it is done (its wake committed), retried, or reported."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner

from agentd.cli import cli
from agentd.daemon import build_daemon
from agentd.home import AGENT, Home
from agentd.services.cron import CronService
from agentd.services.cron_runs import RUNS, CronRuns
from tests.doubles.openai_server import ScriptedServer
from tests.services.conftest import EngineScript
from tests.services.harness import run_until, running
from tests.test_daemon import Daemon, configure, post, wait_for


def job_due_minutes_ago(home: Home, minutes: int = 5) -> datetime:
    """A daily job whose run came due a few minutes ago, last run two days ago: the start catches it up."""
    due = (datetime.now().astimezone() - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    (home.root / "CRON.md").write_text(f"# Jobs\n\n## Tidy\n`{due.minute} {due.hour} * * *`\nTidy the notes.\n")
    home.absorb_person_edits()
    last = (due - timedelta(days=2)).isoformat()
    (home.runtime / "schedule.json").write_text(json.dumps({"last": {"cron:tidy": last}}))
    return due


def cron_commits(home: Home) -> list[str]:
    return [str(c.message).splitlines()[0] for c in home.repo.iter_commits() if str(c.message).startswith("wake cron:tidy")]


@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_cron_run_survives_the_daemon_stopping_while_it_is_queued(home: Home, server: ScriptedServer, engine: EngineScript, how: str) -> None:
    """Killed (or stopped) with a cron run waiting behind a message: the run is done once on the next start."""
    configure(home, server.url, every="1h")
    due = job_due_minutes_ago(home)
    engine.slow_for, engine.slow_s = "MSGID:busy", 4.0  # the worker is busy while the cron run waits
    post(home, "busy", "keep the agent busy")
    d = Daemon(home).start()
    wait_for(lambda: engine.asked("MSGID:busy") >= 1, 20, "the message's wake in flight")
    if how == "kill9":
        d.kill9()
    else:
        assert d.stop() == 0  # the message's wake finishes; the queued cron run does not start
    assert engine.asked("[Scheduled job: tidy") == 0, "the run was still queued"
    assert cron_commits(home) == []
    engine.slow_s = 0.0
    d = Daemon(home).start()
    wait_for(lambda: len(cron_commits(home)) >= 1, 30, "the cron run done after the restart")
    wait_for(lambda: (home.root / "inbox/done/busy.md").exists(), 30, "the message answered")
    time.sleep(1.0)  # a second run, if one were queued, would have started by now
    assert d.stop() == 0
    assert len(cron_commits(home)) == 1 and engine.asked("[Scheduled job: tidy") == 1, "once, not twice"
    runs = CronRuns(home.runtime / RUNS).get("tidy")
    assert runs.last_run == due and runs.pending is None
    listed = CliRunner().invoke(cli, ["--home", str(home.root), "cron", "list"]).output
    assert f"last run {due:%Y-%m-%d %H:%M} ({runs.last_commit[:8]})" in listed, listed  # type: ignore[index]


def test_cron_run_survives_a_restart_only_within_its_grace(home: Home, server: ScriptedServer, engine: EngineScript) -> None:
    """A run left pending longer than its grace is not run late: it is skipped, with the reason shown."""
    configure(home, server.url, every="1h")
    (home.root / "CRON.md").write_text("# Jobs\n\n## Tidy\n`0 3 * * *`\nTidy the notes.\n")
    home.absorb_person_edits()
    long_ago = (datetime.now().astimezone() - timedelta(hours=5)).replace(microsecond=0)
    CronRuns(home.runtime / RUNS).queued("tidy", long_ago)  # what a daemon killed five hours ago left
    d = build_daemon(home, poll_s=0.02)
    with running(d):
        cron = next(s for s in d.services if isinstance(s, CronService))
        run_until(d, lambda: cron.runs.get("tidy").last_skip is not None, what="the stale run reported")
    runs = CronRuns(home.runtime / RUNS).get("tidy")
    assert runs.pending is None and runs.last_run is None and engine.asked("[Scheduled job") == 0
    assert runs.skip_reason is not None and "past the 1h00m grace" in runs.skip_reason
    listed = CliRunner().invoke(cli, ["--home", str(home.root), "cron", "list"]).output
    assert f"last skip {long_ago:%Y-%m-%d %H:%M}: due at" in listed and "grace" in listed, listed
    assert "last run never" in listed and "next " in listed


def test_cron_run_over_the_daily_budget_is_reported_not_lost(home: Home, server: ScriptedServer, engine: EngineScript) -> None:
    configure(home, server.url, every="1h")
    yaml = home.root / "agent.yaml"
    yaml.write_text(re.sub(r"daily_tokens: *\d+", "daily_tokens: 1", yaml.read_text()))
    (home.root / "CRON.md").write_text("# Jobs\n\n## Tidy\n`0 3 * * *`\nTidy the notes.\n")
    home.absorb_person_edits()
    d = build_daemon(home, poll_s=0.02)
    with running(d):
        post(home, "first", "spend today's budget")  # messages still run
        run_until(d, lambda: (home.root / "inbox/done/first.md").exists(), what="the message answered")
        cron = next(s for s in d.services if isinstance(s, CronService))
        assert cron.queue_run("tidy", d.now())
        run_until(d, lambda: cron.runs.get("tidy").last_skip is not None, what="the run skipped")
    runs = CronRuns(home.runtime / RUNS).get("tidy")
    assert runs.pending is None and runs.skip_reason is not None and "daily token budget" in runs.skip_reason
    assert engine.asked("[Scheduled job") == 0


def test_cron_run_survives_a_kill_after_its_commit_and_is_not_run_twice(home: Home, server: ScriptedServer, engine: EngineScript) -> None:
    """Killed between the run's commit and its record: the next start finds the commit and counts it done."""
    configure(home, server.url, every="1h")
    (home.root / "CRON.md").write_text("# Jobs\n\n## Tidy\n`0 3 * * *`\nTidy the notes.\n")
    home.absorb_person_edits()
    due = (datetime.now().astimezone() - timedelta(minutes=2)).replace(microsecond=0)
    CronRuns(home.runtime / RUNS).queued("tidy", due, home.repo.head.commit.hexsha)
    (home.root / "notes.md").write_text("tidied\n")
    sha = home.commit("wake cron:tidy: did the job", identity=AGENT, all_changes=True)  # what the killed wake committed
    d = build_daemon(home, poll_s=0.02)
    with running(d):
        run_until(d, lambda: CronRuns(home.runtime / RUNS).get("tidy").pending is None, what="the run recorded")
        for _ in range(20):
            d.tick()
    runs = CronRuns(home.runtime / RUNS).get("tidy")
    assert runs.last_run == due and runs.last_commit == sha
    assert engine.asked("[Scheduled job") == 0 and len(cron_commits(home)) == 1

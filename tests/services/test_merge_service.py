"""`agentd merge` with a daemon running: the merge is handed to it and runs as a wake of its own kind, the others wait."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from click.testing import CliRunner

from agentd.cli import cli
from agentd.daemon import Daemon, build_daemon
from agentd.home import Home
from agentd.merge import requests
from agentd.services.lifecycle import daemon_lock
from agentd.services.merge import MergeService
from tests.doubles.openai_server import ScriptedServer
from tests.merge.conftest import Pair, forked  # noqa: F401 - the fixture
from tests.services.conftest import EngineScript
from tests.services.harness import run_until, running
from tests.test_daemon import Daemon as RealDaemon
from tests.test_daemon import agentd, configure, post, wait_for


def merge_commit(home: Home) -> str | None:
    return next((c.hexsha for c in home.repo.iter_commits() if str(c.message).startswith("merge: ") and len(c.parents) == 2), None)


def wake_commit(home: Home, label: str) -> str | None:
    return next((c.hexsha for c in home.repo.iter_commits() if str(c.message).startswith(f"wake {label}")), None)


def is_ancestor(home: Home, a: str, b: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", a, b], cwd=home.root).returncode == 0


def daemon_for(pair: Pair, server: ScriptedServer) -> Daemon:
    configure(pair.ours, server.url, every="1h")
    return build_daemon(pair.ours, poll_s=0.02)


def test_a_merge_request_runs_as_the_daemons_wake_and_the_next_wake_is_told(forked: Pair, server: ScriptedServer, engine: EngineScript) -> None:  # noqa: F811
    ours = forked.ours
    d = daemon_for(forked, server)
    assert any(isinstance(s, MergeService) for s in d.services), "build_daemon() adds the merge service"
    req = requests.submit(ours, "merge", str(forked.theirs.root), use_model=False)  # durable: written before the daemon starts
    with running(d):
        run_until(d, lambda: requests.answered(ours, req.id), what="the merge's answer")
        result = requests.wait(ours, req, daemon_alive=lambda: True)
        assert result.error is None and result.lines[0].startswith("merge commit "), result
        assert not requests.pending(ours), "the request is gone once answered"
        assert merge_commit(ours) is not None
        run_until(d, lambda: d.last_wake is not None and d.last_wake["label"] == f"merge:{req.id}", what="the merge wake's record")
        # The note the merge left in the inbox is the next wake's event: the agent is told.
        run_until(d, lambda: engine.asked("(from agentd merge)") >= 1, what="the wake that tells the agent")
    assert "Carol runs the book club" in (ours.root / "memory/topics/people.md").read_text()


def test_other_wakes_wait_while_the_merge_runs_and_run_after_it_on_the_merged_home(forked: Pair, server: ScriptedServer, engine: EngineScript) -> None:  # noqa: F811
    ours = forked.ours
    d = daemon_for(forked, server)
    engine.slow_for, engine.slow_s = "=== OURS ===", 0.6  # each memory file's merge wake is slow
    with running(d):
        run_until(d, lambda: d.need_warmup is None and not d.wake_running(), what="the start's warm-up")
        req = requests.submit(ours, "merge", str(forked.theirs.root), use_model=True)
        run_until(d, lambda: engine.asked("=== OURS ===") >= 1, what="the merge wake's first request")
        post(ours, "during", "hello while you merge")  # a message arrives mid-merge
        run_until(d, lambda: requests.answered(ours, req.id), timeout=60, what="the merge's answer")
        assert engine.asked("MSGID:during") == 0, "no message wake interleaved with the merge"
        run_until(d, lambda: wake_commit(ours, "message:during") is not None, what="the message's wake")
    result = requests.wait(ours, req, daemon_alive=lambda: True)
    assert result.error is None, result.error
    merged, answered = merge_commit(ours), wake_commit(ours, "message:during")
    assert merged and answered and is_ancestor(ours, merged, answered), "the message was answered on the merged home"
    merge_bodies = [i for i, b in enumerate(engine.bodies) if "=== OURS ===" in str(b["messages"][-1].get("content", ""))]
    message_body = next(i for i, b in enumerate(engine.bodies) if "MSGID:during" in str(b["messages"][-1].get("content", "")))
    assert len(merge_bodies) >= 2 and max(merge_bodies) < message_body


@contextmanager
def ticking(d: Daemon) -> Iterator[None]:
    """The daemon's main loop on a thread, with its lock held: what `agentd merge` sees of a running daemon."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            d.tick()

    with daemon_lock(d.home), running(d):
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(30)


def test_agent_merge_and_abort_from_the_command_line_are_handed_to_a_running_daemon(forked: Pair, server: ScriptedServer, engine: EngineScript) -> None:  # noqa: F811
    ours, runner = forked.ours, CliRunner()
    d = daemon_for(forked, server)
    before = ours.repo.head.commit.hexsha
    with ticking(d):
        done = runner.invoke(cli, ["--home", str(ours.root), "merge", str(forked.theirs.root), "--no-model"])
        assert done.exit_code == 0, done.output
        assert "run by the daemon" in done.output and "merge commit" in done.output
        merged = merge_commit(ours)
        assert merged is not None and merged != before
        # The agent was told of the merge in a wake of its own, so the home has moved on:
        # the daemon refuses the abort, and says why in one line.
        wait_for(lambda: wake_commit(ours, "message:") is not None, 30, "the wake that tells the agent")
        undone = runner.invoke(cli, ["--home", str(ours.root), "merge", "--abort"])
        assert undone.exit_code != 0 and "has moved on since merge" in undone.output, undone.output
        assert is_ancestor(ours, merged, ours.repo.head.commit.hexsha)
        again = runner.invoke(cli, ["--home", str(ours.root), "merge", str(ours.root / "nowhere")])
        assert again.exit_code != 0 and "nowhere" in again.output  # the daemon's error, as one line
    assert not requests.pending(ours) and not list(requests.requests_dir(ours).glob("*.result.json"))


def test_agentd_merge_is_run_by_a_real_daemon_process(forked: Pair, server: ScriptedServer) -> None:  # noqa: F811
    ours = forked.ours
    configure(ours, server.url, every="1h")
    d = RealDaemon(ours).start()
    try:
        done = agentd(ours, "merge", str(forked.theirs.root), "--no-model", timeout=120)
        assert done.returncode == 0, done.stderr + d.output()
        assert "run by the daemon" in done.stdout and "merge commit" in done.stdout
        assert "Passport expires in May" in (ours.root / "memory/topics/travel.md").read_text()
    finally:
        assert d.stop() == 0
    assert "wake merge:" in (ours.root / ".agentd/logs/daemon.log").read_text()

"""CLI commands around the daemon: cron list, wake heartbeat, start/status/stop, service install."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from agentd.cli import cli
from agentd.home import Home
from tests.doubles.agent_responder import respond
from tests.doubles.openai_server import ScriptedServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer(responder=respond).start()
    yield s
    s.stop()


def external(home: Home, server: ScriptedServer) -> None:
    path = home.root / "agent.yaml"
    text = path.read_text().replace("backend: llamacpp", "backend: openai").replace("# url: http://127.0.0.1:8000/v1", f"url: {server.url}")
    path.write_text(text.replace("every: 30m", "every: 1h").replace('active_hours: "08:00-22:00"', "active_hours: always"))
    home.absorb_person_edits()


def agentd(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentd", "--home", str(home.root), *args], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cron_list_shows_next_runs_and_errors(home: Home) -> None:
    (home.root / "CRON.md").write_text("# Jobs\n\n## Morning brief\n`0 8 * * *`\nBrief me.\n\n## Broken\n`99 * * * *`\nNever.\n")
    res = CliRunner().invoke(cli, ["--home", str(home.root), "cron", "list"])
    assert res.exit_code == 0, res.output
    assert "Morning brief" in res.output and "0 8 * * *" in res.output and "08:00" in res.output
    assert "error: " in res.output and "CRON.md:8" in res.output


def test_status_without_a_daemon_shows_the_planned_runs(home: Home) -> None:
    (home.root / "CRON.md").write_text("# Jobs\n\n## Morning brief\n`0 8 * * *`\nBrief me.\n")
    res = CliRunner().invoke(cli, ["--home", str(home.root), "status"])
    assert res.exit_code == 0, res.output
    assert "not running" in res.output
    assert "heartbeat" in res.output and "every 30 min, 08:00-22:00" in res.output
    assert "Morning brief" in res.output and "T08:00:00" in res.output


def test_wake_heartbeat_with_nothing_open_calls_no_engine(home: Home, server: ScriptedServer) -> None:
    external(home, server)
    head = home.repo.head.commit.hexsha
    res = CliRunner().invoke(cli, ["--home", str(home.root), "wake", "heartbeat"])
    assert res.exit_code == 0, res.output
    assert "heartbeat skipped" in res.output
    assert server.requests == [] and home.repo.head.commit.hexsha == head


def test_start_status_stop_in_the_background(home: Home, server: ScriptedServer) -> None:
    external(home, server)
    started = agentd(home, "start")
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split("pid")[1])
    try:
        status = agentd(home, "status")
        assert f"daemon    running, pid {pid}" in status.stdout, status.stdout
        assert "next      heartbeat" in status.stdout
    finally:
        stopped = agentd(home, "stop")
    assert stopped.returncode == 0 and f"daemon {pid} stopped" in stopped.stdout
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "not running" in agentd(home, "status").stdout


def test_service_install_writes_a_user_unit(home: Home, isolated_user: Path) -> None:
    res = CliRunner().invoke(cli, ["--home", str(home.root), "service", "install"])
    assert res.exit_code == 0, res.output
    unit = (isolated_user / ".config" / "systemd" / "user" / "agentd.service").read_text()
    assert "Restart=on-failure" in unit and f"--home {home.root} run" in unit

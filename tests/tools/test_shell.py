"""The shell tool: process-group timeouts, output caps, policy, ask mode, environment."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.tools import approvals
from agentd.tools.base import ToolContext, ToolRegistry
from agentd.tools.shell import ShellTool, run_command


def ctx_for(home: Home) -> ToolContext:
    home.absorb_person_edits()
    return ToolContext(home, load_config(home.root), Event("message", "x", datetime.now(UTC)), "w1")


def set_shell(home: Home, **values: object) -> None:
    path = home.root / "agent.yaml"
    text = path.read_text()
    for k, v in values.items():
        text = "\n".join(f"  {k}: {json.dumps(v)}" if line.startswith(f"  {k}:") else line for line in text.splitlines()) + "\n"
    path.write_text(text)


def shell(home: Home, command: str, **extra: object) -> str:
    return ToolRegistry([ShellTool()]).execute(ctx_for(home), "shell", {"command": command, **extra}).text


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    result = run_command(f"(sleep 300 & echo $! > {pidfile}; wait)", cwd=tmp_path, timeout=1.0)
    assert result.timed_out
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.05)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_output_cap_and_overflow_file(home: Home) -> None:
    set_shell(home, max_output=500)
    out = shell(home, "seq 1 5000")
    assert out.startswith("exit code 0") and "\n1\n2\n" in out and out.rstrip().endswith("5000")
    assert "characters omitted" in out and len(out) < 1200
    shown = out.split("is in ")[1].split(" …")[0]
    assert shown == ".agentd/outputs/w1-1.txt" and str(home.root) not in out  # relative to the home
    stored = home.root / shown
    assert stored.is_file() and stored.read_text().count("\n") == 5000


def test_stored_outputs_are_numbered_per_wake(home: Home) -> None:
    set_shell(home, max_output=200)
    registry = ToolRegistry([ShellTool()])
    first, second = ctx_for(home), ctx_for(home)
    second.wake_id = "w2"

    def stored(ctx: ToolContext, command: str) -> str | None:
        out = registry.execute(ctx, "shell", {"command": command}).text
        return out.split("is in ")[1].split(" …")[0] if "is in " in out else None

    assert stored(first, "seq 1 1000") == ".agentd/outputs/w1-1.txt"
    assert stored(first, "echo short") is None  # only stored outputs are numbered
    assert stored(first, "seq 2 1000") == ".agentd/outputs/w1-2.txt"
    assert stored(second, "seq 3 1000") == ".agentd/outputs/w2-1.txt"  # a new wake counts from 1
    assert stored(first, "seq 4 1000") == ".agentd/outputs/w1-3.txt"
    assert (home.root / ".agentd/outputs/w1-2.txt").read_text().startswith("2\n3\n")
    # The model's shell runs in the home, so the path it was given opens as it is.
    assert registry.execute(first, "shell", {"command": "head -n 2 .agentd/outputs/w2-1.txt"}).text == "exit code 0\n3\n4\n"


def test_flood_is_capped(tmp_path: Path) -> None:
    result = run_command("yes flood", cwd=tmp_path, timeout=30)
    assert result.flooded and len(result.output) <= 16 * 1024 * 1024


def test_denied_command_names_the_rule(home: Home) -> None:
    out = shell(home, "ls && sudo rm -rf /tmp/x")
    assert out.startswith("error: refused by the shell policy (built-in: privilege)")
    set_shell(home, deny=["curl"])
    assert "shell.deny: curl" in shell(home, "curl -s http://127.0.0.1:9")


def test_allow_loosens_a_builtin_rule(home: Home) -> None:
    set_shell(home, allow=[r"git reset --hard HEAD"])
    assert shell(home, "git reset --hard HEAD").startswith("exit code 0")
    assert "git-rewrite" in shell(home, "git reset --hard HEAD~1")


def test_ask_mode_parks_and_approve_runs(home: Home) -> None:
    set_shell(home, mode="ask")
    ctx = ctx_for(home)
    out = ToolRegistry([ShellTool()]).execute(ctx, "shell", {"command": "echo approved-run > proof.txt"}).text
    approval_id = out.split("approval as ")[1].split(" ")[0]
    assert not (home.root / "proof.txt").exists()
    assert approvals.pending(home) == [approval_id]
    result = approvals.approve(home, load_config(home.root), approval_id)
    assert result.startswith("exit code 0") and (home.root / "proof.txt").read_text() == "approved-run\n"
    assert "status: approved" in (home.root / f"outbox/approvals/{approval_id}.md").read_text()
    from agentd.errors import UserError

    with pytest.raises(UserError, match="not pending"):
        approvals.approve(home, load_config(home.root), approval_id)


def test_environment_does_not_leak(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTD_TEST_SECRET", "hunter2-do-not-leak")
    monkeypatch.setenv("AGENTD_TEST_PASSED", "visible")
    set_shell(home, env=["AGENTD_TEST_PASSED"])
    out = shell(home, "env")
    assert "hunter2-do-not-leak" not in out and "AGENTD_TEST_SECRET" not in out
    assert "AGENTD_TEST_PASSED=visible" in out


def test_workdir_confined(home: Home, tmp_path: Path) -> None:
    assert "outside the home" in shell(home, "pwd", workdir=str(tmp_path))
    assert shell(home, "pwd", workdir="memory").strip().endswith(str(home.root / "memory"))
    assert os.path.isdir(home.root / "memory")

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
from agentd.config_edit import set_values
from agentd.events import Event
from agentd.home import Home
from agentd.sandbox import Jail, run_command
from agentd.tools import approvals
from agentd.tools.base import ToolContext, ToolRegistry
from agentd.tools.shell import ShellTool


def ctx_for(home: Home) -> ToolContext:
    home.absorb_person_edits()
    return ToolContext(home, load_config(home.root), Event("message", "x", datetime.now(UTC)), "w1")


def set_shell(home: Home, **values: object) -> None:
    """Set ``shell.<name>`` settings as `agentd config set` does (the person's edit, uncommitted)."""
    text, _ = set_values(home.root, {f"shell.{k}": json.dumps(v) for k, v in values.items()})
    (home.root / "agent.yaml").write_text(text)


def shell(home: Home, command: str, **extra: object) -> str:
    return ToolRegistry([ShellTool()]).execute(ctx_for(home), "shell", {"command": command, **extra}).text


def jail(home: Path) -> Jail:
    return Jail(home, env={"PATH": "/usr/bin:/bin"})


def left_over(marker: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline", "status"]) if marker in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE]


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    result = run_command("(sleep 3001 & sleep 3002 & wait)", cwd=tmp_path, timeout=1.0, jail=jail(tmp_path))
    assert result.timed_out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (left_over("sleep 3001") or left_over("sleep 3002")):
        time.sleep(0.05)
    assert not left_over("sleep 3001") and not left_over("sleep 3002")


def test_background_processes_end_with_the_command(tmp_path: Path) -> None:
    result = run_command("setsid nohup sleep 3003 >/dev/null 2>&1 & disown; echo started", cwd=tmp_path, timeout=10, jail=jail(tmp_path))
    assert result.output.strip() == "started" and not result.timed_out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and left_over("sleep 3003"):
        time.sleep(0.05)
    assert not left_over("sleep 3003")  # its PID namespace went with the command


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
    result = run_command("yes flood", cwd=tmp_path, timeout=30, jail=jail(tmp_path))
    assert result.flooded and len(result.output) <= 16 * 1024 * 1024


def test_denied_command_names_the_rule(home: Home) -> None:
    out = shell(home, "ls && sudo rm -rf /tmp/x")
    assert out.startswith("error: refused by the shell policy (built-in: privilege)")
    set_shell(home, deny=["curl"])
    assert "shell.deny: curl" in shell(home, "curl -s http://127.0.0.1:9")


def test_allow_loosens_a_builtin_rule_and_the_sandbox_still_holds(home: Home) -> None:
    set_shell(home, allow=[r"git reset --hard HEAD"])
    home.absorb_person_edits()
    head = home.repo.head.commit.hexsha
    out = shell(home, "git reset --hard HEAD")  # the policy lets it through …
    assert "refused by the shell policy" not in out
    assert not out.startswith("exit code 0") and "Read-only file system" in out  # … the sandbox's read-only .git does not
    assert home.repo.head.commit.hexsha == head
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

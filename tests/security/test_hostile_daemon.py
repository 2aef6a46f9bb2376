"""The worst hostile commands sent through a running daemon: it keeps running, and its secret stays out.

A scripted model (a test double answering over HTTP) turns each message into one shell call, the
command taken from the message; the daemon runs it in the sandbox like any other. Its environment
holds a secret listed in ``secrets.env``.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from agentd.home import Home
from agentd.sandbox import probe
from tests.doubles.openai_server import Reply, ScriptedServer
from tests.security.hostile_corpus import DAEMON_WORST, leaked, set_in_section

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAME = "AGENTD_HOSTILE_SECRET"
SECRET = "Qm7tVx2LpZ9rKc4HwN8yJd3FbG6sEa1U"


class ShellCaller:
    """A scripted model: a message ``CMD:<base64>`` gets a shell call, the tool's result a reply quoting it."""

    def __init__(self) -> None:
        self.results: list[str] = []

    def __call__(self, body: dict[str, Any]) -> Reply:
        messages = body.get("messages", [])
        last = str(messages[-1].get("content", "")) if messages else ""
        if body.get("max_tokens") == 1:
            action: dict[str, Any] = {"tool": "done", "arguments": {"summary": "warm"}}
        elif last.startswith("[result of shell]"):
            self.results.append(last)
            first = (last.splitlines() + [""])[1]  # "exit code N …"
            action = {"tool": "reply", "arguments": {"text": f"ran it: {first}"}}
        elif m := re.search(r"CMD:([A-Za-z0-9+/=]+)", last):
            action = {"tool": "shell", "arguments": {"command": base64.b64decode(m.group(1)).decode()}}
        else:
            action = {"tool": "done", "arguments": {"summary": "HEARTBEAT_OK"}}
        return Reply(content=json.dumps(action), prompt_tokens=100, cached_tokens=50)


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def caller() -> Iterator[tuple[ShellCaller, ScriptedServer]]:
    model = ShellCaller()
    server = ScriptedServer(responder=model).start()
    yield model, server
    server.stop()


def configure(home: Home, url: str) -> None:
    path = home.root / "agent.yaml"
    text = path.read_text()
    text = text.replace("backend: llamacpp", "backend: openai").replace("# url: http://127.0.0.1:8000/v1", f"url: {url}")
    text = text.replace("every: 30m", "every: 1h").replace('active_hours: "08:00-22:00"', "active_hours: always")
    shell = {"allow": ["(?s).*"], "timeout": 5, "max_processes": 64, "max_memory_mb": 512, "max_file_mb": 16}
    text, _ = set_in_section(text, "shell", shell)  # the policy lets everything through: the sandbox alone stands
    text, _ = set_in_section(text, "secrets", {"env": [SECRET_NAME]})
    path.write_text(text)
    home.absorb_person_edits()


def post(home: Home, name: str, command: str) -> None:
    tmp = home.root / "inbox" / f".{name}.tmp"
    tmp.write_text(f"please run CMD:{base64.b64encode(command.encode()).decode()}\n")
    tmp.rename(home.root / "inbox" / f"{name}.md")


def answered(done: Path, daemon: subprocess.Popen[bytes]) -> bool:
    return done.exists() or daemon.poll() is not None


@dataclass
class Running:
    home: Home
    model: ShellCaller
    proc: subprocess.Popen[bytes]

    def run(self, name: str, command: str) -> str:
        """Send ``command`` as a message, wait for the wake that runs it, return the shell tool's result."""
        before = len(self.model.results)
        post(self.home, name, command)
        wait_for(functools.partial(answered, self.home.root / f"inbox/done/{name}.md", self.proc), 60, f"the answer to {command!r}")
        assert self.proc.poll() is None, f"the daemon died running {command!r}"
        assert psutil.Process(self.proc.pid).status() != psutil.STATUS_ZOMBIE
        assert len(self.model.results) == before + 1, self.model.results
        return self.model.results[-1]


@pytest.fixture
def daemon(home: Home, caller: tuple[ShellCaller, ScriptedServer]) -> Iterator[Running]:
    if not probe().available:
        pytest.skip(f"no sandbox here: {probe().describe()}")
    model, server = caller
    configure(home, server.url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), SECRET_NAME: SECRET}
    with open(home.root / ".agentd" / "test-daemon.out", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "agentd", "--home", str(home.root), "run"], stdout=log, stderr=log, env=env, cwd=ROOT)
        try:
            wait_for(lambda: (home.root / ".agentd/daemon.json").exists() or proc.poll() is not None, 30, "the daemon ready")
            assert proc.poll() is None, (home.root / ".agentd/test-daemon.out").read_text()
            yield Running(home, model, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_the_daemon_survives_the_worst_commands(daemon: Running) -> None:
    results = [daemon.run(f"hostile{i}", command) for i, command in enumerate(DAEMON_WORST)]
    assert "stopped by the sandbox's limit" in results[0]  # the fork bomb met the process limit
    for result in results:
        assert not leaked(result, SECRET), result
    root = daemon.home.root
    history = subprocess.run(["git", "-C", str(root), "log", "-p", "--all"], capture_output=True, text=True).stdout
    outbox = "".join(p.read_text() for p in (root / "outbox").rglob("*.md"))
    assert not leaked(history + outbox, SECRET)
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(60) == 0


def test_a_command_cannot_widen_the_sandbox_of_the_next_wake(daemon: Running, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("canary\n")
    widen = f"perl -0pi -e 's|^files:\\n  allow: \\[\\]|files:\\n  allow: [\"{canary}\"]|m' agent.yaml"
    first = daemon.run("widen", widen)
    time.sleep(1.5)  # the daemon's steering watch picks up agent.yaml changes
    second = daemon.run("write", f"echo pwned > {canary}/keep.txt")
    assert (canary / "keep.txt").read_text() == "canary\n", f"{widen!r}: {first}\nthen: {second}"
    assert daemon.proc.poll() is None

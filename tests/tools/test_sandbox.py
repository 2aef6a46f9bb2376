"""The OS sandbox around every command: what the kernel refuses, whatever the command's text says.

Each test runs a real command under bubblewrap through the shell tool and checks what changed
outside. The hostile corpus (tests/security/test_hostile_*.py) does the same at scale.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentd import sandbox
from agentd.config import load_config
from agentd.config_edit import set_values
from agentd.errors import ConfigError
from agentd.home import Home
from agentd.tools.base import ToolRegistry
from agentd.tools.shell import ShellTool
from tests.tools.test_shell import ctx_for

pytestmark = pytest.mark.skipif(not sandbox.probe().available, reason=f"no sandbox here: {sandbox.probe().detail}")


@pytest.fixture(autouse=True)
def policy_out_of_the_way(home: Home) -> None:
    """Let every command past the text policy: these tests are about what the kernel refuses."""
    configure(home, shell__allow=[".*"])


def shell(home: Home, command: str) -> str:
    return ToolRegistry([ShellTool()]).execute(ctx_for(home), "shell", {"command": command}).text


def configure(home: Home, **values: object) -> None:
    """Set ``shell.x`` style settings the way `agentd config set` does (``shell__x=…``)."""
    text, _ = set_values(home.root, {k.replace("__", "."): json.dumps(v) for k, v in values.items()})
    (home.root / "agent.yaml").write_text(text)


@pytest.fixture
def outside(home: Home) -> Iterator[Path]:
    """A folder outside the home that the sandbox can see: not under the private /tmp (where the
    tests' $HOME is), so under the real user's home directory."""
    base = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache"
    base.mkdir(parents=True, exist_ok=True)
    folder = base / f"agentd-sandbox-test-{os.getpid()}-{home.root.name}"
    folder.mkdir()
    (folder / "canary.txt").write_text("canary\n")
    yield folder
    for p in sorted(folder.rglob("*"), reverse=True):
        p.unlink() if p.is_file() or p.is_symlink() else p.rmdir()
    folder.rmdir()


def test_the_filesystem_outside_the_home_is_read_only(home: Home, outside: Path) -> None:
    out = shell(home, f"echo pwned > {outside}/canary.txt; touch {outside}/new; rm -f {outside}/canary.txt; echo x > /etc/agentd-test")
    assert out.count("Read-only file system") >= 3
    assert (outside / "canary.txt").read_text() == "canary\n" and sorted(p.name for p in outside.iterdir()) == ["canary.txt"]
    assert not Path("/etc/agentd-test").exists()


def test_home_is_writable_but_its_history_is_not(home: Home) -> None:
    home.absorb_person_edits()
    head = home.repo.head.commit.hexsha
    hook = (home.root / ".git/hooks/pre-commit").read_bytes()
    out = shell(home, "echo note > notes.md && cat notes.md; rm -rf .git; echo hook > .git/hooks/pre-commit; git commit --allow-empty -m x --no-verify")
    assert "note" in out and "Read-only file system" in out
    assert (home.root / "notes.md").read_text() == "note\n"
    assert home.repo.head.commit.hexsha == head and (home.root / ".git/hooks/pre-commit").read_bytes() == hook


def test_runtime_state_and_approvals_are_read_only(home: Home) -> None:
    (home.root / "outbox/approvals").mkdir(parents=True, exist_ok=True)
    out = shell(home, "echo forged > outbox/approvals/abc123.md; echo x > .agentd/forged; ls .agentd >/dev/null && echo listed")
    assert out.count("Read-only file system") == 2 and "listed" in out
    assert not (home.root / "outbox/approvals/abc123.md").exists() and not (home.root / ".agentd/forged").exists()


def test_tmp_is_private(home: Home) -> None:
    marker = Path("/tmp") / f"agentd-private-{os.getpid()}"
    marker.write_text("host")
    try:
        out = shell(home, f"cat {marker}; echo inside > {marker} && cat {marker}")
        assert "No such file" in out and "inside" in out
        assert marker.read_text() == "host"
    finally:
        marker.unlink()


def test_no_process_of_the_daemon_is_visible(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTD_TEST_SECRET", "s3cr3t-value-never-seen")
    configure(home, secrets__env=["AGENTD_TEST_SECRET"])
    out = shell(home, "cat /proc/$PPID/environ /proc/1/environ | tr '\\0' '\\n'; ls /proc | grep -c '^[0-9]'; cat /proc/*/environ | rev")
    assert "s3cr3t" not in out and "s3cr3t-value-never-seen"[::-1] not in out
    assert str(os.getpid()) not in out.split()  # the test process (the "daemon") has no pid inside


def test_secrets_never_enter_a_command_environment(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTD_TEST_SECRET", "s3cr3t")
    configure(home, secrets__env=["AGENTD_TEST_SECRET"])
    with pytest.raises(ConfigError, match=r"agent.yaml:\d+: shell.env: AGENTD_TEST_SECRET is listed in secrets.env"):
        configure(home, shell__env=["AGENTD_TEST_SECRET"])
    path = home.root / "agent.yaml"
    path.write_text(path.read_text().replace("  env: []                   # environment variables passed", '  env: ["AGENTD_TEST_SECRET"] # passed'))
    with pytest.raises(ConfigError, match=r"agent.yaml:\d+: shell.env: AGENTD_TEST_SECRET is listed in secrets.env"):
        load_config(home.root)


def test_a_fork_bomb_ends_with_a_clear_message(home: Home) -> None:
    configure(home, shell__timeout=10)
    configure(home, shell__max_processes=32)
    out = shell(home, "b() { b | b & }; b; sleep 2; echo survived-bomb")
    assert "limit on 32 processes" in out


def test_a_runaway_write_ends_at_the_file_size_limit(home: Home) -> None:
    configure(home, shell__max_file_mb=1)
    out = shell(home, "head -c 5000000 /dev/zero > big.bin")
    assert "limit on file size" in out
    assert (home.root / "big.bin").stat().st_size <= 1024 * 1024


def test_limits_cannot_be_raised_inside(home: Home) -> None:
    configure(home, shell__max_file_mb=1)
    out = shell(home, "ulimit -f unlimited && echo raised")
    assert "raised" not in out


class Listener:
    """A TCP listener on loopback that records whether anything connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
            self.hits += 1
            conn.close()
        except OSError:
            pass


def test_network_off_means_no_network(home: Home) -> None:
    command = "exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"
    on = Listener()
    assert "connected" in shell(home, command.format(port=on.port))
    on.thread.join(5)
    assert on.hits == 1
    configure(home, shell__network="off")
    off = Listener()
    out = shell(home, command.format(port=off.port))
    assert "connected" not in out and "refused" in out.lower()
    off.thread.join(6)
    assert off.hits == 0


def test_runs_as_nobody_when_the_daemon_is_root(home: Home) -> None:
    out = shell(home, "id -u; cat /proc/self/status | grep CapEff")
    if os.geteuid() == 0:
        assert out.split("\n")[1].strip() == str(sandbox.NOBODY)
    assert "CapEff:\t0000000000000000" in out


def test_without_a_sandbox_auto_becomes_ask(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    sandbox.probe.cache_clear()
    try:
        found = sandbox.probe()
        assert not found.available and "apt install bubblewrap" in found.fix
        out = shell(home, "echo hi > unconfined.txt")
        assert "parked for the person's approval" in out and not (home.root / "unconfined.txt").exists()
    finally:
        sandbox.probe.cache_clear()

"""Secrets never enter git (the commit is refused, nothing moves) and are masked in tool output."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentd.config import load_config
from agentd.errors import SecretError
from agentd.events import Event
from agentd.home import AGENT, Home
from agentd.loop import wake
from agentd.secrets import HOOK_MARKER, SecretGuard, scan_text
from agentd.wiring import build_agent
from agentd.withhold import withheld
from tests.doubles.scripted_engine import ScriptedEngine

PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (PEM, "private key"),
        ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AWS access key id"),
        ("token: ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "GitHub token"),
        ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD", "OpenAI-style API key"),
        ("slack xoxb-123456789012-abcdefghij", "Slack token"),
        ("password = 'Zq8#kL2!vX9@pR4m'", "password assignment"),
    ],
)
def test_patterns(text: str, kind: str) -> None:
    assert [k for _, k in scan_text(text)] == [kind]


@pytest.mark.parametrize("text", ["password: see 1Password", "the token is in the vault", "api_key = os.environ['KEY']", "sk-short", "a normal line about keys"])
def test_not_secrets(text: str) -> None:
    assert scan_text(text) == []


def test_commit_with_secret_refused_nothing_moves(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-4f9a8b7c6d5e")
    home.pre_commit = SecretGuard(["MY_SERVICE_TOKEN"]).check_commit
    head = home.repo.head.commit.hexsha
    (home.root / "notes.md").write_text("fine line\nkey:\n" + PEM)
    (home.root / "env.md").write_text("the token is tok-4f9a8b7c6d5e\n")
    with pytest.raises(SecretError) as err:
        home.commit("agent: notes", identity=AGENT, all_changes=True)
    msg = str(err.value)
    assert "notes.md:3 (private key)" in msg and "env.md:1 (value of $MY_SERVICE_TOKEN)" in msg
    assert "tok-4f9a8b7c6d5e" not in msg and "b3BlbnNzaC1rZXkt" not in msg
    assert scan_text(msg) == []  # quoting the refusal in a notice must not be refused in turn
    assert home.repo.head.commit.hexsha == head
    assert set(home.dirty_paths()) == {"notes.md", "env.md"}
    assert home.repo.git.diff("--cached", "--name-only") == ""


def test_every_home_scans_by_default(home: Home) -> None:
    opened = Home.open(home.root)  # what every CLI command gets: nobody set pre_commit
    (home.root / "creds.md").write_text("aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n")
    with pytest.raises(SecretError, match=r"creds\.md:1 \(AWS access key id\)"):
        opened.commit("person: notes", identity=opened.person_identity(), all_changes=True)
    assert "AKIA" not in opened.repo.git.log("-p", "--all")


def test_secret_value_named_in_agent_yaml_is_scanned_by_default(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-4f9a8b7c6d5e")
    path = home.root / "agent.yaml"
    path.write_text(path.read_text().replace("  env: []                   # environment variables whose", "  env: [MY_SERVICE_TOKEN]  # environment variables whose"))
    home.commit("person: secrets.env", identity=AGENT, paths=["agent.yaml"])
    (home.root / "env.md").write_text("the token is tok-4f9a8b7c6d5e\n")
    with pytest.raises(SecretError, match=r"env\.md:1 \(value of \$MY_SERVICE_TOKEN\)"):
        home.commit("agent: env", identity=AGENT, paths=["env.md"])


def test_person_file_with_a_credential_is_withheld_not_blocking(home: Home) -> None:
    (home.root / "creds.md").write_text("fine\naws AKIAIOSFODNN7EXAMPLE\n")
    (home.root / "USER.md").write_text("# About you\n- Name: Ada\n")
    sha = home.absorb_person_edits()
    assert sha is not None and home.repo.git.show("--name-only", "--format=", sha).split() == ["USER.md"]
    assert home.dirty_paths() == ["creds.md"]
    assert withheld(home) == {"creds.md": [("creds.md", 2, "AWS access key id")]}
    notices = (home.root / "outbox/notices.md").read_text()
    assert "creds.md:2 (AWS access key id)" in notices and "AKIA" not in notices
    assert scan_text(notices) == []
    assert str(home.repo.head.commit.message).startswith("notice:") and home.repo.head.commit.author.email == AGENT.email
    # told once: the same file again is neither committed nor noticed again
    head = home.repo.head.commit.hexsha
    assert home.absorb_person_edits() is None and home.repo.head.commit.hexsha == head
    # an agent commit of "everything" leaves it out too
    (home.root / "memory/topics/x.md").write_text("agent note\n")
    home.commit("agent: note", identity=AGENT, all_changes=True)
    assert home.dirty_paths() == ["creds.md"]
    # once the person removes the credential, the file is theirs in git as usual
    (home.root / "creds.md").write_text("fine\nthe key is in my password manager\n")
    sha = home.absorb_person_edits()
    assert sha is not None and "creds.md" in home.repo.git.show("--name-only", "--format=", sha)
    assert home.dirty_paths() == [] and withheld(home) == {}
    assert "AKIA" not in home.repo.git.log("-p", "--all")


def test_credential_in_a_person_file_does_not_block_wakes(home: Home) -> None:
    engine = ScriptedEngine()
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: now)
    (home.root / "notes.md").write_text("aws key AKIAIOSFODNN7EXAMPLE\n")
    for i in range(2):
        (home.root / f"inbox/m{i}.md").write_text("hello\n")
        engine.enqueue_action("reply", text="hi")
        result = wake(agent, Event("message", "hello", now, name=f"m{i}", source=f"inbox/m{i}.md"))
        assert result.status == "ok" and result.commit is not None, result.error
    assert len(engine.requests) == 2
    assert home.dirty_paths() == ["notes.md"]
    assert (home.root / "outbox/notices.md").read_text().count("notes.md:1 (AWS access key id)") == 1
    assert "AKIA" not in home.repo.git.log("-p", "--all")


def git_commit(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), "commit", "-q", *args], capture_output=True, text=True)


def test_plain_git_commit_is_scanned_by_the_hook(home: Home) -> None:
    hook = home.root / ".git/hooks/pre-commit"
    assert hook.is_file() and os.access(hook, os.X_OK) and HOOK_MARKER in hook.read_text()
    assert sys.executable in hook.read_text()
    assert home.repo.git.ls_files(".git") == ""  # the hook is not part of the tree
    (home.root / "creds.md").write_text("line one\naws AKIAIOSFODNN7EXAMPLE\n")
    subprocess.run(["git", "-C", str(home.root), "add", "creds.md"], check=True)
    head = home.repo.head.commit.hexsha
    refused = git_commit(home.root, "-m", "my creds")
    assert refused.returncode != 0
    assert "creds.md:2 (AWS access key id)" in refused.stderr and "AKIAIOSFODNN7EXAMPLE" not in refused.stderr
    assert home.repo.head.commit.hexsha == head
    # the staged content is what counts, not the working tree
    (home.root / "creds.md").write_text("line one\n")
    assert git_commit(home.root, "-m", "still staged").returncode != 0
    subprocess.run(["git", "-C", str(home.root), "add", "creds.md"], check=True)
    clean = git_commit(home.root, "-m", "clean notes")
    assert clean.returncode == 0, clean.stderr
    assert home.repo.head.commit.hexsha != head


def test_hook_reinstalled_when_missing_and_a_person_hook_kept(home: Home) -> None:
    hook = home.root / ".git/hooks/pre-commit"
    hook.unlink()
    Home.open(home.root)
    assert HOOK_MARKER in hook.read_text()
    hook.write_text("#!/bin/sh\nexit 0\n")
    Home.open(home.root)
    assert hook.read_text() == "#!/bin/sh\nexit 0\n"


def test_masking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "correct-horse-battery")
    guard = SecretGuard(["DB_PASSWORD"])
    out = guard.mask("connect with correct-horse-battery and AKIAIOSFODNN7EXAMPLE\n" + PEM)
    assert "correct-horse-battery" not in out and "AKIAIOSFODNN7EXAMPLE" not in out
    assert "[REDACTED:$DB_PASSWORD]" in out and "[REDACTED:AWS access key id]" in out

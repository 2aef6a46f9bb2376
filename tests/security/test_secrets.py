"""Secrets never enter git (the commit is refused, nothing moves) and are masked in tool output."""

from __future__ import annotations

import pytest

from agentd.errors import SecretError
from agentd.home import AGENT, Home
from agentd.secrets import SecretGuard, scan_text

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
    with pytest.raises(SecretError):
        home.absorb_person_edits()


def test_masking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "correct-horse-battery")
    guard = SecretGuard(["DB_PASSWORD"])
    out = guard.mask("connect with correct-horse-battery and AKIAIOSFODNN7EXAMPLE\n" + PEM)
    assert "correct-horse-battery" not in out and "AKIAIOSFODNN7EXAMPLE" not in out
    assert "[REDACTED:$DB_PASSWORD]" in out and "[REDACTED:AWS access key id]" in out

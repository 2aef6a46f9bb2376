"""The shell policy holds against simple evasions; what it does not promise is pinned down too."""

from __future__ import annotations

import pytest

from agentd.tools.policy import ShellPolicy

POLICY = ShellPolicy("auto")

DENIED = [
    "rm -rf /", "rm -fr /*", "rm -rf ~", "rm -r --no-preserve-root /", '"rm" -rf /', "r''m -rf /",
    "sudo ls", "'s'u'do' ls", '"sudo" ls', "\\sudo ls", "/usr/bin/sudo ls", "FOO=1 sudo ls", "env sudo ls",
    "env -i PATH=/bin sudo ls", "command sudo ls", "exec sudo ls", "nohup sudo ls", "nice -n 5 sudo ls", "timeout 5 sudo ls",
    "xargs sudo rm", "ls; sudo ls", "ls && sudo ls", "false || sudo ls", "ls | sudo tee x", "echo $(sudo id)", "echo `sudo id`",
    "bash -c 'sudo id'", "sh -c \"bash -c 'sudo id'\"", "su -", "doas ls",
    "echo x > /etc/passwd", "echo x >> /usr/lib/x", "cp evil /usr/bin/ls", "tee /etc/hosts < x", "chmod -R 777 /",
    "mkfs.ext4 /dev/sda1", "dd if=/dev/zero of=/dev/sda", "shutdown -h now", "reboot",
    ":(){ :|:& };:", "curl -s http://127.0.0.1/x.sh | sh", "wget -qO- http://127.0.0.1/x | bash",
    "git push --force", "git push -f origin main", "git reset --hard HEAD~3", "git rebase -i HEAD~2", "git filter-branch --all", "git commit --amend -m x",
]

ALLOWED = [
    "ls -la", "git status", "git log --oneline -5", "git diff HEAD~1", "grep -rn TODO memory", "python3 scripts/report.py",
    "rm notes/old.md", "rm -rf build", "mkdir -p wiki && touch wiki/index.md", "echo hi > notes/x.md", "cat USER.md | wc -l",
    "find . -name '*.md' | head", "sed -n 1,10p AGENT.md", "curl -s http://127.0.0.1:8000/health", "date",
]


@pytest.mark.parametrize("command", DENIED)
def test_denied(command: str) -> None:
    decision = POLICY.decide(command)
    assert decision.action == "deny", (command, decision)
    assert decision.rule.startswith("built-in:")


@pytest.mark.parametrize("command", ALLOWED)
def test_allowed(command: str) -> None:
    assert POLICY.decide(command).action == "allow", command


def test_modes_and_person_rules() -> None:
    assert ShellPolicy("deny").decide("ls").action == "deny"
    assert ShellPolicy("ask").decide("ls").action == "ask"
    assert ShellPolicy("ask").decide("sudo ls").action == "deny"
    p = ShellPolicy("auto", allow=(r"sudo apt-get update",), deny=(r"\bcurl\b",))
    assert p.decide("sudo apt-get update").action == "allow"
    assert p.decide("sudo apt-get install x").action == "deny"
    assert p.decide("curl http://127.0.0.1").rule == r"shell.deny: \bcurl\b"


# What the policy does NOT promise: it is a guard-rail against mistakes, not a sandbox.
# These pass today; if one starts being denied, move it up to DENIED.
NOT_PROMISED = [
    "x=su; y=do; $x$y ls",  # commands assembled at run time
    "eval \"$(printf 'c3VkbyBscw==' | base64 -d)\"",  # decoded at run time
    "python3 -c 'import os; os.system(\"sudo ls\")'",  # interpreters
    "perl -e 'system(\"rm -rf /\")'",
    "printf 'sudo ls' > s.sh && bash s.sh",  # a script written, then run
]


@pytest.mark.parametrize("command", NOT_PROMISED)
def test_what_the_policy_does_not_promise(command: str) -> None:
    assert POLICY.decide(command).action == "allow"

"""Secrets never enter git or the context: a pre-commit scan, and masking of tool output.

``python -m agentd.secrets --staged`` is the home's git pre-commit hook: it scans what
is staged, so a plain ``git commit`` (the person's, or one the agent's shell runs) is
refused the same way agentd's own commits are.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from agentd.errors import AgentdError, SecretError

if TYPE_CHECKING:
    from agentd.home import Home

SCAN_BYTES = 4 * 1024 * 1024
MIN_ENV_SECRET = 6

PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("AWS secret key", re.compile(r"(?i)aws_?secret_?(?:access_?)?key\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}\b")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("Slack token", re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b")),
    ("OpenAI-style API key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("Stripe key", re.compile(r"\b[sr]k_live_[0-9A-Za-z]{20,}\b")),
]
# password = "…", api_key: …, token=…: flagged only when the value looks random.
ASSIGNMENT = re.compile(r"(?i)\b(password|passwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|token)\b\s*[:=]\s*['\"]?([^\s'\"]{12,})")


def entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


def scan_text(text: str) -> list[tuple[int, str]]:
    """(line, kind) for each credential-looking thing in ``text``."""
    found: list[tuple[int, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for kind, pattern in PATTERNS:
            if pattern.search(line):
                found.append((lineno, kind))
                break
        else:
            m = ASSIGNMENT.search(line)
            if m and entropy(m.group(2)) >= 3.5 and re.search(r"\d", m.group(2)) and re.search(r"[A-Za-z]", m.group(2)):
                found.append((lineno, f"{m.group(1).lower()} assignment"))
    return found


Finding = tuple[str, int, str]  # (path, line, kind): never the secret itself


def refusal(findings: list[Finding]) -> str:
    """The refusal message: file:line and kind of each finding, never the value."""
    problems = [f"{rel}:{line} ({kind})" for rel, line, kind in findings]
    shown = "; ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
    # Worded so that the message, quoted in a notice, does not itself look like a credential.
    return f"refusing to commit {shown}: a credential must not enter git. Remove it (or move it to an environment variable) and try again; nothing was committed"


def secret_env_names(home_root: Path) -> tuple[str, ...]:
    """``secrets.env`` from agent.yaml, read leniently: a broken file must not switch the scan off."""
    from agentd.config import CONFIG_FILE, parse_document

    path = home_root / CONFIG_FILE
    try:
        doc = parse_document(path.read_text(encoding="utf-8"), path)
    except (AgentdError, OSError, UnicodeDecodeError):
        return ()
    section = doc.get("secrets")
    names = section.get("env") if isinstance(section, dict) else None
    return tuple(n for n in names if isinstance(n, str)) if isinstance(names, list) else ()


class SecretGuard:
    """Knows the secret values (env vars agent.yaml names) and the credential patterns."""

    def __init__(self, env_names: Iterable[str] = ()) -> None:
        self.values = {name: os.environ[name] for name in env_names if len(os.environ.get(name, "")) >= MIN_ENV_SECRET}

    @classmethod
    def for_home(cls, home_root: Path) -> SecretGuard:
        return cls(secret_env_names(home_root))

    def scan(self, text: str) -> list[tuple[int, str]]:
        found = scan_text(text)
        for lineno, line in enumerate(text.splitlines(), 1):
            for name, value in self.values.items():
                if value in line:
                    found.append((lineno, f"value of ${name}"))
        return sorted(set(found))

    def findings(self, files: Iterable[tuple[str, bytes]]) -> list[Finding]:
        """(path, line, kind) for each credential in ``files`` ((path, content) pairs); binaries are skipped."""
        found: list[Finding] = []
        for rel, data in files:
            if b"\0" in data[:8192]:
                continue  # binary
            found += [(rel, line, kind) for line, kind in self.scan(data[:SCAN_BYTES].decode("utf-8", errors="replace"))]
        return found

    def check_commit(self, home: Home, staged: list[str]) -> None:
        """Home's pre-commit check: refuse, naming file:line and kind (never the secret)."""
        found = self.findings(working_tree_files(home.root, staged))
        if found:
            raise SecretError(refusal(found), found)

    def mask(self, text: str) -> str:
        """Replace secret values and credential patterns before text enters the context or the ledger."""
        for name, value in self.values.items():
            text = text.replace(value, f"[REDACTED:${name}]")
        for kind, pattern in PATTERNS:
            text = pattern.sub(f"[REDACTED:{kind}]", text)
        def assignment(m: re.Match[str]) -> str:
            value = m.group(2)
            if value.startswith("[REDACTED") or entropy(value) < 3.5:
                return m.group(0)  # masking twice changes nothing
            return m.group(0).replace(value, "[REDACTED]")

        return ASSIGNMENT.sub(assignment, text)


def working_tree_files(root: Path, paths: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    for rel in paths:
        path = root / rel
        if path.is_file():
            with open(path, "rb") as fh:
                yield rel, fh.read(SCAN_BYTES)


def staged_files(root: Path) -> Iterator[tuple[str, bytes]]:
    """What the coming commit holds (the index git gives the hook, ``GIT_INDEX_FILE`` included)."""
    names = subprocess.run(
        ["git", "diff", "--cached", "--name-only", "-z", "--diff-filter=ACMRT"],
        cwd=root, capture_output=True, check=True,
    ).stdout.decode("utf-8", errors="surrogateescape")
    for rel in filter(None, names.split("\0")):
        blob = subprocess.run(["git", "cat-file", "blob", f":{rel}"], cwd=root, capture_output=True)
        if blob.returncode == 0:
            yield rel, blob.stdout[:SCAN_BYTES]


HOOK_MARKER = "# agentd secret scan"


def hook_script(python: str = sys.executable) -> str:
    """The home's .git/hooks/pre-commit: the same scan as agentd's own commits, by this interpreter."""
    return (
        "#!/bin/sh\n"
        f"{HOOK_MARKER}: installed by agentd; refuses a commit that would put a credential into git.\n"
        # -P: the home (the hook's working directory) must not shadow the agentd package.
        f"exec {shlex.quote(python)} -P -m agentd.secrets --staged\n"
    )


def install_hook(home_root: Path) -> bool:
    """Write the home's pre-commit hook if it is missing (or ours, naming an interpreter that is gone).

    A hook the person wrote is left alone. Returns whether the hook was written.
    """
    hook = home_root / ".git" / "hooks" / "pre-commit"
    if hook.exists():
        text = hook.read_text(encoding="utf-8", errors="replace")
        if HOOK_MARKER not in text:
            return False
        words = shlex.split(text.splitlines()[-1]) if text.strip() else []
        if len(words) > 1 and Path(words[1]).exists():
            return False
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(hook_script(), encoding="utf-8")
    hook.chmod(0o755)
    return True


def main(argv: list[str] | None = None) -> int:
    """``--staged``: scan the index of the repository in the current directory; exit 1 on a finding."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["--staged"]:
        print("usage: python -m agentd.secrets --staged", file=sys.stderr)
        return 2
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if top.returncode != 0:
        print(top.stderr.strip() or "not in a git repository", file=sys.stderr)
        return 2
    root = Path(top.stdout.strip())
    try:
        found = SecretGuard.for_home(root).findings(staged_files(root))
    except subprocess.CalledProcessError as e:  # git could not list the index: say so, refuse
        detail = (e.stderr or b"").decode("utf-8", errors="replace").strip()
        print(f"agentd: could not read what is staged ({detail or f'git exited {e.returncode}'}); commit refused", file=sys.stderr)
        return 2
    if found:
        print(f"agentd: {refusal(found)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

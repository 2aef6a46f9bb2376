"""Secrets never enter git or the context: a pre-commit scan, and masking of tool output."""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from agentd.errors import SecretError

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


class SecretGuard:
    """Knows the secret values (env vars agent.yaml names) and the credential patterns."""

    def __init__(self, env_names: Iterable[str] = ()) -> None:
        self.values = {name: os.environ[name] for name in env_names if len(os.environ.get(name, "")) >= MIN_ENV_SECRET}

    def scan(self, text: str) -> list[tuple[int, str]]:
        found = scan_text(text)
        for lineno, line in enumerate(text.splitlines(), 1):
            for name, value in self.values.items():
                if value in line:
                    found.append((lineno, f"value of ${name}"))
        return sorted(set(found))

    def check_commit(self, home: Home, staged: list[str]) -> None:
        """The home's pre-commit hook: refuse, naming file:line and kind (never the secret)."""
        problems = []
        for rel in staged:
            path = home.root / rel
            if not path.is_file():
                continue
            with open(path, "rb") as fh:
                data = fh.read(SCAN_BYTES)
            if b"\0" in data[:8192]:
                continue  # binary
            for line, kind in self.scan(data.decode("utf-8", errors="replace")):
                problems.append(f"{rel}:{line} ({kind})")
        if problems:
            shown = "; ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
            # Worded so that the message, quoted in a notice, does not itself look like a credential.
            raise SecretError(f"refusing to commit {shown}: a credential must not enter git. Remove it (or move it to an environment variable) and try again; nothing was committed")

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

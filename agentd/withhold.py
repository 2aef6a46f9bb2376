"""Withholding: the person's files that hold a credential stay out of git, and the person is told once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentd.errors import SecretError
from agentd.fileio import atomic_write, file_digest
from agentd.secrets import Finding

if TYPE_CHECKING:
    from agentd.home import Home

WITHHELD = "withheld.json"  # in .agentd/: the person's files left out of git for a credential


def find_secrets(home: Home, dirty: list[str]) -> dict[str, list[Finding]]:
    """The files among ``dirty`` that the home's pre-commit check refuses, each with its findings."""
    if home.pre_commit is None or not dirty:
        return {}
    try:
        home.pre_commit(home, dirty)
        return {}
    except SecretError as e:
        findings = e.findings
    if not findings:  # a check that does not say where: find the files one by one
        for rel in dirty:
            try:
                home.pre_commit(home, [rel])
            except SecretError as e:
                findings += e.findings or [(rel, 0, "credential")]
    held: dict[str, list[Finding]] = {}
    for f in findings:
        held.setdefault(f[0], []).append(f)
    return held


def withheld(home: Home) -> dict[str, list[Finding]]:
    """The person's files left uncommitted because they hold a credential, with (path, line, kind)."""
    return {rel: [(rel, int(line), str(kind)) for line, kind in v.get("findings", [])] for rel, v in _read(home.runtime).items()}


def still_withheld(home: Home) -> list[str]:
    """The withheld files the person has not changed since: a commit of everything leaves them out."""
    return [rel for rel, v in _read(home.runtime).items() if v.get("sha") == file_digest(home.root / rel)]


def record_withheld(home: Home, held: dict[str, list[Finding]], *, tell: bool = True) -> None:
    """Record what is withheld now; tell the person of each file withheld anew (file:line and kind, never the value).

    ``tell`` False: the caller has told the person itself (a merge's report).
    """
    told = _read(home.runtime)
    _write(home, held)
    if not tell:
        return
    news = [f for rel, findings in held.items() if told.get(rel, {}).get("sha") != file_digest(home.root / rel) for f in findings]
    if news:
        where = "; ".join(f"{rel}:{line} ({kind})" for rel, line, kind in news[:5]) + (f" and {len(news) - 5} more" if len(news) > 5 else "")
        home.notify(
            f"I left your edit out of git because it looks like a credential: {where}. "
            "It stays in your working tree, uncommitted; once you remove it (or move it to an "
            "environment variable) it is committed as your edit."
        )


def _read(runtime: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((runtime / WITHHELD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def _write(home: Home, held: dict[str, list[Finding]]) -> None:
    record = {rel: {"sha": file_digest(home.root / rel), "findings": [[line, kind] for _, line, kind in fs]} for rel, fs in held.items()}
    if record != _read(home.runtime):  # most absorbs hold nothing back: no write then
        atomic_write(home.runtime / WITHHELD, json.dumps(record, sort_keys=True))

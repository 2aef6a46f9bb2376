"""HEARTBEAT.md: open items the agent checks each heartbeat, and cheap shell checks run first.

    - [ ] an open item (wakes the model)          - [x] a done item (ignored)
    ## Checks
    - `git -C ~/src/app status --porcelain`  uncommitted work

With no open items and no checks the heartbeat costs nothing: no engine call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from agentd.errors import SourceError

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_TASK = re.compile(r"^\s*[-*+]\s+\[( |x|X)\]\s*(.*)$")
_CHECK = re.compile(r"^\s*[-*+]\s+`([^`]+)`\s*(.*)$")


@dataclass(frozen=True)
class Item:
    text: str
    line: int


@dataclass(frozen=True)
class Check:
    command: str
    label: str
    line: int


@dataclass
class HeartbeatPlan:
    open_items: list[Item] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.open_items and not self.checks


def parse_heartbeat_md(text: str, path: Path | str) -> HeartbeatPlan:
    plan = HeartbeatPlan()
    text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    in_checks = False
    for i, line in enumerate(text.split("\n"), 1):
        if line.startswith("#"):
            in_checks = line.lstrip("#").strip().lower() == "checks"
            continue
        task = _TASK.match(line)
        if task:  # a checkbox is an item wherever it stands, never a check
            if task.group(1) == " " and task.group(2).strip():
                plan.open_items.append(Item(task.group(2).strip(), i))
            continue
        if in_checks:
            if not line.strip() or not re.match(r"^\s*[-*+]\s", line):
                continue
            m = _CHECK.match(line)
            if m and m.group(1).strip():
                plan.checks.append(Check(m.group(1).strip(), m.group(2).strip(), i))
            else:
                plan.errors.append(SourceError(path, i, "a check is a bullet with a command in backticks, e.g. - `git status --porcelain`"))
            continue
    return plan

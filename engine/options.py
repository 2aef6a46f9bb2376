"""Typed checks for settings written in agent.yaml, shared by agentd's config and the backends' own sections."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A check takes the YAML value and returns the typed value, or raises ValueError
# whose text is what was expected ("a whole number ≥ 256").
Check = Callable[[Any], Any]


@dataclass(frozen=True)
class Option:
    """One setting in a backend's section, ``engine.<backend>.<name>``; left out or empty, it is ``default``."""

    check: Check
    default: Any = None


def choice(*options: str) -> Check:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError("one of " + ", ".join(options))
        return str(v)

    return check


def whole_number(lo: int, hi: int | None = None) -> Check:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            raise ValueError(f"a whole number ≥ {lo}" + (f" and ≤ {hi}" if hi is not None else ""))
        return int(v)

    return check


def number(lo: float, hi: float | None = None, *, what: str) -> Check:
    """A finite number above ``lo`` (and at most ``hi``); ``what`` says so in the person's terms."""

    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= lo or (hi is not None and v > hi):
            raise ValueError(what)
        return float(v)

    return check


def text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError("a non-empty string")
    return v


def arguments(v: Any) -> list[str]:
    """Extra command-line arguments for an engine process."""
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v):
        raise ValueError('a list of command-line arguments, e.g. ["--max-num-seqs", "8"]')
    return [str(x) for x in v]

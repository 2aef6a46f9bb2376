"""Merge-wake doubles: scripted answers to the memory merge wake, for a ScriptedEngine queue.

``careful_merge`` is a rule, not a model: it folds lines equal but for case and
punctuation (saying where each went) and names as contradictions two lines that are
the same but for their last word. ``garbage`` and ``dropping`` are the failures a
real model may produce; the merge must reject both and keep the union.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from agentd.merge.kinds import union_lines
from engine.types import ChatResult, Usage

Responder = Callable[[list[dict[str, Any]]], ChatResult]


def _result(content: str) -> ChatResult:
    return ChatResult(content, [], "stop", Usage(0, len(content) // 4, None, 0.01, 0.02), "merge-double")


def _sections(prompt: str) -> tuple[list[str], list[str], list[str]]:
    parts = re.split(r"^=== (OURS|THEIRS|UNION[^=]*) ===$", prompt, flags=re.M)
    named = {parts[i].split()[0]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    return named["OURS"].splitlines(), named["THEIRS"].splitlines(), named["UNION"].strip("\n").splitlines()


def _key(line: str) -> str:
    return re.sub(r"[^\w ]", "", line.lower()).strip()


def careful_merge(messages: list[dict[str, Any]]) -> ChatResult:
    """Fold near-duplicates of the union into their first line; report last-word contradictions.

    Asked instead for a suggested merge of a steering file (the report's), it suggests both versions' lines.
    """
    prompt = messages[-1]["content"]
    if prompt.startswith("=== THIS HOME ==="):
        ours, theirs = prompt.removeprefix("=== THIS HOME ===\n").split("=== THE OTHER HOME ===\n")
        return _result(union_lines(ours, theirs))
    _, _, union = _sections(prompt)
    merged: list[str] = []
    first: dict[str, str] = {}
    moved = []
    for line in union:
        k = _key(line)
        if line.strip() and k in first and line.strip() != first[k].strip():
            moved.append({"line": line, "now": first[k]})
            continue
        if line.strip():
            first.setdefault(k, line)
        merged.append(line)
    stems: dict[str, str] = {}
    contradictions = []
    for line in merged:
        words = line.strip().rstrip(".").split()
        if len(words) < 4 or not line.startswith("- "):
            continue
        stem = " ".join(words[:-1]).lower()
        if stem in stems and stems[stem] != line:
            contradictions.append({"a": stems[stem], "b": line})
        stems.setdefault(stem, line)
    return _result(json.dumps({"merged": "\n".join(merged) + "\n", "moved": moved, "contradictions": contradictions}))


def garbage(messages: list[dict[str, Any]]) -> ChatResult:
    return _result("Sure! Here is the merged memory: {not json")


def dropping(messages: list[dict[str, Any]]) -> ChatResult:
    """A well-formed answer that silently leaves out the union's last fact."""
    _, _, union = _sections(messages[-1]["content"])
    facts = [i for i, x in enumerate(union) if x.startswith("- ")]
    kept = [x for i, x in enumerate(union) if not facts or i != facts[-1]]
    return _result(json.dumps({"merged": "\n".join(kept) + "\n", "moved": [], "contradictions": []}))

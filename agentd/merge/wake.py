"""The memory merge wake: the model merges one memory file from both sides, and must account for every line.

The model gets both sides and their deterministic union and answers, under a JSON
schema, the merged file, for each line of either side it does not keep verbatim the
merged line that now holds it, and the contradictions it saw. An answer that is not
that JSON, or that drops a line without saying where it went, is rejected and the
union is kept: the model may only make the file better, never lose a line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agentd.merge.kinds import content_lines
from engine.errors import EngineError
from engine.types import ChatEngine

INSTRUCTION = """\
Two copies of one agent kept the same memory file apart and now become one agent.
Merge the file: keep every fact, write each fact once (fold two lines that say the
same thing into one), keep the headings. Answer with JSON only:
- "merged": the merged file, as text;
- "moved": for every line of OURS or THEIRS that is not in "merged" word for word,
  {"line": that line exactly, "now": the line of "merged" that now holds its fact};
- "contradictions": pairs of lines that cannot both be true, {"a": line, "b": line}.
Never leave a line out of both "merged" and "moved"."""

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "merged": {"type": "string"},
        "moved": {
            "type": "array",
            "items": {"type": "object", "properties": {"line": {"type": "string"}, "now": {"type": "string"}}, "required": ["line", "now"]},
        },
        "contradictions": {
            "type": "array",
            "items": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a", "b"]},
        },
    },
    "required": ["merged", "moved", "contradictions"],
}


@dataclass
class MemoryMerge:
    """The outcome for one memory file."""

    path: str
    text: str  # what the file holds after the merge
    by_model: bool  # the model's file was taken (else the deterministic union)
    kept: int = 0  # lines of either side found word for word in the result
    folded: int = 0  # lines of either side the model folded into another line (accounted for)
    contradictions: list[tuple[str, str]] = field(default_factory=list)
    rejected: str | None = None  # why the model's answer was not taken
    moved: dict[str, str] = field(default_factory=dict)  # line of a side → the merged line that holds it


def _norm(line: str) -> str:
    return line.strip()


def check_answer(answer: Any, sides: list[str]) -> tuple[str, dict[str, str]]:
    """Validate the model's answer against the lines of both sides; returns (merged text, line → holder).

    Raises ValueError saying the first line unaccounted for, or what is malformed.
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("merged"), str) or not isinstance(answer.get("moved"), list):
        raise ValueError("not the JSON asked for (merged, moved, contradictions)")
    merged: str = answer["merged"]
    present = {_norm(x) for x in merged.splitlines() if x.strip()}
    moved: dict[str, str] = {}
    for m in answer["moved"]:
        if not isinstance(m, dict) or not isinstance(m.get("line"), str) or not isinstance(m.get("now"), str):
            raise ValueError("a 'moved' entry is not {line, now}")
        if _norm(m["now"]) not in present:
            raise ValueError(f"'moved' names a merged line that is not in the merged file: {m['now'][:80]!r}")
        moved[_norm(m["line"])] = _norm(m["now"])
    for line in sides:
        if _norm(line) not in present and _norm(line) not in moved:
            raise ValueError(f"dropped a line without saying where it went: {line[:80]!r}")
    return merged if merged.endswith("\n") else merged + "\n", moved


def _contradictions(answer: Any, sides: set[str]) -> list[tuple[str, str]]:
    """The pairs whose both lines really are lines of the two sides (a model may invent)."""
    out: list[tuple[str, str]] = []
    items = answer.get("contradictions") if isinstance(answer, dict) else None
    for c in items if isinstance(items, list) else []:
        if isinstance(c, dict) and _norm(str(c.get("a", ""))) in sides and _norm(str(c.get("b", ""))) in sides:
            pair = (_norm(str(c["a"])), _norm(str(c["b"])))
            if pair[0] != pair[1] and pair not in out:
                out.append(pair)
    return out


def merge_memory(
    path: str,
    ours: str,
    theirs: str,
    union: str,
    engine: ChatEngine | None,
    *,
    max_tokens: int = 4096,
) -> MemoryMerge:
    """One memory file: the model's merge if it accounts for every line, else the union."""
    sides = list(dict.fromkeys(content_lines(ours) + content_lines(theirs)))
    side_set = {_norm(x) for x in sides}

    def union_result(why: str | None, contradictions: list[tuple[str, str]] | None = None) -> MemoryMerge:
        kept = sum(1 for x in side_set if x in {_norm(y) for y in union.splitlines()})
        return MemoryMerge(path, union, False, kept=kept, contradictions=contradictions or [], rejected=why)

    if engine is None:
        return union_result(None)
    prompt = f"File: {path}\n\n=== OURS ===\n{ours}\n=== THEIRS ===\n{theirs}\n=== UNION (nothing lost, duplicates possible) ===\n{union}"
    try:
        result = engine.chat(
            [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": prompt}],
            response_format={"type": "json_schema", "json_schema": {"name": "memory_merge", "schema": SCHEMA}},
            max_tokens=max_tokens,
            temperature=0.0,
        )
    except EngineError as e:
        return union_result(f"the engine failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    try:
        answer = json.loads(result.content)
    except json.JSONDecodeError:
        return union_result("the answer was not JSON")
    contradictions = _contradictions(answer, side_set)
    try:
        text, moved = check_answer(answer, sides)
    except ValueError as e:
        return union_result(str(e), contradictions)
    present = {_norm(x) for x in text.splitlines() if x.strip()}
    kept = sum(1 for x in side_set if x in present)
    folded = {x: moved[x] for x in side_set if x not in present}
    return MemoryMerge(path, text, True, kept=kept, folded=len(folded), contradictions=contradictions, moved=folded)

"""The memory merge wake: the model merges one memory file from both sides, and must account for every line.

The model gets both sides and their deterministic union and answers, under a JSON
schema, the merged file, for each line of either side it does not keep verbatim the
merged line that now holds it, and the contradictions it saw. An answer that is not
that JSON, that drops a line without saying where it went, or that brings back a line
one home deleted, is rejected and the union is kept: the model may only make the file
better, never lose a line.

A file whose prompt would not fit the engine's context window is merged in chunks: its
``#`` sections, aligned on both sides by heading, grouped so that each request fits; a
chunk whose answer is rejected keeps its part of the union, the others keep the model's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentd.merge.kinds import content_lines
from agentd.merge.sections import Chunk, chunks_for
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
    chunks: int = 1  # requests the file was merged in (more than one: it did not fit the context window)


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
    context_window: int | None = None,
) -> MemoryMerge:
    """One memory file: the model's merge if it accounts for every line, else the union.

    A line of either side that is not in ``union`` was deleted on purpose (the base had
    it, one side deleted it): the model need not account for it and must not bring it back.
    ``context_window``: the engine's, in tokens; a prompt that would not fit is split.
    """
    if engine is None:
        return _union_result(path, ours, theirs, union, None)
    parts = chunks_for(ours, theirs, union, fits=_fits(engine, path, max_tokens, context_window))
    # With a known window each request asks for no more answer than was left room for.
    answer = (lambda c: _answer_budget(c, max_tokens)) if context_window else (lambda c: max_tokens)  # noqa: E731
    if len(parts) == 1 and parts[0].fits:
        return _merge_chunk(path, parts[0], engine, answer(parts[0]))
    results = [
        _merge_chunk(path, part, engine, answer(part)) if part.fits
        else _union_result(path, part.ours, part.theirs, part.union, "larger than the engine's context window")
        for part in parts
    ]
    # Each part as its union ended: a blank line before the next section, none inside one.
    text = "".join(r.text.rstrip("\n") + ("\n\n" if p.union.endswith("\n\n") else "\n") for p, r in zip(parts, results, strict=True) if r.text.strip())
    text = text.rstrip("\n") + "\n"
    kept_lines = {_norm(x) for x in text.splitlines() if x.strip()}
    sides = {_norm(x) for x in content_lines(ours) + content_lines(theirs)} & {_norm(x) for x in union.splitlines()}
    moved = {k: v for r in results for k, v in r.moved.items() if k not in kept_lines}
    rejected = [f"{p.title}: {r.rejected}" for p, r in zip(parts, results, strict=True) if r.rejected]
    return MemoryMerge(
        path, text, any(r.by_model for r in results), kept=len(sides & kept_lines), folded=len(moved),
        contradictions=[c for r in results for c in r.contradictions], rejected="; ".join(rejected) or None, moved=moved,
        chunks=len(parts),
    )


def _fits(engine: ChatEngine, path: str, max_tokens: int, window: int | None) -> Callable[[Chunk], bool]:
    """Whether one request for ``chunk`` leaves room in ``window`` for its answer (about the union's size, twice)."""

    def fits(chunk: Chunk) -> bool:
        if window is None:
            return True
        messages = _messages(path, chunk)
        tokens = engine.tokenize(messages)
        used = len(tokens) if tokens is not None else sum(len(m["content"]) for m in messages) // 3
        return used + _answer_budget(chunk, max_tokens) <= window

    return fits


def _answer_budget(chunk: Chunk, max_tokens: int) -> int:
    return min(max_tokens, 2 * len(chunk.union) // 3 + 256)


def _messages(path: str, chunk: Chunk) -> list[dict[str, Any]]:
    deleted = [x for x in dict.fromkeys(content_lines(chunk.ours) + content_lines(chunk.theirs)) if _norm(x) not in _lines(chunk.union)]
    gone = "=== DELETED ON PURPOSE (one home deleted these; leave them out) ===\n" + "\n".join(deleted) + "\n" if deleted else ""
    where = f"File: {path}" + (f" (part: {chunk.title})" if chunk.title else "")
    prompt = f"{where}\n\n{gone}=== OURS ===\n{chunk.ours}\n=== THEIRS ===\n{chunk.theirs}\n=== UNION (nothing lost, duplicates possible) ===\n{chunk.union}"
    return [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": prompt}]


def _lines(text: str) -> set[str]:
    return {_norm(x) for x in text.splitlines() if x.strip()}


def _union_result(path: str, ours: str, theirs: str, union: str, why: str | None, contradictions: list[tuple[str, str]] | None = None) -> MemoryMerge:
    have = _lines(union)
    kept = len({_norm(x) for x in content_lines(ours) + content_lines(theirs)} & have)
    return MemoryMerge(path, union, False, kept=kept, contradictions=contradictions or [], rejected=why)


def _merge_chunk(path: str, chunk: Chunk, engine: ChatEngine, max_tokens: int) -> MemoryMerge:
    """One request: the model's merge of ``chunk`` if it accounts for every line of the union, else the union."""
    ours, theirs, union = chunk.ours, chunk.theirs, chunk.union
    have = _lines(union)
    sides = list(dict.fromkeys(content_lines(ours) + content_lines(theirs)))
    side_set = {_norm(x) for x in sides}
    deleted = side_set - have
    try:
        result = engine.chat(
            _messages(path, chunk),
            response_format={"type": "json_schema", "json_schema": {"name": "memory_merge", "schema": SCHEMA}},
            max_tokens=max_tokens,
            temperature=0.0,
        )
    except EngineError as e:
        return _union_result(path, ours, theirs, union, f"the engine failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    try:
        answer = json.loads(result.content)
    except json.JSONDecodeError:
        return _union_result(path, ours, theirs, union, "the answer was not JSON")
    contradictions = _contradictions(answer, side_set)
    try:
        text, moved = check_answer(answer, [x for x in sides if _norm(x) in have])
        back = [x for x in text.splitlines() if _norm(x) in deleted]
        if back:
            raise ValueError(f"brought back a line one home deleted: {back[0][:80]!r}")
    except ValueError as e:
        return _union_result(path, ours, theirs, union, str(e), contradictions)
    present = _lines(text)
    folded = {x: moved[x] for x in side_set - deleted if x not in present}
    return MemoryMerge(path, text, True, kept=len(side_set & present), folded=len(folded), contradictions=contradictions, moved=folded)

"""A memory file too large for the engine's context window: merged in chunks of aligned sections, not left as the union."""

from __future__ import annotations

from typing import Any

from agentd.merge.kinds import content_lines, union_lines
from agentd.merge.sections import chunks_for, split_sections
from agentd.merge.wake import MemoryMerge, merge_memory
from tests.doubles.merge_model import careful_merge
from tests.doubles.scripted_engine import ScriptedEngine

TOPICS = ["People", "Servers", "Garden", "Travel", "Books", "Health"]


def side(tag: str, n: int = 12) -> str:
    """A memory file of six sections; each side has its own facts, one shared, one near-duplicate of it."""
    parts = ["# Memory\n"]
    for t in TOPICS:
        facts = [f"- {t} fact {tag}{i} is about the {t.lower()} number {i}" for i in range(n)]
        facts += [f"- The {t.lower()} shared fact", f"- the {t.lower()} shared fact." if tag == "t" else f"- The {t.lower()} shared fact"]
        if t in ("Servers", "Travel"):
            facts.append(f"- The {t.lower()} thing runs on port {'8080' if tag == 'o' else '9090'}")
        parts.append(f"\n## {t}\n" + "\n".join(dict.fromkeys(facts)) + "\n")
    return "".join(parts)


OURS, THEIRS = side("o"), side("t")
UNION = union_lines(OURS, THEIRS)


def prompt_tokens(request: dict[str, Any]) -> int:
    return sum(len(m["content"]) for m in request["messages"]) // 3


def test_sections_are_aligned_on_both_sides_by_heading() -> None:
    parts = chunks_for(OURS, THEIRS, UNION, fits=lambda c: len(c.union) < 2400)
    assert len(parts) > 1 and all(p.fits for p in parts)
    for p in parts:
        heads = [k for k, _ in split_sections(p.union) if k]
        assert [k for k, _ in split_sections(p.ours) if k] == heads == [k for k, _ in split_sections(p.theirs) if k]
    assert "".join(p.union for p in parts) == UNION  # nothing of the union left out or repeated


def test_a_file_over_the_context_window_is_merged_in_chunks_by_the_model_with_nothing_lost() -> None:
    window = 2500
    whole = sum(len(x) for x in (OURS, THEIRS, UNION)) // 3
    assert whole > window, "the file must not fit the window in one request"
    engine = ScriptedEngine()
    engine.queue.extend([careful_merge] * 20)
    result = merge_memory("memory/MEMORY.md", OURS, THEIRS, UNION, engine, context_window=window)
    assert result.chunks == len(engine.requests) > 1 and result.by_model and result.rejected is None
    assert all(prompt_tokens(r) + r["max_tokens"] <= window for r in engine.requests), "every request fits the window"
    text = result.text
    for line in set(content_lines(OURS)) | set(content_lines(THEIRS)):
        assert line.strip() in {x.strip() for x in text.splitlines()} or line.strip() in result.moved, line
    assert result.folded == len(TOPICS)  # one near-duplicate per section folded
    assert sorted(b for _, b in result.contradictions) == ["- The servers thing runs on port 9090", "- The travel thing runs on port 9090"]
    assert [ln for ln in text.splitlines() if ln.startswith("## ")] == [f"## {t}" for t in TOPICS]


def test_without_a_window_the_file_is_one_request() -> None:
    engine = ScriptedEngine()
    engine.queue.append(careful_merge)
    assert merge_memory("memory/MEMORY.md", OURS, THEIRS, UNION, engine).chunks == 1 and len(engine.requests) == 1


def accounted(result: MemoryMerge, *sides: str) -> bool:
    now = {x.strip() for x in result.text.splitlines()}
    return all(x.strip() in now or result.moved.get(x.strip()) in now for side in sides for x in content_lines(side))


def test_a_section_larger_than_the_window_is_cut_between_lines_and_still_merged_by_the_model() -> None:
    big_o, big_t = side("o", n=120), side("t", n=120)
    ours = OURS + "\n## Huge\n" + big_o.split("## Health\n")[1].replace("health", "huge")
    theirs = THEIRS + "\n## Huge\n" + big_t.split("## Health\n")[1].replace("health", "huge")
    union = union_lines(ours, theirs)
    engine = ScriptedEngine()
    engine.queue.extend([careful_merge] * 40)
    result = merge_memory("memory/MEMORY.md", ours, theirs, union, engine, context_window=3000)
    assert result.by_model and result.rejected is None and result.chunks > len(TOPICS) + 1
    assert all(prompt_tokens(r) + r["max_tokens"] <= 3000 for r in engine.requests)
    assert accounted(result, ours, theirs) and result.text.count("## Huge") == 1
    huge = [r for r in engine.requests if "(part: ## Huge (part" in r["messages"][-1]["content"]]
    assert len(huge) > 1, "the huge section went in several requests"


def test_a_line_larger_than_the_window_keeps_its_union_and_the_rest_is_merged() -> None:
    long = "- " + "a very long line " * 400 + "end"
    ours, theirs = OURS + "\n## Long\n" + long + "\n", THEIRS + "\n## Long\n" + long + "\n"
    union = union_lines(ours, theirs)
    engine = ScriptedEngine()
    engine.queue.extend([careful_merge] * 20)
    result = merge_memory("memory/MEMORY.md", ours, theirs, union, engine, context_window=2500)
    assert result.by_model and result.rejected is not None and "larger than the engine's context window" in result.rejected
    assert long in result.text and accounted(result, ours, theirs)
    assert result.folded == len(TOPICS)  # the sections that fit were still merged by the model

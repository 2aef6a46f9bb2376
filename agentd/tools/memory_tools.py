"""Memory and skill tools: remember, forget, memory_search, read_skill, briefing_inputs, kb_compile, kb_lint."""

from __future__ import annotations

from typing import Any

from agentd.errors import ToolError
from agentd.skills import load_skills
from agentd.tools.base import Tool, ToolContext
from engine.types import ChatEngine
from memory import curated, wiki
from memory.briefing import gather_briefing_inputs
from memory.search import SearchIndex


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


class RememberTool(Tool):
    name = "remember"
    description = """Save a fact for the long term: it goes into memory/topics/<topic>.md and
    MEMORY.md keeps a one-line index entry for the topic. Use it for anything you must
    still know after this conversation is gone."""
    parameters = _obj({"topic": {"type": "string", "minLength": 1, "maxLength": 80, "description": "A short topic name, e.g. 'plants'."},
                       "fact": {"type": "string", "minLength": 1, "maxLength": 500, "description": "One fact, one line."}}, ["topic", "fact"])

    def run(self, ctx: ToolContext, **args: Any) -> str:
        try:
            changed = curated.remember(ctx.home, str(args["topic"]), str(args["fact"]), budget_chars=ctx.config.budgets.memory_chars)
        except ValueError as e:
            raise ToolError(str(e)) from None
        for rel in changed:
            ctx.note_change(rel)
        note = curated.budget_note(ctx.home, ctx.config.budgets.memory_chars)
        return f"remembered under {curated.slug(str(args['topic']))}" + ("" if changed else " (already known)") + (f"\nnote: {note}" if note else "")


class ForgetTool(Tool):
    name = "forget"
    description = """Remove facts containing the given text from a memory topic (when the person
    asks you to forget something, or a fact is wrong)."""
    parameters = _obj({"topic": {"type": "string", "minLength": 1, "maxLength": 80},
                       "fact": {"type": "string", "minLength": 1, "maxLength": 500, "description": "Text the fact contains (not empty)."}}, ["topic", "fact"])

    def run(self, ctx: ToolContext, **args: Any) -> str:
        try:
            changed = curated.forget(ctx.home, str(args["topic"]), str(args["fact"]))
        except ValueError as e:
            raise ToolError(str(e)) from None
        for rel in changed:
            ctx.note_change(rel)
        return "forgotten"


class MemorySearchTool(Tool):
    name = "memory_search"
    description = """Full-text search over every Markdown file in the home (journal, memory,
    notes, wiki). Returns path:line: snippet, best first."""
    parameters = _obj({"query": {"type": "string", "maxLength": 200}, "k": {"type": "integer", "description": "How many hits (default 8)."}}, ["query"])

    def run(self, ctx: ToolContext, **args: Any) -> str:
        index = SearchIndex(ctx.home.root)
        index.update()
        hits = index.search(str(args["query"]), max(1, min(int(args.get("k") or 8), 30)))
        return "\n".join(f"{h.path}:{h.line}: {h.snippet}" for h in hits) or "no matches"


class ReadSkillTool(Tool):
    name = "read_skill"
    description = """Read a skill's full instructions (the skills index in your context has only
    names and descriptions). Scripts of the skill are in the folder given."""
    parameters = _obj({"name": {"type": "string", "maxLength": 64}}, ["name"])

    def run(self, ctx: ToolContext, **args: Any) -> str:
        skills = load_skills(ctx.home.root)
        skill = skills.get(str(args["name"]))
        if skill is None:
            raise ToolError(f"no skill {args['name']!r}; skills: {', '.join(s.name for s in skills.skills)}")
        return f"# skill {skill.name} ({skill.source}; folder {skill.path})\n\n{skill.body()}"


class BriefingInputsTool(Tool):
    name = "briefing_inputs"
    description = """Gather what a daily briefing needs: recent journal, open heartbeat items,
    scheduled jobs and what waits for the person."""
    parameters = _obj({}, [])

    def run(self, ctx: ToolContext, **args: Any) -> str:
        return gather_briefing_inputs(ctx.home, ctx.event.at.date())


class KbCompileTool(Tool):
    name = "kb_compile"
    description = """Compile new or changed sources in raw/ into wiki pages with summaries,
    backlinks and an index (knowledge-base skill)."""
    parameters = _obj({}, [])

    def __init__(self, engine: ChatEngine | None = None) -> None:
        self.engine = engine

    def run(self, ctx: ToolContext, **args: Any) -> str:
        if self.engine is None:
            raise ToolError("kb_compile needs the engine, which this process does not have")
        report = wiki.compile_wiki(ctx.home, self.engine)
        for rel in report.pages_written:
            ctx.note_change(rel)
        failed = f"; could not compile: {', '.join(report.failed)}" if report.failed else ""
        stale = (
            f"; not written because someone changed them during the compile (their version is kept): {', '.join(report.stale)}"
            " — run kb_compile again to recompile them"
            if report.stale
            else ""
        )
        return f"compiled {len(report.compiled)} source(s): {', '.join(report.compiled) or 'none pending'}; pages written: {len(report.pages_written)}{failed}{stale}"


class KbLintTool(Tool):
    name = "kb_lint"
    description = """Check the wiki: broken [[links]], orphan pages and possible contradictions."""
    parameters = _obj({}, [])

    def run(self, ctx: ToolContext, **args: Any) -> str:
        return wiki.lint_wiki(ctx.home).text()

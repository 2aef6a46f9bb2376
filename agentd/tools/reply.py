"""The tools that end a wake: `reply` answers the person, `done` closes a wake with a summary."""

from __future__ import annotations

from typing import Any

from agentd.tools.base import Tool, ToolContext, ToolOutcome


class ReplyTool(Tool):
    name = "reply"
    description = """Answer the person. The text is delivered to them (outbox/ and the
    terminal) and ends this wake. Use it once, when you have the answer."""
    parameters = {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "Your answer, in Markdown."}},
        "required": ["text"],
        "additionalProperties": False,
    }

    def run(self, ctx: ToolContext, **args: Any) -> ToolOutcome:
        text = str(args["text"]).strip() or "(no answer)"
        return ToolOutcome(self.name, True, "delivered", ends_wake=True, reply=text)


class DoneTool(Tool):
    name = "done"
    description = """Finish this wake without a message to the person, with a one-line
    summary of what you did. On a heartbeat with nothing to do, the summary is HEARTBEAT_OK."""
    parameters = {
        "type": "object",
        "properties": {"summary": {"type": "string", "maxLength": 300, "description": "One line: what this wake did."}},
        "required": ["summary"],
        "additionalProperties": False,
    }

    def run(self, ctx: ToolContext, **args: Any) -> ToolOutcome:
        summary = " ".join(str(args["summary"]).split()) or "done"
        return ToolOutcome(self.name, True, summary, ends_wake=True)

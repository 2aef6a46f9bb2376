"""The Tool base and the registry that validates calls and turns failures into text for the model."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentd.config import Config
from agentd.errors import AgentdError
from agentd.events import Event
from agentd.home import Home

log = logging.getLogger("agentd")
MAX_DEPTH = 32


@dataclass
class ToolContext:
    """What a tool may use during one wake."""

    home: Home
    config: Config
    event: Event
    wake_id: str
    # Files the wake changed through tools, in order, for the journal and the commit message.
    changed: list[str] = field(default_factory=list)
    # Secret masking for anything that enters the context (set by the wake; identity by default).
    mask: Callable[[str], str] = field(default=lambda text: text)
    # Stale-write guard for files.allow folders outside the home: absolute path -> sha256 last read or written.
    seen_outside: dict[str, str] = field(default_factory=dict)
    # Long outputs this wake stored under .agentd/outputs/; numbers the next one, per wake.
    stored_outputs: int = 0

    def note_change(self, rel: str) -> None:
        if rel not in self.changed:
            self.changed.append(rel)


@dataclass(frozen=True)
class ToolOutcome:
    """The result of one tool call, as the model will read it."""

    name: str
    ok: bool
    text: str
    # reply/done end the wake; reply carries the text for the person.
    ends_wake: bool = False
    reply: str | None = None


class Tool:
    """A tool the model can call: a name, a description it reads, a JSON schema, and ``run``."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, Any]]

    def run(self, ctx: ToolContext, **args: Any) -> ToolOutcome | str:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        """The OpenAI function schema."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": " ".join(self.description.split()),
                "parameters": self.parameters,
            },
        }


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _bad_text(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot be used as text (a lone surrogate, nesting too deep), or None."""
    if depth > MAX_DEPTH:
        return f"is nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"is not valid Unicode text (a lone surrogate {value[e.start]!r} at character {e.start}); send plain UTF-8 text"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        problem = _bad_text(key, depth + 1) if isinstance(key, str) else None
        problem = problem or _bad_text(item, depth + 1)
        if problem:
            return problem
    return None


def check_arguments(schema: dict[str, Any], args: Any) -> str | None:
    """A small JSON-schema check (valid text, types, required, enum, no extras); returns the problem or None."""
    if not isinstance(args, dict):
        return "arguments must be a JSON object"
    for key, value in args.items():
        problem = _bad_text(key) or _bad_text(value)
        if problem:
            return f"argument {_printable(key)[:40]!r} {problem}"
    props: dict[str, Any] = schema.get("properties", {})
    for req in schema.get("required", []):
        if req not in args:
            return f"missing required argument {req!r}"
    for key, value in args.items():
        if key not in props:
            if schema.get("additionalProperties", False) is False:
                return f"unknown argument {key!r} (expected: {', '.join(props)})"
            continue
        spec = props[key]
        typ = spec.get("type")
        if typ:
            ok = isinstance(value, _JSON_TYPES[typ]) and not (
                typ in ("integer", "number") and isinstance(value, bool)
            )
            if not ok:
                return f"argument {key!r} must be of type {typ}"
        if isinstance(value, str) and len(value) > spec.get("maxLength", len(value)):
            return f"argument {key!r} is longer than {spec['maxLength']} characters"
        if isinstance(value, str) and len(value.strip()) < spec.get("minLength", 0):
            return f"argument {key!r} must not be empty" if spec["minLength"] == 1 else f"argument {key!r} is shorter than {spec['minLength']} characters"
        if "enum" in spec and value not in spec["enum"]:
            return f"argument {key!r} must be one of {spec['enum']}"
    return None


class ToolRegistry:
    """The wake's tools, in a fixed order (the order is part of the cached prefix)."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools are named {tool.name!r}")
            self._tools[tool.name] = tool

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self._tools.values()]

    def action_schema(self, only: str | None = None) -> dict[str, Any]:
        """For constrained JSON actions: one of ``{"tool": NAME, "arguments": {...}}`` (NAME = ``only`` when given)."""
        variants = []
        for tool in self._tools.values():
            if only is not None and tool.name != only:
                continue
            variants.append(
                {
                    "type": "object",
                    "properties": {
                        "tool": {"type": "string", "enum": [tool.name]},
                        "arguments": tool.parameters,
                    },
                    "required": ["tool", "arguments"],
                    "additionalProperties": False,
                }
            )
        return {"anyOf": variants}

    def execute(self, ctx: ToolContext, name: str, arguments: str | dict[str, Any]) -> ToolOutcome:
        """Run one call; a malformed or failing call comes back as error text the model can correct.

        Nothing a tool raises escapes: one bad call must never abort the wake. An
        unexpected exception is logged with its traceback (a bug for the developer)
        and the model reads one line saying the call failed.
        """
        name = _printable(name)
        tool = self._tools.get(name)
        if tool is None:
            return ToolOutcome(name, False, f"error: unknown tool {name[:80]!r}; the tools are: {', '.join(self._tools)}")
        if isinstance(arguments, str):
            try:
                args = json.loads(arguments, strict=False) if arguments.strip() else {}
            except json.JSONDecodeError as e:
                return ToolOutcome(name, False, f"error: arguments are not valid JSON ({e.msg} at column {e.colno})")
            except RecursionError:
                return ToolOutcome(name, False, f"error: the arguments are nested too deeply (more than {MAX_DEPTH} levels)")
        else:
            args = arguments
        problem = check_arguments(tool.parameters, args)
        if problem:
            return ToolOutcome(name, False, f"error: {problem}")
        try:
            out = tool.run(ctx, **args)
        except AgentdError as e:
            return self._failed(ctx, name, str(e))
        except OSError as e:
            return self._failed(ctx, name, str(e.strerror or e))
        except Exception as e:  # noqa: BLE001 - the registry is the boundary that keeps the wake alive
            log.exception("tool %s raised %s (wake %s)", name, type(e).__name__, ctx.wake_id)
            return self._failed(ctx, name, f"the {name} tool failed unexpectedly ({type(e).__name__}: {str(e)[:300]}); try another way")
        if isinstance(out, str):
            return ToolOutcome(name, True, _printable(ctx.mask(out)))
        return ToolOutcome(out.name, out.ok, _printable(ctx.mask(out.text)), out.ends_wake, out.reply)

    @staticmethod
    def _failed(ctx: ToolContext, name: str, message: str) -> ToolOutcome:
        return ToolOutcome(name, False, _printable(ctx.mask(f"error: {message}")))


def _printable(text: str) -> str:
    """``text`` with any lone surrogate replaced, so it can be written, logged and sent."""
    return text.encode("utf-8", "replace").decode("utf-8") if isinstance(text, str) else str(text)

"""OpenAI tool calls for a model whose chat template knows none: tools in the prompt, a grammar, the output parsed as it streams.

The model answers with one JSON object, constrained by a grammar built from the tool
schemas: ``{"tool_call": {"name": …, "arguments": {…}}}`` to call a tool, or (when
``tool_choice`` is ``"auto"``) ``{"response": "…"}`` to answer in words. The history is
rendered the same way (an assistant's earlier calls as that JSON, tool results as user
messages), so the model reads the format it writes, and the tools text is canonical JSON
placed first in the system message, so equal tools give an equal, cacheable prefix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from engine.partial_json import StringField, ValueSpan, field_text

TOOLS_INTRO = """\
You can call tools. To call one, answer with exactly one JSON object:
{"tool_call": {"name": "<tool name>", "arguments": {<the tool's arguments>}}}
To answer in words instead, answer with {"response": "<your answer>"}.
The tools:"""


class ToolRequestError(ValueError):
    """The request's tools or tool_choice are not usable (a 400 for the client)."""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def _functions(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for t in tools:
        fn = t.get("function") if isinstance(t, dict) and t.get("type", "function") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ToolRequestError("tools: each tool must be {\"type\": \"function\", \"function\": {\"name\": …, \"parameters\": {…}}}")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise ToolRequestError(f"tools: {fn['name']}'s parameters must be a JSON schema object")
        out.append({"name": fn["name"], "description": str(fn.get("description") or ""), "parameters": params})
    return out


def tools_text(tools: list[Any]) -> str:
    lines = [TOOLS_INTRO]
    for fn in _functions(tools):
        lines.append(f"## {fn['name']}\n{' '.join(fn['description'].split())}\narguments: {_canonical(fn['parameters'])}")
    return "\n".join(lines)


def _text(content: Any) -> str:
    """Message content as text: a string, None, or OpenAI's list of text parts."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else str(content)


def _call_json(call: Any) -> str:
    fn = (call.get("function") or {}) if isinstance(call, dict) else {}
    raw = fn.get("arguments") or "{}"
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        args = raw  # shown as the model wrote it
    return _canonical({"tool_call": {"name": fn.get("name", ""), "arguments": args}})


def template_messages(messages: list[Any], tools: list[Any] | None) -> tuple[list[dict[str, Any]], int]:
    """The messages as plain system/user/assistant text, and how many messages were inserted in front.

    With tools, their text opens the system message (one is inserted when there is none).
    """
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        if not isinstance(m, dict):
            out.append(m)  # the renderer rejects it with its own message
            continue
        role = m.get("role")
        if role == "assistant" and m.get("tool_calls"):
            for c in m["tool_calls"]:
                if isinstance(c, dict):
                    names[str(c.get("id"))] = str((c.get("function") or {}).get("name", ""))
            out.append({"role": "assistant", "content": "\n".join(_call_json(c) for c in m["tool_calls"])})
        elif role == "tool":
            name = names.get(str(m.get("tool_call_id")), m.get("name") or "tool")
            out.append({"role": "user", "content": f"[result of {name}]\n{_text(m.get('content'))}"})
        elif role == "developer":
            out.append({"role": "system", "content": _text(m.get("content"))})
        else:
            out.append({**m, "content": _text(m.get("content"))})
    if not tools:
        return out, 0
    intro = tools_text(tools)
    if out and isinstance(out[0], dict) and out[0].get("role") == "system":
        out[0] = {**out[0], "content": intro + "\n\n" + out[0]["content"]}
        return out, 0
    return [{"role": "system", "content": intro}, *out], 1


def _chosen(tools: list[Any], tool_choice: Any) -> tuple[list[dict[str, Any]], bool]:
    """The functions the model may call, and whether it may answer in words instead."""
    fns = _functions(tools)
    if tool_choice in (None, "auto"):
        return fns, True
    if tool_choice == "required":
        return fns, False
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        picked = [f for f in fns if f["name"] == name]
        if not picked:
            raise ToolRequestError(f"tool_choice names {name!r}, which is not among the tools")
        return picked, False
    raise ToolRequestError(f"tool_choice: expected \"none\", \"auto\", \"required\" or a function, got {tool_choice!r}")


def output_schema(tools: list[Any], tool_choice: Any) -> dict[str, Any]:
    """The JSON schema of the model's answer (the grammar is built from it)."""
    fns, words = _chosen(tools, tool_choice)
    calls = [
        {
            "type": "object",
            "properties": {"name": {"type": "string", "enum": [f["name"]]}, "arguments": f["parameters"]},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for f in fns
    ]
    call = calls[0] if len(calls) == 1 else {"anyOf": calls}
    variants: list[dict[str, Any]] = [
        {"type": "object", "properties": {"tool_call": call}, "required": ["tool_call"], "additionalProperties": False}
    ]
    if words:
        variants.append({"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"], "additionalProperties": False})
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


class OutputReader:
    """Reads the model's JSON answer as it streams; yields OpenAI-shaped pieces.

    ``{"text": …}`` for words, ``{"call": name}`` once a call's name is known, then
    ``{"arguments": …}`` pieces of its raw JSON arguments.
    """

    def __init__(self) -> None:
        self.raw = ""
        self.kind: str | None = None  # "response" | "tool_call"
        self.words = StringField("response")
        self.args = ValueSpan("arguments")
        self.name: str | None = None
        self.held = ""  # argument text that arrived before the name

    def feed(self, piece: str) -> Iterator[dict[str, Any]]:
        self.raw += piece
        if self.kind is None:
            head = self.raw.lstrip().lstrip("{").lstrip()
            if head.startswith('"response"'):
                self.kind = "response"
                piece = self.raw
            elif head.startswith('"tool_call"'):
                self.kind = "tool_call"
                piece = self.raw
            else:
                return
        if self.kind == "response":
            text = self.words.feed(piece)
            if text:
                yield {"text": text}
            return
        self.held += self.args.feed(piece)
        if self.name is None:
            found = field_text(self.raw, "name")
            if found is None or not found[1]:
                return
            self.name = found[0]
            yield {"call": self.name}
        if self.held:
            yield {"arguments": self.held}
            self.held = ""

    @property
    def called(self) -> bool:
        return self.name is not None

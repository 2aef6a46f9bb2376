"""`agentd chat`: every reply the agent makes is printed, streamed or not."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from agentd.cli import cli
from agentd.home import Home
from tests.doubles.openai_server import Reply, ScriptedServer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer().start()
    yield s
    s.stop()


def use(home: Home, server: ScriptedServer, tool_calling: str) -> None:
    path = home.root / "agent.yaml"
    text = path.read_text().replace("backend: llamacpp", "backend: openai").replace("# url: http://127.0.0.1:8000/v1", f"url: {server.url}")
    path.write_text(text.replace("tool_calling: json", f"tool_calling: {tool_calling}"))
    home.absorb_person_edits()


def chat(home: Home, *lines: str) -> str:
    res = CliRunner().invoke(cli, ["--home", str(home.root), "chat"], input="".join(f"{line}\n" for line in lines))
    assert res.exit_code == 0, res.output
    return res.output


def call(name: str, args: dict[str, str], ident: str = "c1") -> dict[str, object]:
    return {"id": ident, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def test_native_text_then_a_tool_then_the_reply_tool(home: Home, server: ScriptedServer) -> None:
    use(home, server, "native")
    server.enqueue(
        Reply(content="Let me look first.", tool_calls=[call("list_files", {"path": "."})]),
        Reply(tool_calls=[call("reply", {"text": "THE-FINAL-ANSWER"}, "c2")]),
    )
    out = chat(home, "hello")
    assert "Let me look first." in out  # streamed as it came
    assert out.count("THE-FINAL-ANSWER") == 1


def test_native_plain_answer_streams_once(home: Home, server: ScriptedServer) -> None:
    use(home, server, "native")
    server.enqueue(Reply(content="Just an answer in words."))
    assert chat(home, "hello").count("Just an answer in words.") == 1


def test_json_mode_prints_the_reply(home: Home, server: ScriptedServer) -> None:
    use(home, server, "json")
    server.enqueue(
        Reply(content=json.dumps({"tool": "list_files", "arguments": {"path": "."}})),
        Reply(content=json.dumps({"tool": "reply", "arguments": {"text": "ANSWER-ONE"}})),
        Reply(content=json.dumps({"tool": "reply", "arguments": {"text": "ANSWER-TWO"}})),
    )
    out = chat(home, "first", "second")
    assert out.count("ANSWER-ONE") == 1 and out.count("ANSWER-TWO") == 1
    assert '"tool"' not in out  # the JSON action itself is never shown

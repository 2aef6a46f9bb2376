"""The context compiler: byte-determinism, append-only sessions, epochs and cache-break causes."""

from __future__ import annotations

from datetime import UTC, datetime

from agentd.config import load_config
from agentd.context import ContextCompiler, build_prefix, normalize_text
from agentd.events import Event
from agentd.home import Home
from agentd.loop import wake
from agentd.wiring import build_agent, build_registry
from tests.doubles.scripted_engine import ScriptedEngine

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def reader(home: Home):  # type: ignore[no-untyped-def]
    def read(rel: str) -> str | None:
        p = home.root / rel
        return p.read_text() if p.is_file() else None

    return read


def test_prefix_is_byte_deterministic(home: Home) -> None:
    schemas = build_registry().schemas()
    a = build_prefix(reader(home), schemas, "- daily-briefing: x\n", tool_calling="json")
    b = build_prefix(reader(home), schemas, "- daily-briefing: x\n", tool_calling="json")
    assert a.system_text() == b.system_text() and a.digest == b.digest
    names = [s.name for s in a.sections]
    assert names == ["rules", "tools", "AGENT.md", "USER.md", "skills", "MEMORY.md"]


def test_whitespace_and_unicode_normalized(home: Home) -> None:
    assert normalize_text("a  \r\nb\n\n\n\nc\u0301") == normalize_text("a\nb\n\nć")
    schemas = build_registry().schemas()
    before = build_prefix(reader(home), schemas, "", tool_calling="json")
    (home.root / "USER.md").write_text((home.root / "USER.md").read_text().replace("\n", "  \r\n"))
    after = build_prefix(reader(home), schemas, "", tool_calling="json")
    assert before.digest == after.digest


def test_reordered_schema_keys_do_not_change_prefix(home: Home) -> None:
    schemas = build_registry().schemas()
    reordered = [{"function": dict(reversed(list(s["function"].items()))), "type": s["type"]} for s in schemas]
    a = build_prefix(reader(home), schemas, "", tool_calling="native")
    b = build_prefix(reader(home), reordered, "", tool_calling="native")
    assert a.tools == b.tools


def test_reordered_agent_yaml_does_not_change_prefix(home: Home) -> None:
    engine = ScriptedEngine()
    engine.enqueue_action("reply", text="a")
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    agent.refresh_prefix("first")
    digest = agent.compiler.prefix.digest  # type: ignore[union-attr]
    path = home.root / "agent.yaml"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([ln for ln in lines if ln.startswith("name:")] + [ln for ln in lines if not ln.startswith("name:")]) + "\n")
    agent2 = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    assert not agent2.refresh_prefix(None)
    assert agent2.compiler.prefix.digest == digest  # type: ignore[union-attr]


def _say(agent, home: Home, text: str, name: str) -> None:  # type: ignore[no-untyped-def]
    (home.root / "inbox" / f"{name}.md").write_text(text)
    wake(agent, Event("message", text, NOW, name=name, source=f"inbox/{name}.md"))


def test_requests_are_append_only_across_wakes(home: Home) -> None:
    engine = ScriptedEngine()
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    for i in range(3):
        engine.enqueue_action("list_files", path="memory")
        engine.enqueue_action("reply", text=f"answer {i}")
        _say(agent, home, f"question {i}", f"m{i}")
    reqs = [r["messages"] for r in engine.requests]
    for prev, cur in zip(reqs, reqs[1:], strict=False):
        assert cur[: len(prev)] == prev, "each request must extend the previous one"
    breaks = [r["cache_break"] for r in agent.ledger.rows()]
    assert breaks[0] == "cold start" and breaks[1:] == [None] * (len(breaks) - 1)


def test_person_edit_to_user_md_starts_epoch_and_is_named(home: Home) -> None:
    engine = ScriptedEngine()
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    engine.enqueue_action("reply", text="one")
    _say(agent, home, "first", "a")
    old_digest = agent.compiler.prefix.digest  # type: ignore[union-attr]
    (home.root / "USER.md").write_text("# About you\n- Name: Ada\n")
    engine.enqueue_action("reply", text="two")
    _say(agent, home, "second", "b")
    assert agent.compiler.prefix.digest != old_digest  # type: ignore[union-attr]
    assert "Ada" in engine.requests[-1]["messages"][0]["content"]
    assert agent.ledger.rows()[-1]["cache_break"] == "USER.md edited by the person"


def test_agent_memory_edit_waits_for_next_session(home: Home) -> None:
    engine = ScriptedEngine()
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    engine.enqueue_action("remember", topic="plants", fact="the fern needs water on Sundays")
    engine.enqueue_action("reply", text="noted")
    _say(agent, home, "remember the fern", "a")
    assert "plants" in (home.root / "memory/MEMORY.md").read_text()
    engine.enqueue_action("reply", text="still here")
    _say(agent, home, "next", "b")
    system = engine.requests[-1]["messages"][0]["content"]
    assert "plants" not in system.split("<<< MEMORY.md >>>")[1], "mid-session the prefix stays frozen"
    # a new session (after compaction or a new day) picks the edit up
    agent.compiler.drop_session("main")
    assert agent.refresh_prefix(None)
    engine.enqueue_action("reply", text="fresh")
    _say(agent, home, "new session", "c")
    assert "plants" in engine.requests[-1]["messages"][0]["content"].split("<<< MEMORY.md >>>")[1]
    assert agent.ledger.rows()[-1]["cache_break"] == "MEMORY.md changed"


def test_cron_session_shares_the_prefix(home: Home) -> None:
    engine = ScriptedEngine()
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    engine.enqueue_action("reply", text="one")
    _say(agent, home, "first", "a")
    engine.enqueue_action("done", summary="job done")
    wake(agent, Event("cron", "do the job", NOW, name="job"))
    main, cron = engine.requests[0]["messages"], engine.requests[1]["messages"]
    assert main[0] == cron[0] and len(cron) == 2
    assert agent.ledger.rows()[-1]["cache_break"] is None


def test_self_check_names_tail_rewrite(home: Home) -> None:
    compiler = ContextCompiler(home.runtime / "ctx")
    prefix = build_prefix(reader(home), build_registry().schemas(), "", tool_calling="json")
    compiler.start_epoch(prefix, "first")
    s = compiler.new_session("main", NOW)
    first = compiler.render(s, [{"role": "user", "content": "a"}])
    assert first.check.cause == "first"
    s.tail.append({"role": "user", "content": "a"})
    s.last_prompt_tokens = 100
    ok = compiler.render(s, [{"role": "user", "content": "b"}])
    assert ok.check.extends_previous and ok.check.expected_cached == 100
    s.tail[0] = {"role": "user", "content": "rewritten"}
    bad = compiler.render(s, [])
    assert bad.check.cause == "session tail rewritten at message 1"

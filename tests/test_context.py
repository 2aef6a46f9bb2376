"""The context compiler: byte-determinism, append-only sessions, epochs and cache-break causes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import agentd.context as context_module
from agentd.config import load_config
from agentd.context import (
    ContextCompiler,
    Message,
    Prefix,
    build_prefix,
    normalize_text,
    seeded_ids,
)
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
    assert names == ["rules", "tools", "skills", "AGENT.md", "USER.md", "MEMORY.md"]


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


def test_person_edit_to_user_md_mid_session_is_a_steering_diff_not_a_new_epoch(home: Home) -> None:
    engine = ScriptedEngine()
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    engine.enqueue_action("reply", text="one")
    _say(agent, home, "first", "a")
    old_digest = agent.compiler.prefix.digest  # type: ignore[union-attr]
    (home.root / "USER.md").write_text("# About you\n- Name: Ada\n")
    engine.enqueue_action("reply", text="two")
    _say(agent, home, "second", "b")
    assert agent.compiler.prefix.digest == old_digest  # type: ignore[union-attr]
    messages = engine.requests[-1]["messages"]
    assert "Ada" not in messages[0]["content"]
    diff = messages[-2]["content"]
    assert diff.startswith("[steering diff · USER.md · edited by the person]") and "+- Name: Ada" in diff
    assert engine.requests[-1]["messages"][: len(engine.requests[0]["messages"])] == engine.requests[0]["messages"]
    assert agent.ledger.rows()[-1]["cache_break"] is None
    (steer,) = agent.ledger.steering_rows()
    assert steer["cause"] == "steering-diff: USER.md edited by the person" and steer["saved_prefix_tokens"] > 0


def test_agent_memory_edit_is_a_diff_marked_as_its_own_then_in_the_next_sessions_prefix(home: Home) -> None:
    engine = ScriptedEngine()
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: NOW)
    engine.enqueue_action("remember", topic="plants", fact="the fern needs water on Sundays")
    engine.enqueue_action("reply", text="noted")
    _say(agent, home, "remember the fern", "a")
    assert "plants" in (home.root / "memory/MEMORY.md").read_text()
    engine.enqueue_action("reply", text="still here")
    _say(agent, home, "next", "b")
    messages = engine.requests[-1]["messages"]
    assert "plants" not in messages[0]["content"].split("<<< MEMORY.md >>>")[1], "mid-session the prefix stays frozen"
    assert messages[-2]["content"].startswith("[steering diff · MEMORY.md · edited by you (the agent)]")
    # a new session (after compaction or a new day) picks the edit up
    agent.compiler.drop_session("main")
    engine.enqueue_action("reply", text="fresh")
    _say(agent, home, "new session", "c")
    assert "plants" in engine.requests[-1]["messages"][0]["content"].split("<<< MEMORY.md >>>")[1]
    assert not any("[steering diff" in str(m["content"]) for m in engine.requests[-1]["messages"])
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
    compiler.measured(first, 100, s)
    s.tail.append({"role": "user", "content": "a"})
    ok = compiler.render(s, [{"role": "user", "content": "b"}])
    assert ok.check.extends_previous and ok.check.expected_cached == 100
    s.tail[0] = {"role": "user", "content": "rewritten"}
    bad = compiler.render(s, [])
    assert bad.check.cause == "session tail rewritten at message 1" and bad.check.section == "tail"


# ---------------------------------------------------------------- the clock, canonical JSON
TAIL: list[Message] = [
    {"role": "user", "content": "[Message from the person · 2026-11-20 08:00 UTC (Friday)]\n\nwhat is in notes/?"},
    {"role": "assistant", "content": '{"tool": "list_files", "arguments": {"path": "notes"}}'},
    {"role": "user", "content": "[result of list_files]\nnotes/a.md"},
]


def _frozen(when: datetime) -> type[datetime]:
    """A datetime class whose now() is ``when``: the compiler module's own clock, not only the injected one."""

    def now(cls: type[datetime], tz: Any = None) -> datetime:
        return when if tz is None else when.astimezone(tz)

    return type("FrozenDatetime", (datetime,), {"now": classmethod(now)})


def test_the_clock_never_appears_before_the_event(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_today = datetime.now().strftime("%Y-%m-%d")
    times = (datetime(2026, 11, 22, 9, 30, tzinfo=UTC), datetime(2027, 3, 5, 17, 45, tzinfo=UTC))
    renders = []
    for i, when in enumerate(times):
        monkeypatch.setattr(context_module, "datetime", _frozen(when))
        prefix = build_prefix(reader(home), build_registry().schemas(), "- daily-briefing: x\n", tool_calling="json")
        compiler = ContextCompiler(tmp_path / f"ctx{i}")
        compiler.start_epoch(prefix, "first")
        session = compiler.new_session("main", when)
        session.tail = list(TAIL)
        event = compiler.event_message(Event("heartbeat", "check the inbox", when), when)
        renders.append(compiler.render(session, [event]).canon)
    a, b = renders
    assert a[:-1] == b[:-1], "prefix and tail are the same bytes whatever the time"
    assert a[-1] != b[-1] and "2026-11-22 09:30" in a[-1] and "2027-03-05 17:45" in b[-1]
    stable = "".join(a[:-1])
    for stamp in (real_today, *(t.strftime("%Y-%m-%d") for t in times), *(t.strftime("%H:%M") for t in times)):
        assert stamp not in stable


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reversed_keys(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [_reversed_keys(v) for v in value]
    return value


def test_reordered_keys_in_a_tool_result_do_not_change_the_tail(home: Home, tmp_path: Path) -> None:
    prefix = build_prefix(reader(home), build_registry().schemas(), "", tool_calling="native")
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "USER.md"}'}}],
    }
    result = {"role": "tool", "tool_call_id": "call_0", "content": "# About you\n"}
    sent = []
    for i, tail in enumerate(([call, result], [_reversed_keys(call), _reversed_keys(result)])):
        compiler = ContextCompiler(tmp_path / f"ctx{i}")
        compiler.start_epoch(prefix, "first")
        session = compiler.new_session("main", NOW)
        session.tail = tail
        request = compiler.render(session, [{"role": "user", "content": "next"}])
        # Both the checked bytes and the messages as the client serializes them.
        sent.append((request.canon, json.dumps(request.messages)))
    assert sent[0] == sent[1]


# ---------------------------------------------------------------- the self-check
def _compiler(home: Home, tmp_path: Path) -> tuple[ContextCompiler, Prefix]:
    compiler = ContextCompiler(tmp_path / "ctx")
    prefix = build_prefix(reader(home), build_registry().schemas(), "", tool_calling="json")
    compiler.start_epoch(prefix, "first")
    return compiler, prefix


def test_self_check_names_the_first_changed_section_and_keeps_what_is_shared(home: Home, tmp_path: Path) -> None:
    compiler, _ = _compiler(home, tmp_path)
    s = compiler.new_session("main", NOW)
    s.tail = list(TAIL)
    before = compiler.render(s, [{"role": "user", "content": "event one"}])
    compiler.measured(before, 3000, s)
    (home.root / "USER.md").write_text((home.root / "USER.md").read_text() + "- Name: Ada\n")
    assert compiler.start_epoch(build_prefix(reader(home), build_registry().schemas(), "", tool_calling="json"), "USER.md edited by the person")
    after = compiler.render(s, [{"role": "user", "content": "event two"}])
    check = after.check
    assert check.cause == "USER.md edited by the person" and check.section == "USER.md"
    # The rules, tools and AGENT.md before USER.md are still shared, character for character.
    assert check.common_chars == len(os.path.commonprefix([before.canon[0], after.canon[0]]))
    assert "<<< USER.md >>>" in after.canon[0][: check.common_chars]
    assert check.expected_cached == round(3000 * check.common_chars / before.chars)
    assert 0 < check.expected_cached < 3000


def test_a_dropped_suffix_is_no_cache_break(home: Home, tmp_path: Path) -> None:
    """An empty heartbeat leaves no trace in the tail: the next request shares all before it."""
    compiler, _ = _compiler(home, tmp_path)
    s = compiler.new_session("main", NOW)
    s.tail = list(TAIL)
    compiler.render(s, [])  # the cold start
    heartbeat = compiler.render(s, [{"role": "user", "content": "[Heartbeat]"}, {"role": "assistant", "content": "HEARTBEAT_OK"}])
    compiler.measured(heartbeat, 2000, s)
    nxt = compiler.render(s, [{"role": "user", "content": "[Message from the person]"}])
    stable = sum(map(len, nxt.canon[:-1]))
    assert nxt.check.cause is None and nxt.check.section is None
    assert not nxt.check.extends_previous and nxt.check.common_chars >= stable
    assert nxt.check.expected_cached is not None and 0 < nxt.check.expected_cached < 2000


def test_engine_restart_invalidates_what_was_sent(home: Home, tmp_path: Path) -> None:
    compiler, _ = _compiler(home, tmp_path)
    s = compiler.new_session("main", NOW)
    first = compiler.render(s, [{"role": "user", "content": "a"}])
    compiler.measured(first, 500, s)
    compiler.note_break("engine restarted")
    again = compiler.render(s, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert again.check.cause == "engine restarted" and again.check.expected_cached == 0 and again.check.common_chars == 0
    compiler.measured(again, 600, s)
    # A restart survives the daemon: the session saved before it no longer counts as cached.
    compiler.save_session(s)
    reloaded = ContextCompiler(tmp_path / "ctx")
    then = reloaded.render(reloaded.load_session("main") or s, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "user", "content": "c"}])
    assert then.check.cause is None and then.check.expected_cached == 600 and then.check.extends_previous


def test_warm_up_is_the_reference_for_a_new_session(home: Home, tmp_path: Path) -> None:
    compiler, _ = _compiler(home, tmp_path)
    warm = compiler.render_prefix()
    assert warm.check.cause == "first" and len(warm.messages) == 1
    compiler.measured(warm, 1234)
    assert compiler.prefix_tokens == 1234
    s = compiler.new_session("cron:job", NOW)
    job = compiler.render(s, [{"role": "user", "content": "do the job"}])
    assert job.check.cause is None and job.check.expected_cached == 1234


def test_session_ids_come_from_the_injected_source(home: Home, tmp_path: Path) -> None:
    prefix = build_prefix(reader(home), build_registry().schemas(), "", tool_calling="json")
    runs = []
    for i in range(2):
        compiler = ContextCompiler(tmp_path / f"ctx{i}", seeded_ids(5))
        compiler.start_epoch(prefix)
        runs.append([compiler.new_session(kind, NOW).id for kind in ("main", "cron:a", "main")])
    assert runs[0] == runs[1] and len(set(runs[0])) == 3
    default = ContextCompiler(tmp_path / "ctx-random")
    default.start_epoch(prefix)
    assert default.new_session("main", NOW).id not in runs[0]  # unseeded: random, as before

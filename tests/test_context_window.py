"""The engine's context window: token estimates anchored on the engine's counts, a wake that
stops before it overruns the window, and a compaction that fits however long the session got."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentd.config import load_config
from agentd.context import CHARS_PER_TOKEN, MESSAGE_TOKENS
from agentd.errors import ConfigError
from agentd.events import Event
from agentd.home import Home
from agentd.loop import Agent, wake
from agentd.wiring import build_agent
from engine.errors import EngineHTTPError
from memory.compaction import COMPACTION_MAX_TOKENS, headroom, needs_compaction
from tests.doubles.scripted_engine import ScriptedEngine

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
BIG = "\n".join(f"{i:05d} the quick brown fox jumps over the lazy dog again and again" for i in range(120))  # ~7.7K chars


def set_config(home: Home, old: str, new: str) -> None:
    path = home.root / "agent.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    home.absorb_person_edits()


def make_agent(home: Home, engine: ScriptedEngine) -> Agent:
    return build_agent(home, load_config(home.root), engine, model="scripted", clock=lambda: NOW)


def message(home: Home, text: str, name: str) -> Event:
    (home.root / "inbox" / f"{name}.md").write_text(text + "\n")
    return Event("message", text, NOW, name=name, source=f"inbox/{name}.md")


# ---------------------------------------------------------------- the window
def test_context_window_comes_from_the_backend_or_the_setting(home: Home) -> None:
    assert load_config(home.root).engine.context_window() == 8192  # the template's n_ctx
    set_config(home, "n_ctx: 8192", "n_ctx: 16384")
    assert load_config(home.root).engine.context_window() == 16384
    set_config(home, "backend: llamacpp", "backend: vllm")
    assert load_config(home.root).engine.context_window() is None  # vLLM's own default is the model's
    set_config(home, "gpu_memory_utilization: 0.85", "gpu_memory_utilization: 0.85\n    max_model_len: 32768")
    assert load_config(home.root).engine.context_window() == 32768
    set_config(home, "# context_tokens: 32768", "context_tokens: 4096")
    assert load_config(home.root).engine.context_window() == 4096


def test_bad_context_tokens_names_the_line(home: Home) -> None:
    path = home.root / "agent.yaml"
    path.write_text(path.read_text().replace("# context_tokens: 32768", "context_tokens: lots"))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "context_tokens: lots" in text)
    with pytest.raises(ConfigError) as e:
        load_config(home.root)
    assert e.value.line == line and "engine.context_tokens" in str(e.value)


# ---------------------------------------------------------------- estimates
def test_estimate_starts_from_the_engines_count(home: Home) -> None:
    engine = ScriptedEngine()
    agent = make_agent(home, engine)
    engine.enqueue_action("reply", text="hello")
    wake(agent, message(home, "hi", "m1"))
    session = agent.compiler.load_session("main")
    assert session is not None and session.last_prompt_tokens
    # The last answered request is measured; only what came after it is estimated.
    measured, n = session.last_prompt_tokens, session.last_prompt_messages
    assert n is not None and len(session.tail) + 1 > n
    extra = [{"role": "user", "content": "x" * 300}]
    from agentd.context import canonical_json

    beyond = [canonical_json(m) for m in [*session.tail, *extra]][n - 1:]
    expected = measured + -(-sum(map(len, beyond)) // CHARS_PER_TOKEN) + MESSAGE_TOKENS * len(beyond)
    assert agent.compiler.estimate_tokens(session, extra) == int(expected)


def test_estimate_errs_high_against_the_real_tokenizer(home: Home) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from engine.models import find_smollm2_gguf

    engine = ScriptedEngine()
    agent = make_agent(home, engine)
    agent.refresh_prefix("test")
    session = agent.compiler.new_session("main", NOW)
    session.tail = [{"role": "user", "content": BIG}, {"role": "assistant", "content": '{"tool": "done", "arguments": {"summary": "ok"}}'}]
    llm = llama_cpp.Llama(str(find_smollm2_gguf()), vocab_only=True, verbose=False)
    assert agent.compiler.prefix is not None
    text = "".join(str(m["content"]) for m in [agent.compiler.prefix.system_message(), *session.tail])
    real = len(llm.tokenize(text.encode(), add_bos=False))
    estimate = agent.compiler.estimate_tokens(session)
    assert real < estimate < real * 1.6


# ---------------------------------------------------------------- during a wake
def test_wake_stops_before_the_window_overflows_and_the_next_wake_compacts(home: Home) -> None:
    set_config(home, "# context_tokens: 32768", "context_tokens: 6000")
    set_config(home, "session_tokens: 6000", "session_tokens: 100000")  # only the window decides here
    (home.root / "big.txt").write_text(BIG)
    engine = ScriptedEngine()
    agent = make_agent(home, engine)
    for _ in range(6):
        engine.enqueue_action("read_file", path="big.txt")
    result = wake(agent, message(home, "read big.txt again and again", "m1"))

    assert result.status == "budget" and "context window of 6000 tokens is full" in (result.error or "")
    assert result.reply is not None and "context window" in result.reply  # the person hears why
    assert (home.root / "inbox/done/m1.md").exists()  # answered, not retried forever
    assert "[budget]" in str(home.repo.head.commit.message).splitlines()[0]
    sent = len(engine.requests)
    assert 1 < sent < 6
    # No request the engine saw outgrew the window (the double counts 4 characters a token).
    for r in engine.requests:
        assert len(str(r["messages"])) // 4 + r["max_tokens"] <= 6000

    # The next wake compacts first, then answers on a fresh session. The session fills
    # the window, so the memory-flush turn has no room and is skipped (the journal
    # holds every wake); the summary request is cut to fit.
    engine.queue.clear()
    engine.enqueue("- read big.txt several times")
    engine.enqueue_action("reply", text="done reading")
    second = wake(agent, message(home, "are you done?", "m2"))
    assert second.status == "ok" and second.reply == "done reading"
    purposes = [r["purpose"] for r in agent.ledger.rows()][-2:]
    assert purposes == ["compaction", "wake"]
    assert "read big.txt several times" in (home.root / "memory/journal/2026-11-22.md").read_text()
    for r in engine.requests[sent:]:
        assert len(str(r["messages"])) // 4 + r["max_tokens"] <= 6000


def test_engine_overflow_error_ends_the_wake_as_a_budget_stop(home: Home) -> None:
    engine = ScriptedEngine()
    agent = make_agent(home, engine)
    engine.enqueue_error(EngineHTTPError(400, '{"error": {"message": "This model\'s maximum context length is 8192 tokens."}}'))
    result = wake(agent, message(home, "hello", "m1"))
    assert result.status == "budget" and "context window" in (result.error or "")
    assert (home.root / "inbox/done/m1.md").exists()
    session = agent.compiler.load_session("main")
    assert session is not None and needs_compaction(agent, session)  # what did not fit is remembered


def test_other_client_errors_still_fail_the_wake(home: Home) -> None:
    engine = ScriptedEngine()
    agent = make_agent(home, engine)
    engine.enqueue_error(EngineHTTPError(400, '{"error": {"message": "unknown field foo"}}'))
    result = wake(agent, message(home, "hello", "m1"))
    assert result.status == "failed" and (home.root / "inbox/m1.md").exists()


# ---------------------------------------------------------------- compaction
def test_compaction_request_is_cut_to_fit_the_window(home: Home) -> None:
    set_config(home, "# context_tokens: 32768", "context_tokens: 8192")
    engine = ScriptedEngine()
    agent = make_agent(home, engine)
    agent.refresh_prefix("test")
    session = agent.compiler.new_session("main", NOW)
    # A session far past the window: twenty turns of ~2.5K tokens each.
    for i in range(20):
        session.tail += [{"role": "user", "content": f"[Message from the person]\nturn {i}\n{BIG}"},
                         {"role": "assistant", "content": '{"tool": "reply", "arguments": {"text": "ok"}}'}]
    agent.compiler.save_session(session)
    assert needs_compaction(agent, session)
    engine.enqueue("- the last turns were about the fox")
    engine.enqueue_action("reply", text="hi")
    result = wake(agent, message(home, "hello", "m1"))
    assert result.status == "ok"
    summary_request = next(r for r in engine.requests if "Summarize this session" in str(r["messages"][-1]["content"]))
    assert len(str(summary_request["messages"])) // 4 + COMPACTION_MAX_TOKENS <= 8192
    assert "left out here" in str(summary_request["messages"][1]["content"])
    assert "turn 19" in str(summary_request["messages"])  # the most recent turns are kept
    assert "turn 0\n" not in str(summary_request["messages"])


def test_default_home_compacts_before_a_wake_runs_short_of_room(home: Home, tmp_path: Path) -> None:
    """The template's budgets on the template's 8K engine: the window, not session_tokens, rules."""
    engine = ScriptedEngine()
    agent = make_agent(home, engine)
    agent.refresh_prefix("test")
    session = agent.compiler.new_session("main", NOW)
    window = agent.config.engine.context_window()
    assert window == 8192
    while agent.compiler.estimate_tokens(session) <= window - headroom(window):
        assert not needs_compaction(agent, session)
        session.tail += [{"role": "user", "content": "[Heartbeat]\n" + "note " * 100}, {"role": "assistant", "content": "{}"}]
    assert agent.compiler.tail_tokens(session) < agent.config.budgets.session_tokens
    assert needs_compaction(agent, session)

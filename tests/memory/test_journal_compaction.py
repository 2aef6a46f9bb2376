"""Journal entries, day summaries, recent reading; compaction with a scripted engine."""

from __future__ import annotations

from datetime import UTC, date, datetime

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.ledger import day_summary, totals
from agentd.loop import wake
from agentd.wiring import build_agent
from memory import journal
from memory.compaction import bound_summary
from tests.doubles.scripted_engine import ScriptedEngine


def test_journal_entries_and_summary(home: Home) -> None:
    when = datetime(2026, 11, 22, 9, 15)
    rel = journal.append_entry(home, when, "cron:backup", "Backed up notes.", ["shell: tar czf …"], ["notes/x.md"], "100 prompt")
    day = totals([{"prompt_tokens": 1000, "cached_tokens": 950, "completion_tokens": 10, "ttft_s": None}] + [{"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0, "ttft_s": None}] * 6)
    journal.daily_summary(home, when, day_summary(day, wakes=3))
    text = (home.root / rel).read_text()
    assert text.startswith("# 2026-11-22\n") and "## 09:15 · cron:backup" in text and "`notes/x.md`" in text
    assert "served from cache: 950 (95.0%)" in text
    assert "Backed up" in journal.read_recent(home, days=2, today=date(2026, 11, 23))


def test_count_wakes_counts_entries_not_compactions(home: Home) -> None:
    from memory.compaction import write_compaction

    day = datetime(2026, 11, 22, 9, 0)
    assert journal.count_wakes(home, day.date()) == 0
    for i, trigger in enumerate(["heartbeat", "message:m1", "cron:backup"]):
        journal.append_entry(home, day.replace(minute=i), trigger, "did it\n## not a heading · inside", [], [])
    write_compaction(home, day, "- summary", "abc123")
    assert journal.count_wakes(home, day.date()) == 3


def test_bound_summary() -> None:
    long = "\n".join(f"- point {i}" for i in range(1000))
    out = bound_summary(long, 200)
    assert len(out) < 260 and out.endswith("(summary cut to its size limit)")


def test_compaction_flushes_memory_then_summarizes(home: Home) -> None:
    path = home.root / "agent.yaml"
    path.write_text(path.read_text().replace("session_tokens: 6000", "session_tokens: 500"))
    engine = ScriptedEngine()
    agent = build_agent(home, load_config(home.root), engine, clock=lambda: datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    for i in range(2):
        engine.enqueue_action("reply", text=f"answer {i} " + "words " * 200)
        (home.root / f"inbox/m{i}.md").write_text("q\n")
        wake(agent, Event("message", f"question {i}", datetime(2026, 11, 22, 10, 0, tzinfo=UTC), name=f"m{i}", source=f"inbox/m{i}.md"))
    # the next wake starts with a compaction: flush turn, summary, then the wake on a fresh session
    engine.enqueue_action("remember", topic="session", fact="the person asked three questions")
    engine.enqueue_action("done", summary="saved")
    engine.enqueue("- asked three questions\n- all answered")
    engine.enqueue_action("reply", text="fresh start")
    (home.root / "inbox/m9.md").write_text("q\n")
    wake(agent, Event("message", "after", datetime(2026, 11, 22, 10, 0, tzinfo=UTC), name="m9", source="inbox/m9.md"))
    text = (home.root / "memory/journal/2026-11-22.md").read_text()
    assert "compaction of session" in text and "asked three questions" in text
    assert "the person asked three questions" in (home.root / "memory/topics/session.md").read_text()
    last = engine.requests[-1]["messages"]
    assert "[summary of the previous session]" in last[1]["content"] and len(last) == 4
    subjects = [str(c.message).splitlines()[0] for c in home.repo.iter_commits(max_count=3)]
    assert subjects[1] == "compaction: the session was summarized into the journal"
    assert [r["purpose"] for r in agent.ledger.rows()][-4:] == ["flush", "flush", "compaction", "wake"]
    assert "Summarize this session" in engine.requests[-2]["messages"][-1]["content"]

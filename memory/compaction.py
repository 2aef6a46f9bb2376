"""Compaction of a long session into the journal: a memory flush, a bounded summary, a new session."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from agentd.context import Message, Session
from agentd.events import Event
from engine.errors import EngineError, EngineHTTPError

if TYPE_CHECKING:
    from agentd.agent import Agent
    from agentd.home import Home

SUMMARY_MAX_CHARS = 2000
COMPACTION_MAX_TOKENS = 400
FLUSH_MAX_STEPS = 3

MEMORY_FLUSH_INSTRUCTION = """\
This session is about to be compacted: its messages will be replaced by a short summary.
Before that, save anything that must outlive it — facts about the person, decisions,
promises, open tasks — with `remember` or by editing memory files. Then call `done`."""

COMPACTION_INSTRUCTION = """\
Summarize this session for your future self in at most 12 short bullet points:
decisions made, open tasks (with who is waiting), facts learned, and the paths of files
created or changed. No pleasantries; plain Markdown bullets only."""


def bound_summary(text: str, limit: int = SUMMARY_MAX_CHARS) -> str:
    """The model's summary, cut at a line boundary so the journal entry stays bounded."""
    text = text.strip() or "(the model gave no summary)"
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit("\n", 1)[0]
    return cut + "\n- … (summary cut to its size limit)"


def write_compaction(home: Home, when: datetime, summary: str, session_id: str) -> str:
    from memory.journal import _append

    return _append(home, when.date(), f"\n## {when:%H:%M} · compaction of session {session_id}\n\n{bound_summary(summary)}\n")


def headroom(window: int) -> int:
    """Room a wake needs past the session: its event, tool results and answers."""
    return min(max(window // 3, 512), 8192)


def needs_compaction(agent: Agent, session: Session) -> bool:
    """The tail has passed ``budgets.session_tokens``, or leaves a wake too little of the window.

    Tokens are the engine's own counts where it gave them (see ``estimate_tokens``).
    """
    if not session.tail:
        return False
    if agent.compiler.tail_tokens(session) > agent.config.budgets.session_tokens:
        return True
    window = agent.config.engine.context_window()
    return window is not None and agent.compiler.estimate_tokens(session) > window - headroom(window)


def _fit_for_summary(agent: Agent, session: Session, pending: list[Message], window: int | None) -> tuple[Session, list[Message]]:
    """The summary request, cut to fit ``window`` tokens: the oldest turns go first.

    Every wake already left its entry in the journal, so what is cut here is not lost;
    the summary covers the most recent part of the session.
    """
    compiler = agent.compiler
    if window is None or compiler.estimate_tokens(session, pending) + COMPACTION_MAX_TOKENS <= window:
        return session, pending
    pending = pending[-1:]  # the instruction alone, without the memory-flush turn
    tail = list(session.tail)
    note = "[The start of this session is left out here; each wake's entry is in the journal.]\n\n"
    while tail:
        del tail[0]
        while tail and (tail[0].get("role") != "user" or not isinstance(tail[0].get("content"), str)):
            del tail[0]  # start on a person/tool-result turn, never inside a tool call
        if not tail:
            break
        trial = [{"role": "user", "content": note + tail[0]["content"]}, *tail[1:]]
        cut = Session(id=session.id, kind=session.kind, epoch=session.epoch, tail=trial, started=session.started)
        if compiler.estimate_tokens(cut, pending) + COMPACTION_MAX_TOKENS <= window:
            return cut, pending
    return Session(id=session.id, kind=session.kind, epoch=session.epoch, started=session.started), pending


def compact(agent: Agent, session: Session, *, rebuild: bool = True) -> Session:
    """Memory flush, then a summary into the journal, then a new session on the (refreshed) prefix.

    The flush gives the agent one short turn to write what must survive into memory
    files; the summary request is appended to the session as-is, so it reuses the
    cached prefix and tail. Nothing the agent learned lives only in the discarded tail.
    ``rebuild=False`` keeps the prefix: the new session carries the home's changes as a
    steering diff instead (``agentd.wake_session`` decides).
    """
    # The flush is a short wake, and agentd.loop imports this module: so the loop is imported here.
    from agentd.agent import record_usage
    from agentd.loop import Wake, overflowed

    now = agent.clock()
    flush = Wake(agent, Event("system", MEMORY_FLUSH_INSTRUCTION, now, name="memory-flush"))
    flush.budget.max_steps = FLUSH_MAX_STEPS
    flush.purpose = "flush"
    try:
        flush.run(session, [])
    except EngineError:
        pass  # the summary below still runs; a flush is best effort
    pending = [*flush.pending, {"role": "user", "content": COMPACTION_INSTRUCTION}]
    window = agent.config.engine.context_window()
    for attempt in range(4):
        # Each overflow the estimate did not foresee halves what the summary may hold.
        limit = None if window is None else window >> attempt
        summary_session, summary_request = _fit_for_summary(agent, session, pending, limit)
        if summary_session is not session:
            agent.compiler.note_cause("compaction: the oldest turns were left out to fit the window")
        request = agent.compiler.render(summary_session, summary_request)
        try:
            result = agent.engine.chat(request.messages, max_tokens=COMPACTION_MAX_TOKENS, temperature=0.0, extra_body=agent.extra_body)
            break
        except EngineHTTPError as e:
            if attempt == 3 or window is None or not overflowed(e):
                raise
    u = result.usage
    record_usage(agent, u, trigger="compaction", purpose="compaction", check=request.check, session=session.id)
    agent.compiler.measured(request, u.prompt_tokens)  # the new session's first request is checked against it
    summary = bound_summary(result.content)
    write_compaction(agent.home, now, summary, session.id)
    agent.compiler.drop_session(session.kind)
    if rebuild:
        agent.refresh_prefix("compaction")
    fresh = agent.compiler.new_session(session.kind, now)
    # Its first request shares only the prefix: the break is the compaction's, whatever changed.
    agent.compiler.note_cause("compaction")
    # The new session starts from the summary, so the thread of the conversation survives.
    fresh.tail.append({"role": "user", "content": f"[summary of the previous session]\n{summary}"})
    fresh.tail.append({"role": "assistant", "content": '{"tool": "done", "arguments": {"summary": "read the summary"}}'
                       if agent.config.engine.tool_calling == "json" else "Understood."})
    return fresh

"""Opening a wake's session: the prefix, the session, compaction, and steering diffs for mid-session edits.

Moved out of ``agentd.loop.wake`` (which calls :func:`open_session` under the home lock).
The prefix is built anew only when no main session is open (a first wake, a new day: the
daemon's rollover drops the session) or when a steering diff cannot carry the change (see
``agentd.steering_diff``); otherwise a changed prefix file enters the tail as a diff, and a
compaction's new session carries the changes as one diff rather than recompute the prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from git.exc import GitCommandError

from agentd import steering_diff
from agentd.context import Session
from agentd.events import Event
from agentd.home import AGENT
from agentd.ledger import SteeringRecord
from agentd.wal import WriteAheadLog
from engine.errors import EngineError
from memory.compaction import compact, needs_compaction

if TYPE_CHECKING:
    from agentd.agent import Agent

PREFIX_PATHS = ("AGENT.md", "USER.md", "memory/MEMORY.md")


def open_session(agent: Agent, event: Event, changes: list[str]) -> Session:
    """The session this wake runs in, its prefix settled; ``changes``: paths the person's edits just committed."""
    compiler = agent.compiler
    if compiler.prefix is None:
        agent.refresh_prefix("cold start")
    kind = event.session_kind
    main = compiler.load_session("main")
    if main is None:
        # A session boundary: the tail starts empty, so a new prefix costs nothing extra.
        edits = [p for p in changes if p in PREFIX_PATHS or p.endswith("SKILL.md")]
        agent.refresh_prefix(f"{', '.join(edits)} edited by the person" if edits else None)
    session = main if kind == "main" else None
    if session is None:
        session = compiler.new_session(kind, agent.clock())
        session.view_commit = _head(agent)
    if kind == "main" and needs_compaction(agent, session):
        session = _compact(agent, session)
    steer(agent, session, event.trigger)
    return session


def steer(agent: Agent, session: Session, trigger: str) -> steering_diff.Decision:
    """Bring ``session`` up to date with the home's prefix files: a diff in its tail, or a new prefix."""
    compiler = agent.compiler
    assert compiler.prefix is not None
    if session.epoch != compiler.prefix.digest:
        steering_diff.restart_view(session, compiler.prefix)  # carried onto a new prefix (daemon start): it holds every change
    candidate = agent.candidate_prefix()
    if candidate is None:
        return steering_diff.Decision("same")
    decision = steering_diff.decide(compiler, session, candidate, lambda section: steering_diff.who_changed(_authors(agent, session, section)))
    if decision.kind == "new-prefix":
        agent.refresh_prefix(decision.cause)
        steering_diff.restart_view(session, compiler.prefix)
    elif decision.kind == "diff":
        steering_diff.apply(session, decision)
        agent.ledger.record_steering(SteeringRecord(
            trigger=trigger,
            cause=decision.cause or steering_diff.STEERING_TAG,
            sections=", ".join(c.section for c in decision.changes),
            diff_tokens=decision.diff_tokens,
            saved_prefix_tokens=decision.saved_prefix_tokens,
            saved_tail_tokens=decision.saved_tail_tokens,
            session=session.id,
            day=agent.clock().strftime("%Y-%m-%d"),
        ))
    session.view_commit = _head(agent)
    return decision


def _head(agent: Agent) -> str | None:
    repo = agent.home.repo
    return repo.head.commit.hexsha if repo.head.is_valid() else None


def _authors(agent: Agent, session: Session, section: str) -> set[str]:
    """Who committed changes to ``section``'s file since the session last looked: "person", "agent"."""
    rel = steering_diff.SECTION_SOURCES.get(section, section)
    git = agent.home.repo.git
    try:
        out = git.log("--format=%ae", f"{session.view_commit}..HEAD", "--", rel) if session.view_commit else ""
    except GitCommandError:
        out = ""
    if not out.strip():
        out = git.log("--format=%ae", "-1", "--", rel)
    return {"agent" if email == AGENT.email else "person" for email in out.split()} or {"person"}


def _compact(agent: Agent, session: Session) -> Session:
    """The session passed its budget: flush, summarize into the journal, a new session (on a new prefix if need be)."""
    home, compiler = agent.home, agent.compiler
    # The new session's tail starts almost empty, but a new prefix still recomputes
    # everything from its first change on (a USER.md edit: USER.md's rest and MEMORY.md),
    # so the prefix is kept and the changes carried as one diff while a diff can carry them;
    # the new prefix waits for the next day (the daemon's rollover), warmed while idle.
    candidate = agent.candidate_prefix()
    fresh = compiler.new_session(session.kind, agent.clock())
    carry = steering_diff.decide(compiler, fresh, candidate, lambda _: steering_diff.PERSON) if candidate else None
    rebuild = carry is not None and carry.kind == "new-prefix"
    wal = WriteAheadLog(home.runtime)
    wal.begin("compaction")
    try:
        session = compact(agent, session, rebuild=rebuild)
    except Exception as e:
        # Compaction waits for a healthy engine (the wake reports the failure); a bug
        # surfaces, with the home as it was.
        wal.roll_back(home)
        if not isinstance(e, EngineError):
            raise
        return session
    home.commit(
        "compaction: the session was summarized into the journal",
        identity=AGENT,
        all_changes=True,
        trailers={"Wake-Trigger": "compaction", "Model": agent.model},
    )
    session.view_commit = _head(agent)
    compiler.save_session(session)
    wal.end()
    return session

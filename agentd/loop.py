"""One wake: event in → engine ↔ tools until done or out of budget → journal, outbox, one commit."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentd.agent import Agent, record_usage
from agentd.context import (
    HEARTBEAT_OK,
    Message,
    Request,
    Session,
)
from agentd.errors import AgentdError, SecretError
from agentd.events import Event, WakeResult
from agentd.home import AGENT
from agentd.recall import recall_from_home
from agentd.tools.base import ToolContext, ToolOutcome
from agentd.turns import (
    REPLY,
    assistant_message,
    parse_turn,
    reply_call_stream,
    reply_stream,
    result_message,
)
from agentd.wake_session import open_session
from agentd.wal import WriteAheadLog
from engine.errors import EngineError, EngineHTTPError
from engine.types import ChatResult
from memory import journal
from memory.compaction import headroom

MAX_REPLY_IN_COMMIT = 72
STEP_MAX_TOKENS = 512  # one action; a model stuck repeating itself stops here, not at the wake budget
MIN_STEP_TOKENS = 64  # a step needs at least this much room in the context window
MAX_SAME_FAILURES = 2  # the same call (tool and arguments) failing this often is not run again
LAST_STEP_NOTE = "[last step] This is the last step of this wake: answer the person now with the reply tool, from what you know."
REPEAT_NOTE = ("not run: this exact call already failed twice ({error}). Do not repeat it; "
               "answer the person with the reply tool from what you know.")
# How engines say a prompt does not fit (llama.cpp, vLLM, SGLang, OpenAI).
CONTEXT_OVERFLOW = re.compile(
    r"context (length|size|window)|maximum context|does not fit the context|context_length_exceeded|too many tokens",
    re.IGNORECASE,
)


class ContextFull(Exception):
    """The next request would not fit the engine's context window: the wake stops here."""


@dataclass
class _Budget:
    max_steps: int
    max_completion: int
    deadline: float
    monotonic: Callable[[], float] = time.monotonic
    steps: int = 0
    completion: int = 0

    def last_step(self) -> bool:
        """The next step is the last the step or completion budget allows (a step may use STEP_MAX_TOKENS)."""
        return self.steps + 1 >= self.max_steps or self.max_completion - self.completion <= STEP_MAX_TOKENS

    def exhausted(self) -> str | None:
        if self.steps >= self.max_steps:
            return f"step budget of {self.max_steps} engine calls used up"
        if self.completion >= self.max_completion:
            return f"completion budget of {self.max_completion} tokens used up"
        if self.monotonic() >= self.deadline:
            return "wall-time budget used up"
        return None


def session_kind(event: Event) -> str:
    """Cron jobs run in their own short session on the shared prefix; the rest share "main"."""
    return event.session_kind


class Wake:
    """Runs one event through the engine and the tools; see :func:`wake`."""

    def __init__(self, agent: Agent, event: Event, on_delta: Callable[[str], None] | None = None) -> None:
        self.agent = agent
        self.event = event
        self.on_delta = on_delta
        self.now = agent.clock()
        self.result = WakeResult(wake_id=agent.new_id(), event=event, status="ok")
        self.ctx = ToolContext(agent.home, agent.config, event, self.result.wake_id, mask=agent.mask)
        self.pending: list[Message] = []
        self.summary: str | None = None
        self.purpose = "wake"
        self.failures: dict[str, tuple[int, str]] = {}  # call key → (times failed, last error)
        self.reply_only = False  # the next step may only reply (a repeated failing call was refused)
        self.final_asked = False  # a reply-only step was made
        b = agent.config.budgets
        self.budget = _Budget(b.max_steps, b.max_completion_tokens, agent.monotonic() + b.max_wall_seconds, agent.monotonic)

    # ---------------------------------------------------------------- the loop
    def run(self, session: Session, changes: list[str]) -> None:
        recalled = recall_from_home(self.agent.home.root, self.event.text) if self.event.spec.from_person else []
        self.pending.append(self.agent.compiler.event_message(self.event, self.now, changes, recalled))
        tool_calling = self.agent.config.engine.tool_calling
        while True:
            stop = self.budget.exhausted()
            # A person who asked gets the model's answer, not a budget notice: the step the
            # budget allows last may only reply; a wall-time stop before it grants that one step.
            grace = stop is not None and self._owes_answer() and not self.final_asked and self.budget.completion < self.budget.max_completion
            if stop and not grace:
                self._stop(stop)
                return
            reply_only = self._owes_answer() and (grace or self.reply_only or self.budget.last_step())
            if reply_only:
                self.final_asked = True
                self.pending.append({"role": "user", "content": LAST_STEP_NOTE})
            try:
                result = self._call(session, reply_only)
            except ContextFull as e:
                self._stop(str(e))
                return
            turn = parse_turn(result, tool_calling, reply_only)
            self.pending.append(assistant_message(result, tool_calling))
            if turn.problem:
                self.result.actions.append("malformed action (returned to the model)")
                self.pending.append({"role": "user", "content": f"[error] {turn.problem}"})
                continue
            if turn.final_text is not None:
                self._finish_with_text(turn.final_text)
                return
            ended = False
            for name, arguments, call_id in turn.calls:
                outcome = self._execute(name, arguments)
                self.result.actions.append(self.agent.mask(self._describe(name, arguments, outcome)))
                self.pending.append(result_message(outcome, call_id, tool_calling))
                if outcome.ends_wake:
                    ended = True
                    if outcome.reply is not None:
                        self.result.reply = outcome.reply
                    elif self.event.spec.from_person:
                        self.result.reply = outcome.text  # the person asked: `done`'s summary is the answer
                    else:
                        self.summary = outcome.text
            if ended:
                return

    def _owes_answer(self) -> bool:
        return self.event.kind == "message" and self.result.reply is None

    def _execute(self, name: str, arguments: str | dict[str, Any]) -> ToolOutcome:
        """Run one call, unless the very same call already failed twice: then the model is told so."""
        args = arguments
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except (json.JSONDecodeError, RecursionError):
                pass
        key = name + "\0" + (json.dumps(args, sort_keys=True) if not isinstance(args, str) else args)
        failed, error = self.failures.get(key, (0, ""))
        if failed >= MAX_SAME_FAILURES:
            self.reply_only = self._owes_answer()
            return ToolOutcome(name, False, "error: " + REPEAT_NOTE.format(error=error[:200]))
        outcome = self.agent.registry.execute(self.ctx, name, arguments)
        if not outcome.ok:
            self.failures[key] = (failed + 1, " ".join(outcome.text.split()))
        return outcome

    def _stop(self, why: str) -> None:
        """A budget ran out: recorded as such, and a person who asked hears why."""
        self.result.status = "budget"
        self.result.error = why
        if self.event.spec.from_person and self.result.reply is None:
            self.result.reply = f"(I could not finish an answer: {why}. What I did is in the journal.)"

    def _finish_with_text(self, text: str) -> None:
        if self.event.spec.from_person or (text and text != HEARTBEAT_OK):
            self.result.reply = text or "(no answer)"
        else:
            self.summary = text

    def _call(self, session: Session, reply_only: bool = False) -> ChatResult:
        agent = self.agent
        request: Request = agent.compiler.render(session, self.pending)
        tool_calling = agent.config.engine.tool_calling
        max_tokens = min(STEP_MAX_TOKENS, self.budget.max_completion - self.budget.completion)
        window = agent.config.engine.context_window()
        if window is not None:
            room = window - request.estimated_tokens
            if room < MIN_STEP_TOKENS:
                raise ContextFull(_context_full(window, agent.compiler.prefix_estimate()))
            max_tokens = min(max_tokens, room)
        kwargs: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0.0, "extra_body": agent.extra_body}
        if tool_calling == "native":
            # The tools stay the same (they are part of the cached prefix); only the choice narrows.
            choice = {"type": "function", "function": {"name": REPLY}} if reply_only else "auto"
            kwargs |= {"tools": request.tools, "tool_choice": choice}
        else:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "action", "schema": agent.registry.action_schema(REPLY if reply_only else None)},
            }
        # Always streamed: the engine's time to first token is measured, not guessed.
        on_delta = self.on_delta
        if on_delta is not None and tool_calling == "json":
            on_delta = reply_stream(on_delta)
        elif on_delta is not None:
            kwargs["on_call_delta"] = reply_call_stream(on_delta)
        try:
            result = agent.engine.chat(request.messages, stream=True, on_delta=on_delta, **kwargs)
        except EngineHTTPError as e:
            if not overflowed(e):
                raise
            # The estimate was low: remember that this much did not fit, so the
            # session is compacted before the next wake.
            session.measured(request, max(window or 0, request.estimated_tokens + MIN_STEP_TOKENS))
            raise ContextFull(_context_full(window)) from e
        self.budget.steps += 1
        self.budget.completion += result.usage.completion_tokens
        u = result.usage
        record_usage(agent, u, trigger=self.event.trigger, purpose=self.purpose, check=request.check, session=session.id)
        agent.compiler.measured(request, u.prompt_tokens, session)
        self.result.steps += 1
        self.result.prompt_tokens += u.prompt_tokens
        self.result.completion_tokens += u.completion_tokens
        if u.cached_tokens is not None:
            self.result.cached_tokens = (self.result.cached_tokens or 0) + u.cached_tokens
        return result

    @staticmethod
    def _describe(name: str, arguments: str | dict[str, Any], outcome: ToolOutcome) -> str:
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except (json.JSONDecodeError, RecursionError):
                pass
        if isinstance(arguments, dict):
            key = next(iter(arguments.values()), "") if arguments else ""
            shown = " ".join(str(key).split())[:80]
        else:
            shown = str(arguments)[:80]
        status = "" if outcome.ok else " (failed)"
        return f"{name}: {shown}{status}"

    # ---------------------------------------------------------------- recording
    def heartbeat_was_empty(self) -> bool:
        if not self.event.spec.quiet_ok or self.result.status != "ok" or self.ctx.changed:
            return False
        text = (self.result.reply or self.summary or "").strip()
        return text.startswith(HEARTBEAT_OK)

    def record(self, session: Session) -> None:
        """Journal, outbox, inbox move, session tail; the caller commits."""
        home, ev, res = self.agent.home, self.event, self.result
        if res.reply is not None:
            self._deliver(res.reply)
        if ev.spec.from_person and ev.source and res.status != "failed":
            done = f"inbox/done/{ev.source.split('/')[-1]}"
            if (home.root / ev.source).exists():
                home.move(ev.source, done)
        what = res.reply or self.summary or res.error or "no result"
        tokens = f"{res.prompt_tokens} prompt, {res.cached_tokens if res.cached_tokens is not None else 'unknown'} cached, {res.completion_tokens} completion"
        journal.append_entry(
            home,
            self.now,
            ev.label + ("" if res.status == "ok" else f" ({res.status})"),
            " ".join(what.split())[:300],
            res.actions,
            self.ctx.changed,
            tokens,
        )
        session.tail.extend(self.pending)

    def _deliver(self, reply: str) -> None:
        home, ev = self.agent.home, self.event
        day = self.now.strftime("%Y-%m-%d")
        rel = f"outbox/{day}.md"
        head = f"# Conversation {day}\n" if not (home.root / rel).exists() else ""
        quoted = ""
        if ev.spec.from_person:
            quoted = "\n".join("> " + line for line in ev.text.strip().splitlines()[:20]) + "\n\n"
        ref = f" · re: {ev.name}" if ev.name else ""
        home.append_text(rel, f"{head}\n## {self.now.strftime('%H:%M')} · {ev.label}{ref}\n\n{quoted}{reply.strip()}\n")
        self.ctx.note_change(rel)

    def commit_message(self) -> tuple[str, dict[str, str]]:
        res, ev = self.result, self.event
        what = res.reply or self.summary or res.error or "no result"
        first = " ".join(what.split())
        if len(first) > MAX_REPLY_IN_COMMIT:
            first = first[: MAX_REPLY_IN_COMMIT - 1] + "…"
        status = "" if res.status == "ok" else f" [{res.status}]"
        subject = f"wake {ev.label}{status}: {first}"
        body = "\n".join(f"- {a}" for a in res.actions[:30])
        if res.error:
            body += f"\n\n{res.status}: {res.error}"
        trailers = {
            "Wake-Trigger": ev.label,
            "Wake-Id": res.wake_id,
            "Wake-Status": res.status,
            "Model": self.agent.model,
            "Prompt-Tokens": str(res.prompt_tokens),
            "Cached-Tokens": "unknown" if res.cached_tokens is None else str(res.cached_tokens),
            "Completion-Tokens": str(res.completion_tokens),
            "Wake-Steps": str(res.steps),
        }
        return subject + ("\n\n" + body if body.strip() else ""), trailers


def _context_full(window: int | None, prefix_tokens: int | None = None) -> str:
    if window and prefix_tokens and prefix_tokens > window - headroom(window):
        return (f"the home's stable context (~{prefix_tokens} tokens: rules, tools, AGENT.md, USER.md, skills, "
                f"MEMORY.md) leaves too little of the engine's {window}-token window; shorten memory/MEMORY.md "
                "or give the engine a larger context (engine.llamacpp.n_ctx)")
    size = f" of {window} tokens" if window else ""
    return f"the engine's context window{size} is full (the session is compacted before the next wake)"


def overflowed(e: EngineHTTPError) -> bool:
    return e.status == 400 and CONTEXT_OVERFLOW.search(e.body) is not None


def wake(agent: Agent, event: Event, *, on_delta: Callable[[str], None] | None = None) -> WakeResult:
    """Run one wake under the home lock: absorb the person's edits, think and act, record, commit.

    Every wake ends in one commit, or leaves the home as it was (an empty heartbeat,
    or an engine that could not be reached for a message that stays in the inbox).
    """
    home = agent.home
    started = time.monotonic()
    with home.lock(purpose=f"wake {event.label}"):
        home.forget_reads()
        if WriteAheadLog(home.runtime).active():
            home.recover()  # an earlier wake died before its commit: undo it first
        # The message that woke the agent goes into the wake's own commit, with its answer.
        absorbed = home.absorb_person_edits(exclude=[event.source] if event.source else None)
        changes = home.repo.git.show("--name-only", "--format=", absorbed).split() if absorbed else []
        session = open_session(agent, event, changes)
        kind = session.kind
        compiler = agent.compiler
        wal = WriteAheadLog(home.runtime)
        w = Wake(agent, event, on_delta)
        wal.begin(f"{w.result.wake_id} {event.label}")
        crash: Exception | None = None
        try:
            w.run(session, changes)
        except EngineError as e:
            w.result.status = "failed"
            w.result.error = f"engine: {e}"
        except AgentdError as e:
            w.result.status = "failed"
            w.result.error = str(e)
        except Exception as e:  # noqa: BLE001 - a bug part-way still ends in the failure commit, then surfaces
            crash = e
            w.result.status = "failed"
            w.result.error = f"{type(e).__name__}: {e}"

        w.result.files_changed = list(w.ctx.changed)
        if w.heartbeat_was_empty():
            # Nothing to do: no trace in the session, no journal entry, no commit.
            w.result.status = "heartbeat_ok"
            wal.end()
        elif w.result.status == "failed" and event.spec.retried and not w.ctx.changed:
            # The engine could not answer: undone, to be tried again (a message stays in the inbox).
            wal.roll_back(home)
        else:
            # Someone edited a file the agent was working on: their version is
            # committed first, as theirs, so both versions are in history.
            behind = home.changed_behind_agent()
            if behind:
                home.commit(f"person: edited {', '.join(behind)} during a wake", identity=home.person_identity(), paths=behind)
            w.record(session)
            message, trailers = w.commit_message()
            trailers["Wake-Seconds"] = f"{time.monotonic() - started:.1f}"  # the web app's timeline shows it
            try:
                w.result.commit = home.commit(message, identity=AGENT, all_changes=True, trailers=trailers)
            except SecretError:
                wal.roll_back(home)
                raise
            wal.end()
        if kind == "main" and w.result.status != "failed":
            compiler.save_session(session)
    w.result.seconds = time.monotonic() - started
    if crash is not None:
        # Recorded and committed above (or rolled back, for a message that stays in the
        # inbox); raised again so the daemon logs the traceback and backs the message off.
        raise crash
    return w.result



def warm_up(agent: Agent, reason: str) -> int | None:
    """Prefill the epoch's prefix (max_tokens 1) so the next real wake starts hot.

    Returns the prefix's token count as the engine measured it; recorded in the ledger.
    """
    if agent.compiler.prefix is None:
        agent.refresh_prefix("cold start")
    request = agent.compiler.render_prefix()
    kwargs: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0, "extra_body": agent.extra_body}
    if agent.config.engine.tool_calling == "native":
        kwargs["tools"] = request.tools
    result = agent.engine.chat(request.messages, **kwargs)
    u = result.usage
    # The break (a new epoch, an engine restart) is recorded here, once: the next
    # wake finds the prefix as the warm-up left it. ``reason`` is the daemon's log line.
    record_usage(agent, u, trigger="warmup", purpose="warmup", check=request.check)
    agent.compiler.measured(request, u.prompt_tokens)
    return u.prompt_tokens

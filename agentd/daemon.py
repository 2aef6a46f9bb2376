"""The daemon: one process per home that wakes the agent on heartbeats, cron jobs and inbox messages.

Wakes run one at a time from a queue (messages first; a heartbeat or cron job that
comes due while it waits is coalesced). The engine is supervised, steering files
are watched, and a crash is recovered on the next start: unfinished writes are
undone, messages whose wake did not commit are processed again.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from agentd import heartbeat as hb
from agentd import inbox
from agentd.config import Config, load_config
from agentd.errors import AgentdError, SecretError, SourceError
from agentd.events import Event, WakeResult
from agentd.fileio import atomic_write, file_lock, lock_held
from agentd.home import AGENT, Home
from agentd.loop import Agent, wake, warm_up
from agentd.wal import WriteAheadLog
from agentd.wiring import build_agent, make_supervisor, timezone_of
from engine.errors import EngineError
from engine.supervisor import EngineInfo, EngineSupervisor
from memory import journal
from scheduler.cron import CronJob, parse_cron_md
from scheduler.service import Scheduler
from scheduler.timespec import ActiveHours

log = logging.getLogger("agentd")

STEERING = ("agent.yaml", "CRON.md", "HEARTBEAT.md")
PREFIX_SOURCES = ("AGENT.md", "USER.md", "memory/MEMORY.md")
POLL_S = 0.25
STOP_GRACE_S = 30.0
SHUTDOWN_DEADLINE_S = 50.0  # under `agentd stop`'s 60 s before SIGKILL
ENGINE_OWNER = "engine-owner.json"  # the engine this home's daemon started (pid)
REPORTED = "reported.json"  # problems already told to the person, across restarts
# Wakes a message may fail with an error of agentd's own (a refused commit, a bug; not an
# engine outage, which is waited out) before it is set aside in .agentd/failed/.
MESSAGE_ATTEMPTS = 3


# ---------------------------------------------------------------------- state files
def state_path(home: Home) -> Path:
    return home.runtime / "daemon.json"


def read_state(home: Home) -> dict[str, Any] | None:
    """The running daemon's state, or None (a stale file of a dead daemon counts as none)."""
    try:
        state: dict[str, Any] = json.loads(state_path(home).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not psutil.pid_exists(pid) or not daemon_lock_held(home):
        return None
    return state


def daemon_lock_held(home: Home) -> bool:
    return lock_held(home.runtime / "daemon.lock")


@contextlib.contextmanager
def daemon_lock(home: Home) -> Iterator[None]:
    """One daemon per home: a second one is refused with the holder's PID."""
    running = lambda holder: f"a daemon is already running on {home.root}: {holder}"  # noqa: E731
    with file_lock(home.runtime / "daemon.lock", timeout=0, purpose="daemon", refusal=running):
        yield


# ---------------------------------------------------------------------- the queue
@dataclass(order=True)
class _Retry:
    due: float
    name: str = field(compare=False)


class WakeQueue:
    """Messages in arrival order first; one pending heartbeat; each cron job at most once pending."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self.messages: deque[str] = deque()
        self.crons: dict[str, datetime] = {}
        self.heartbeat: datetime | None = None
        self.system: deque[Event] = deque()
        self.known: set[str] = set()  # message files queued or in flight
        self.coalesced = 0

    def put_message(self, rel: str) -> bool:
        with self._cv:
            if rel in self.known:
                return False
            self.known.add(rel)
            self.messages.append(rel)
            self._cv.notify()
            return True

    def put_heartbeat(self, at: datetime) -> None:
        with self._cv:
            if self.heartbeat is not None:
                self.coalesced += 1
            self.heartbeat = self.heartbeat or at
            self._cv.notify()

    def put_cron(self, name: str, at: datetime) -> None:
        with self._cv:
            if name in self.crons:
                self.coalesced += 1
            self.crons.setdefault(name, at)
            self._cv.notify()

    def put_system(self, event: Event) -> None:
        with self._cv:
            self.system.append(event)
            self._cv.notify()

    def done_message(self, rel: str) -> None:
        with self._cv:
            self.known.discard(rel)

    def get(self, timeout: float) -> tuple[str, Any] | None:
        with self._cv:
            if not (self.messages or self.system or self.crons or self.heartbeat):
                self._cv.wait(timeout)
            if self.messages:
                return ("message", self.messages.popleft())
            if self.system:
                return ("system", self.system.popleft())
            if self.crons:
                name = next(iter(self.crons))
                return ("cron", (name, self.crons.pop(name)))
            if self.heartbeat is not None:
                at, self.heartbeat = self.heartbeat, None
                return ("heartbeat", at)
            return None


# ---------------------------------------------------------------------- the daemon
class Daemon:
    """``agentd run``: lifecycle, schedule, inbox, steering, engine, one wake at a time."""

    def __init__(self, home: Home, *, poll_s: float = POLL_S) -> None:
        self.home = home
        self.poll_s = poll_s
        self.queue = WakeQueue()
        self.stop_event = threading.Event()
        self.config: Config | None = None
        self.jobs: dict[str, CronJob] = {}
        self.supervisor: EngineSupervisor | None = None
        self.agent: Agent | None = None
        self.scheduler: Scheduler | None = None
        self.hashes: dict[str, str] = {}
        self.reported: set[str] = set()  # problems already told to the person
        self.retries: list[_Retry] = []
        self.attempts: dict[str, int] = {}
        self.last_wake: dict[str, Any] | None = None
        self.started = time.time()
        self.day = ""
        self.worker: threading.Thread | None = None
        self.need_warmup: str | None = None
        # Skills found bad while a wake holds the home lock: told from the main loop after it.
        self.skill_errors: collections.deque[SourceError] = collections.deque()
        self.prefix_hashes: dict[str, str] = {}
        self.owns_engine = False  # started by this daemon (or by a previous one that was killed)
        self.adopted_pid: int | None = None
        self._deadline: threading.Timer | None = None
        self.inbox_watch = inbox.SettleWatch()
        self.read_messages: dict[str, bytes] = {}  # message → the bytes its wake read

    # ------------------------------------------------------------ lifecycle
    def run(self) -> int:
        with daemon_lock(self.home):
            self._setup_logging()
            self._install_signals()
            try:
                self._start()
                self._loop()
            finally:
                self._shutdown()
        return 0

    def _setup_logging(self) -> None:
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        fh = logging.FileHandler(self.home.logs / "daemon.log")
        fh.setFormatter(fmt)
        sh = logging.StreamHandler()
        sh.setFormatter(fmt)
        log.handlers[:] = [fh, sh]
        log.setLevel(logging.INFO)
        log.propagate = False

    def _install_signals(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            log.info("received %s: finishing the running wake, then stopping", signal.Signals(signum).name)
            self.stop_event.set()
            if self._deadline is None:
                # `agentd stop` SIGKILLs after 60 s, which would orphan the engine: whatever
                # hangs (a warm-up, an engine restart, a lock), exit with the engine stopped first.
                self._deadline = threading.Timer(SHUTDOWN_DEADLINE_S, self._abort)
                self._deadline.daemon = True
                self._deadline.start()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        # A writer breaking the inbox's read lease (inbox.open_for_writing) sends SIGIO.
        signal.signal(signal.SIGIO, signal.SIG_IGN)

    def _start(self) -> None:
        log.info("daemon starting on %s (pid %d)", self.home.root, os.getpid())
        self.config = load_config(self.home.root)
        self._recover()
        self.reported = self._load_reported()
        self.supervisor = make_supervisor(self.home, self.config)
        info = self._engine_up(self.supervisor)
        log.info("engine %s ready at %s (pid %s)", info.model, info.url, info.pid)
        self.supervisor.on_event = self._engine_event
        self.supervisor.start_monitor()
        self.agent = build_agent(self.home, self.config, self.supervisor.client(), model=info.model, on_bad_source=self._bad_skill)
        # The person's prefix edits made while the daemon was down were just committed by
        # recovery, so no wake will see them as edits: compare with the saved epoch now.
        compiler = self.agent.compiler
        if self.agent.refresh_prefix("cold start" if compiler.prefix is None else None):
            log.info("new epoch at start: %s", compiler.epoch_cause)
        self.scheduler = Scheduler(
            state_path=self.home.runtime / "schedule.json",
            on_fire=self._on_fire,
            on_skip=self._on_skip,
        )
        self._reload_steering(initial=True)
        self.scheduler.start()
        self.need_warmup = "daemon started"
        self._write_state()
        log.info("daemon ready")

    def _recover(self) -> None:
        """Undo an unfinished wake, then commit whatever else is uncommitted."""
        home = self.home
        with home.lock(purpose="recovery"):
            wal = WriteAheadLog(home.runtime)
            label = wal.label()
            undone = home.recover()
            for line in undone:
                log.info("recovery: %s", line)
            try:
                if label is not None:
                    sha = home.commit(
                        f"recovered after crash: wake {label.split(' ', 1)[-1]} did not finish\n\n"
                        + "\n".join(f"- {u}" for u in undone),
                        identity=AGENT,
                        all_changes=True,
                    )
                else:
                    sha = home.absorb_person_edits()
                if sha:
                    log.info("recovery: committed uncommitted changes (%s)", sha[:8])
            except SecretError as e:
                log.error("recovery: %s", e)

    def _abort(self) -> None:
        log.warning("still not stopped %.0fs after the signal: aborting (the next start undoes an unfinished wake)", SHUTDOWN_DEADLINE_S)
        self._stop_engine()
        state_path(self.home).unlink(missing_ok=True)
        os._exit(0)

    def _shutdown(self) -> None:
        if self.worker is not None and self.worker.is_alive():
            self.worker.join(STOP_GRACE_S)
            if self.worker.is_alive():
                log.warning("wake still running after %.0fs: aborting it (the next start undoes it)", STOP_GRACE_S)
                self._stop_engine()
                state_path(self.home).unlink(missing_ok=True)
                os._exit(0)
        if self.scheduler is not None:
            self.scheduler.stop()
        self._stop_engine()
        state_path(self.home).unlink(missing_ok=True)
        log.info("daemon stopped")

    # ------------------------------------------------------------ the engine's owner
    def _engine_up(self, sup: EngineSupervisor) -> EngineInfo:
        """Adopt a running engine or start one; the daemon stops only an engine it started."""
        adopted = sup.adopt()
        if adopted is None:
            orphan = _stop_owned_engine(self.home)  # alive but not adoptable (hung): not left behind
            if orphan is not None:
                log.warning("stopped engine %d, left by a previous daemon and not answering", orphan)
            info = sup.start()
            self.adopted_pid = None
            self.owns_engine = info.pid is not None
        else:
            info = adopted
            # One a previous daemon started and left behind (it was killed) is still ours;
            # one the person started (`agentd engine start`) stays theirs.
            self.adopted_pid = info.pid
            self.owns_engine = info.pid is not None and info.pid == _owned_engine_pid(self.home)
        self._record_owner()
        return info

    def _engine_started_here(self) -> bool:
        info = self.supervisor.info if self.supervisor is not None else None
        if info is None or info.pid is None:
            return False
        # The monitor restarts a dead engine: a new pid is one this daemon started.
        return self.owns_engine or info.pid != self.adopted_pid

    def _record_owner(self) -> None:
        path = self.home.runtime / ENGINE_OWNER
        info = self.supervisor.info if self.supervisor is not None else None
        if self._engine_started_here() and info is not None:
            atomic_write(path, json.dumps({"pid": info.pid, "daemon": os.getpid()}))
        else:
            path.unlink(missing_ok=True)

    def _stop_engine(self) -> None:
        sup = self.supervisor
        if sup is None:
            return
        sup.stop_monitor()
        if self._engine_started_here():
            sup.stop()
            (self.home.runtime / ENGINE_OWNER).unlink(missing_ok=True)
        elif sup.info is not None and sup.info.pid is not None:
            log.info("leaving the engine (pid %s) running: this daemon adopted it, it did not start it", sup.info.pid)

    # ------------------------------------------------------------ main loop
    def _loop(self) -> None:
        next_poll = 0.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            # The inbox every tick: a message is taken once it looks the same on two polls,
            # so this tick is the delay a message waits before its wake.
            self._poll_inbox()
            if now >= next_poll:
                self._reload_steering()
                self._watch_prefix()
                self._due_retries()
                next_poll = now + self.poll_s * 4
            if self.worker is not None and self.worker.is_alive():
                self.stop_event.wait(self.poll_s)
                continue
            self._report_skill_errors()  # the home lock is free between wakes
            if self.need_warmup and self.agent is not None and not self.stop_event.is_set():
                # On the worker, like a wake: a slow or hung engine delays the next wake,
                # never the inbox, steering reloads or a stop.
                reason, self.need_warmup = self.need_warmup, None
                self.worker = threading.Thread(target=self._warm, args=(reason,), name="warm-up", daemon=True)
                self.worker.start()
                continue
            item = self.queue.get(self.poll_s)
            if item is None or self.stop_event.is_set():
                if item is not None and item[0] == "message":
                    self.queue.done_message(item[1])
                continue
            self.worker = threading.Thread(target=self._process, args=item, name="wake", daemon=True)
            self.worker.start()

    def _warm(self, reason: str) -> None:
        assert self.agent is not None
        try:
            tokens = warm_up(self.agent, reason)
            log.info("warm-up (%s): prefix of %s tokens prefilled", reason, tokens)
        except EngineError as e:
            log.warning("warm-up failed: %s", e)
        except Exception:  # noqa: BLE001 - on the worker thread: logged, the daemon goes on
            log.exception("warm-up crashed")

    def _process(self, kind: str, payload: Any) -> None:
        try:
            event = self._event_for(kind, payload)
            if event is None:
                return
            self._rollover_day()
            assert self.agent is not None
            result = wake(self.agent, event)
            self._after_wake(event, result)
        except AgentdError as e:
            log.error("wake %s failed: %s", kind, e)
            self._report_once(f"wake-{type(e).__name__}", f"A wake could not run: {e}")
            if kind == "message":
                self._message_failed(payload, str(e))
        except Exception as e:  # noqa: BLE001 - the daemon must outlive a bug in one wake
            log.exception("wake %s crashed", kind)
            if kind == "message":
                self._message_failed(payload, f"{type(e).__name__}: {e}")
        finally:
            if kind == "message":
                self.read_messages.pop(payload, None)
                self.queue.done_message(payload)

    def _event_for(self, kind: str, payload: Any) -> Event | None:
        assert self.config is not None and self.agent is not None
        now = self.agent.clock()
        if kind == "message":
            try:
                data = (self.home.root / payload).read_bytes()
            except FileNotFoundError:
                return None
            self.read_messages[payload] = data
            return inbox.message_event(payload, data, now)
        if kind == "system":
            event: Event = payload
            return event
        if self._over_daily_budget():
            self._skip(kind, "daily token budget reached (background wakes pause; messages still run)")
            return None
        if kind == "cron":
            name, _at = payload
            job = self.jobs.get(name)
            if job is None:
                self._skip("cron", f"job {name!r} no longer in CRON.md")
                return None
            return Event("cron", job.instruction, now, name=job.slug)
        plan = hb.prepare(self.home, self.config, now)
        for key, text in plan.notices:
            self._report_once(key, text)
        if plan.event is None:
            self._skip("heartbeat", plan.reason)
            return None
        return plan.event

    def _after_wake(self, event: Event, result: WakeResult) -> None:
        cached = "n/a" if result.cached_percent is None else f"{result.cached_percent:.0f}%"
        log.info(
            "wake %s %s steps=%d prompt=%d cached=%s completion=%d %.1fs%s",
            event.label,
            result.status,
            result.steps,
            result.prompt_tokens,
            cached,
            result.completion_tokens,
            result.seconds,
            f" error={result.error}" if result.error else "",
        )
        self.last_wake = {
            "label": event.label,
            "status": result.status,
            "at": datetime.now().isoformat(timespec="seconds"),
            "steps": result.steps,
            "prompt_tokens": result.prompt_tokens,
            "cached_tokens": result.cached_tokens,
            "commit": result.commit,
        }
        if event.kind == "message" and event.source:
            self._keep_late_write(event.source, result)
            inbox.write_reply_note(self.home, event, result)
            if result.status == "failed" and not result.commit:
                self._retry_message(event.source, result.error or "failed")
            else:
                self.attempts.pop(event.source, None)
        if result.status == "failed" and result.error and result.error.startswith("engine"):
            self._report_once("engine-failing", f"The engine is failing; wakes are retried. Last error: {result.error}")
        elif result.status != "failed" and result.steps:
            self._forget_reported("engine-failing", "engine-gave-up")
        self._write_state()

    def _keep_late_write(self, rel: str, result: WakeResult) -> None:
        """A writer that went on writing after the message was read: the rest becomes a new message."""
        read = self.read_messages.pop(rel, None)
        done = f"inbox/done/{Path(rel).name}"
        if read is None or not result.commit or not (self.home.root / done).is_file():
            return
        try:
            with self.home.lock(timeout=60, purpose="late write to a message"):
                new = inbox.keep_late_write(self.home, done, read, datetime.now())
        except AgentdError as e:
            log.error("could not check %s for a late write: %s", done, e)
            return
        if new:
            log.warning("%s changed after it was read: what was added is queued as %s", rel, new)

    def _message_failed(self, rel: str, error: str) -> None:
        """Back off; after ``MESSAGE_ATTEMPTS`` such failures, set the message aside and say so."""
        if self.attempts.get(rel, 0) + 1 < MESSAGE_ATTEMPTS:
            self._retry_message(rel, error)
            return
        self.attempts.pop(rel, None)
        try:
            with self.home.lock(timeout=60, purpose="set a message aside"):
                kept = inbox.set_aside(self.home, rel)
        except (AgentdError, OSError) as e:
            log.error("could not set %s aside: %s; retrying it later", rel, e)
            self._retry_message(rel, error)
            return
        if kept is None:
            return
        inbox.write_note(self.home, Path(rel).stem, status="set_aside", error=f"set aside in {kept} after {MESSAGE_ATTEMPTS} failed wakes: {error}")
        log.error("message %s set aside in %s after %d failed wakes: %s", rel, kept, MESSAGE_ATTEMPTS, error)
        self._report_once(
            f"set-aside:{rel}",
            f"Your message {rel} failed {MESSAGE_ATTEMPTS} wakes in a row, so I set it aside in {kept} "
            f"(not in git). Last error: {error}. Move it back into inbox/ to try again.",
        )

    def _retry_message(self, rel: str, error: str) -> None:
        n = self.attempts.get(rel, 0) + 1
        self.attempts[rel] = n
        delay = min(300.0, 2.0**n)
        log.info("message %s will be retried in %.0fs (attempt %d): %s", rel, delay, n, error)
        self.retries.append(_Retry(time.monotonic() + delay, rel))

    def _due_retries(self) -> None:
        now = time.monotonic()
        due = [r for r in self.retries if r.due <= now]
        self.retries = [r for r in self.retries if r.due > now]
        for r in due:
            if (self.home.root / r.name).exists():
                self.queue.put_message(r.name)

    # ------------------------------------------------------------ sources of wakes
    def _poll_inbox(self) -> None:
        # Queued, in-flight and retrying messages are known already: no stat, no lease check.
        for rel in self.inbox_watch.ready(self.home, skip=self.queue.known | {r.name for r in self.retries}):
            self.queue.put_message(rel)

    def _on_fire(self, kind: str, name: str | None, scheduled_for: datetime) -> None:
        if kind == "heartbeat":
            self.queue.put_heartbeat(scheduled_for)
        elif name is not None:
            self.queue.put_cron(name, scheduled_for)

    def _on_skip(self, kind: str, name: str | None, reason: str) -> None:
        self._skip(f"{kind}:{name}" if name else kind, reason)

    def _skip(self, what: str, reason: str) -> None:
        log.info("skip %s: %s", what, reason)

    def _over_daily_budget(self) -> bool:
        assert self.config is not None and self.agent is not None
        limit = self.config.budgets.daily_tokens
        if not limit:
            return False
        return self.agent.ledger.tokens_on(self.agent.clock().strftime("%Y-%m-%d")) >= limit

    # ------------------------------------------------------------ steering
    def _reload_steering(self, *, initial: bool = False) -> None:
        hashes = {}
        for rel in STEERING:
            p = self.home.root / rel
            hashes[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        if not initial and hashes == self.hashes:
            return
        changed = [rel for rel in STEERING if hashes[rel] != self.hashes.get(rel)]
        self.hashes = hashes
        config = self.config
        if "agent.yaml" in changed and not initial:
            try:
                config = load_config(self.home.root)
            except SourceError as e:
                self._bad_edit(e)
                config = self.config
            else:
                self._forget_reported(*(r for r in self.reported if r.startswith("bad-edit:agent.yaml")))
                self._apply_config(config)
        assert config is not None
        jobs = self.jobs
        if "CRON.md" in changed or initial:
            path = self.home.root / "CRON.md"
            text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
            parsed = parse_cron_md(text, path)
            for cron_err in parsed.errors:
                self._bad_edit(cron_err)
            if not parsed.errors:
                self._forget_reported(*(r for r in self.reported if r.startswith("bad-edit:CRON.md:")))
            # A bad edit keeps the last good schedule: jobs that parse take effect,
            # the rest of the previous schedule stays until the file is valid again.
            good = {j.slug: j for j in parsed.jobs}
            jobs = {**self.jobs, **good} if parsed.errors else good
        if "HEARTBEAT.md" in changed and not initial:
            plan = hb.parse(self.home)
            for err in plan.errors:
                self._bad_edit(err)
            if not plan.errors:
                self._forget_reported(*(r for r in self.reported if r.startswith("bad-edit:HEARTBEAT.md:")))
        self.jobs = jobs
        if self.scheduler is not None:
            self.scheduler.apply(
                heartbeat_every=config.heartbeat.every,
                active_hours=ActiveHours.parse(config.heartbeat.active_hours),
                tz=timezone_of(config),
                jobs=list(jobs.values()),
            )
        if not initial:
            log.info("steering reloaded: %s", ", ".join(changed))
            self._write_state()

    def _watch_prefix(self) -> None:
        """Your edit to a prefix file starts a new epoch now, and the engine is warmed before the next wake."""
        if self.agent is None or (self.worker is not None and self.worker.is_alive()):
            return  # a running wake absorbs it itself
        hashes = {}
        for rel in PREFIX_SOURCES:
            p = self.home.root / rel
            hashes[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        previous, self.prefix_hashes = self.prefix_hashes, hashes
        if not previous or previous == hashes:
            return
        dirty = set(self.home.dirty_paths())
        edited = [rel for rel in PREFIX_SOURCES if hashes[rel] != previous.get(rel) and rel in dirty]
        if not edited:
            return  # the agent's own committed edits wait for the next session
        try:
            with self.home.lock(timeout=5, purpose="absorb edits"):
                self.home.absorb_person_edits()
        except AgentdError as e:
            log.error("could not absorb your edits: %s", e)
            return
        if self.agent.refresh_prefix(f"{', '.join(edited)} edited by the person"):
            self.need_warmup = f"{', '.join(edited)} edited"

    def _apply_config(self, config: Config) -> None:
        old = self.config
        self.config = config
        assert old is not None and self.supervisor is not None
        if (old.engine.backend, old.engine.model) != (config.engine.backend, config.engine.model) or old.engine != config.engine:
            log.info("engine settings changed: %s:%s → %s:%s", old.engine.backend, old.engine.model, config.engine.backend, config.engine.model)
            # Even an adopted engine goes: the person asked for another one on this home.
            self.supervisor.stop_monitor()
            self.supervisor.stop()
            self.supervisor = make_supervisor(self.home, config)
            info = self._engine_up(self.supervisor)
            self.supervisor.on_event = self._engine_event
            self.supervisor.start_monitor()
            self.agent = build_agent(self.home, config, self.supervisor.client(), model=info.model, on_bad_source=self._bad_skill)
            self.agent.compiler.note_break("engine restarted with a new model")
            self.need_warmup = "model changed"
        elif self.agent is not None:
            self.agent = build_agent(self.home, config, self.agent.engine, model=self.agent.model, on_bad_source=self._bad_skill)

    def _bad_edit(self, err: SourceError) -> None:
        log.error("%s (keeping the last good version)", err)
        self._report_once(f"bad-edit:{err.path.name}:{err.line}:{err.message}", f"I could not use an edit: {err}. I keep running on the last good version.")

    def _bad_skill(self, err: SourceError) -> None:
        """Called wherever the prefix is rebuilt, a wake holding the home lock included: queue it."""
        log.error("%s (skill skipped)", err)
        self.skill_errors.append(err)

    def _report_skill_errors(self) -> None:
        while self.skill_errors:
            err = self.skill_errors.popleft()
            self._report_once(f"bad-skill:{err.path}:{err.line}:{err.message}", f"A skill was skipped: {err}. The other skills still load; a fixed SKILL.md is picked up at the next session.")

    def _report_once(self, key: str, text: str) -> None:
        """Tell the person once (outbox/notices.md, committed), not on every heartbeat."""
        if key in self.reported:
            return
        self.reported.add(key)
        if self.agent is not None:
            text = self.agent.mask(text)
        try:
            with self.home.lock(timeout=60, purpose="notice"):
                sha = self.home.notify(text)
        except AgentdError as e:  # the home lock could not be had
            log.error("could not write a notice: %s", e)
            return
        if sha is None:
            log.error("could not write a notice: %s", text)
            return
        self._save_reported()

    def _forget_reported(self, *keys: str) -> None:
        """The problem went away: a new occurrence is told again."""
        if any(k in self.reported for k in keys):
            self.reported.difference_update(keys)
            self._save_reported()

    def _load_reported(self) -> set[str]:
        try:
            data = json.loads((self.home.runtime / REPORTED).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return set()  # runtime state only: a lost or corrupt record means telling again
        return {str(k) for k in data} if isinstance(data, list) else set()

    def _save_reported(self) -> None:
        atomic_write(self.home.runtime / REPORTED, json.dumps(sorted(self.reported), ensure_ascii=False))

    # ------------------------------------------------------------ engine and days
    def _engine_event(self, kind: str, detail: str) -> None:
        log.warning("engine: %s: %s", kind, detail)
        if self.agent is not None and "restart" in kind:
            self.agent.compiler.note_break("engine restarted")
            self.need_warmup = "engine restarted"
        if "restarted" in kind:
            self._record_owner()
        if "gave up" in kind or "give" in kind:
            self._report_once("engine-gave-up", f"The engine stopped and could not be restarted: {detail}")

    def _rollover_day(self) -> None:
        """At the first wake of a new day: the day's totals go to the journal, and a new session starts."""
        assert self.agent is not None
        today = self.agent.clock().strftime("%Y-%m-%d")
        if not self.day:
            self.day = today
            return
        if today == self.day:
            return
        from agentd.ledger import day_summary, totals

        previous, self.day = self.day, today
        rows = [r for r in self.agent.ledger.rows() if r["day"] == previous]
        day = datetime.fromisoformat(previous).date()
        with self.home.lock(purpose="day summary"):
            # An unknown cached count reads "unknown" in the journal, never 0%.
            journal.daily_summary(self.home, day, day_summary(totals(rows), wakes=journal.count_wakes(self.home, day)))
            self.home.commit(f"journal: day summary for {previous}", identity=AGENT, paths=["memory/journal"])
        self.agent.compiler.drop_session("main")
        if self.agent.refresh_prefix("new day: the agent's memory edits picked up"):
            self._warm("new day")

    def _write_state(self) -> None:
        next_runs = []
        if self.scheduler is not None:
            for kind, name, at in self.scheduler.next_runs():
                next_runs.append({"kind": kind, "name": name, "at": at.isoformat() if at else None})
        state = {
            "pid": os.getpid(),
            "started": self.started,
            "home": str(self.home.root),
            "engine": self.supervisor.info_dict() if self.supervisor is not None else None,
            "next_runs": next_runs,
            "last_wake": self.last_wake,
            "jobs": sorted(self.jobs),
            "queue_coalesced": self.queue.coalesced,
        }
        atomic_write(state_path(self.home), json.dumps(state, indent=2, default=str))


def uptime(state: dict[str, Any]) -> str:
    return str(timedelta(seconds=int(time.time() - float(state.get("started", time.time())))))


def _owned_engine_pid(home: Home) -> int | None:
    """The engine a daemon of this home started, if it still runs (a killed daemon leaves it behind)."""
    try:
        pid = json.loads((home.runtime / ENGINE_OWNER).read_text(encoding="utf-8")).get("pid")
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return None
    return pid if isinstance(pid, int) and psutil.pid_exists(pid) else None


def stop_orphaned_engine(home: Home) -> int | None:
    """Stop the engine a dead daemon started (after a SIGKILL); returns its pid, or None.

    An engine the person started themselves is never touched: only the one named in
    ``.agentd/engine-owner.json`` and still recorded as this home's engine.
    """
    if read_state(home) is not None:
        return None  # a running daemon owns it
    return _stop_owned_engine(home)


def _stop_owned_engine(home: Home) -> int | None:
    pid = _owned_engine_pid(home)
    try:
        recorded = json.loads((home.runtime / "engine.json").read_text(encoding="utf-8")).get("pid")
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        recorded = None
    if pid is None or recorded != pid:
        return None  # gone already, or the home's engine is now another one (the person's)
    # Healthy or not: a hung orphan is stopped all the same.
    sup = make_supervisor(home, load_config(home.root))
    sup.stop()
    (home.runtime / ENGINE_OWNER).unlink(missing_ok=True)
    return pid

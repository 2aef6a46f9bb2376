"""The daemon's core: one queue of typed events and one worker that runs their wakes one at a time.

Everything else is a service (``agentd.services``): wake sources publish events (the
inbox watcher, the heartbeat, cron, and whatever ``build_daemon()`` adds), the steering
watch publishes the person's steering; beside the core live the engine's owner,
durable notices and the retry schedule. A crash is recovered on the next start:
unfinished writes are undone, messages and cron runs whose wake did not commit run again.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from datetime import datetime
from typing import Any, TypeVar

from agentd import identity, sandbox
from agentd.config import Config, load_config
from agentd.errors import AgentdError, SecretError, SourceError
from agentd.events import Event, WakeResult
from agentd.fileio import atomic_write
from agentd.home import AGENT, Home
from agentd.loop import Agent, wake, warm_up
from agentd.services.base import Outcome, Service, Skip, Steering
from agentd.services.cron import CronService
from agentd.services.engine_owner import EngineNews, EngineOwner, stop_owned_engine
from agentd.services.heartbeat import HeartbeatService
from agentd.services.inbox_watch import InboxWatcher
from agentd.services.lifecycle import daemon_lock, daemon_lock_held, read_state, state_path, uptime
from agentd.services.matrix import MatrixChannel
from agentd.services.merge import MergeService
from agentd.services.notices import Notices
from agentd.services.queue import WakeQueue
from agentd.services.replies import ReplyHub
from agentd.services.retries import RetrySchedule
from agentd.services.steering import SteeringWatch
from agentd.services.web import WebService
from agentd.wal import WriteAheadLog
from agentd.wiring import build_agent
from engine.errors import EngineError
from memory import journal

__all__ = ["Daemon", "WakeQueue", "build_daemon", "daemon_lock_held", "read_state", "stop_orphaned_engine", "uptime"]

log = logging.getLogger("agentd")

POLL_S = 0.25
STOP_GRACE_S = 30.0
SHUTDOWN_DEADLINE_S = 50.0  # under `agentd stop`'s 60 s before SIGKILL
S = TypeVar("S", bound=Service)
BUDGET_SKIP = "daily token budget reached (background wakes pause; messages still run)"


def build_daemon(home: Home, *, poll_s: float = POLL_S, retries: RetrySchedule | None = None) -> Daemon:
    """The daemon and its wake sources: a new trigger is one more line here."""
    d = Daemon(home, poll_s=poll_s, retries=retries)
    d.add(SteeringWatch(d))  # first: the others start on the steering it reads
    d.add(InboxWatcher(d))
    d.add(HeartbeatService(d))
    d.add(CronService(d))
    d.add(MatrixChannel(d))  # idle unless agent.yaml has channels.matrix
    d.add(MergeService(d))
    d.add(WebService(d, d.replies))
    return d


def stop_orphaned_engine(home: Home) -> int | None:
    """Stop the engine a dead daemon started (after a SIGKILL); returns its pid, or None."""
    if read_state(home) is not None:
        return None  # a running daemon owns it
    return stop_owned_engine(home)


# ---------------------------------------------------------------------- the daemon
class Daemon:
    """``agentd run``: the queue, the worker and the services around them (the ``Hub`` they see)."""

    def __init__(self, home: Home, *, poll_s: float = POLL_S, retries: RetrySchedule | None = None) -> None:
        self.home = home
        self.poll_s = poll_s
        self.queue = WakeQueue()
        self.replies = ReplyHub()  # a message's reply as it streams, for the web app
        self.stop_event = threading.Event()
        self.notices = Notices(home, mask=self._mask)
        self.retries = retries or RetrySchedule()
        self.engine = EngineOwner(home, self.notices, self._engine_news)
        self.services: list[Service] = []
        self._owners: dict[str, Service] = {}
        self._config: Config | None = None
        self._agent: Agent | None = None
        self.steering: Steering | None = None
        self.last_wake: dict[str, Any] | None = None
        self.started = time.time()
        self.day = ""
        self.worker: threading.Thread | None = None
        self.need_warmup: str | None = None
        self._deadline: threading.Timer | None = None

    def add(self, service: S) -> S:
        """Register a service: its events' kinds come back to it; started in the order added."""
        for kind in service.kinds:
            if kind.name in self._owners:
                raise ValueError(f"events of kind {kind.name!r} are already published by {type(self._owners[kind.name]).__name__}")
            self._owners[kind.name] = service
        self.services.append(service)
        return service

    # ------------------------------------------------------------ what services see (Hub)
    @property
    def config(self) -> Config:
        assert self._config is not None, "the daemon has not started"
        return self._config

    @property
    def agent(self) -> Agent | None:
        return self._agent

    def now(self) -> datetime:
        return self._agent.clock() if self._agent is not None else datetime.now().astimezone()

    def publish(self, event: Event) -> bool:
        """Queue an event for a wake; False if one with its key is queued or running (coalesced)."""
        if event.kind not in self._owners:
            raise ValueError(f"no service registered for events of kind {event.kind!r}")
        return self.queue.put(event)

    def known(self) -> set[str]:
        return self.queue.known()

    def wake_running(self) -> bool:
        return self.worker is not None and self.worker.is_alive()

    def request_warmup(self, reason: str) -> None:
        self.need_warmup = reason

    def steer(self, steering: Steering) -> None:
        previous, self.steering = self.steering, steering
        if previous is not None and steering.config is not previous.config:
            self._apply_config(steering.config)
        for service in self.services:
            service.steered(steering)
        if previous is not None:
            self.write_state()

    # ------------------------------------------------------------ lifecycle
    def run(self) -> int:
        with daemon_lock(self.home):
            self._setup_logging()
            self._install_signals()
            try:
                self.start()
                self.loop()
            finally:
                self.shutdown()
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

    def start(self) -> None:
        log.info("daemon starting on %s (pid %d)", self.home.root, os.getpid())
        self._config = load_config(self.home.root)
        self._recover()
        info = self.engine.start(self._config)
        self._agent = build_agent(self.home, self._config, self.engine.client(), model=info.model, on_bad_source=self._bad_skill)
        # The person's prefix edits made while the daemon was down were just committed by
        # recovery, so no wake will see them as edits: compare with the saved epoch now.
        compiler = self._agent.compiler
        if self._agent.refresh_prefix("cold start" if compiler.prefix is None else None):
            log.info("new epoch at start: %s", compiler.epoch_cause)
        self._tell_sandbox()
        self._tell_copy()
        for service in self.services:
            service.start()
        self.need_warmup = "daemon started"
        self.write_state()
        log.info("daemon ready")

    def _tell_sandbox(self) -> None:
        """Once at start: commands cannot be confined here, so they wait for approval (and how to fix it)."""
        assert self._config is not None
        missing = sandbox.missing_notice(self._config)
        if missing is None:
            self.notices.forget("sandbox-missing")  # told again should it go missing later
            return
        log.warning("%s", missing)
        self.notices.tell("sandbox-missing", missing)

    def _tell_copy(self) -> None:
        """Once at start: a copied home shares its original's id, so a pool would route both as one agent."""
        assert self._config is not None
        copy = identity.check(self.home, self._config.id)
        if copy is None:
            self.notices.forget("home-copied")
            return
        log.warning("%s", copy.notice(self.home.root))
        self.notices.tell("home-copied", copy.notice(self.home.root))

    def _recover(self) -> None:
        """Undo an unfinished wake, then commit whatever else is uncommitted."""
        home = self.home
        with home.lock(purpose="recovery"):
            label = WriteAheadLog(home.runtime).label()
            undone = home.recover()
            for line in undone:
                log.info("recovery: %s", line)
            try:
                if label is not None:
                    sha = home.commit(
                        f"recovered after crash: wake {label.split(' ', 1)[-1]} did not finish\n\n" + "\n".join(f"- {u}" for u in undone),
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
        self._abort_now()

    def shutdown(self) -> None:
        if self.worker is not None and self.worker.is_alive():
            self.worker.join(STOP_GRACE_S)
            if self.worker.is_alive():
                log.warning("wake still running after %.0fs: aborting it (the next start undoes it)", STOP_GRACE_S)
                self._abort_now()
        for service in reversed(self.services):
            service.stop()
        self.engine.stop()
        state_path(self.home).unlink(missing_ok=True)
        log.info("daemon stopped")

    def _abort_now(self) -> None:
        """Exit with the engine stopped first, so `agentd stop`'s SIGKILL never orphans it."""
        self.engine.stop()
        state_path(self.home).unlink(missing_ok=True)
        os._exit(0)

    # ------------------------------------------------------------ main loop
    def loop(self) -> None:
        while not self.stop_event.is_set():
            self.tick()

    def tick(self) -> None:
        """One turn of the main loop: services look around, then the worker gets the next event."""
        for service in self.services:
            service.poll()
        for retry in self.retries.due():
            self.publish(retry)
        if self.wake_running():
            self.stop_event.wait(self.poll_s)
            return
        self.notices.flush()  # the home lock is free between wakes
        if self.need_warmup and self._agent is not None and not self.stop_event.is_set():
            # On the worker, like a wake: a slow or hung engine delays the next wake,
            # never the inbox, steering reloads or a stop.
            reason, self.need_warmup = self.need_warmup, None
            self.worker = threading.Thread(target=self._warm, args=(reason,), name="warm-up", daemon=True)
            self.worker.start()
            return
        event = self.queue.get(self.poll_s)
        if event is None:
            return
        if self.stop_event.is_set():
            self.queue.done(event)  # still durable where its service keeps it: run on the next start
            return
        self.worker = threading.Thread(target=self._run, args=(event,), name="wake", daemon=True)
        self.worker.start()

    def _warm(self, reason: str) -> None:
        assert self._agent is not None
        try:
            tokens = warm_up(self._agent, reason)
            log.info("warm-up (%s): prefix of %s tokens prefilled", reason, tokens)
        except EngineError as e:
            log.warning("warm-up failed: %s", e)
        except Exception:  # noqa: BLE001 - on the worker thread: logged, the daemon goes on
            log.exception("warm-up crashed")

    def _run(self, event: Event) -> None:
        """On the worker: prepare, wake, and tell the service that published the event how it ended."""
        owner = self._owners[event.kind]
        ready = event
        try:
            try:
                if event.spec.background and self._over_daily_budget():
                    outcome = Outcome(skipped=BUDGET_SKIP)
                else:
                    prepared = owner.prepare(event)
                    if isinstance(prepared, Skip):
                        outcome = Outcome(skipped=prepared.reason)
                    else:
                        ready = prepared
                        outcome = Outcome(result=self._wake(ready, owner))
            except AgentdError as e:
                log.error("wake %s failed: %s", event.label, e)
                self.notices.tell(f"wake-{type(e).__name__}", f"A wake could not run: {e}")
                outcome = Outcome(error=e)
            except Exception as e:  # noqa: BLE001 - the daemon must outlive a bug in one wake
                log.exception("wake %s crashed", event.label)
                outcome = Outcome(error=e)
            if outcome.skipped is not None:
                log.info("skip %s: %s", event.label, outcome.skipped)
            try:
                owner.finished(ready, outcome)
            except Exception:  # noqa: BLE001 - a service's bug must not stop the worker's bookkeeping
                log.exception("%s could not finish %s", type(owner).__name__, event.label)
        finally:
            self.queue.done(event)  # after finished(): a retry is scheduled before the key is free

    def _wake(self, event: Event, owner: Service) -> WakeResult:
        self._rollover_day()
        assert self._agent is not None
        started = time.time()
        try:
            result = owner.run(event) or wake(self._agent, event, on_delta=self.replies.sink(event))
        finally:
            self.replies.finish(event)
        self._after_wake(event, result)
        self._tell_moved(event, started)
        return result

    def _tell_moved(self, event: Event, since: float) -> None:
        """Behind a pool, a wake whose prefix was found on no replica was moved (one failed, or the pool changed)."""
        assert self._agent is not None
        if self._agent.config.engine.backend != "pool":
            return  # record_usage names a miss replica-moved only behind a pool: no ledger read on every wake
        if not any(r["cache_break"] == "replica-moved" for r in self._agent.ledger.rows(since)):
            return
        self.notices.forget("replica-moved")  # each move is news: told every time it happens
        self.notices.tell("replica-moved", f"The engine pool moved this agent to another replica during wake {event.label} "
                          "(a replica failed or the pool changed); its prefix was computed again there.")

    def _after_wake(self, event: Event, result: WakeResult) -> None:
        cached = "n/a" if result.cached_percent is None else f"{result.cached_percent:.0f}%"
        log.info(
            "wake %s %s steps=%d prompt=%d cached=%s completion=%d %.1fs%s",
            event.label, result.status, result.steps, result.prompt_tokens, cached, result.completion_tokens, result.seconds,
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
        if result.status == "failed" and result.error and result.error.startswith("engine"):
            self.notices.tell("engine-failing", f"The engine is failing; wakes are retried. Last error: {result.error}")
        elif result.status != "failed" and result.steps:
            self.notices.forget("engine-failing", "engine-gave-up")
        self.write_state()

    def _over_daily_budget(self) -> bool:
        assert self._agent is not None
        limit = self.config.budgets.daily_tokens
        if not limit:
            return False
        return self._agent.ledger.tokens_on(self._agent.clock().strftime("%Y-%m-%d")) >= limit

    # ------------------------------------------------------------ config, engine, days
    def _apply_config(self, config: Config) -> None:
        old, self._config = self._config, config
        assert old is not None
        if old.engine != config.engine:
            log.info("engine settings changed: %s:%s → %s:%s", old.engine.backend, old.engine.model, config.engine.backend, config.engine.model)
            info = self.engine.switch(config)
            self._agent = build_agent(self.home, config, self.engine.client(), model=info.model, on_bad_source=self._bad_skill)
            self._agent.compiler.note_break("engine restarted with a new model")
            self.need_warmup = "model changed"
        elif self._agent is not None:
            self._agent = build_agent(self.home, config, self._agent.engine, model=self._agent.model, on_bad_source=self._bad_skill)

    def _engine_news(self, news: EngineNews, detail: str) -> None:
        if news is EngineNews.RESTARTED and self._agent is not None:
            self._agent.compiler.note_break("engine restarted")
            self.need_warmup = "engine restarted"

    def _bad_skill(self, err: SourceError) -> None:
        """Called wherever the prefix is rebuilt, a wake holding the home lock included: told after it."""
        where = f"{err.path}:{err.line}:{err.message}"
        if err.path.name == "SKILL.md":
            log.error("%s (skill skipped)", err)
            self.notices.later(f"bad-skill:{where}", f"A skill was skipped: {err}. The other skills still load; a fixed SKILL.md is picked up at the next session.")
            return
        # A steering file the prefix cannot be built from (a merge's conflict markers): the
        # agent keeps its last good prefix and waits for the person.
        log.error("%s (prefix kept)", err)
        self.notices.later(f"bad-source:{where}", f"A steering file cannot be used: {err}. The agent keeps working from the last good version until you fix it.")

    def _mask(self, text: str) -> str:
        return self._agent.mask(text) if self._agent is not None else text

    def _rollover_day(self) -> None:
        """At the first wake of a new day: the day's totals go to the journal, and a new session starts."""
        assert self._agent is not None
        today = self._agent.clock().strftime("%Y-%m-%d")
        if not self.day:
            self.day = today
            return
        if today == self.day:
            return
        from agentd.ledger import day_summary, totals

        previous, self.day = self.day, today
        rows = [r for r in self._agent.ledger.rows() if r["day"] == previous]
        day = datetime.fromisoformat(previous).date()
        with self.home.lock(purpose="day summary"):
            # An unknown cached count reads "unknown" in the journal, never 0%.
            journal.daily_summary(self.home, day, day_summary(totals(rows), wakes=journal.count_wakes(self.home, day)))
            self.home.commit(f"journal: day summary for {previous}", identity=AGENT, paths=["memory/journal"])
        self._agent.compiler.drop_session("main")
        if self._agent.refresh_prefix("new day: the agent's memory edits picked up"):
            self._warm("new day")

    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "started": self.started,
            "home": str(self.home.root),
            "engine": self.engine.info_dict(),
            "next_runs": [run for service in self.services for run in service.next_runs()],
            "channels": [ch for service in self.services if (ch := service.channel_status()) is not None],
            "last_wake": self.last_wake,
            "jobs": sorted(j.slug for j in self.steering.jobs) if self.steering is not None else [],
            "queue_coalesced": self.queue.coalesced,
        }
        atomic_write(state_path(self.home), json.dumps(state, indent=2, default=str))

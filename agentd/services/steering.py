"""The steering watch: the person's edits to agent.yaml, CRON.md, HEARTBEAT.md and the prefix files.

An edit takes effect without a restart: the watch publishes a new ``Steering`` (the
core applies the config, the schedule services take their part). A bad edit keeps
the last good version and is told once with file and line. An edit to AGENT.md,
USER.md or MEMORY.md between wakes is committed as the person's at once; with a session
open it reaches the model as a steering diff at the next wake (``agentd.steering_diff``),
otherwise — or when no diff can carry it — a new epoch starts now and the engine is warmed.
"""

from __future__ import annotations

import hashlib
import logging

from agentd import heartbeat as hb
from agentd import steering_diff
from agentd.config import load_config
from agentd.errors import AgentdError, SourceError
from agentd.services.base import Hub, Service, Steering
from scheduler.cron import CronJob, parse_cron_md

log = logging.getLogger("agentd")

STEERING = ("agent.yaml", "CRON.md", "HEARTBEAT.md")
PREFIX_SOURCES = ("AGENT.md", "USER.md", "memory/MEMORY.md")
TICKS = 4  # look once every four ticks of the main loop (once a second)


class SteeringWatch(Service):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.hashes: dict[str, str] = {}
        self.prefix_hashes: dict[str, str] = {}
        self.jobs: dict[str, CronJob] = {}
        self.ticks = 0

    def start(self) -> None:
        """Read CRON.md now (its errors told), and publish the steering the others start on."""
        self.hashes = self._hashes(STEERING)
        self.prefix_hashes = self._hashes(PREFIX_SOURCES)  # what start's epoch was built from
        self.jobs = self._read_cron()
        self.hub.steer(Steering(self.hub.config, tuple(self.jobs.values())))

    def poll(self) -> None:
        self.ticks += 1
        if self.ticks % TICKS:
            return
        self._reload()
        self._watch_prefix()

    def _reload(self) -> None:
        hashes = self._hashes(STEERING)
        changed = [rel for rel in STEERING if hashes[rel] != self.hashes.get(rel)]
        if not changed:
            return
        self.hashes = hashes
        config = self.hub.config
        if "agent.yaml" in changed:
            try:
                config = load_config(self.hub.home.root)
            except SourceError as e:
                self._bad_edit(e)
            else:
                self.hub.notices.forget_prefix("bad-edit:agent.yaml")
        if "CRON.md" in changed:
            self.jobs = self._read_cron()
        if "HEARTBEAT.md" in changed:
            plan = hb.parse(self.hub.home)
            for err in plan.errors:
                self._bad_edit(err)
            if not plan.errors:
                self.hub.notices.forget_prefix("bad-edit:HEARTBEAT.md:")
        self.hub.steer(Steering(config, tuple(self.jobs.values())))
        log.info("steering reloaded: %s", ", ".join(changed))

    def _read_cron(self) -> dict[str, CronJob]:
        path = self.hub.home.root / "CRON.md"
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        parsed = parse_cron_md(text, path)
        for err in parsed.errors:
            self._bad_edit(err)
        if not parsed.errors:
            self.hub.notices.forget_prefix("bad-edit:CRON.md:")
        # A bad edit keeps the last good schedule: jobs that parse take effect,
        # the rest of the previous schedule stays until the file is valid again.
        good = {j.slug: j for j in parsed.jobs}
        return {**self.jobs, **good} if parsed.errors else good

    def _watch_prefix(self) -> None:
        """Your edit to a prefix file: committed now; a diff at the next wake, or a new epoch warmed now."""
        agent, home = self.hub.agent, self.hub.home
        if agent is None or self.hub.wake_running():
            return  # a running wake absorbs it itself
        hashes = self._hashes(PREFIX_SOURCES)
        previous, self.prefix_hashes = self.prefix_hashes, hashes
        if not previous or previous == hashes:
            return
        dirty = set(home.dirty_paths())
        edited = [rel for rel in PREFIX_SOURCES if hashes[rel] != previous.get(rel) and rel in dirty]
        if not edited:
            return  # the agent's own committed edits wait for the next session
        try:
            with home.lock(timeout=5, purpose="absorb edits"):
                home.absorb_person_edits()
        except AgentdError as e:
            log.error("could not absorb your edits: %s", e)
            return
        cause = f"{', '.join(edited)} edited by the person"
        session = agent.compiler.load_session("main")
        if session is not None and agent.compiler.prefix is not None:
            # A session is open: it keeps its prefix and its next wake takes the edit as a
            # steering diff; only an edit no diff can carry starts a new prefix now.
            candidate = agent.candidate_prefix()
            decision = steering_diff.decide(agent.compiler, session, candidate, lambda _: steering_diff.PERSON) if candidate else None
            if decision is None or decision.kind != "new-prefix":
                log.info("%s: a steering diff at the next wake (the prefix is kept)", cause)
                return
            cause = decision.cause or cause
        if agent.refresh_prefix(cause):
            self.hub.request_warmup(f"{', '.join(edited)} edited")

    def _bad_edit(self, err: SourceError) -> None:
        log.error("%s (keeping the last good version)", err)
        self.hub.notices.tell(f"bad-edit:{err.path.name}:{err.line}:{err.message}", f"I could not use an edit: {err}. I keep running on the last good version.")

    def _hashes(self, rels: tuple[str, ...]) -> dict[str, str]:
        out = {}
        for rel in rels:
            p = self.hub.home.root / rel
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        return out

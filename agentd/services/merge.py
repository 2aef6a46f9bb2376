"""The merge service: ``agentd merge`` with a daemon running hands the merge to it, to run as a wake of its own kind.

The CLI writes a durable request (:mod:`agentd.merge.requests`); this service publishes
it as a ``merge`` event, and the worker runs it in place of a model wake. The worker
runs one event at a time, so while the merge runs no heartbeat, cron or message wake
interleaves: they queue, and run once it is over, the first of them on the merged
home (the note in the inbox tells the agent what was merged). The merge uses the
daemon's engine; afterwards the prefix is rebuilt from the merged files and warmed.
"""

from __future__ import annotations

import logging

from agentd.errors import AgentdError
from agentd.events import Event, EventKind, WakeResult, register_kind
from agentd.merge import requests
from agentd.merge.orchestrator import abort_merge, merge_home
from agentd.merge.report import MergeOutcome, outcome_lines
from agentd.services.base import Hub, Service, Skip

log = logging.getLogger("agentd")

MERGE = register_kind(EventKind("merge", "Merge with another home: {name}", priority=1))
TICKS = 4  # look for requests once a second


class MergeService(Service):
    kinds = (MERGE,)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.ticks = 0

    def start(self) -> None:
        self._look()  # a request the daemon had no time for before it stopped runs now

    def poll(self) -> None:
        self.ticks += 1
        if self.ticks % TICKS == 0:
            self._look()

    def _look(self) -> None:
        for path in requests.pending(self.hub.home):
            if requests.answered(self.hub.home, path.stem):
                path.unlink(missing_ok=True)  # answered just before a crash
                continue
            self.hub.publish(Event(MERGE.name, "", self.hub.now(), name=path.stem, meta={"request": str(path)}))

    def prepare(self, event: Event) -> Event | Skip:
        return event if requests.read_request(requests.requests_dir(self.hub.home) / f"{event.name}.json") else Skip("the merge request is gone")

    def run(self, event: Event) -> WakeResult | None:
        """On the worker, as the event's wake: the merge (or abort), answered to the waiting CLI."""
        home, agent = self.hub.home, self.hub.agent
        req = requests.read_request(requests.requests_dir(home) / f"{event.name}.json")
        assert req is not None and agent is not None
        result = WakeResult(req.id, event, "ok")
        out: MergeOutcome | None = None
        try:
            if req.action == "abort":
                lines = [abort_merge(home)]
            else:
                engine = agent.engine if req.use_model else None
                out = merge_home(home, req.other, engine=engine, daemon_wake=True, context_window=self.hub.config.engine.context_window())
                lines = outcome_lines(out)
            requests.answer(home, req.id, requests.MergeResult(lines))
            log.info("merge %s: %s", req.id, lines[0] if lines else "done")
        except AgentdError as e:
            log.error("merge %s failed: %s", req.id, e)
            requests.answer(home, req.id, requests.MergeResult(error=str(e)))
            result.status, result.error = "failed", str(e)
            return result
        if out is not None:
            result.commit, result.files_changed = out.commit, list(out.changed)
        if (out is None or out.commit) and agent.refresh_prefix(f"merged: {req.other or 'merge undone'}"):
            self.hub.request_warmup("merge")
        return result

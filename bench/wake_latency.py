"""Wake latency (event → first engine byte sent) on a home of 1,000 Markdown files / ~400K words,
and the idle daemon's footprint (CPU, RSS) without the engine.

    python bench/wake_latency.py
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentd.config import load_config  # noqa: E402
from agentd.events import Event  # noqa: E402
from agentd.home import AGENT  # noqa: E402
from agentd.loop import wake  # noqa: E402
from agentd.template import init_home  # noqa: E402
from agentd.wiring import build_agent  # noqa: E402
from bench.search import build  # noqa: E402
from engine.types import ChatResult, Usage  # noqa: E402
from tests.doubles.agent_responder import respond  # noqa: E402
from tests.doubles.openai_server import ScriptedServer  # noqa: E402


class Stopwatch:
    """An engine that notes when the request is handed over, and answers at once."""

    def __init__(self) -> None:
        self.sent_at: list[float] = []

    def chat(self, messages: list[dict[str, Any]], **kw: Any) -> ChatResult:
        self.sent_at.append(time.perf_counter())
        return ChatResult(json.dumps({"tool": "reply", "arguments": {"text": "ok"}}), [], "stop", Usage(100, 5, 90, 0.0, 0.0), "stopwatch")

    def tokenize(self, messages: list[dict[str, Any]], tools: Any = None) -> None:
        return None


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = init_home(Path(tmp) / "home")
        build(home.root, 1000, 400, random.Random(3))
        home.commit("bench: 1000 notes", identity=AGENT, all_changes=True)
        engine = Stopwatch()
        now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
        agent = build_agent(home, load_config(home.root), engine, clock=lambda: now)
        latencies = []
        for i in range(40):
            (home.root / "inbox" / f"m{i}.md").write_text(f"message {i}\n")
            event = Event("message", f"message {i}", now, name=f"m{i}", source=f"inbox/m{i}.md")
            t0 = time.perf_counter()
            wake(agent, event)
            latencies.append((engine.sent_at[-1] - t0) * 1000)
        steady = sorted(latencies[1:])  # the first wake builds the epoch's prefix
        print(f"home: {sum(1 for _ in home.root.rglob('*.md'))} Markdown files")
        print(f"wake latency, event → request handed to the engine: first {latencies[0]:.0f} ms; "
              f"then p50 {statistics.median(steady):.0f} ms, p95 {steady[int(0.95 * len(steady))]:.0f} ms over {len(steady)} wakes")

        server = ScriptedServer(responder=respond).start()
        cfg = (home.root / "agent.yaml").read_text().replace("backend: llamacpp", "backend: openai").replace("# url: http://127.0.0.1:8000/v1", f"url: {server.url}")
        (home.root / "agent.yaml").write_text(cfg)
        home.absorb_person_edits()
        proc = subprocess.Popen([sys.executable, "-m", "agentd", "--home", str(home.root), "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        try:
            while not (home.root / ".agentd" / "daemon.json").exists():
                time.sleep(0.1)
            time.sleep(3)
            p = psutil.Process(proc.pid)
            c0, t0 = p.cpu_times(), time.monotonic()
            time.sleep(20)
            c1, t1 = p.cpu_times(), time.monotonic()
            cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0) * 100
            rss = p.memory_info().rss / 2**20
            print(f"idle daemon (no engine process; it polls the inbox every 0.25 s, steering files every second): CPU {cpu:.2f}% of one core, RSS {rss:.0f} MB")
        finally:
            proc.terminate()
            proc.wait(30)
            server.stop()


if __name__ == "__main__":
    main()

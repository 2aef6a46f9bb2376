"""A test double of a supervised engine process: the agent responder, on the port the supervisor picks.

Daemon tests that must see a real engine *process* (started, adopted, stopped, orphaned)
without loading llama.cpp set ``engine.backend: agent-double``; the backend below is
registered through tests/doubles/plugins (the ``agentd.backends`` entry points), so the
real supervisor launches this::

    python -m tests.doubles.engine_process serve --port P        # the engine double itself
"""

from __future__ import annotations

import os
import sys

from engine.backends import Backend, LaunchSpec
from engine.types import EngineSettings
from tests.doubles.agent_responder import respond
from tests.doubles.openai_server import ScriptedServer


class AgentDoubleBackend(Backend):
    """Stands in for a real engine; launches :func:`serve` in its own process."""

    id = "agent-double"

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        argv = [sys.executable, "-m", "tests.doubles.engine_process", "serve", "--port", str(port)]
        return LaunchSpec(argv, {"SCRIPTED_API_KEY": api_key}, port, api_key, self.id, "engine-double")


def serve(port: int) -> None:
    ScriptedServer(api_key=os.environ.get("SCRIPTED_API_KEY"), responder=respond, port=port).httpd.serve_forever()


def main(argv: list[str]) -> None:
    if argv[:1] != ["serve"] or "--port" not in argv:
        raise SystemExit("usage: python -m tests.doubles.engine_process serve --port P")
    serve(int(argv[argv.index("--port") + 1]))


if __name__ == "__main__":
    main(sys.argv[1:])

"""A test double of a supervised engine process: the agent responder, on the port the supervisor picks.

Daemon tests that must see a real engine *process* (started, adopted, stopped, orphaned)
without loading llama.cpp run agentd through this module; it puts a backend double in
front of ``llamacpp`` (the template's default), so the real supervisor launches this::

    python -m tests.doubles.engine_process agentd --home H run      # agentd, with the double
    python -m tests.doubles.engine_process serve --port P ...        # the engine double itself
"""

from __future__ import annotations

import os
import sys

from engine.backends import BACKENDS, Backend, LaunchSpec
from engine.types import EngineSettings
from tests.doubles.agent_responder import respond
from tests.doubles.openai_server import ScriptedServer


class DoubleEngineBackend(Backend):
    """Stands in for the llama.cpp backend; launches :func:`serve` in its own process."""

    id = "llamacpp"

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        argv = [sys.executable, "-m", "tests.doubles.engine_process", "serve", "--port", str(port)]
        return LaunchSpec(argv, {"SCRIPTED_API_KEY": api_key}, port, api_key, self.id, "engine-double")


def install() -> None:
    BACKENDS["llamacpp"] = DoubleEngineBackend


def serve(port: int) -> None:
    ScriptedServer(api_key=os.environ.get("SCRIPTED_API_KEY"), responder=respond, port=port).httpd.serve_forever()


def main(argv: list[str]) -> None:
    if argv[:1] == ["serve"]:
        serve(int(argv[argv.index("--port") + 1]))
    elif argv[:1] == ["agentd"]:
        install()
        from agentd.cli import cli

        cli(argv[1:], prog_name="agentd")
    else:
        raise SystemExit("usage: python -m tests.doubles.engine_process serve --port P | agentd ARGS…")


if __name__ == "__main__":
    main(sys.argv[1:])

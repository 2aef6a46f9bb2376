"""A test-double engine process with fault modes, and the test-only backend that launches it.

The backend is ``engine-double``, registered through tests/doubles/plugins like any backend
plugin; its option ``mode`` picks the fault. ``python -m tests.doubles.supervised_engine
--port P --model M --mode MODE`` with the key in ``AGENTD_ENGINE_API_KEY``:

- ``serve``: an OpenAI-compatible server (the scripted server) on 127.0.0.1:P that answers
  every chat with ``served by M``;
- ``crash``: writes a few log lines and exits with code 3, as an engine that cannot load;
- ``silent``: writes a few log lines and never listens, as an engine stuck loading.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from engine.backends import Backend, LaunchSpec
from engine.options import Option, choice, whole_number
from engine.types import EngineSettings
from tests.doubles.openai_server import Reply, ScriptedServer

ROOT = Path(__file__).resolve().parents[2]
API_KEY_ENV = "AGENTD_ENGINE_API_KEY"


class SupervisedEngineDoubleBackend(Backend):
    """Launches this module; its ``mode`` may change between starts (an engine that stops loading)."""

    id = "engine-double"
    options = {"mode": Option(choice("serve", "crash", "silent"), "serve"), "n_ctx": Option(whole_number(1)), "block_size": Option(whole_number(1))}

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        mode = str(self.option(settings.options, "mode"))
        argv = [sys.executable, "-m", "tests.doubles.supervised_engine", "--port", str(port), "--model", settings.model, "--mode", mode]
        if settings.options.get("n_ctx"):
            argv += ["--n-ctx", str(settings.options["n_ctx"])]
        if settings.options.get("block_size"):
            argv += ["--block-size", str(settings.options["block_size"])]
        env = {API_KEY_ENV: api_key, "PYTHONPATH": str(ROOT)}
        return LaunchSpec(argv, env, port, api_key, self.id, settings.model)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--mode", choices=["serve", "crash", "silent"], required=True)
    p.add_argument("--n-ctx", type=int, default=0)
    p.add_argument("--block-size", type=int, default=0, help="report vLLM's vllm:cache_config_info with this block size at /metrics")
    args = p.parse_args()
    print(f"engine double: loading {args.model}", flush=True)
    if args.mode == "crash":
        print("engine double: fatal: scripted crash while loading", flush=True)
        sys.exit(3)
    if args.mode == "silent":
        print("engine double: still loading (scripted never to finish)", flush=True)
        while True:
            time.sleep(60)

    def responder(body: dict[str, Any]) -> Reply:
        return Reply(content=f"served by {args.model}")

    server = ScriptedServer(api_key=os.environ[API_KEY_ENV], responder=responder, port=args.port)
    if args.block_size:
        server.metrics = (
            "# TYPE vllm:cache_config_info gauge\n"
            f'vllm:cache_config_info{{block_size="{args.block_size}",enable_prefix_caching="True",prefix_caching_hash_algo="sha256",num_gpu_blocks="364"}} 1.0\n'
        )
    print(f"engine double: ready on 127.0.0.1:{args.port}", flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()

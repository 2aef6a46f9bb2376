"""A test-double engine process with fault modes, and the test-only backend that launches it.

The backend is ``engine-double``, registered through tests/doubles/plugins like any backend
plugin; its option ``mode`` picks the fault. ``python -m tests.doubles.supervised_engine
--port P --model M --mode MODE`` with the key in ``AGENTD_ENGINE_API_KEY``:

- ``serve``: an OpenAI-compatible server (the scripted server) on 127.0.0.1:P that answers
  every chat with ``served by M``;
- ``replica``: as ``serve``, but answers ``served by M on P`` (a pool test sees which replica
  served), reports cached tokens from a toy prefix cache (the longest common prefix of the
  request's text with any earlier one, 4 characters a token) and serves them in ``/metrics``;
- ``agent-replica``: a replica that answers as the agent double does (JSON actions a daemon can
  act on), with the toy cache's counts: a daemon on a pool of these wakes for real;
- ``crash``: writes a few log lines and exits with code 3, as an engine that cannot load;
- ``silent``: writes a few log lines and never listens, as an engine stuck loading.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine.backends import OPEN_HEALTH_ENV, Backend, LaunchSpec
from engine.options import Option, choice, whole_number
from engine.types import EngineSettings
from tests.doubles.agent_responder import respond
from tests.doubles.openai_server import Reply, ScriptedServer

ROOT = Path(__file__).resolve().parents[2]
API_KEY_ENV = "AGENTD_ENGINE_API_KEY"


class SupervisedEngineDoubleBackend(Backend):
    """Launches this module; its ``mode`` may change between starts (an engine that stops loading)."""

    id = "engine-double"
    options = {"mode": Option(choice("serve", "replica", "agent-replica", "crash", "silent"), "serve"), "n_ctx": Option(whole_number(1)), "block_size": Option(whole_number(1))}

    def launch_spec(self, settings: EngineSettings, port: int, api_key: str) -> LaunchSpec:
        mode = str(self.option(settings.options, "mode"))
        argv = [sys.executable, "-m", "tests.doubles.supervised_engine", "--port", str(port), "--model", settings.model, "--mode", mode]
        if settings.options.get("n_ctx"):
            argv += ["--n-ctx", str(settings.options["n_ctx"])]
        if settings.options.get("block_size"):
            argv += ["--block-size", str(settings.options["block_size"])]
        env = {API_KEY_ENV: api_key, "PYTHONPATH": str(ROOT)}
        return LaunchSpec(argv, env, port, api_key, self.id, settings.model)


class ToyPrefixCache:
    """Unbounded: a prompt's cached part is its longest common prefix with any earlier prompt."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.queries = 0
        self.hits = 0
        self.lock = threading.Lock()

    def query(self, text: str) -> tuple[int, int]:
        with self.lock:
            common = max((len(os.path.commonprefix([text, s])) for s in self.seen), default=0)
            self.seen.append(text)
            prompt, cached = len(text) // 4, common // 4
            self.queries += prompt
            self.hits += cached
            return prompt, cached

    def metrics(self) -> str:
        with self.lock:
            return f"vllm:prefix_cache_queries_total {self.queries}\nvllm:prefix_cache_hits_total {self.hits}\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--mode", choices=["serve", "replica", "agent-replica", "crash", "silent"], required=True)
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

    cache = ToyPrefixCache()

    def responder(body: dict[str, Any]) -> Reply:
        if args.mode == "replica":
            prompt, cached = cache.query(json.dumps(body.get("messages"), sort_keys=True))
            return Reply(content=f"served by {args.model} on {args.port}", prompt_tokens=prompt, cached_tokens=cached)
        if args.mode == "agent-replica":
            prompt, cached = cache.query(json.dumps(body.get("messages"), sort_keys=True))  # counted on arrival
            reply = respond(body)  # then RESPONDER_DELAY, while the request is in flight
            return Reply(content=reply.content, status=reply.status, prompt_tokens=prompt, cached_tokens=cached)
        return Reply(content=f"served by {args.model}")

    def metrics() -> str:
        text = cache.metrics()
        if args.block_size:  # as vLLM reports its cache configuration
            text += (
                "# TYPE vllm:cache_config_info gauge\n"
                f'vllm:cache_config_info{{block_size="{args.block_size}",enable_prefix_caching="True",prefix_caching_hash_algo="sha256",num_gpu_blocks="364"}} 1.0\n'
            )
        return text

    open_health = os.environ.get(OPEN_HEALTH_ENV) == "1"
    server = ScriptedServer(api_key=os.environ[API_KEY_ENV], responder=responder, port=args.port, open_health=open_health, metrics=metrics)
    print(f"engine double: ready on 127.0.0.1:{args.port}", flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()

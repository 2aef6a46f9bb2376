"""`agentd pool`: one machine's pool of engine replicas behind vllm-router, shared by many homes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.backends import backend_class
from engine.errors import BackendMissing
from engine.pool import PoolSpec, pool_dir, pool_status, start_pool, stop_pool


def parse_options(backend: str, pairs: tuple[str, ...]) -> dict[str, Any]:
    """``name=value`` pairs checked against the backend's own options (those of agent.yaml's engine.<backend>)."""
    known = backend_class(backend).options
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in known:
            names = ", ".join(known) or "none"
            raise BackendMissing(f"--option {pair!r}: expected name=value with a {backend} option ({names})")
        try:
            out[name] = known[name].check(_scalar(value))
        except ValueError as e:
            raise BackendMissing(f"--option {name}: expected {e}, got {value!r}") from None
    return out


def _scalar(value: str) -> Any:
    """``4096`` is a number, ``["--x", "8"]`` a list, anything else the text itself (as agent.yaml reads them)."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def start(replicas: int, backend: str, model: str, policy: str, options: tuple[str, ...], root: Path | None,
          *, remote: tuple[str, ...] = (), api_key_env: str | None = None) -> str:
    spec = PoolSpec(replicas, backend, model, policy, parse_options(backend, options), list(remote), api_key_env)
    state = start_pool(spec, root)
    remotes = f" and {len(remote)} remote" if remote else ""
    return (f"pool running: {replicas} x {backend} {model}{remotes} behind {state.router_url} ({policy}); "
            f"homes use it with engine.backend: pool (state in {root or pool_dir()})")


def stop(root: Path | None) -> str:
    return "pool stopped" if stop_pool(root) else "no pool was running"


def status_lines(st: dict[str, Any]) -> list[str]:
    if not st["running"]:
        return [f"no pool is running in {st['dir']} (agentd pool start --replicas 3)"]
    lines = [f"router    {st['router']}  {'healthy' if st.get('router_healthy') else 'DOWN'}  policy {st['policy']}  "
             f"({st['backend']} {st['model']}, pid {st['pid']})"]
    for r in st["replicas"]:
        rate = r.get("prefix_cache_hit_rate")
        if rate is not None:
            hits = f"hit rate {rate:.1%} of {r['prefix_cache_queries_tokens']:,} prompt tokens"
        else:
            hits = "no requests yet" if "prefix_cache_queries_tokens" in r else "no cache metrics"
        where = "  (remote, not supervised here)" if r.get("remote") else ""
        lines.append(f"{r['name']:9} {r['url']}  {'healthy' if r['healthy'] else 'DOWN'}  {hits}{where}")
    return lines


def status(root: Path | None) -> dict[str, Any]:
    return pool_status(root)

"""`agentd engine`, `pool` and `model`: the inference engine, a pool of replicas, the model they serve."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agentd.cli.base import Context, pass_ctx
from agentd.commands import engines, pool


@click.group()
def engine() -> None:
    """The supervised inference engine."""


@engine.command("start")
@pass_ctx
def engine_start(c: Context) -> None:
    """Start the engine in the background (or adopt the one already running)."""
    info = engines.engine_start(c.home())
    click.echo(f"engine running: {info}")


@engine.command("stop")
@pass_ctx
def engine_stop(c: Context) -> None:
    """Stop the engine and every process it started."""
    click.echo(engines.engine_stop(c.home()))


@engine.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def engine_status(c: Context, as_json: bool) -> None:
    """Backend, model, URL, PID, uptime, health and prefix-cache counters."""
    st = engines.engine_status(c.home())
    if as_json:
        click.echo(json.dumps(st, indent=2, default=str))
    else:
        for k, v in st.items():
            click.echo(f"{k:14} {v}")


@click.group("pool")
def pool_group() -> None:
    """A pool of engine replicas behind vllm-router on this machine, shared by homes with engine.backend: pool.

    \b
    agentd pool start --replicas 3          # 3 embedded llama.cpp replicas, consistent hash on X-Session-ID
    agentd pool start --replicas 2 --backend vllm --model Qwen/Qwen3-8B   # one GPU each
    agentd pool start --backend vllm --model Qwen/Qwen3-8B --api-key-env POOL_KEY \\
        --remote http://gpu1:8000 --remote http://gpu2:8000    # servers on other machines
    agentd pool status
    agentd pool stop
    """


_POOL_DIR = click.option("--dir", "root", type=click.Path(path_type=Path), default=None, help="the pool's directory (default $XDG_DATA_HOME/agentd/pool)")


@pool_group.command("start")
@click.option("--replicas", type=click.IntRange(0), default=0, help="local replicas this pool starts and supervises")
@click.option("--backend", default="llamacpp", show_default=True, help="the replicas' engine (a supervised backend)")
@click.option("--model", default="smollm2", show_default=True)
@click.option("--policy", default="consistent_hash", show_default=True, help="vllm-router's --policy")
@click.option("--option", "options", multiple=True, help="a backend option, name=value (e.g. n_ctx=4096)")
@click.option("--remote", multiple=True, help="a replica already running elsewhere, by URL (http://HOST:PORT); repeat for more")
@click.option("--api-key-env", default=None, help="take the pool's key from this variable (remote replicas must accept it)")
@_POOL_DIR
def pool_start(replicas: int, backend: str, model: str, policy: str, options: tuple[str, ...], remote: tuple[str, ...],
               api_key_env: str | None, root: Path | None) -> None:
    """Start the replicas and the router in the background; restarted on crash until `agentd pool stop`."""
    click.echo(pool.start(replicas, backend, model, policy, options, root, remote=remote, api_key_env=api_key_env))


@pool_group.command("stop")
@_POOL_DIR
def pool_stop(root: Path | None) -> None:
    """Stop the router and every replica."""
    click.echo(pool.stop(root))


@pool_group.command("status")
@click.option("--json", "as_json", is_flag=True)
@_POOL_DIR
def pool_status(as_json: bool, root: Path | None) -> None:
    """The router's and each replica's health, and each replica's prefix-cache hit rate."""
    st = pool.status(root)
    click.echo(json.dumps(st, indent=2) if as_json else "\n".join(pool.status_lines(st)))


@click.group()
def model() -> None:
    """The model the engine serves."""


@model.command("use")
@click.argument("name")
@click.option("--backend", help="Switch backend too (llamacpp, vllm, openai or one a plugin installed).")
@pass_ctx
def model_use(c: Context, name: str, backend: str | None) -> None:
    """Swap the model: agent.yaml updated (comments kept), committed, engine restarted, self-tested.

    \b
    Example:
      agentd model use ~/models/qwen2.5-3b-instruct-q4_k_m.gguf
    """
    for line in engines.model_use(c.home(), name, backend):
        click.echo(line)


@model.command("import")
@click.argument("source")
@click.option("--name", help="The name engine.model takes (default: smollm2, or the file's stem).")
@click.option("--force", is_flag=True, help="Convert again over an earlier import of the same name.")
def model_import(source: str, name: str | None, force: bool) -> None:
    """Convert a GGUF (a path, or smollm2) to a Hugging Face folder that vLLM serves.

    \b
    It lands in $XDG_DATA_HOME/agentd/models/hf/NAME; then:
      agentd model use NAME --backend vllm
    """
    from engine.convert import import_gguf

    done = import_gguf(source, name=name, force=force, progress=click.echo)
    if done.reused:
        click.echo(f"{done.name} was already imported: {done.folder} (--force converts it again)")
    click.echo(f"use it with: agentd model use {done.name} --backend vllm")


@model.command("list")
@pass_ctx
def model_list(c: Context) -> None:
    """What is configured and, for llamacpp, the GGUF files available."""
    for line in engines.model_list(c.home()):
        click.echo(line)


COMMANDS = (engine, pool_group, model,)

"""The operations behind the CLI commands, so the commands stay thin and the logic testable."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from agentd import config as cfg
from agentd import daemon, inbox
from agentd.config import Config, load_config
from agentd.errors import UserError
from agentd.events import Event, WakeResult
from agentd.home import AGENT, Home, atomic_write
from agentd.ledger import Ledger, summarize, today_since
from agentd.loop import wake, warm_up
from agentd.wiring import build_agent, engine_settings, make_supervisor, timezone_of
from engine.errors import EngineError
from engine.supervisor import EngineSupervisor
from scheduler.cron import CronParse, parse_cron_md

# ---------------------------------------------------------------------- config


def config_set(home: Home, key: str, raw: str) -> str:
    """Set one agent.yaml value (comments kept), validate, write atomically, commit."""
    cfg.set_value(home.root, key, raw)  # a bad key or value is reported before anything is committed
    with home.lock(purpose="config set"):
        home.absorb_person_edits()
        old = cfg.get_value(home.root, key)
        text, _ = cfg.set_value(home.root, key, raw)
        atomic_write(home.root / cfg.CONFIG_FILE, text)
        sha = home.commit(f"config: {key}: {old} → {raw}", identity=home.person_identity(), paths=[cfg.CONFIG_FILE])
    return sha or ""


# ---------------------------------------------------------------------- log


@dataclass(frozen=True)
class LogEntry:
    sha: str
    when: datetime
    who: str  # "agent" | "person"
    author: str
    subject: str
    trailers: dict[str, str]


def log_entries(home: Home, limit: int = 20) -> list[LogEntry]:
    out = []
    for c in home.repo.iter_commits(max_count=limit):
        message = str(c.message)
        trailers = {}
        for line in message.strip().splitlines()[1:]:
            key, sep, value = line.partition(": ")
            if sep and key.replace("-", "").isalnum() and key[:1].isupper():
                trailers[key] = value.strip()
        who = "agent" if c.author.email == AGENT.email else "person"
        out.append(
            LogEntry(c.hexsha[:8], c.authored_datetime, who, str(c.author.name), message.splitlines()[0] if message else "", trailers)
        )
    return out


# ---------------------------------------------------------------------- engine


@contextlib.contextmanager
def engine_for(home: Home, config: Config) -> Iterator[tuple[EngineSupervisor, Any]]:
    """Adopt a running engine, or start one for the duration of a command and stop it after."""
    sup = make_supervisor(home, config)
    adopted = sup.adopt()
    info = adopted or sup.start()
    try:
        yield sup, info
    finally:
        if adopted is None:
            sup.stop()


# ---------------------------------------------------------------------- wakes


def run_wake(
    home: Home,
    event_for: Callable[[datetime], Event],
    *,
    on_delta: Callable[[str], None] | None = None,
) -> WakeResult:
    """One wake in this process (no daemon running): engine adopted or started, wake, engine stopped."""
    config = load_config(home.root)
    with engine_for(home, config) as (sup, info):
        agent = build_agent(home, config, sup.client(), model=info.model)
        return wake(agent, event_for(agent.clock()), on_delta=on_delta)


def say(home: Home, text: str, *, timeout: float = 600.0) -> WakeResult | dict[str, Any]:
    """A message → one wake → the reply. Through the daemon's inbox when one runs."""
    if daemon.read_state(home) is not None:
        msg_id = inbox.post(home, text, datetime.now())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            note = inbox.read_reply_note(home, msg_id)
            if note is not None and (note.get("status") != "failed" or note.get("commit")):
                return note
            time.sleep(0.2)
        raise UserError(f"no reply within {timeout:.0f}s; the message stays in the inbox as {msg_id} and will be answered")
    tz = timezone_of(load_config(home.root))
    now = datetime.now(tz)
    msg_id = inbox.post(home, text, now)
    rel = f"inbox/{msg_id}.md"

    def event_for(at: datetime) -> Event:
        ev = inbox.read_message(home, rel, at)
        assert ev is not None
        return ev

    try:
        return run_wake(home, event_for)
    except EngineError:
        # No wake ran: the engine could not start. The person sees the error here and
        # sends the message again once it is fixed; a copy left in inbox/ would be
        # answered a second time by the next daemon, unseen. So the home is left as it was.
        if rel in home.dirty_paths():
            (home.root / rel).unlink(missing_ok=True)
        raise


def cron_event(home: Home, name: str) -> Callable[[datetime], Event]:
    path = home.root / "CRON.md"
    parsed = parse_cron_md(path.read_text(encoding="utf-8"), path)
    for job in parsed.jobs:
        if name in (job.name, job.slug):
            return lambda at: Event("cron", job.instruction, at, name=job.slug)
    names = ", ".join(j.name for j in parsed.jobs) or "none"
    raise UserError(f"no cron job {name!r} in CRON.md (jobs: {names})")


# ---------------------------------------------------------------------- daemon in the background


def start_background(home: Home, *, timeout: float = 180.0) -> dict[str, Any]:
    state = daemon.read_state(home)
    if state is not None:
        raise UserError(f"the daemon is already running (pid {state['pid']})")
    out = open(home.logs / "daemon.out", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentd", "--home", str(home.root), "run"],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        start_new_session=True,
        close_fds=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = daemon.read_state(home)
        if state is not None and state.get("pid") == proc.pid:
            return state
        if proc.poll() is not None:
            tail = (home.logs / "daemon.out").read_text(errors="replace").strip().splitlines()[-5:]
            raise UserError("the daemon exited at start: " + (" | ".join(tail) or f"exit code {proc.returncode}"))
        time.sleep(0.2)
    raise UserError(f"the daemon did not become ready within {timeout:.0f}s; see {home.logs / 'daemon.log'}")


def stop_background(home: Home, *, timeout: float = 60.0) -> int | None:
    state = daemon.read_state(home)
    if state is None:
        return None
    pid = int(state["pid"])
    try:
        proc = psutil.Process(pid)
        os.kill(pid, signal.SIGTERM)
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        # The daemon did not finish in time; killed, it cannot stop the engine it started.
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            proc.wait(10)
        daemon.stop_orphaned_engine(home)
    except (psutil.NoSuchProcess, ProcessLookupError):
        pass
    return pid


SERVICE_UNIT = """\
[Unit]
Description=agentd, a persistent agent for {home}
After=network.target

[Service]
Type=simple
ExecStart={python} -m agentd --home {home} run
Restart=on-failure
RestartSec=5
# SIGTERM lets the running wake finish before the daemon exits.
KillSignal=SIGTERM
TimeoutStopSec=60

[Install]
WantedBy=default.target
"""


def install_service(home: Home) -> Path:
    """Write a systemd user unit; the person enables it with systemctl --user."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"
    unit = base / "agentd.service"
    atomic_write(unit, SERVICE_UNIT.format(home=home.root, python=sys.executable))
    return unit


# ---------------------------------------------------------------------- status


def status_report(home: Home) -> dict[str, Any]:
    config = load_config(home.root)
    state = daemon.read_state(home)
    ledger = Ledger(home.runtime / "ledger.db")
    today = summarize(ledger.rows(today_since(timezone_of(config))))["total"]
    try:
        engine: dict[str, Any] = make_supervisor(home, config).status()
    except EngineError as e:  # status reports a broken engine setup; it does not fail on it
        engine = {"backend": config.engine.backend, "model": config.engine.model, "error": str(e)}
    last = log_entries(home, 1)
    return {
        "home": str(home.root),
        "daemon": None if state is None else {"pid": state["pid"], "uptime": daemon.uptime(state)},
        "engine": engine,
        "config": {"backend": config.engine.backend, "model": config.engine.model, "tool_calling": config.engine.tool_calling},
        "next_runs": state.get("next_runs", []) if state else planned_runs(home, config),
        "last_wake": state.get("last_wake") if state else None,
        "last_commit": None if not last else f"{last[0].sha} {last[0].subject}",
        "today": today,
    }


# ---------------------------------------------------------------------- approvals


def approve(home: Home, approval_id: str) -> str:
    from agentd.tools import approvals

    config = load_config(home.root)
    with home.lock(purpose="approve"):
        home.absorb_person_edits()
        text = approvals.approve(home, config, approval_id)
        home.commit(f"person: approved shell command {approval_id}", identity=home.person_identity(), all_changes=True)
    return text


def deny(home: Home, approval_id: str) -> str:
    from agentd.tools import approvals

    with home.lock(purpose="deny"):
        home.absorb_person_edits()
        text = approvals.deny(home, approval_id)
        home.commit(f"person: denied shell command {approval_id}", identity=home.person_identity(), all_changes=True)
    return text


# ---------------------------------------------------------------------- schedule


def _cron_schedule(home: Home, config: Config) -> tuple[CronParse, list[datetime | None]]:
    """CRON.md's jobs (and errors), each with its next run from now in the agent's zone."""

    tz = timezone_of(config)
    path = home.root / "CRON.md"
    parsed = parse_cron_md(path.read_text(encoding="utf-8", errors="replace") if path.is_file() else "", path)
    now = datetime.now(tz)
    return parsed, [job.next_run(now, tz) for job in parsed.jobs]


def planned_runs(home: Home, config: Config) -> list[dict[str, Any]]:
    """What the daemon would run next, for `status` while no daemon is running."""
    parsed, nexts = _cron_schedule(home, config)
    runs: list[dict[str, Any]] = []
    if config.heartbeat.every is not None:
        every = int(config.heartbeat.every.total_seconds() // 60)
        runs.append({"kind": "heartbeat", "name": None, "at": f"every {every} min, {config.heartbeat.active_hours} (when the daemon runs)"})
    runs += [{"kind": "cron", "name": job.name, "at": nxt.isoformat() if nxt else None} for job, nxt in zip(parsed.jobs, nexts, strict=True)]
    return runs


def cron_lines(home: Home) -> list[str]:
    from agentd.services.cron_runs import cron_report

    tz = timezone_of(load_config(home.root))
    return cron_report(home, tz, datetime.now(tz))


# ---------------------------------------------------------------------- engine and model


def engine_start(home: Home) -> str:
    """Start (or adopt) the engine and, unless a daemon owns it, prefill the home's prefix.

    The warm-up is what the daemon does after it starts an engine: the next `agentd say`
    finds the stable prefix cached instead of computing it cold.
    """
    config = load_config(home.root)
    sup = make_supervisor(home, config)
    info = sup.ensure_running()
    line = f"{info.backend}:{info.model} at {info.url} (pid {info.pid})"
    if daemon.read_state(home) is not None:
        return line  # the running daemon warms its engine itself
    agent = build_agent(home, config, sup.client(), model=info.model)
    try:
        tokens = warm_up(agent, "engine started")
    except EngineError as e:
        return f"{line}; the warm-up failed: {e}"
    return f"{line}; home prefix of {tokens} tokens prefilled"


def engine_stop(home: Home) -> str:
    config = load_config(home.root)
    # stop() signals only a process verified to be this home's engine, adopted or not
    # (e.g. one started with other options), and says whether there was one.
    return "engine stopped" if make_supervisor(home, config).stop() else "engine was not running"


def engine_status(home: Home) -> dict[str, Any]:
    config = load_config(home.root)
    st = make_supervisor(home, config).status()
    return st if isinstance(st, dict) else dict(vars(st))


def model_list(home: Home) -> list[str]:
    from engine.models import DEFAULT_ALIAS, find_smollm2_gguf, list_gguf

    config = load_config(home.root)
    lines = [f"configured: {config.engine.backend}:{config.engine.model} (tool calling: {config.engine.tool_calling})"]
    try:
        lines.append(f"embedded: {DEFAULT_ALIAS} = {find_smollm2_gguf()}")
    except EngineError as e:
        lines.append(f"embedded: {DEFAULT_ALIAS} not available ({e})")
    if config.engine.backend == "llamacpp":
        found = list_gguf(model_search_dirs(home))
        lines.append("GGUF files available:" if found else "no other GGUF files found in " + ", ".join(str(d) for d in model_search_dirs(home)))
        lines += [f"  {p}" for p in found]
    return lines


def model_search_dirs(home: Home) -> list[Path]:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return [home.root / "models", base / "agentd" / "models", Path.home() / "models"]


def model_use(home: Home, name: str, backend: str | None) -> Iterator[str]:
    """Swap the model: config (comments kept) + one commit, engine restarted, a self-test request."""
    from agentd.wiring import build_registry

    old = load_config(home.root)
    new_backend = backend or old.engine.backend
    changes = {"engine.model": json_scalar(name), **({"engine.backend": backend} if backend else {})}
    # The new setting must work before it is written: a model that cannot be found
    # (or a backend that is not installed) leaves the home as it was.
    check_engine(home, cfg.set_values(home.root, changes)[1])
    with home.lock(purpose="model use"):
        home.absorb_person_edits()
        text, _ = cfg.set_values(home.root, changes)
        atomic_write(home.root / cfg.CONFIG_FILE, text)
        sha = home.commit(
            f"model: {old.engine.backend}:{old.engine.model} → {new_backend}:{name}",
            identity=home.person_identity(),
            paths=[cfg.CONFIG_FILE],
        )
    yield f"agent.yaml updated ({sha[:8] if sha else 'unchanged'}): {old.engine.backend}:{old.engine.model} → {new_backend}:{name}"
    if daemon.read_state(home) is not None:
        yield "the daemon picks the change up and restarts its engine"
        return
    config = load_config(home.root)
    old_sup = make_supervisor(home, old)
    was_running = old_sup.adopt() is not None
    if was_running:
        old_sup.stop()
        yield "stopped the previous engine"
    sup = make_supervisor(home, config)
    info = sup.start()
    yield f"engine running: {info.model} at {info.url} (pid {info.pid})"
    try:
        yield self_test(sup.client(), config.engine.tool_calling, build_registry().schemas())
    finally:
        if not was_running:
            sup.stop()  # started only for the self-test


def check_engine(home: Home, config: Config) -> None:
    """Raise the EngineError that starting this engine would raise, without starting it:
    the backend installed, the model file found, an external URL and its key given."""
    from engine.backends import OpenAIBackend, backend_for

    settings = engine_settings(home, config)
    b = backend_for(settings)
    if isinstance(b, OpenAIBackend):
        b.url_and_key(settings)
    else:
        b.launch_spec(settings, 0, "check")


def json_scalar(value: str) -> str:
    """Quote a value for YAML so paths and names stay strings."""
    import json

    return json.dumps(value)


def self_test(client: Any, tool_calling: str, schemas: list[dict[str, Any]]) -> str:
    """One request with a tool schema; reports whether the model produced a usable call."""
    import json

    messages = [
        {"role": "system", "content": "You are a test. Use the reply tool."},
        {"role": "user", "content": "Say hello with the reply tool."},
    ]
    reply_schema = next(s for s in schemas if s["function"]["name"] == "reply")
    try:
        if tool_calling == "native":
            r = client.chat(messages, tools=[reply_schema], tool_choice="auto", max_tokens=64)
            ok = any(c.name == "reply" for c in r.tool_calls)
            got = r.tool_calls[0].arguments if r.tool_calls else r.content
        else:
            schema = {"type": "object", "properties": {"tool": {"type": "string", "enum": ["reply"]}, "arguments": reply_schema["function"]["parameters"]}, "required": ["tool", "arguments"]}
            r = client.chat(messages, response_format={"type": "json_schema", "json_schema": {"name": "action", "schema": schema}}, max_tokens=64)
            got = r.content
            try:
                ok = json.loads(got).get("tool") == "reply"
            except (json.JSONDecodeError, AttributeError):
                ok = False
    except Exception as e:  # noqa: BLE001 - any failure is the self-test's result
        return f"self-test FAILED: {e}"
    return f"self-test {'passed' if ok else 'FAILED'}: {got[:120]!r} ({r.usage.prompt_tokens} prompt tokens)"


# ---------------------------------------------------------------------- memory and skills


def search(home: Home, query: str, k: int) -> list[str]:
    from memory.search import SearchIndex

    index = SearchIndex(home.root)
    index.update()
    hits = index.search(query, k)
    return [f"{h.path}:{h.line}: {h.snippet}" for h in hits] or ["no matches"]


def reindex(home: Home) -> str:
    from memory.search import SearchIndex

    n = SearchIndex(home.root).rebuild()
    return f"search index rebuilt ({n} files)"


def skills_lines(home: Home) -> list[str]:
    from agentd.skills import load_skills

    s = load_skills(home.root)
    lines = [f"{sk.name:20} {sk.source:9} {sk.description}" for sk in s.skills]
    lines += [f"error: {e}" for e in s.errors]
    return lines or ["no skills"]

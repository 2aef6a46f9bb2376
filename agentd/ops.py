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
from agentd.loop import wake
from agentd.wiring import build_agent, make_supervisor, timezone_of
from engine.supervisor import EngineSupervisor

# ---------------------------------------------------------------------- config


def config_set(home: Home, key: str, raw: str) -> str:
    """Set one agent.yaml value (comments kept), validate, write atomically, commit."""
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

    return run_wake(home, event_for)


def cron_event(home: Home, name: str) -> Callable[[datetime], Event]:
    from scheduler.cron import parse_cron_md

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
        os.kill(pid, signal.SIGKILL)
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
    today = summarize(ledger.rows(today_since()))["total"]
    sup = make_supervisor(home, config)
    engine = sup.status()
    last = log_entries(home, 1)
    return {
        "home": str(home.root),
        "daemon": None if state is None else {"pid": state["pid"], "uptime": daemon.uptime(state)},
        "engine": engine,
        "config": {"backend": config.engine.backend, "model": config.engine.model, "tool_calling": config.engine.tool_calling},
        "next_runs": state.get("next_runs", []) if state else [],
        "last_wake": state.get("last_wake") if state else None,
        "last_commit": None if not last else f"{last[0].sha} {last[0].subject}",
        "today": today,
    }

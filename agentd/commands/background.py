"""`agentd start`, `stop` and `service install`: the daemon in the background."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from agentd import daemon
from agentd.errors import UserError
from agentd.fileio import atomic_write
from agentd.home import Home


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

"""What the sandbox costs a command: the same commands confined and unconfined, side by side.

    python bench/sandbox.py

Unconfined is the same process handling (own session, clean environment, output pump) without
bubblewrap, i.e. what a command cost before the sandbox; only a person-approved command on a
machine without bubblewrap still runs that way.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from agentd import sandbox
from agentd.config import Config
from agentd.template import init_home

COMMANDS = {"true": "true", "ls -la": "ls -la", "git log -1": "git log -1 --oneline", "seq 1 100000": "seq 1 100000"}
RUNS = 30
UNAVAILABLE = sandbox.Probe(False, "", "bench: measured without bubblewrap")


def timed(command: str, jail: sandbox.Jail, cwd: Path) -> list[float]:
    out = []
    for _ in range(RUNS):
        t = time.perf_counter()
        result = sandbox.run_command(command, cwd=cwd, timeout=30, jail=jail, unconfined_ok=True)
        out.append((time.perf_counter() - t) * 1000)
        assert result.exit_code == 0, result.output
    return out


def main() -> None:
    found = sandbox.probe()
    if not found.available:
        raise SystemExit(f"no sandbox here: {found.detail}")
    with tempfile.TemporaryDirectory() as tmp:
        home = init_home(Path(tmp) / "home")
        jail = sandbox.jail_for(home.root, Config())
        print(f"bubblewrap {found.version}, pids cgroup: {found.pids_cgroup or 'none (rlimit)'}; {RUNS} runs each, ms")
        print(f"{'command':16} {'confined p50':>13} {'p95':>7} {'unconfined p50':>15} {'p95':>7} {'overhead p50':>13}")
        for label, command in COMMANDS.items():
            confined = timed(command, jail, home.root)
            with mock.patch.object(sandbox, "probe", return_value=UNAVAILABLE):
                plain = timed(command, jail, home.root)
            c50, p50 = statistics.median(confined), statistics.median(plain)
            c95 = statistics.quantiles(confined, n=20)[18]
            p95 = statistics.quantiles(plain, n=20)[18]
            print(f"{label:16} {c50:13.1f} {c95:7.1f} {p50:15.1f} {p95:7.1f} {c50 - p50:+13.1f}")


if __name__ == "__main__":
    main()

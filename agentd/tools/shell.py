"""The shell tool: `bash -c` in the home, with a policy, a timeout that kills the whole process group,
a minimal environment, and capped output (the overflow goes to a file under .agentd/)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentd.errors import ToolError
from agentd.tools.base import Tool, ToolContext, ToolOutcome
from agentd.tools.policy import ShellPolicy

FLOOD_BYTES = 16 * 1024 * 1024  # a command printing more than this is killed
BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME")


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str  # everything captured, up to FLOOD_BYTES
    timed_out: bool
    flooded: bool


def minimal_env(names: tuple[str, ...] | list[str], home: Path | None = None) -> dict[str, str]:
    """PATH, HOME, locale and only the variables agent.yaml names: secrets do not leak by default."""
    env = {k: os.environ[k] for k in BASE_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = os.environ.get("HOME", "/")
    env["TERM"] = "dumb"
    env.setdefault("LANG", "C.UTF-8")
    if home is not None:
        env["AGENTD_HOME"] = str(home)
    for name in names:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(1.0)
    except subprocess.TimeoutExpired:
        pass
    # Children that ignored SIGTERM or outlived their parent go too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5.0)


def run_command(command: str, *, cwd: Path, timeout: float, env_names: tuple[str, ...] | list[str] = (), home: Path | None = None) -> CommandResult:
    """Run ``bash -c command`` in its own process group; on timeout the whole group is killed."""
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=minimal_env(env_names, home or cwd),
        start_new_session=True,
    )
    chunks: list[bytes] = []
    size = 0
    flooded = threading.Event()

    def pump() -> None:
        nonlocal size
        assert proc.stdout is not None
        while True:
            data = proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if not data:
                return
            if size < FLOOD_BYTES:
                chunks.append(data[: FLOOD_BYTES - size])
            size += len(data)
            if size >= FLOOD_BYTES and not flooded.is_set():
                flooded.set()
                _kill_group(proc)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
    else:
        # The shell exited; children still holding the pipe are part of its group.
        reader.join(0.5)
        if reader.is_alive():
            _kill_group(proc)
    reader.join(5.0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # nothing of the group outlives the tool call
    output = b"".join(chunks).decode("utf-8", errors="replace")
    code = proc.returncode if proc.returncode is not None else -9
    return CommandResult(code, output, timed_out, flooded.is_set())


def bound_output(text: str, limit: int, store: Path, shown: str | None = None) -> str:
    """Head + tail + where the whole output is, when it is longer than ``limit`` characters.

    ``shown`` is the path the model reads (default ``store``); the shell tool gives it
    relative to the home, so no machine-specific directory enters the prompt.
    """
    if len(text) <= limit:
        return text
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(text, encoding="utf-8")
    head, tail = text[: limit * 2 // 3], text[-limit // 3 :]
    omitted = len(text) - len(head) - len(tail)
    return f"{head}\n[… {omitted} characters omitted; the whole output ({len(text)} characters) is in {shown or store} …]\n{tail}"


class ShellTool(Tool):
    name = "shell"
    description = """Run a shell command with bash in the home folder (or a working directory
    allowed in agent.yaml). Returns the exit code and the output (long output is cut to its head
    and tail; the rest is saved to a file whose path is given). Commands that could harm the
    machine are refused; some may wait for the person's approval."""
    parameters = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "maxLength": 2000, "description": "The command line, run with bash -c."},
            "workdir": {"type": "string", "maxLength": 300, "description": "Optional working directory (default: the home)."},
            "timeout": {"type": "number", "description": "Optional seconds before the command is killed."},
        },
        "required": ["command"],
        "additionalProperties": False,
    }

    def run(self, ctx: ToolContext, **args: Any) -> ToolOutcome | str:
        command = str(args["command"])
        cfg = ctx.config.shell
        cwd = self._workdir(ctx, args.get("workdir"))
        decision = ShellPolicy.from_config(cfg, ctx.home.root).decide(command, cwd)
        if decision.action == "deny":
            return ToolOutcome(self.name, False, f"error: refused by the shell policy ({decision.rule}): {decision.reason or 'not allowed'}")
        if decision.action == "ask":
            from agentd.tools.approvals import park

            approval_id, rel = park(ctx.home, command, cwd, ctx.wake_id)
            ctx.note_change(rel)
            return ToolOutcome(self.name, True, f"parked for the person's approval as {approval_id} ({rel}); it runs when they type: agentd approve {approval_id}")
        timeout = min(float(args.get("timeout") or cfg.timeout), cfg.timeout)
        started = time.monotonic()
        result = run_command(command, cwd=cwd, timeout=timeout, env_names=cfg.env, home=ctx.home.root)
        return format_result(ctx, result, timeout, time.monotonic() - started)

    @staticmethod
    def _workdir(ctx: ToolContext, requested: object) -> Path:
        if not requested:
            return ctx.home.root
        path = Path(str(requested)).expanduser()
        if not path.is_absolute():
            path = ctx.home.root / path
        resolved = path.resolve()
        allowed = [ctx.home.root.resolve(), *(Path(w).expanduser().resolve() for w in ctx.config.shell.workdirs)]
        if not any(resolved == a or a in resolved.parents for a in allowed):
            raise ToolError(f"workdir {requested} is outside the home and shell.workdirs")
        if not resolved.is_dir():
            raise ToolError(f"workdir {requested} is not a directory")
        return resolved


def format_result(ctx: ToolContext, result: CommandResult, timeout: float, seconds: float) -> str:
    body = ctx.mask(result.output)
    if len(body) > ctx.config.shell.max_output:
        # Numbered per wake, not per process, and shown relative to the home (the shell's
        # default directory): the prompt names the same file whatever ran before or where.
        ctx.stored_outputs += 1
        store = ctx.home.runtime / "outputs" / f"{ctx.wake_id}-{ctx.stored_outputs}.txt"
        body = bound_output(body, ctx.config.shell.max_output, store, store.relative_to(ctx.home.root).as_posix())
    notes = []
    if result.timed_out:
        notes.append(f"killed after the {timeout:.0f}s timeout (with every process it started)")
    if result.flooded:
        notes.append(f"killed: more than {FLOOD_BYTES // (1024 * 1024)} MB of output")
    head = f"exit code {result.exit_code}" + (f" ({'; '.join(notes)})" if notes else "")
    return f"{head}\n{body}" if body else f"{head}\n(no output)"

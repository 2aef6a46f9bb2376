"""The shell tool: `bash -c` in the home inside the OS sandbox (agentd/sandbox.py), after the policy's
advice, with a timeout that kills every process it started and capped output (the overflow goes to
a file under .agentd/)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agentd.errors import SandboxUnavailable, ToolError
from agentd.sandbox import FLOOD_BYTES, CommandResult, jail_for, run_command
from agentd.tools import approvals
from agentd.tools.base import Tool, ToolContext, ToolOutcome
from agentd.tools.policy import ShellPolicy


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
            approval_id, rel = approvals.park(ctx.home, command, cwd, ctx.wake_id)
            ctx.note_change(rel)
            return ToolOutcome(self.name, True, f"parked for the person's approval as {approval_id} ({rel}); it runs when they type: agentd approve {approval_id}")
        timeout = min(float(args.get("timeout") or cfg.timeout), cfg.timeout)
        started = time.monotonic()
        try:
            result = run_command(command, cwd=cwd, timeout=timeout, jail=jail_for(ctx.home.root, ctx.config))
        except SandboxUnavailable as exc:
            return ToolOutcome(self.name, False, f"error: {exc}")
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
    if result.limit:
        notes.append(f"stopped by the sandbox's limit on {result.limit} (shell.max_* in agent.yaml)")
    head = f"exit code {result.exit_code}" + (f" ({'; '.join(notes)})" if notes else "")
    return f"{head}\n{body}" if body else f"{head}\n(no output)"

"""A merge handed to the running daemon: a durable request file under ``.agentd/merge/requests/``, and its outcome.

``agentd merge`` with a daemon running writes ``<id>.json`` (atomically) and waits for
``<id>.result.json``; the daemon's merge service runs the request as a wake of its
own kind, writes the result, then removes the request. A request the daemon had no
time for (stopped, killed) is still there at its next start and runs then; one that
ran already finds the other home merged and does nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from agentd.errors import UserError
from agentd.fileio import atomic_write
from agentd.home import Home

RESULT = ".result.json"
WAIT_POLL_S = 0.2


@dataclass(frozen=True)
class MergeRequest:
    """What the person asked for: ``merge`` another home (with the model or not), or ``abort`` the last merge."""

    id: str
    action: str  # "merge" | "abort"
    other: str = ""
    use_model: bool = True
    at: str = ""


@dataclass(frozen=True)
class MergeResult:
    """What the daemon answers: the lines ``agentd merge`` prints, or the one-line error."""

    lines: list[str] = field(default_factory=list)
    error: str | None = None


def requests_dir(home: Home) -> Path:
    return home.runtime / "merge" / "requests"


def submit(home: Home, action: str, other: str = "", *, use_model: bool = True) -> MergeRequest:
    """Write the request where the daemon looks; the path of another home is made absolute first."""
    if other and Path(other).expanduser().exists():
        other = str(Path(other).expanduser().absolute())
    req = MergeRequest(f"{datetime.now():%Y%m%d-%H%M%S}-{os.urandom(3).hex()}", action, other, use_model, datetime.now().isoformat(timespec="seconds"))
    requests_dir(home).mkdir(parents=True, exist_ok=True)
    atomic_write(requests_dir(home) / f"{req.id}.json", json.dumps(asdict(req)))
    return req


def pending(home: Home) -> list[Path]:
    """Requests not yet answered, oldest first."""
    folder = requests_dir(home)
    return sorted(p for p in folder.glob("*.json") if not p.name.endswith(RESULT)) if folder.is_dir() else []


def read_request(path: Path) -> MergeRequest | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return MergeRequest(**{k: data[k] for k in ("id", "action", "other", "use_model", "at") if k in data})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def answer(home: Home, req_id: str, result: MergeResult) -> None:
    """The outcome first, then the request goes: a crash between them only leaves a request already answered."""
    atomic_write(requests_dir(home) / f"{req_id}{RESULT}", json.dumps(asdict(result)))
    (requests_dir(home) / f"{req_id}.json").unlink(missing_ok=True)


def answered(home: Home, req_id: str) -> bool:
    return (requests_dir(home) / f"{req_id}{RESULT}").is_file()


def wait(home: Home, req: MergeRequest, *, daemon_alive: Callable[[], bool], poll_s: float = WAIT_POLL_S) -> MergeResult:
    """Wait for the daemon's answer; the result file is removed once read."""
    path = requests_dir(home) / f"{req.id}{RESULT}"
    while not path.is_file():
        if not daemon_alive() and not path.is_file():
            raise UserError(
                f"the daemon on {home.root} stopped before it answered; the request waits in "
                f"{requests_dir(home) / (req.id + '.json')} and runs when the daemon starts again"
            )
        time.sleep(poll_s)
    data = json.loads(path.read_text(encoding="utf-8"))
    path.unlink(missing_ok=True)
    return MergeResult(list(data.get("lines") or []), data.get("error"))

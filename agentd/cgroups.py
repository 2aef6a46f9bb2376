"""A pids cgroup around each sandboxed command: as root, RLIMIT_NPROC does not hold, so a
fork bomb is capped by ``pids.max`` of a fresh cgroup, removed (and its processes killed) afterwards."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def pids_hierarchy() -> str | None:
    """A cgroup folder under which we may make a child with ``pids.max`` (v1 ``pids`` or v2)."""
    if os.geteuid() != 0:
        return None  # RLIMIT_NPROC holds for an unprivileged user
    with suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            _dev, mnt, fstype, opts, *_ = line.split()
            v1 = fstype == "cgroup" and "pids" in opts.split(",")
            v2 = fstype == "cgroup2" and "pids" in _read(Path(mnt) / "cgroup.controllers").split()
            if (v1 or v2) and os.access(mnt, os.W_OK):
                return mnt
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@contextmanager
def pids_cgroup(hierarchy: str | None, limit: int) -> Iterator[Path | None]:
    """A fresh cgroup capping the number of processes of one command (removed afterwards)."""
    if hierarchy is None:
        yield None
        return
    group = Path(hierarchy) / f"agentd-{uuid.uuid4().hex[:12]}"
    try:
        group.mkdir()
        (group / "pids.max").write_text(str(limit))
    except OSError:
        with suppress(OSError):
            group.rmdir()
        yield None
        return
    try:
        yield group
    finally:
        _remove_cgroup(group)


def _remove_cgroup(group: Path) -> None:
    for _ in range(50):
        procs = _read(group / "cgroup.procs").split()
        for pid in procs:
            with suppress(ProcessLookupError, ValueError, PermissionError):
                os.kill(int(pid), 9)
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.02)


def hit_process_limit(group: Path | None) -> bool:
    if group is None:
        return False
    events = _read(group / "pids.events")
    m = re.search(r"^max (\d+)", events, re.M)
    return bool(m and int(m.group(1)) > 0)

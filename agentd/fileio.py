"""Files on disk: atomic writes that a crash leaves old or new, never a part; content digests; the one file lock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from agentd.errors import LockedError

TMP_SUFFIX = ".agentd-tmp"
ABSENT = "absent"  # the digest of "no file": never a sha256, so a deleted file is a write of nothing


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_digest(data: bytes | None) -> str:
    """The digest of ``data``: its sha256, or ABSENT for no content (a file that is not there)."""
    return sha256(data) if data is not None else ABSENT


def file_digest(path: Path) -> str:
    """The digest of what ``path`` holds now: its sha256, or ABSENT when there is no file."""
    return sha256(path.read_bytes()) if path.is_file() else ABSENT


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` so a reader sees the old or the new file, never a part.

    The bytes go to a temp file in the same directory, are fsynced, then renamed
    over the target; the directory is fsynced so the rename survives power loss.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def file_lock(
    path: Path,
    *,
    timeout: float,
    purpose: str,
    refusal: Callable[[str], str] | None = None,
) -> Iterator[IO[str]]:
    """An fcntl lock on ``path`` that records the holder's pid; waits up to ``timeout`` s.

    Past the wait, LockedError: ``refusal(holder)`` says so, ``holder`` being what the
    file records ("pid 123 (purpose)").
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 - held for the duration of the context
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    raise LockedError(refusal(holder) if refusal else f"{path} is locked by {holder}") from None
                time.sleep(0.05)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} ({purpose})")
        fh.flush()
        yield fh
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


def lock_held(path: Path) -> bool:
    """Whether some process holds :func:`file_lock` on ``path`` now (this one included, by another handle)."""
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False

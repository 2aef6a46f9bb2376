"""The one file lock: a second holder is refused with the first one's pid, and a probe sees it held."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentd.errors import LockedError
from agentd.fileio import file_lock, lock_held


def test_file_lock_refuses_a_second_holder_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "runtime" / "x.lock"
    with file_lock(path, timeout=0, purpose="first"):
        with pytest.raises(LockedError) as refused, file_lock(path, timeout=0, purpose="second"):
            pass
        assert str(refused.value) == f"{path} is locked by pid {os.getpid()} (first)"
        said = lambda holder: f"busy: {holder}"  # noqa: E731
        with pytest.raises(LockedError, match=rf"^busy: pid {os.getpid()} \(first\)$"), file_lock(path, timeout=0.1, purpose="second", refusal=said):
            pass
    with file_lock(path, timeout=0, purpose="second"):  # released: the next one gets it at once
        assert path.read_text() == f"pid {os.getpid()} (second)"


def test_lock_held_sees_the_lock_only_while_it_is_held(tmp_path: Path) -> None:
    path = tmp_path / "daemon.lock"
    assert not lock_held(path) and not path.exists()  # the probe creates nothing
    with file_lock(path, timeout=0, purpose="daemon"):
        assert lock_held(path)
    assert not lock_held(path)

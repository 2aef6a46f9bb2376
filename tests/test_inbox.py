"""Inbox intake: temp names ignored, a file taken only once settled, a late write never lost."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime

import pytest

from agentd import inbox
from agentd.home import AGENT, Home


@pytest.fixture
def sigio_ignored() -> Iterator[None]:
    old = signal.signal(signal.SIGIO, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGIO, old)


def test_temp_names_are_never_messages(home: Home) -> None:
    for name in (".hidden.md", "draft.md.tmp", "x.part", "note.md~", "a.md"):
        (home.root / "inbox" / name).write_text("hi\n")
    assert inbox.pending(home) == ["inbox/a.md"]


def test_a_file_is_taken_once_settled_and_not_while_open_for_writing(home: Home, sigio_ignored: None) -> None:
    watch = inbox.SettleWatch()
    path = home.root / "inbox/slow.md"
    with open(path, "w") as fh:
        fh.write("part one\n")
        fh.flush()
        assert watch.ready(home) == []  # first sight
        assert watch.ready(home) == []  # unchanged, but still open for writing
        fh.write("part two\n")
    assert watch.ready(home) == []  # changed since the last poll
    assert watch.ready(home) == ["inbox/slow.md"]


def test_late_write_after_the_commit_becomes_a_new_message(home: Home) -> None:
    (home.root / "inbox/done").mkdir(exist_ok=True)
    done = home.root / "inbox/done/m.md"
    done.write_text("part one\n")
    home.commit("wake message:m", identity=AGENT, paths=["inbox/done/m.md"])
    with open(done, "a") as fh:
        fh.write("part two\n")
    new = inbox.keep_late_write(home, "inbox/done/m.md", b"part one\n", datetime(2026, 1, 1, 9, 0))
    assert new is not None and new.startswith("inbox/") and new in inbox.pending(home)
    assert (home.root / new).read_text().endswith("\n\npart two\n")
    assert done.read_text() == "part one\n"  # the answered file matches its commit again
    assert home.dirty_paths() == [new]
    assert inbox.keep_late_write(home, "inbox/done/m.md", b"part one\n", datetime(2026, 1, 1, 9, 0)) is None

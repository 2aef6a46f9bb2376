"""A merge killed at any point leaves the home as before it or merged, never half, and `git fsck` clean."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentd.home import Home
from agentd.merge import gitops
from agentd.merge.orchestrator import merge_home
from tests.merge.conftest import Pair, git


def settled(root: Path) -> Home:
    """What the daemon does first at start: recovery under the home lock."""
    home = Home.open(root)
    with home.lock(purpose="recovery"):
        home.recover()
    return home


def clean(home: Home) -> bool:
    # The note for the agent's next wake is a new inbox message, uncommitted like any message.
    return [p for p in home.dirty_paths() if not (p.startswith("inbox/") and p.count("/") == 1)] == []


def merged_then_rewound(pair: Pair) -> tuple[str, str]:
    """A finished merge's commit, with the home put back before it: (old, new)."""
    ours = pair.ours
    old = ours.repo.head.commit.hexsha
    new = merge_home(ours, str(pair.theirs.root)).commit
    assert new is not None
    git(ours.root, "reset", "-q", "--hard", old)
    git(ours.root, "clean", "-qfd", "inbox")
    return old, new


def test_a_crash_before_the_branch_moved_leaves_the_home_before_the_merge(forked: Pair) -> None:
    old, new = merged_then_rewound(forked)
    ours = forked.ours
    gitops._write_state(ours, gitops.PENDING, {"branch": "main", "old": old, "new": new})  # killed right after the marker
    home = settled(ours.root)
    assert home.repo.head.commit.hexsha == old and clean(home)
    assert not (gitops.state_dir(home) / gitops.PENDING).exists()


def test_a_crash_after_the_branch_moved_is_finished_by_recovery(forked: Pair) -> None:
    old, new = merged_then_rewound(forked)
    ours = forked.ours
    gitops._write_state(ours, gitops.PENDING, {"branch": "main", "old": old, "new": new})
    git(ours.root, "update-ref", "refs/heads/main", new, old)  # killed before the files followed
    assert not clean(Home.open(ours.root))
    home = settled(ours.root)
    assert home.repo.head.commit.hexsha == new and clean(home)
    assert "Passport expires in May" in (home.root / "memory/topics/travel.md").read_text()


def test_a_crash_after_the_branch_moved_still_puts_the_withheld_text_in_the_working_tree(forked: Pair) -> None:
    old, new = merged_then_rewound(forked)
    ours = forked.ours
    held = {"memory/topics/people.md": "# people\n- the merged text that held a credential\n"}
    gitops._write_state(ours, gitops.PENDING, {"branch": "main", "old": old, "new": new, "withheld": held})
    git(ours.root, "update-ref", "refs/heads/main", new, old)  # killed before the files followed
    home = settled(ours.root)
    assert home.repo.head.commit.hexsha == new
    assert (home.root / "memory/topics/people.md").read_text() == held["memory/topics/people.md"]
    assert "memory/topics/people.md" in home.dirty_paths()  # uncommitted, as the merge left it


def test_merge_sigkilled_at_random_points_is_before_or_merged_and_fsck_clean(forked: Pair, tmp_path: Path) -> None:
    ours, theirs = forked.ours, forked.theirs
    old = ours.repo.head.commit.hexsha
    their_head = theirs.repo.head.commit.hexsha
    cmd = [sys.executable, "-m", "agentd", "--home", "{home}", "merge", str(theirs.root), "--no-model"]

    def attempt(n: int, kill_after: float | None) -> str:
        home = tmp_path / f"try{n}"
        shutil.copytree(ours.root, home, symlinks=True)
        proc = subprocess.Popen([c.format(home=home) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill_after is not None:
            time.sleep(kill_after)
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        h = settled(home)
        head = h.repo.head.commit
        assert clean(h), h.dirty_paths()
        git(home, "fsck", "--strict", "--no-progress")
        if head.hexsha == old:
            return "before"
        assert [p.hexsha for p in head.parents] == [old, their_head]
        assert "Lines-Kept:" in head.message
        return "merged"

    started = time.monotonic()
    assert attempt(0, None) == "merged"
    whole = time.monotonic() - started
    rng = random.Random(int(os.environ.get("MERGE_CRASH_SEED", "18")))
    seen = [attempt(n, rng.uniform(0.05, whole * 1.2)) for n in range(1, 11)]
    print(f"SIGKILL outcomes over a {whole:.1f}s merge: {seen}")
    assert set(seen) <= {"before", "merged"}

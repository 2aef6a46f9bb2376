"""The git side of a merge: the temporary worktree, resolving what git left unmerged, and the crash-safe branch move.

A merge is built in ``.agentd/merge/wt`` (a detached worktree) and only its last step
touches the home: under the home lock, ``pending.json`` is written, the branch is moved
with a compare-and-swap ``update-ref``, the working tree is brought along, and the
marker is removed. A process killed anywhere leaves either no marker (the home is as
before; the worktree is thrown away) or the marker, from which :func:`recover_merge`
finishes the move or drops it: the home is pre-merge or merged, never half.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentd.errors import HomeError
from agentd.fileio import atomic_write, lock_held
from agentd.home import Home, Identity

THEIRS_REF = "refs/agentd/merge/theirs"
PENDING = "pending.json"  # the branch move in progress: {branch, old, new}
LAST = "last.json"  # the last finished merge: {branch, old, new, id}, for --abort


def state_dir(home: Home) -> Path:
    return home.runtime / "merge"


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True, data: str | None = None) -> str:
    """Run git; a failure is one HomeError line naming the command and git's last words."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, input=data, env={**os.environ, **(env or {})}
    )
    if check and done.returncode != 0:
        why = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}").splitlines()
        raise HomeError(f"git {args[0]} failed in {cwd}: {' | '.join(why[-3:])}")
    return done.stdout


def identity_env(who: Identity) -> dict[str, str]:
    return {"GIT_AUTHOR_NAME": who.name, "GIT_AUTHOR_EMAIL": who.email, "GIT_COMMITTER_NAME": who.name, "GIT_COMMITTER_EMAIL": who.email}


def rev(cwd: Path, name: str) -> str | None:
    out = git(cwd, "rev-parse", "--verify", "--quiet", name + "^{commit}", check=False).strip()
    return out or None


def show(cwd: Path, commit: str, path: str) -> str | None:
    """The text of ``path`` at ``commit``, or None when it has no such file."""
    done = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=cwd, capture_output=True)
    return done.stdout.decode("utf-8", errors="replace") if done.returncode == 0 else None


def files_at(cwd: Path, commit: str) -> list[str]:
    return [p for p in git(cwd, "ls-tree", "-r", "-z", "--name-only", commit).split("\0") if p]


def branch_of(home: Home) -> str:
    name = git(home.root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()
    if not name:
        raise HomeError(f"{home.root} is not on a branch (detached HEAD); check out its branch before merging")
    return name


# ------------------------------------------------------------------ the worktree
def fetch_other(home: Home, other: str) -> str:
    """Fetch the other home's HEAD into :data:`THEIRS_REF`; returns its commit."""
    source = str(Path(other).expanduser().absolute()) if Path(other).expanduser().exists() else other
    try:
        git(home.root, "fetch", "--quiet", "--no-tags", source, f"+HEAD:{THEIRS_REF}")
    except HomeError as e:
        raise HomeError(f"could not fetch the home to merge, {other}: {str(e).split(': ', 1)[-1].strip(' |')}") from None
    sha = rev(home.root, THEIRS_REF)
    if sha is None:
        raise HomeError(f"{other}: fetched nothing to merge")
    return sha


def new_worktree(home: Home, commit: str) -> Path:
    drop_worktree(home)
    wt = state_dir(home) / "wt"
    wt.parent.mkdir(parents=True, exist_ok=True)
    git(home.root, "worktree", "add", "--quiet", "--detach", str(wt), commit)
    return wt


def drop_worktree(home: Home) -> None:
    wt = state_dir(home) / "wt"
    if wt.exists():
        git(home.root, "worktree", "remove", "--force", str(wt), check=False)
        shutil.rmtree(wt, ignore_errors=True)
    git(home.root, "worktree", "prune", check=False)


@dataclass(frozen=True)
class Unmerged:
    path: str
    ours: str | None  # blob text, or None where that side deleted the file
    theirs: str | None


def unmerged(wt: Path) -> list[Unmerged]:
    """What git could not merge (no driver for it, a driver that failed, modify/delete)."""
    stages: dict[str, dict[int, str]] = {}
    for entry in git(wt, "ls-files", "-u", "-z").split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        _, sha, stage = meta.split()
        stages.setdefault(path, {})[int(stage)] = sha

    def blob(sha: str | None) -> str | None:
        return git(wt, "cat-file", "blob", sha) if sha else None

    return [Unmerged(p, blob(s.get(2)), blob(s.get(3))) for p, s in sorted(stages.items())]


def settle(wt: Path, item: Unmerged) -> None:
    """Keep this home's version of an unmerged file (the other side's, where ours deleted it)."""
    side = "--ours" if item.ours is not None else "--theirs"
    git(wt, "checkout", side, "--", item.path)
    git(wt, "add", "--", item.path)


# ------------------------------------------------------------------ the branch move
def _write_state(home: Home, name: str, data: dict[str, Any]) -> None:
    atomic_write(state_dir(home) / name, json.dumps(data).encode("utf-8"))


def _read_state(home: Home, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir(home) / name).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def move_branch(home: Home, branch: str, old: str, new: str, *, withheld: dict[str, str] | None = None) -> None:
    """Move ``branch`` from ``old`` to ``new`` and the working tree with it. Call under the home lock.

    ``withheld``: path → text the merge left out of its commit (a credential), written
    into the working tree after the move, uncommitted.
    """
    _write_state(home, PENDING, {"branch": branch, "old": old, "new": new, "withheld": withheld or {}})
    git(home.root, "update-ref", f"refs/heads/{branch}", new, old)
    _bring_tree(home, old, new)
    _write_withheld(home, withheld or {})
    (state_dir(home) / PENDING).unlink()


def _write_withheld(home: Home, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (home.root / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(home.root / rel, text.encode("utf-8", errors="surrogateescape"))


def _bring_tree(home: Home, old: str, new: str) -> None:
    """Make index and files match ``new`` where they differ from ``old`` (the tree was clean at ``old``)."""
    changed = [p for p in git(home.root, "diff", "--name-only", "-z", "--no-renames", old, new).split("\0") if p]
    present = set(files_at(home.root, new))
    keep = [p for p in changed if p in present]
    for i in range(0, len(keep), 200):
        git(home.root, "checkout", new, "--", *keep[i : i + 200])
    for p in changed:
        if p not in present:
            (home.root / p).unlink(missing_ok=True)
    git(home.root, "reset", "-q", new)


def recover_merge(home: Home, *, merge_lock_ours: bool = False) -> list[str]:
    """Finish or drop a merge a crash interrupted; the caller holds the home lock. Returns what was done.

    The worktree of a merge still running in another process (it holds ``merge.lock``)
    is left alone; ``merge_lock_ours``: that lock is the caller's, the worktree is stale.
    """
    done: list[str] = []
    pending = _read_state(home, PENDING)
    if pending is not None:
        home._clear_stale_index_lock()
        branch_ref = f"refs/heads/{pending['branch']}"
        at = rev(home.root, branch_ref)
        if at == pending["new"]:
            _bring_tree(home, pending["old"], pending["new"])
            _write_withheld(home, pending.get("withheld") or {})
            done.append(f"finished moving {pending['branch']} to the merge {pending['new'][:10]}")
        else:
            done.append("dropped an unfinished merge; the home is as before it")
        (state_dir(home) / PENDING).unlink()
    if not merge_lock_ours and lock_held(state_dir(home) / "merge.lock"):
        return done
    if (state_dir(home) / "wt").exists():
        drop_worktree(home)
        done.append("removed an unfinished merge's worktree")
    if rev(home.root, THEIRS_REF):
        git(home.root, "update-ref", "-d", THEIRS_REF, check=False)
    return done


def remember_last(home: Home, branch: str, old: str, new: str | None, merge_id: str, *, note: str = "") -> None:
    _write_state(home, LAST, {"branch": branch, "old": old, "new": new or "", "id": merge_id, "note": note})


def last_merge(home: Home) -> dict[str, Any] | None:
    return _read_state(home, LAST)


def forget_last(home: Home) -> None:
    (state_dir(home) / LAST).unlink(missing_ok=True)

"""The home: a git repository of Markdown that is everything the agent is.

All writes go through :func:`atomic_write` (temp file, fsync, rename), every agent
write passes the stale-write guard, and git is the audit trail: the person's
edits are committed as their own commits before the agent's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import git

from agentd.errors import AgentdError, HomeError, PathError, StaleWriteError
from agentd.fileio import (
    ABSENT,
    TMP_SUFFIX,
    atomic_write,
    content_digest,
    file_digest,
    file_lock,
    fsync_dir,
    sha256,
)
from agentd.secrets import SecretGuard, install_hook
from agentd.wal import WriteAheadLog
from agentd.withhold import find_secrets, record_withheld, still_withheld

RUNTIME_DIR = ".agentd"
HOME_MARKERS = ("agent.yaml", "AGENT.md")
NOTICES = "outbox/notices.md"
INDEX_LOCK_WAIT = 2.0  # seconds a git index.lock may be held by someone else before it counts as stale


@dataclass(frozen=True)
class Identity:
    """Who a commit is by: the agent, or the person."""

    name: str
    email: str

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


log = logging.getLogger("agentd.home")

AGENT = Identity("agentd", "agentd@localhost")
FALLBACK_PERSON = Identity("person", "person@localhost")


def default_home() -> Path:
    """The per-user default: ``$XDG_DATA_HOME/agentd/home`` (``~/.local/share/agentd/home``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "agentd" / "home"


def resolve_home_path(explicit: str | Path | None = None) -> Path:
    """``--home``, else ``$AGENTD_HOME``, else the XDG default."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    env = os.environ.get("AGENTD_HOME")
    if env:
        return Path(env).expanduser().absolute()
    return default_home()


def is_home(path: Path) -> bool:
    return (path / ".git").is_dir() and all((path / m).is_file() for m in HOME_MARKERS)


def _git_env(identity: Identity) -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": identity.name,
        "GIT_AUTHOR_EMAIL": identity.email,
        "GIT_COMMITTER_NAME": identity.name,
        "GIT_COMMITTER_EMAIL": identity.email,
    }


def scan_for_secrets(home: Home, staged: list[str]) -> None:
    """The default pre-commit check: credential patterns and the values of agent.yaml's ``secrets.env``."""
    SecretGuard.for_home(home.root).check_commit(home, staged)


class Home:
    """One agent's home directory and its git repository."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self._repo: git.Repo | None = None
        # rel path -> sha256 of the content the agent last read or wrote, ABSENT once it
        # deleted it (the stale-write guard)
        self._seen: dict[str, str] = {}
        # rel path -> sha256 of what the agent itself last wrote: uncommitted, but not the person's
        self._wrote: dict[str, str] = {}
        # Called with the staged paths before every commit; raises to refuse. Every
        # Home scans for secrets unless a caller replaces it (wiring adds env values).
        self.pre_commit: Callable[[Home, list[str]], None] | None = scan_for_secrets

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: Path) -> Home:
        root = Path(root).expanduser().absolute()
        if not root.exists():
            raise HomeError(f"no agentd home at {root}; create one with: agentd init {root}")
        if not is_home(root):
            raise HomeError(f"{root} is not an agentd home (no agent.yaml, AGENT.md and .git)")
        home = cls(root)
        home.runtime.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):  # a read-only .git still opens; the hook waits for a writable one
            install_hook(root)
        return home

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = git.Repo(self.root)
        return self._repo

    @property
    def runtime(self) -> Path:
        return self.root / RUNTIME_DIR

    @property
    def logs(self) -> Path:
        p = self.runtime / "logs"
        p.mkdir(parents=True, exist_ok=True)
        return p

    # ---------------------------------------------------------------- paths
    def rel(self, path: str | Path) -> str:
        """The home-relative POSIX path of ``path``; refuses anything outside the home."""
        p = Path(path)
        full = p if p.is_absolute() else self.root / p
        resolved = full.resolve()
        root = self.root.resolve()
        if resolved != root and root not in resolved.parents:
            raise PathError(f"{path} is outside the home")
        rel = resolved.relative_to(root).as_posix()
        if rel.split("/")[0] in (".git",):
            raise PathError(f"{path} is inside .git; the repository is agentd's to manage")
        return rel

    def path(self, rel: str | Path) -> Path:
        return self.root / self.rel(rel)

    # ---------------------------------------------------------------- reading and writing
    def read_bytes(self, rel: str | Path) -> bytes:
        r = self.rel(rel)
        data = (self.root / r).read_bytes()
        self._seen[r] = sha256(data)
        return data

    def read_text(self, rel: str | Path) -> str:
        return self.read_bytes(rel).decode("utf-8", errors="replace")

    def head_bytes(self, rel: str) -> bytes | None:
        """The committed content of ``rel`` at HEAD, or None if HEAD has no such file."""
        try:
            blob = self.repo.head.commit.tree / rel
        except (KeyError, ValueError):
            return None
        data: bytes = blob.data_stream.read()
        return data

    def check_fresh(self, rel: str) -> None:
        """Refuse to overwrite a file that changed since the agent last saw it.

        The baseline is the content the agent last read or wrote in this process;
        for a file it has not touched, the committed content at HEAD (person edits
        are absorbed before every wake, so a difference means someone is editing it now).
        """
        current = file_digest(self.root / rel)
        if rel in self._seen:
            if current != self._seen[rel]:
                raise StaleWriteError(
                    f"{rel} changed since the agent last read it (someone edited it); "
                    "read it again and re-apply the change"
                )
            return
        if current != content_digest(self.head_bytes(rel)):
            raise StaleWriteError(
                f"{rel} has changes that are not committed yet (the person is editing it); "
                "read it first, then write"
            )

    def write_bytes(self, rel: str | Path, data: bytes, *, guard: bool = True) -> None:
        """The agent's write: stale-write guard, write-ahead note, atomic write."""
        r = self.rel(rel)
        if guard:
            self._guard(r, self.check_fresh)
        wal = WriteAheadLog(self.runtime)
        wal.intend(r, sha256(data))
        atomic_write(self.root / r, data)
        self._seen[r] = sha256(data)
        if guard:  # an unguarded append may carry the person's uncommitted text: not ours to delete
            self._wrote[r] = self._seen[r]

    def _guard(self, rel: str, check: Callable[[str], None]) -> None:
        try:
            check(rel)
        except StaleWriteError:
            # The other version is someone's edit: it goes into history as theirs, now.
            if self._holding_lock and (self.root / rel).is_file():
                self.commit(f"person: edited {rel} during a wake", identity=self.person_identity(), paths=[rel])
            raise

    def check_deletable(self, rel: str) -> None:
        """Refuse to delete a file that changed since the agent saw it, or holds the person's uncommitted text.

        Stricter than :meth:`check_fresh`: a write that read the person's text carries it
        on, a delete would drop it unrecorded. So besides being fresh, the file must be as
        committed at HEAD, or exactly what the agent itself last wrote.
        """
        self.check_fresh(rel)
        current = file_digest(self.root / rel)
        if current != content_digest(self.head_bytes(rel)) and current != self._wrote.get(rel):
            raise StaleWriteError(
                f"{rel} has changes that are not committed yet (the person's edits); "
                "the agent does not delete them"
            )

    def delete(self, rel: str | Path) -> None:
        """The agent's delete: stale-write guard, write-ahead note, unlink.

        To the write-ahead log a delete is a write of nothing (digest ABSENT), so a wake
        killed before its commit gets the file back from HEAD like any unfinished write.
        """
        r = self.rel(rel)
        target = self.root / r
        if not target.is_file():
            raise PathError(f"{r}: no file to delete there")
        self._guard(r, self.check_deletable)
        WriteAheadLog(self.runtime).intend(r, ABSENT)
        target.unlink()
        fsync_dir(target.parent)
        self._seen[r] = ABSENT
        self._wrote.pop(r, None)

    def write_text(self, rel: str | Path, text: str, *, guard: bool = True) -> None:
        self.write_bytes(rel, text.encode("utf-8"), guard=guard)

    def append_text(self, rel: str | Path, text: str) -> None:
        """Append by atomic rewrite (files the agent alone appends to: journal, outbox)."""
        r = self.rel(rel)
        target = self.root / r
        old = target.read_bytes() if target.is_file() else b""
        self.write_bytes(r, old + text.encode("utf-8"), guard=False)

    def move(self, src: str | Path, dst: str | Path) -> None:
        """Rename within the home, noted in the write-ahead log so a crash can undo it."""
        s, d = self.rel(src), self.rel(dst)
        data = (self.root / s).read_bytes()
        wal = WriteAheadLog(self.runtime)
        wal.intend_move(s, d, sha256(data))
        (self.root / d).parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / s, self.root / d)
        fsync_dir((self.root / d).parent)

    def changed_behind_agent(self) -> list[str]:
        """Files the agent read or wrote whose content someone else has changed since."""
        return [rel for rel, seen in sorted(self._seen.items()) if file_digest(self.root / rel) != seen]

    def forget_reads(self) -> None:
        self._seen.clear()
        self._wrote.clear()

    # ---------------------------------------------------------------- git
    def dirty_paths(self) -> list[str]:
        """Paths with uncommitted changes (untracked included, ignored excluded)."""
        # GIT_OPTIONAL_LOCKS=0: looking never takes index.lock from a git the person runs.
        out = self.repo.git.status("--porcelain=v1", "-z", "--untracked-files=all", env={"GIT_OPTIONAL_LOCKS": "0"})
        paths: list[str] = []
        entries = out.split("\0")
        i = 0
        while i < len(entries):
            entry = entries[i]
            i += 1
            if not entry:
                continue
            status, name = entry[:2], entry[3:]
            if status[0] in "RC":
                i += 1  # the rename source follows as its own entry
            paths.append(name)
        return sorted(paths)

    def commit(
        self,
        message: str,
        *,
        identity: Identity,
        paths: list[str] | None = None,
        all_changes: bool = False,
        trailers: dict[str, str] | None = None,
        exclude: list[str] | None = None,
    ) -> str | None:
        """Stage ``paths`` (or every change but ``exclude``) and commit; returns the sha, or None if nothing changed."""
        self._clear_stale_index_lock()
        if all_changes or paths is None:
            self._stage()
            # The person's files withheld for a credential stay out until they change.
            exclude = [*(exclude or []), *still_withheld(self)]
        elif paths:
            self._stage("--", *paths)
        if exclude:
            self.repo.git.reset("-q", "--", *exclude)
        staged = self.repo.git.diff("--cached", "--name-only", "-z").split("\0")
        staged = [p for p in staged if p]
        if not staged:
            return None
        if self.pre_commit is not None:
            try:
                self.pre_commit(self, staged)
            except BaseException:
                self.repo.git.reset("-q")
                raise
        full = message.rstrip() + "\n"
        if trailers:
            full += "\n" + "".join(f"{k}: {v}\n" for k, v in trailers.items())
        # --no-verify: the scan above already ran, with the values only this process knows.
        done = subprocess.run(
            ["git", "commit", "-q", "--no-verify", "-F", "-"],
            cwd=self.root,
            input=full.encode("utf-8"),
            env={**os.environ, **_git_env(identity)},
            capture_output=True,
        )
        if done.returncode != 0:
            self.repo.git.reset("-q")
            why = done.stderr.decode("utf-8", errors="replace").strip().splitlines() or [f"exit code {done.returncode}"]
            raise HomeError(f"git commit failed in {self.root}: {' | '.join(why[-3:])}")
        sha: str = self.repo.head.commit.hexsha
        return sha

    def _stage(self, *args: str) -> None:
        """``git add -A``, again when a file vanished between git listing it and reading it
        (an editor's swap file, a temp file renamed into place): the next listing no longer has it."""
        for attempt in range(3):
            try:
                self.repo.git.add("-A", *args)
                return
            except git.GitCommandError as e:
                vanished = "No such file or directory" in str(e.stderr) or "unable to stat" in str(e.stderr)
                if not vanished or attempt == 2:
                    raise

    def person_identity(self) -> Identity:
        reader = self.repo.config_reader()
        try:
            name = str(reader.get_value("user", "name"))
            email = str(reader.get_value("user", "email"))
        except Exception:  # noqa: BLE001 - configparser raises several kinds for a missing key
            return FALLBACK_PERSON
        return Identity(name, email)

    def absorb_person_edits(self, exclude: list[str] | None = None) -> str | None:
        """Commit whatever the person changed since the last commit, as the person; returns the sha.

        ``exclude``: paths left for the coming wake's commit (the message that woke it).
        A file holding a credential is not committed: it stays in the working tree,
        out of git, the rest is committed, and the person is told once in
        outbox/notices.md (file:line and kind, never the value). See :mod:`agentd.withhold`.
        """
        dirty = [p for p in self.dirty_paths() if p not in (exclude or [])]
        held = find_secrets(self, dirty)
        dirty = [p for p in dirty if p not in held]
        sha = None
        if dirty:
            shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
            verb = "edited" if all((self.root / p).exists() for p in dirty) else "changed"
            sha = self.commit(f"person: {verb} {shown}", identity=self.person_identity(), all_changes=True, exclude=[*(exclude or []), *held])
        record_withheld(self, held)
        return sha

    def notify(self, text: str) -> str | None:
        """Tell the person: a line in outbox/notices.md, committed as the agent's. Call under the lock.

        A notice that cannot be committed is taken back, so it never blocks later commits;
        returns the commit's sha, or None when it could not be written.
        """
        path = self.root / NOTICES
        before = path.read_bytes() if path.is_file() else None
        head = "" if before is not None else "# Notices from the daemon\n"
        try:
            self.append_text(NOTICES, f"{head}\n- {datetime.now():%Y-%m-%d %H:%M}: {text}\n")
            return self.commit(f"notice: {text[:60]}", identity=AGENT, paths=[NOTICES])
        except (AgentdError, OSError):
            if before is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, before)
            return None

    def _clear_stale_index_lock(self, wait: float = INDEX_LOCK_WAIT) -> None:
        """Remove an index.lock left by a git killed mid-commit (a crash of ours, say).

        Another git may hold it right now — the person's `git status` refreshing the
        index, an editor's git plugin — so a lock is stale only once it has outlived
        ``wait`` seconds of ours: a live command is done by then, and deleting a live
        lock would let two gits write the index at once.
        """
        lock = self.root / ".git" / "index.lock"
        if not self._holding_lock:
            return
        deadline = time.monotonic() + wait
        while lock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if lock.exists():
            log.warning("%s: removing a stale git index.lock (held for over %gs)", self.root, wait)
            lock.unlink(missing_ok=True)

    # ---------------------------------------------------------------- the write lock
    _holding_lock = False

    @contextlib.contextmanager
    def lock(self, *, timeout: float = 30.0, purpose: str = "write") -> Iterator[Home]:
        """Hold the home's write lock (one process at a time writes and commits)."""
        locked = lambda holder: f"{self.root} is locked by {holder}"  # noqa: E731
        with file_lock(self.runtime / "home.lock", timeout=timeout, purpose=purpose, refusal=locked):
            self._holding_lock = True
            try:
                yield self
            finally:
                self._holding_lock = False

    # ---------------------------------------------------------------- crash recovery
    def recover(self) -> list[str]:
        """Undo what an unfinished wake wrote, clean temp files; returns what was done."""
        # A merge's branch move interrupted by a crash is finished or dropped first.
        from agentd.merge.gitops import recover_merge

        done: list[str] = recover_merge(self)
        for tmp in self.root.rglob(f"*{TMP_SUFFIX}"):
            if ".git" not in tmp.relative_to(self.root).parts:
                tmp.unlink(missing_ok=True)
                done.append(f"removed temp file {tmp.relative_to(self.root)}")
        done.extend(WriteAheadLog(self.runtime).roll_back(self))
        return done

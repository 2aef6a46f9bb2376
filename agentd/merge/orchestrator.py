"""`agentd fork` and `agentd merge`: a home cloned with a new id, and another home's history merged into this one.

The merge runs git's own merge in a temporary worktree with the drivers of
``.gitattributes``, then what git cannot know: the memory merge wake, agent.yaml's
``id``, the wiki recompiled, the report for the person, one merge commit with
trailers. Only then, under the home lock, is the home's branch moved (see
:mod:`agentd.merge.gitops`).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from agentd.config import CONFIG_FILE
from agentd.config_edit import set_values
from agentd.errors import HomeError, UserError
from agentd.fileio import atomic_write, file_lock
from agentd.home import AGENT, Home, is_home
from agentd.identity import new_agent_id
from agentd.merge import gitops
from agentd.merge.attributes import ATTRIBUTES, attributes_missing, install_drivers, with_attributes
from agentd.merge.driver import LOG_ENV
from agentd.merge.gitops import git
from agentd.merge.kinds import Conflict, content_lines, keep_identity, kind_of
from agentd.merge.report import MergeOutcome, agent_note, report_text
from agentd.merge.wake import merge_memory
from agentd.secrets import SecretGuard, install_hook
from agentd.withhold import find_secrets, record_withheld, withheld
from engine.errors import EngineError
from engine.types import ChatEngine, ChatResult, Usage

IdSource = Callable[[], str]


def new_merge_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()


# ------------------------------------------------------------------ fork
def fork_home(home: Home, dest: Path, *, new_id: IdSource = new_agent_id) -> Home:
    """A new home at ``dest``: this one's history, its own agent id, an empty inbox."""
    dest = dest.expanduser().absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise HomeError(f"{dest} exists and is not empty; fork into a new directory")
    with home.lock(purpose="fork"):
        home.absorb_person_edits()
    git(home.root.parent, "clone", "--quiet", str(home.root), str(dest))
    git(dest, "remote", "remove", "origin")
    forked = Home(dest)
    forked.runtime.mkdir(exist_ok=True)
    install_hook(dest)
    install_drivers(dest)
    text, _ = set_values(dest, {"id": new_id()})
    atomic_write(dest / CONFIG_FILE, text)
    for msg in sorted((dest / "inbox").glob("*")):
        if msg.is_file() and not msg.name.startswith("."):
            msg.unlink()  # messages waiting here are the original's to answer
    if attributes_missing(dest):
        atomic_write(dest / ATTRIBUTES, with_attributes(_read(dest / ATTRIBUTES)))
    with forked.lock(purpose="fork"):
        forked.commit(f"fork: a new agent forked from {home.root}", identity=AGENT, all_changes=True, trailers={"Forked-From": str(home.root)})
    return forked


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


# ------------------------------------------------------------------ merge
def refuse_if_daemon(home: Home) -> None:
    from agentd.daemon import daemon_lock_held

    if daemon_lock_held(home):
        raise UserError(f"a daemon is running on {home.root}; hand the merge to it (agentd merge does) or stop it first")


def merge_home(
    home: Home,
    other: str,
    *,
    engine: ChatEngine | None = None,
    dry_run: bool = False,
    merge_id: str | None = None,
    now: datetime | None = None,
    daemon_wake: bool = False,
    context_window: int | None = None,
) -> MergeOutcome:
    """Merge the home at path or URL ``other`` into ``home``; see the module docstring.

    ``engine`` None: no merge wake (memory keeps the deterministic union, the wiki's new
    sources wait for the next compile). ``daemon_wake``: the daemon itself runs it (its
    own lock is then expected to be held). ``context_window``: the engine's, in tokens (read
    from agent.yaml when None); a memory file too large for it is merged in chunks.
    """
    if not daemon_wake and not dry_run:  # a dry run changes nothing a daemon could see
        refuse_if_daemon(home)
    merge_id = merge_id or new_merge_id()
    with file_lock(gitops.state_dir(home) / "merge.lock", timeout=0, purpose="merge", refusal=lambda h: f"a merge is already running on {home.root}: {h}"):
        with home.lock(purpose="merge: prepare"):
            gitops.recover_merge(home, merge_lock_ours=True)
            if not dry_run:
                home.absorb_person_edits()
            branch, old = gitops.branch_of(home), home.repo.head.commit.hexsha
        install_drivers(home.root)
        if Path(other).expanduser().exists():
            other = str(Path(other).expanduser().absolute())
            if not is_home(Path(other)):
                raise HomeError(f"{other} is not an agentd home (no agent.yaml, AGENT.md and .git); nothing merged")
        theirs = gitops.fetch_other(home, other)
        out = MergeOutcome(merge_id, other, ours=old, theirs=theirs)
        if _is_ancestor(home.root, theirs, old):
            git(home.root, "update-ref", "-d", gitops.THEIRS_REF, check=False)
            out.up_to_date = True
            return out  # already merged: nothing to do
        try:
            wt = gitops.new_worktree(home, old)
            engine = None if dry_run else engine
            if engine is not None and context_window is None:
                context_window = _window(home)
            new = _build(home, wt, out, engine=engine, now=now or datetime.now(), context_window=context_window)
            if dry_run:
                return out
            with home.lock(purpose="merge: move branch"):
                # A message arriving or an edit elsewhere while the merge ran stays as it is;
                # a commit, or an edit of a file the merge changes, means running it again.
                clash = sorted(set(home.dirty_paths()) & {*out.changed, *out.withheld})
                if home.repo.head.commit.hexsha != old or clash:
                    why = f"you edited {', '.join(clash[:3])}" if clash else "a commit was made"
                    raise UserError(f"{home.root} changed while the merge ran ({why}); run agentd merge again")
                gitops.move_branch(home, branch, old, new, withheld=out.held_text)
                gitops.remember_last(home, branch, old, new, merge_id)
                if out.withheld:
                    record_withheld(home, {**withheld(home), **out.withheld}, tell=False)  # the report tells
            out.commit = new
        finally:
            gitops.drop_worktree(home)
            git(home.root, "update-ref", "-d", gitops.THEIRS_REF, check=False)
    note = _after(home, out, now or datetime.now())
    gitops.remember_last(home, branch, old, out.commit, merge_id, note=note)
    return out


def _window(home: Home) -> int | None:
    from agentd.config import load_config

    try:
        return load_config(home.root).engine.context_window()
    except (UserError, HomeError, ValueError):
        return None


def _is_ancestor(root: Path, a: str, b: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", a, b], cwd=root, capture_output=True).returncode == 0


def _build(home: Home, wt: Path, out: MergeOutcome, *, engine: ChatEngine | None, now: datetime, context_window: int | None = None) -> str:
    """Merge in the worktree and commit; returns the merge commit."""
    env = gitops.identity_env(AGENT)
    if attributes_missing(wt):
        atomic_write(wt / ATTRIBUTES, with_attributes(_read(wt / ATTRIBUTES)))
        git(wt, "add", "--", ATTRIBUTES)
        git(wt, "commit", "-q", "--no-verify", "-m", "merge: merge drivers for each kind of file (.gitattributes)", env=env)
    log = gitops.state_dir(home) / "drivers.jsonl"
    log.unlink(missing_ok=True)
    out.base = git(wt, "merge-base", "HEAD", out.theirs, check=False).strip().split("\n")[0]
    out.unrelated = not out.base
    git(wt, "merge", "--no-ff", "--no-commit", "--allow-unrelated-histories", "-q", gitops.THEIRS_REF, env={**env, LOG_ENV: str(log)}, check=False)
    if not (wt / ".git").exists() or gitops.rev(wt, "MERGE_HEAD") is None:
        raise HomeError(f"git could not start the merge of {out.source} in {wt}")
    for record in _records(log):
        out.files[record["path"]] = record["kind"]
        out.conflicts += [Conflict(**c) for c in record["conflicts"]]
    for item in gitops.unmerged(wt):
        if item.ours is not None and item.theirs is not None and item.ours != item.theirs:
            out.conflicts.append(Conflict(item.path, "the file", item.ours, item.theirs))
        out.files.setdefault(item.path, kind_of(item.path))
        gitops.settle(wt, item)
    _merge_memory(wt, out, engine, context_window)
    _keep_identity(wt, out.ours)
    _recompile_wiki(wt, out, engine)
    git(wt, "add", "-A")
    # The merge writes new text (merged memory, wiki pages, the report): it passes the
    # home's own secret scan, and what holds a credential stays out of the commit.
    _withhold(home, wt, out, _staged(wt))
    if out.conflicts or out.contradictions or out.withheld:
        out.report = f"outbox/merge-{out.merge_id}.md"
        mask = SecretGuard.for_home(wt).mask
        atomic_write(wt / out.report, mask(report_text(out, _suggestions(out, engine))))
        git(wt, "add", "--", out.report)
        _withhold(home, wt, out, [out.report])
    out.changed = _staged(wt)
    _count_lines(wt, out)
    message = f"merge: {out.source} merged into this home\n\n{out.summary()}\n\n" + "\n".join(f"{k}: {v}" for k, v in out.trailers().items()) + "\n"
    git(wt, "commit", "-q", "--no-verify", "--allow-empty", "-F", "-", env=env, data=message)
    new = gitops.rev(wt, "HEAD")
    assert new is not None
    return new


def _staged(wt: Path) -> list[str]:
    return [p for p in git(wt, "diff", "--cached", "--name-only", "-z", "HEAD").split("\0") if p]


def _withhold(home: Home, wt: Path, out: MergeOutcome, paths: list[str]) -> None:
    """Scan ``paths`` as the home's commits are scanned; a file with a credential keeps this home's
    version in the merge commit (or none), its merged text goes to the working tree, uncommitted."""
    probe = Home(wt)
    probe.pre_commit = home.pre_commit
    for rel, findings in find_secrets(probe, [p for p in paths if (wt / p).is_file()]).items():
        out.withheld[rel] = findings
        out.held_text[rel] = (wt / rel).read_bytes().decode("utf-8", errors="surrogateescape")
        if gitops.show(wt, "HEAD", rel) is None:
            git(wt, "rm", "-q", "--cached", "--", rel)
            (wt / rel).unlink()
        else:
            git(wt, "checkout", "HEAD", "--", rel)


def _records(log: Path) -> list[dict[str, Any]]:
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


def _merge_memory(wt: Path, out: MergeOutcome, engine: ChatEngine | None, window: int | None) -> None:
    """The merge wake, per memory file both sides changed; the union stays where the model's answer fails."""
    for path, kind in sorted(out.files.items()):
        if kind != "memory" or not (wt / path).is_file():
            continue
        ours = gitops.show(wt, "HEAD", path) or ""
        theirs = gitops.show(wt, out.theirs, path) or ""
        result = merge_memory(path, ours, theirs, _read(wt / path), engine, context_window=window)
        out.memory.append(result)
        atomic_write(wt / path, result.text)


def _keep_identity(wt: Path, ours_commit: str) -> None:
    ours = gitops.show(wt, ours_commit, CONFIG_FILE) or ""
    merged = _read(wt / CONFIG_FILE)
    fixed = keep_identity(ours, merged)
    if fixed != merged:
        atomic_write(wt / CONFIG_FILE, fixed)


def _count_lines(wt: Path, out: MergeOutcome) -> None:
    """Lines of either side per memory file, and where each one is now: kept, folded (accounted), or lost."""
    folded = {m.path: m for m in out.memory if m.by_model}
    paths = {p for c in (out.ours, out.theirs) for p in gitops.files_at(wt, c) if kind_of(p) == "memory"}
    for path in sorted(paths):
        ours = set(content_lines(gitops.show(wt, out.ours, path) or ""))
        theirs = set(content_lines(gitops.show(wt, out.theirs, path) or ""))
        base = {x.strip() for x in content_lines(gitops.show(wt, out.base, path) or "")} if out.base else set()
        out.lines_ours += len(ours)
        out.lines_theirs += len(theirs)
        if not (wt / path).is_file():
            continue  # one side deleted it and the other left it as it was: a deliberate delete
        now = {x.strip() for x in content_lines(_read(wt / path))}
        sides = {x.strip() for x in ours | theirs}
        kept = {x for x in sides if x in now}
        # In the base and gone from one side: deleted on purpose, not lost.
        deleted = {x for x in sides - now if x in base and (x not in {y.strip() for y in ours} or x not in {y.strip() for y in theirs})}
        out.lines_kept += len(kept)
        out.lines_deleted += len(deleted)
        accounted = folded[path].folded if path in folded else 0
        out.lines_folded += accounted
        out.lines_lost += len(sides) - len(kept) - len(deleted) - accounted


def _recompile_wiki(wt: Path, out: MergeOutcome, engine: ChatEngine | None) -> None:
    """Pages written again from the union of raw/: the manifests' union, then a compile of what is new."""
    if not any(p.startswith(("raw/", "wiki/")) for p in git(wt, "diff", "--name-only", "HEAD", out.theirs).split()):
        return
    from memory import wiki

    manifest: dict[str, Any] = {"sources": {}}
    for commit in (out.theirs, "HEAD"):  # ours last: its entry wins a source both compiled
        text = gitops.show(wt, commit, wiki.MANIFEST)
        try:
            manifest["sources"].update(json.loads(text)["sources"] if text else {})
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    atomic_write(wt / wiki.MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    report = wiki.compile_wiki(Home(wt), engine or _NoModel())
    out.wiki_pending = report.failed


class _NoModel:
    """No engine for this merge: every source to compile is left pending (compile_wiki counts it as failed)."""

    def chat(self, messages: list[dict[str, Any]], **kwargs: Any) -> ChatResult:
        return ChatResult("", [], "stop", Usage(0, 0, None, 0.0, 0.0), "none")

    def tokenize(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int] | None:
        return None


SUGGEST = "Two versions of one file of an agent's home differ. Write one merged version that keeps what matters in both. Answer with the file only."


def _suggestions(out: MergeOutcome, engine: ChatEngine | None) -> dict[str, str]:
    """The model's suggested merge of each conflicting steering file, for the report (never applied)."""
    if engine is None:
        return {}
    found: dict[str, str] = {}
    for c in out.conflicts:
        if kind_of(c.path) != "steering" or c.path in found:
            continue
        try:
            res = engine.chat(
                [{"role": "system", "content": SUGGEST}, {"role": "user", "content": f"=== THIS HOME ===\n{c.ours}\n=== THE OTHER HOME ===\n{c.theirs}"}],
                max_tokens=1024,
                temperature=0.0,
            )
        except EngineError:
            continue
        if res.content.strip():
            found[c.path] = res.content
    return found


def _after(home: Home, out: MergeOutcome, now: datetime) -> str:
    """The search index, a new prefix epoch at the next wake, and the message that tells the agent (its path)."""
    from agentd import inbox
    from memory.search import SearchIndex

    SearchIndex(home.root).update()
    (home.runtime / "context" / "epoch.json").unlink(missing_ok=True)  # next wake: prefix built from the merged files
    return f"inbox/{inbox.post(home, agent_note(out), now)}.md"


# ------------------------------------------------------------------ abort
def abort_merge(home: Home) -> str:
    """Throw away an unfinished merge, or undo the last finished one while nothing came after it."""
    busy = lambda h: f"a merge is running on {home.root}: {h}; let it finish, then abort"  # noqa: E731
    with file_lock(gitops.state_dir(home) / "merge.lock", timeout=0, purpose="merge --abort", refusal=busy), home.lock(purpose="merge --abort"):
        done = gitops.recover_merge(home, merge_lock_ours=True)
        last = gitops.last_merge(home)
        if last is None:
            return "; ".join(done) if done else "no merge to abort"
        head = home.repo.head.commit.hexsha
        if head != last["new"]:
            raise UserError(f"the home has moved on since merge {last['id']} (HEAD is {head[:10]}, not its merge {last['new'][:10]}); revert it with git instead")
        note = home.root / last.get("note", "inbox/")
        if note.is_file():
            note.unlink()  # the unanswered message about the merge goes with it
        if home.dirty_paths():
            raise UserError(f"{home.root} has uncommitted edits; commit or undo them, then abort the merge")
        gitops.move_branch(home, last["branch"], last["new"], last["old"])
        gitops.forget_last(home)
    (home.runtime / "context" / "epoch.json").unlink(missing_ok=True)
    return f"merge {last['id']} undone: {last['branch']} is back at {last['old'][:10]}"

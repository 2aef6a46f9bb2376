"""Where a shell command's paths land, for the policy: inside the home, or outside it."""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
from pathlib import Path

SCRATCH = ("/tmp", "/var/tmp")
# Placeholders the policy leaves where $(…) and <(…) were.
SUBST = "SUBST"
PROCSUBST = "PROCSUBST"


class Places:
    """Where a command's paths land: inside the home (or an allowed workdir, or a temp folder), or not.

    Paths are judged lexically against the working directory, which follows ``cd`` along
    the chain; a path built from a variable other than ``$HOME`` is not judged.
    """

    def __init__(self, home_root: Path | None, workdirs: tuple[str, ...] = ()) -> None:
        root = posixpath.abspath(str(home_root)) if home_root else "/nonexistent/agentd-home"
        self.roots = {root, os.path.realpath(root)}
        self.safe = [posixpath.abspath(os.path.expanduser(w)) for w in workdirs]
        self.scratch = {*SCRATCH, tempfile.gettempdir()}
        self.cwd: str | None = root
        self.cwd_personal = False  # the chain did cd ~ (or plain cd)

    def resolve(self, word: str) -> str | None:
        word = re.sub(r"^\$\{?HOME\}?(?=/|$)", "~", word)
        if "$" in word or SUBST in word or PROCSUBST in word:
            return None  # assembled at run time: not judged
        if word.startswith("~"):
            word = os.path.expanduser(word)
        if not word.startswith("/"):
            if self.cwd is None:
                return None
            word = posixpath.join(self.cwd, word)
        return posixpath.normpath(word)

    def chdir(self, args: list[str]) -> None:
        target = next((a for a in args if not a.startswith("-")), "~")
        self.cwd = self.resolve(target) if target != "-" else None
        self.cwd_personal = re.match(r"~|\$\{?HOME\b", target) is not None or (self.cwd_personal and not target.startswith("/"))

    def problem(self, word: str, *, root_ok: bool = False) -> tuple[str, str] | None:
        """(rule, why) when destroying or moving ``word`` reaches the home as a whole or outside it.

        ``root_ok``: the home itself is fine (a move's destination, find's starting point).
        """
        path = self.resolve(word)
        if path is None:
            return None
        # The person's own files (~, $HOME) are never scratch space, wherever HOME happens to be.
        personal = re.match(r"~|\$\{?HOME\b", word) is not None or (self.cwd_personal and not word.startswith("/"))
        parts = path.split("/")
        glob_at = next((i for i, p in enumerate(parts) if re.search(r"[*?\[]", p)), None)
        if glob_at is not None:
            # A glob hits part of its folder, unless it is a bare * (everything in it).
            root_ok = root_ok or not (glob_at == len(parts) - 1 and parts[-1] in ("*", ".*", "*.*"))
            path = "/".join(parts[:glob_at]) or "/"

        def inside(base: str) -> bool:
            return path.startswith(base.rstrip("/") + "/")

        for root in self.roots:
            if path == root:
                return None if root_ok else ("home-wipe", f"{word} is the whole home")
            if path == root + "/.git" or inside(root + "/.git"):
                return "home-wipe", f"{word} is the home's git history"
            if root.startswith(path.rstrip("/") + "/"):
                return "outside-home", f"{word} is a folder above the home ({path})"
        if any(inside(base) for base in [*self.roots, *([] if personal else self.scratch)]):
            return None
        if any(inside(base) or (path == base and root_ok) for base in self.safe):
            return None
        return "outside-home", f"{word} is outside the home ({path})"

    def violation(self, argv: list[str]) -> tuple[str, str] | None:
        name, args = argv[0], argv[1:]
        words = [a for a in args if not a.startswith("-")]
        hit: tuple[str, str] | None = None
        if name in ("cd", "pushd"):
            self.chdir(args)
        elif name == "popd":
            self.cwd = None
        elif name == "rm":
            flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
            if set(flags) & set("rRf") or {"--recursive", "--force"} & set(args):
                hit = next(filter(None, (self.problem(w) for w in words)), None)
        elif name == "mv":
            targets = _target_dirs(args)  # -t DIR, -tDIR, --target-directory[=]DIR
            dest = targets or words[-1:]
            hit = next(filter(None, (self.problem(w, root_ok=w in dest) for w in words + targets)), None)
        elif name == "find":
            execs = [args[i + 1].rsplit("/", 1)[-1] for i, a in enumerate(args[:-1]) if a in ("-exec", "-execdir", "-ok", "-okdir")]
            if "-delete" in args or set(execs) & {"rm", "shred", "unlink", "mv"}:
                args = _skip_find_options(args)  # -H/-L/-P/-D x/-On come before the paths
                starts = args[: next((i for i, a in enumerate(args) if a[:1] in "-(!,"), len(args))] or ["."]
                hit = next(filter(None, (self.problem(s, root_ok=True) for s in starts)), None)
        if hit:
            rule, why = hit
            return rule, f"{name} {' '.join(args)}: {why}"
        return None


def _target_dirs(args: list[str]) -> list[str]:
    """``mv``'s destination given as an option, in each of its spellings."""
    out: list[str] = []
    for i, a in enumerate(args):
        if a in ("-t", "--target-directory") and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith("--target-directory="):
            out.append(a.split("=", 1)[1])
        elif a.startswith("-t") and not a.startswith("--") and len(a) > 2:
            out.append(a[2:])
    return out


def _skip_find_options(args: list[str]) -> list[str]:
    """``find``'s global options that may precede the start paths."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-H", "-L", "-P"):
            i += 1
        elif a == "-D":
            i += 2
        elif re.fullmatch(r"-O\d*", a):
            i += 1
        else:
            break
    return args[i:]

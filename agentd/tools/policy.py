"""The shell policy: a guard-rail against plainly destructive commands, not a sandbox.

Order of decisions for a command:
1. the person's ``shell.deny`` regexes (agent.yaml) → deny;
2. the built-in rules below → deny, unless a ``shell.allow`` regex matches the whole
   command (that is how the person loosens a built-in rule);
3. ``shell.mode``: ``deny`` refuses everything, ``ask`` parks the command for
   ``agentd approve``, ``auto`` runs it.

The built-in rules see through simple evasions: quoting (``'s'u'do'``), backslashes,
``$(…)`` and backticks, ``;``/``&&``/``||``/``|`` chains, leading ``VAR=x``
assignments, absolute paths (``/usr/bin/sudo``), and wrappers (``env``, ``command``,
``exec``, ``nohup``, ``nice``, ``timeout``, ``xargs``, ``bash -c``/``sh -c``).

What it does NOT promise (tests/security/test_shell_policy.py pins this down):
commands built at run time (``x=su; $x$x``, ``eval``), decoded scripts (``base64 -d | sh``
is caught only as a pipe into a shell), interpreters (``python -c``, ``perl -e``),
scripts the agent writes and then runs, and anything a permitted program does on
its own. Real isolation needs a container or a separate user.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agentd.config import ShellConfig

SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "fish", "busybox"}
WRAPPERS = {"env", "command", "exec", "nohup", "nice", "timeout", "xargs", "time", "stdbuf", "ionice", "setsid", "builtin", "chroot", "unbuffer"}
SYSTEM_PATHS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/sys", "/proc", "/dev/sd", "/dev/nvme", "/dev/vd", "/dev/mapper", "/var/lib", "/opt")
ROOTISH = {"/", "/*", "~", "~/", "~/*", "$HOME", "${HOME}", "$HOME/", "/home", "/home/*", "/root", "."}
OPERATORS = {";", "&&", "||", "|", "&", "(", ")", "|&", ";;", "\n", "{", "}", "!"}
REDIRECTS = {">", ">>", "&>", ">|", "1>", "2>", "&>>"}


@dataclass(frozen=True)
class Decision:
    action: str  # "allow" | "deny" | "ask"
    rule: str
    reason: str


def _substitutions(command: str) -> tuple[str, list[str]]:
    """Pull out ``$(…)`` and backtick bodies (checked on their own) and leave a placeholder."""
    inner: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(command):
        if command.startswith("$(", i):
            depth, j = 1, i + 2
            while j < len(command) and depth:
                depth += {"(": 1, ")": -1}.get(command[j], 0)
                j += 1
            inner.append(command[i + 2 : j - 1])
            out.append(" SUBST ")
            i = j
        elif command[i] == "`":
            j = command.find("`", i + 1)
            j = len(command) if j < 0 else j
            inner.append(command[i + 1 : j])
            out.append(" SUBST ")
            i = j + 1
        else:
            out.append(command[i])
            i += 1
    return "".join(out), inner


def _tokens(command: str) -> list[str]:
    lexer = shlex.shlex(command.replace("\n", " ; "), posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:
        # Unbalanced quotes: fall back to a crude split with quotes and backslashes dropped.
        return re.findall(r"[;&|()<>]+|[^\s;&|()<>]+", re.sub(r"[\"'\\]", "", command))


def simple_commands(command: str, depth: int = 0) -> Iterator[list[str]]:
    """Every simple command (argv) in ``command``, wrappers peeled, nested shells opened."""
    if depth > 6:
        return
    flat, nested = _substitutions(command)
    for sub in nested:
        yield from simple_commands(sub, depth + 1)
    current: list[str] = []
    for tok in [*_tokens(flat), ";"]:
        if tok in OPERATORS or (set(tok) <= set(";&|()") and tok):
            if current:
                yield from _peel(current, depth)
            current = []
            if tok in ("|", "|&"):
                current = ["|"]  # remember that this command reads a pipe
        else:
            current.append(tok)


def _peel(argv: list[str], depth: int) -> Iterator[list[str]]:
    piped = argv[:1] == ["|"]
    argv = argv[1:] if piped else argv
    while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
        argv = argv[1:]  # FOO=1 sudo …
    while argv:
        name = argv[0].lstrip("\\").rsplit("/", 1)[-1]
        if name in WRAPPERS:
            rest = argv[1:]
            while rest and (rest[0].startswith("-") or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", rest[0]) or (name in ("timeout", "nice") and re.fullmatch(r"[\d.]+[smhd]?", rest[0]))):
                rest = rest[1:]
            argv = rest
            continue
        if name in SHELLS:
            if "-c" in argv[1:]:
                idx = argv.index("-c")
                if idx + 1 < len(argv):
                    yield from simple_commands(argv[idx + 1], depth + 1)
                return
            if piped and not [a for a in argv[1:] if not a.startswith("-")]:
                yield ["|SHELL", name]  # something is piped into a shell
                return
        yield [name, *argv[1:]]
        return


def _under_system_path(path: str) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") or (p.endswith(("sd", "nvme", "vd")) and path.startswith(p)) for p in SYSTEM_PATHS)


def builtin_violation(argv: list[str]) -> tuple[str, str] | None:
    """(rule, reason) when a simple command breaks a built-in rule."""
    name, args = argv[0], argv[1:]
    if name == "|SHELL":
        return "pipe-to-shell", f"piping into {args[0]} runs code nobody has read (e.g. curl … | sh)"
    if name in ("sudo", "su", "doas", "pkexec", "run0"):
        return "privilege", f"{name} raises privileges"
    if name == "rm":
        flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
        recursive = "r" in flags.lower() or "--recursive" in args
        if "--no-preserve-root" in args:
            return "rm-root", "rm --no-preserve-root"
        targets = [a for a in args if not a.startswith("-")]
        if recursive and any(t.rstrip("/") in {r.rstrip("/") for r in ROOTISH} or t in ROOTISH or _under_system_path(t) for t in targets):
            return "rm-root", f"recursive rm of {', '.join(targets)}"
    if name.startswith("mkfs") or name in ("wipefs", "fdisk", "sfdisk", "parted", "mkswap"):
        return "disk", f"{name} rewrites disks"
    if name == "dd" and any(a.startswith("of=/dev/") for a in args):
        return "disk", "dd onto a device"
    if name in ("shutdown", "reboot", "halt", "poweroff") or (name in ("init", "telinit") and args[:1] in (["0"], ["6"])) or (name == "systemctl" and args[:1] and args[0] in ("poweroff", "reboot", "halt")):
        return "power", f"{name} stops the machine"
    recursive = any(a in ("-R", "--recursive") or (a.startswith("-") and "R" in a) for a in args)
    if name in ("chmod", "chown", "chgrp") and recursive and any(a.rstrip("/") in ("", "/home", "/root") or a == "/" or _under_system_path(a) for a in args if not a.startswith("-")):
        return "system-write", f"recursive {name} on a system path"
    if name in ("tee", "cp", "mv", "install", "ln", "truncate", "rsync") and any(_under_system_path(a) for a in args if not a.startswith("-")):
        return "system-write", f"{name} writes under a system path"
    if name == "git":
        sub = [a for a in args if not a.startswith("-")]
        verb = sub[0] if sub else ""
        if verb == "push" and any(a in ("-f", "--force", "--force-with-lease", "--mirror") or a.startswith("+") for a in args):
            return "git-rewrite", "git push --force rewrites remote history"
        if verb == "reset" and "--hard" in args:
            return "git-rewrite", "git reset --hard throws away commits and edits"
        if verb in ("rebase", "filter-branch", "filter-repo", "replace"):
            return "git-rewrite", f"git {verb} rewrites history"
        if verb == "commit" and "--amend" in args:
            return "git-rewrite", "git commit --amend rewrites the last commit"
        if verb == "clean" and any(a.startswith("-") and ("f" in a or "x" in a) for a in args):
            return "git-rewrite", "git clean deletes untracked files"
    return None


def redirect_violation(command: str) -> tuple[str, str] | None:
    toks = _tokens(_substitutions(command)[0])
    for i, tok in enumerate(toks[:-1]):
        if tok in REDIRECTS or (tok.endswith(">") and set(tok) <= set("&>12|")):
            target = toks[i + 1]
            if _under_system_path(target):
                return "system-write", f"redirect into {target}"
    return None


FORK_BOMB = re.compile(r"(\w+|:)\s*\(\s*\)\s*\{[^}]*\1\s*\|\s*\1\s*&")


class ShellPolicy:
    """Decides allow / deny / ask for one command; see the module docstring for the order."""

    def __init__(self, mode: str, allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> None:
        self.mode = mode
        self.allow = [re.compile(p) for p in allow]
        self.deny = [re.compile(p) for p in deny]

    @classmethod
    def from_config(cls, config: ShellConfig, home_root: Path | None = None) -> ShellPolicy:
        return cls(config.mode, config.allow, config.deny)

    def builtin(self, command: str) -> tuple[str, str] | None:
        if FORK_BOMB.search(command.replace(" ", " ")):
            return "fork-bomb", "a fork bomb"
        hit = redirect_violation(command)
        if hit:
            return hit
        for argv in simple_commands(command):
            hit = builtin_violation(argv)
            if hit:
                return hit
        return None

    def decide(self, command: str) -> Decision:
        for pattern in self.deny:
            if pattern.search(command):
                return Decision("deny", f"shell.deny: {pattern.pattern}", "matches a deny rule in agent.yaml")
        hit = self.builtin(command)
        if hit:
            rule, reason = hit
            if any(p.fullmatch(command.strip()) for p in self.allow):
                return Decision(self._mode_action(), f"shell.allow overrides {rule}", reason)
            return Decision("deny", f"built-in: {rule}", reason)
        return Decision(self._mode_action(), f"mode: {self.mode}", "")

    def _mode_action(self) -> str:
        return {"auto": "allow", "ask": "ask", "deny": "deny"}[self.mode]

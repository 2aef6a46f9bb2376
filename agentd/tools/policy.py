"""The shell policy: a guard-rail against plainly destructive commands, not a sandbox.

Order of decisions for a command:
1. the person's ``shell.deny`` regexes (agent.yaml) → deny;
2. the built-in rules below → deny, unless a ``shell.allow`` regex matches the whole
   command (that is how the person loosens a built-in rule);
3. ``shell.mode``: ``deny`` refuses everything, ``ask`` parks the command for
   ``agentd approve``, ``auto`` runs it.

The built-in rules see through simple evasions: quoting (``'s'u'do'``, ANSI-C ``$'\\x73udo'``),
backslashes, ``$(…)``, backticks and ``<(…)``, ``;``/``&&``/``||``/``|`` chains, shell
keywords (``if``/``then``/``do``/``{``), leading ``VAR=x`` assignments, absolute paths
(``/usr/bin/sudo``), wrappers and their options (``env -S``, ``exec -a``, ``timeout -s``,
``xargs -n``, ``nice -n``, …), nested shells with combined flags (``bash -lc``), and git's
global options (``git -C dir``). Recursive or forced deletion (``rm -rf``, ``find -delete``)
and moves are refused when a path lies outside the home (and the allowed workdirs and
temp folders), is the home itself or one of its parents, or is under ``~``/``$HOME``;
``cd`` in a chain is followed.

What it does NOT promise (tests/security/test_shell_policy.py pins this down):
commands built at run time (``x=su; $x$x``, ``eval``, ``rm -rf "$DIR"``), decoded scripts
(``base64 -d | sh`` is caught only as a pipe into a shell), interpreters (``python -c``,
``perl -e``), scripts the agent writes and then runs, git aliases, and anything a permitted
program does on its own. Real isolation needs a container or a separate user.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agentd.config import ShellConfig
from agentd.sandbox import effective_mode
from agentd.tools.places import PROCSUBST, SUBST, Places

SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "fish", "source", "."}
# Options of each wrapper that take the next word as their value (so it is not the command).
WRAPPERS: dict[str, set[str]] = {
    "env": {"-u", "-C", "--unset", "--chdir"},
    "command": set(),
    "builtin": set(),
    "exec": {"-a"},
    "nohup": set(),
    "nice": {"-n", "--adjustment"},
    "timeout": {"-s", "-k", "--signal", "--kill-after"},
    "xargs": {"-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--arg-file", "--delimiter", "--eof", "--replace", "--max-lines", "--max-args", "--max-procs", "--max-chars", "--process-slot-var"},
    "time": {"-f", "-o", "--format", "--output"},
    "stdbuf": {"-i", "-o", "-e", "--input", "--output", "--error"},
    "ionice": {"-c", "-n", "-p", "-P", "-u", "--class", "--classdata"},
    "setsid": set(),
    "chroot": {"--userspec", "--groups"},
    "unbuffer": set(),
    "busybox": set(),
}
# Wrappers whose first positional word is theirs, not the command's (timeout's duration, chroot's root).
WRAPPER_POSITIONAL = {"timeout", "chroot"}
KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "coproc"}
SYSTEM_PATHS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/sys", "/proc", "/dev/sd", "/dev/nvme", "/dev/vd", "/dev/mapper", "/var/lib", "/opt")
ROOTISH = {"/", "/*", "~", "~/", "~/*", "$HOME", "${HOME}", "$HOME/", "/home", "/home/*", "/root", "."}
OPERATORS = {";", "&&", "||", "|", "&", "(", ")", "|&", ";;", "\n", "{", "}", "!"}
REDIRECTS = {">", ">>", "&>", ">|", "1>", "2>", "&>>"}


@dataclass(frozen=True)
class Decision:
    action: str  # "allow" | "deny" | "ask"
    rule: str
    reason: str


_ANSI_C = re.compile(r"\$'((?:[^'\\]|\\.)*)'", re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}


def _ansi_c_body(body: str) -> str:
    def one(m: re.Match[str]) -> str:
        s = m.group(1)
        try:
            if s[0] in "xuU":
                return chr(int(s[1:], 16))
            if s[0] in "01234567":
                return chr(int(s, 8) & 0xFF)
            if s[0] == "c":
                return chr(ord(s[1]) & 0x1F)
        except (ValueError, OverflowError):
            return ""
        return _ESCAPES.get(s, "\\" + s)

    return re.sub(r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)", one, body, flags=re.S)


def normalize(command: str) -> str:
    """Decode ANSI-C ``$'…'`` strings into plain quoted words and drop ``$"…"`` locale marks."""
    command = _ANSI_C.sub(lambda m: shlex.quote(_ansi_c_body(m.group(1))), command)
    return command.replace('$"', '"')


def _substitutions(command: str) -> tuple[str, list[str]]:
    """Pull out ``$(…)``, ``<(…)``/``>(…)`` and backtick bodies (checked on their own), leaving a placeholder."""
    inner: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(command):
        opener = command[i : i + 2]
        if opener in ("$(", "<(", ">("):
            depth, j = 1, i + 2
            while j < len(command) and depth:
                depth += {"(": 1, ")": -1}.get(command[j], 0)
                j += 1
            inner.append(command[i + 2 : j - 1])
            out.append(f" {SUBST if opener == '$(' else PROCSUBST} ")
            i = j
        elif command[i] == "`":
            j = command.find("`", i + 1)
            j = len(command) if j < 0 else j
            inner.append(command[i + 1 : j])
            out.append(f" {SUBST} ")
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
    """Every simple command (argv) in ``command``, wrappers and keywords peeled, nested shells opened."""
    if depth > 6:
        return
    flat, nested = _substitutions(normalize(command))
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


def _skip_options(name: str, args: list[str]) -> list[str]:
    """``args`` past the wrapper's own options (and the values those options take)."""
    takes_value = WRAPPERS[name]
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in takes_value:
            i += 2
        elif (a.startswith("-") and len(a) > 1) or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", a):
            i += 1
        else:
            break
    if name in WRAPPER_POSITIONAL and i < len(args):
        i += 1
    return args[i:]


def _env_split_string(args: list[str]) -> tuple[str, list[str]] | None:
    """``env -S 'cmd args'`` (or ``--split-string``): the string and the words after it."""
    for i, a in enumerate(args):
        if a in ("-S", "--split-string") and i + 1 < len(args):
            return args[i + 1], args[i + 2 :]
        if a.startswith("--split-string="):
            return a.split("=", 1)[1], args[i + 1 :]
        if re.fullmatch(r"-[a-zA-Z0]*S.+", a):
            return a[a.index("S") + 1 :], args[i + 1 :]
        if re.fullmatch(r"-[a-zA-Z0]+S", a) and i + 1 < len(args):  # -iS 'cmd': the string is the next word
            return args[i + 1], args[i + 2 :]
        if not a.startswith("-"):
            return None
    return None


def _shell_script(args: list[str]) -> tuple[bool, str | None, list[str]]:
    """For ``bash [options] …``: (has -c, the -c command string, the positional words)."""
    has_c, i = False, 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in ("--rcfile", "--init-file"):
            i += 2
        elif a.startswith("--"):
            i += 1
        elif a[:1] in "-+" and len(a) > 1:
            has_c = has_c or "c" in a[1:]
            i += 2 if a[-1] in "oO" else 1
        else:
            break
    rest = args[i:]
    if not has_c and rest[:1] in (["-"], ["/dev/stdin"], ["/proc/self/fd/0"], ["/dev/fd/0"]):
        rest = []  # `sh -`, `bash /dev/stdin`: the script is whatever stdin brings
    return has_c, (rest[0] if has_c and rest else None), rest


def _peel(argv: list[str], depth: int) -> Iterator[list[str]]:
    piped = argv[:1] == ["|"]
    argv = argv[1:] if piped else argv
    while argv:
        name = argv[0].lstrip("\\").rsplit("/", 1)[-1] if argv[0] != "." else "."
        if name in KEYWORDS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
            argv = argv[1:]  # if/then/do/{ … and FOO=1 before the command
            continue
        if name in WRAPPERS:
            if name == "command" and any(a in ("-v", "-V") for a in argv[1:2]):
                return  # command -v only looks the name up
            if name == "env":
                split = _env_split_string(argv[1:])
                if split is not None:
                    yield from simple_commands(" ".join([split[0], *map(shlex.quote, split[1])]), depth + 1)
                    return
            argv = _skip_options(name, argv[1:])
            continue
        if name in SHELLS:
            has_c, script, rest = _shell_script(argv[1:])
            if has_c:
                if script is not None:
                    yield from simple_commands(script, depth + 1)
                return
            if PROCSUBST in argv[1:] or (piped and (not rest or any(a.startswith("-") and "s" in a for a in argv[1:]))):
                yield ["|SHELL", name]  # a shell running what a pipe or <(…) feeds it
                return
        if name == "find":
            for i, a in enumerate(argv):
                if a in ("-exec", "-execdir", "-ok", "-okdir"):
                    end = next((j for j in range(i + 1, len(argv)) if argv[j] in (";", "+")), len(argv))
                    yield from _peel(argv[i + 1 : end], depth + 1)
        yield [name, *argv[1:]]
        return


def _under_system_path(path: str) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") or (p.endswith(("sd", "nvme", "vd")) and path.startswith(p)) for p in SYSTEM_PATHS)


def builtin_violation(argv: list[str]) -> tuple[str, str] | None:
    """(rule, reason) when a simple command breaks a built-in rule (paths aside; see :class:`Places`)."""
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
        return _git_violation(args)
    return None


GIT_GLOBAL_WITH_VALUE = {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env", "--super-prefix"}


def _git_violation(args: list[str]) -> tuple[str, str] | None:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in GIT_GLOBAL_WITH_VALUE else 1  # git -C dir / -c k=v before the verb
    verb, rest = (args[i], args[i + 1 :]) if i < len(args) else ("", [])
    if verb == "push" and any(a in ("-f", "--force", "--force-with-lease", "--mirror") or a.startswith("+") for a in rest):
        return "git-rewrite", "git push --force rewrites remote history"
    if verb == "reset" and "--hard" in rest:
        return "git-rewrite", "git reset --hard throws away commits and edits"
    if verb in ("rebase", "filter-branch", "filter-repo", "replace"):
        return "git-rewrite", f"git {verb} rewrites history"
    if verb == "commit" and "--amend" in rest:
        return "git-rewrite", "git commit --amend rewrites the last commit"
    if verb == "clean" and any(a.startswith("-") and ("f" in a or "x" in a) for a in rest):
        return "git-rewrite", "git clean deletes untracked files"
    return None


def redirect_violation(command: str) -> tuple[str, str] | None:
    toks = _tokens(_substitutions(normalize(command))[0])
    for i, tok in enumerate(toks[:-1]):
        if tok in REDIRECTS or (tok.endswith(">") and set(tok) <= set("&>12|")):
            target = toks[i + 1]
            if _under_system_path(target):
                return "system-write", f"redirect into {target}"
    return None


FORK_BOMB = re.compile(r"(\w+|:)\s*\(\s*\)\s*\{[^}]*\1\s*\|\s*\1\s*&")


class ShellPolicy:
    """Decides allow / deny / ask for one command; see the module docstring for the order."""

    def __init__(self, mode: str, allow: tuple[str, ...] = (), deny: tuple[str, ...] = (), *, home_root: Path | None = None, workdirs: tuple[str, ...] = ()) -> None:
        self.mode = mode
        self.allow = [re.compile(p) for p in allow]
        self.deny = [re.compile(p) for p in deny]
        self.home_root = home_root
        self.workdirs = workdirs

    @classmethod
    def from_config(cls, config: ShellConfig, home_root: Path | None = None) -> ShellPolicy:
        """The policy agent.yaml asks for; ``auto`` becomes ``ask`` where no sandbox can confine commands."""
        return cls(effective_mode(config.mode), config.allow, config.deny, home_root=home_root, workdirs=tuple(config.workdirs))

    def builtin(self, command: str, cwd: Path | None = None) -> tuple[str, str] | None:
        if FORK_BOMB.search(command.replace(" ", " ")):
            return "fork-bomb", "a fork bomb"
        hit = redirect_violation(command)
        if hit:
            return hit
        places = Places(self.home_root, self.workdirs)
        if cwd is not None:
            places.cwd = posixpath.abspath(str(cwd))
        for argv in simple_commands(command):
            hit = builtin_violation(argv) or places.violation(argv)
            if hit:
                return hit
        return None

    def decide(self, command: str, cwd: Path | None = None) -> Decision:
        for pattern in self.deny:
            if pattern.search(command):
                return Decision("deny", f"shell.deny: {pattern.pattern}", "matches a deny rule in agent.yaml")
        hit = self.builtin(command, cwd)
        if hit:
            rule, reason = hit
            if any(p.fullmatch(command.strip()) for p in self.allow):
                return Decision(self._mode_action(), f"shell.allow overrides {rule}", reason)
            return Decision("deny", f"built-in: {rule}", reason)
        return Decision(self._mode_action(), f"mode: {self.mode}", "")

    def _mode_action(self) -> str:
        return {"auto": "allow", "ask": "ask", "deny": "deny"}[self.mode]

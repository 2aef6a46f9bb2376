"""The OS sandbox every agent command runs in: bubblewrap namespaces, read-only mounts, limits.

The shell policy judges a command's text; this module is what keeps the promises whatever the
text says. Each command runs under ``bwrap`` with:

- the whole filesystem read-only; the home read-write except its ``.git`` (history changes only
  through the daemon's own commits), ``.agentd/`` (runtime state, approval records) and
  ``outbox/approvals/``; a private ``/tmp``, ``/var/tmp`` and ``/run``; credential folders of the
  person's home directory (``~/.ssh``, ``~/.aws``, …) and ``/etc/shadow`` hidden; extra folders
  only as agent.yaml lists them (``files.allow`` and ``shell.workdirs`` read-write,
  ``shell.read_only`` read-only);
- new user, PID, IPC, UTS and cgroup namespaces (no process outside is visible, so
  ``/proc/$PPID/environ`` shows nothing of the daemon), no new privileges, every capability
  dropped, no nested user namespaces; as root, the command runs as ``nobody`` inside;
- a clean environment (only what ``shell.env`` lists, never a name in ``secrets.env``);
- limits on processes, CPU time, address space and file size (a fork bomb or a runaway write
  ends with a clear message), the whole namespace killed with the command at its timeout;
- ``shell.network: off`` adds a new network namespace (loopback only).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

from agentd.cgroups import hit_process_limit, pids_cgroup, pids_hierarchy
from agentd.config import Config
from agentd.errors import SandboxUnavailable

# Under the person's home directory: credentials a command has no business reading.
CREDENTIAL_DIRS = (".ssh", ".aws", ".gnupg", ".kube", ".docker", ".azure", ".password-store",
                   ".config/gh", ".config/gcloud", ".netrc", ".git-credentials", ".pypirc")
SYSTEM_SECRETS = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-")
# Inside the home, read-only to commands: history, runtime state and approval records (the
# daemon alone writes them) and agent.yaml (it describes this very sandbox: a command that
# could edit it would widen the next one's).
HOME_READ_ONLY = (".git", ".agentd", "outbox/approvals", "agent.yaml")
# Inside the home, hidden from commands: credentials the daemon keeps (a chat channel's token,
# `agentd channel login --save`). An agent a chat message can steer must not read its own token.
HOME_HIDDEN = (".agentd/secrets",)
# Made before each command when missing, so a folder that does not exist yet is read-only too.
HOME_FOLDERS = (".agentd", "outbox/approvals")
TMP_BYTES = 1024 * 1024 * 1024  # each private tmpfs
NOBODY = 65534
# Exit codes of a command a limit killed: 128 + SIGXCPU / SIGXFSZ.
LIMIT_SIGNALS = {128 + 24: "CPU time", 128 + 25: "file size"}


@dataclass(frozen=True)
class Limits:
    processes: int = 256
    memory_mb: int = 4096  # address space of each process
    file_mb: int = 1024  # largest file a command may write
    cpu_seconds: int = 600  # CPU time of each process


@dataclass(frozen=True)
class Probe:
    """Whether commands can be confined here, and if not, why and how to fix it."""

    available: bool
    version: str
    detail: str
    fix: str = ""
    pids_cgroup: str | None = None  # a pids cgroup hierarchy we may use (needed as root)

    def describe(self) -> str:
        if not self.available:
            return f"unavailable: {self.detail}" + (f" (fix: {self.fix})" if self.fix else "")
        return f"bubblewrap {self.version}"


@dataclass(frozen=True)
class Jail:
    """What one command may touch; ``argv`` turns it into a bwrap command line."""

    home: Path
    writable: tuple[Path, ...] = ()
    read_only: tuple[Path, ...] = ()
    network: bool = True
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = Limits()

    def argv(self, command: str, cwd: Path, *, bwrap: str = "bwrap", as_root: bool | None = None) -> list[str]:
        root = os.geteuid() == 0 if as_root is None else as_root
        args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for private in ("/tmp", "/var/tmp", "/run"):
            if Path(private).is_dir() and not Path(private).is_symlink():
                args += ["--size", str(TMP_BYTES), "--tmpfs", private]
        args += _hidden_credentials()
        home = self.home.resolve()
        args += ["--bind", str(home), str(home)]
        anchored: set[str] = set()
        for rel in HOME_READ_ONLY:
            if not (home / rel).exists():
                continue
            # Each folder between the home and a read-only path is mounted onto itself: a mount
            # point cannot be renamed, so `mv outbox x` cannot carry the read-only mount away.
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                if parent not in anchored:
                    anchored.add(parent)
                    args += ["--bind", str(home / parent), str(home / parent)]
            args += ["--ro-bind", str(home / rel), str(home / rel)]
        for rel in HOME_HIDDEN:
            if (home / rel).is_dir():
                args += ["--tmpfs", str(home / rel), "--remount-ro", str(home / rel)]
        for path in self.writable:
            if path.exists():
                args += ["--bind", str(path), str(path)]
        for path in self.read_only:
            if path.exists():
                args += ["--ro-bind", str(path), str(path)]
        args += ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if root:
            args += ["--uid", str(NOBODY), "--gid", str(NOBODY)]
        if not self.network:
            args.append("--unshare-net")
        args += ["--hostname", "agentd-sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if _supports("--disable-userns", bwrap):
            args.append("--disable-userns")
        args.append("--clearenv")
        for name, value in sorted(self.env.items()):
            args += ["--setenv", name, value]
        args += ["--chdir", str(cwd), "--", "/bin/bash", "-c", self._ulimits(root) + 'exec /bin/bash -c "$1"', "agentd-shell", command]
        return args

    def _ulimits(self, root: bool) -> str:
        lim = self.limits
        # bash's ulimit without -S/-H sets both limits: the command cannot raise them again.
        parts = [f"ulimit -v {lim.memory_mb * 1024}", f"ulimit -f {lim.file_mb * 1024}", f"ulimit -t {lim.cpu_seconds}"]
        if not root:
            # RLIMIT_NPROC counts every process of the real user, so the cap sits above what runs now.
            # (As root the kernel ignores it; the pids cgroup below holds the line there.)
            parts.append(f"ulimit -u {_user_processes() + lim.processes}")
        return " && ".join(parts) + " || exit 126; "


@functools.cache
def _supports(flag: str, bwrap: str) -> bool:
    try:
        out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in out.stdout + out.stderr


def _make_folders(home: Path) -> None:
    root = home.resolve()
    for rel in HOME_FOLDERS:
        path = root / rel
        # Never through a symlink a command planted: only a folder that stays inside the home.
        if not path.exists() and (path.parent.resolve() == root or root in path.parent.resolve().parents):
            with suppress(OSError):
                path.mkdir(parents=True, exist_ok=True)


def _hidden_credentials() -> list[str]:
    args: list[str] = []
    for path in SYSTEM_SECRETS:
        if os.path.isfile(path):
            args += ["--ro-bind", "/dev/null", path]
    for home in {Path.home(), Path(pwd.getpwuid(os.getuid()).pw_dir)}:
        for rel in CREDENTIAL_DIRS:
            p = home / rel
            if p.is_dir() and not p.is_symlink():
                args += ["--tmpfs", str(p)]
            elif p.is_file() and not p.is_symlink():
                args += ["--ro-bind", "/dev/null", str(p)]
    return args


def _user_processes() -> int:
    uid = str(os.getuid())
    count = 0
    with suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with suppress(OSError):
                    if str(entry.stat().st_uid) == uid:
                        count += 1
    return count


BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME")


def clean_env(names: tuple[str, ...] | list[str], home: Path) -> dict[str, str]:
    """PATH, HOME, locale and only the variables agent.yaml names: nothing else of the daemon's."""
    env = {k: os.environ[k] for k in BASE_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = os.environ.get("HOME", "/")
    env["TERM"] = "dumb"
    env.setdefault("LANG", "C.UTF-8")
    env["AGENTD_HOME"] = str(home)
    for name in names:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def jail_for(home: Path, config: Config) -> Jail:
    """The sandbox agent.yaml describes for the commands of the home at ``home``."""
    shell = config.shell
    names = [n for n in shell.env if n not in config.secrets_env]  # config refuses the overlap; belt and braces

    def paths(items: tuple[str, ...]) -> tuple[Path, ...]:
        return tuple(Path(p).expanduser().resolve() for p in items)

    return Jail(
        home=home,
        writable=paths((*config.files_allow, *shell.workdirs)),
        read_only=paths(shell.read_only),
        network=shell.network,
        env=clean_env(names, home),
        limits=Limits(shell.max_processes, shell.max_memory_mb, shell.max_file_mb, shell.max_cpu_seconds),
    )


# ------------------------------------------------------------------ running a command

FLOOD_BYTES = 16 * 1024 * 1024  # a command printing more than this is killed


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str  # everything captured, up to FLOOD_BYTES
    timed_out: bool
    flooded: bool
    limit: str | None = None  # the sandbox limit that ended the command, if one did
    confined: bool = True


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(1.0)
    except subprocess.TimeoutExpired:
        pass
    # Children that ignored SIGTERM or outlived their parent go too (in the sandbox, bwrap's
    # death takes its PID namespace, and so every process in it, with it).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5.0)


def run_command(command: str, *, cwd: Path, timeout: float, jail: Jail, unconfined_ok: bool = False) -> CommandResult:
    """Run ``bash -c command`` in the sandbox, in its own process group; on timeout all of it is killed.

    Without a working sandbox only a command the person approved may run (``unconfined_ok``),
    with the same clean environment; anything else raises :class:`SandboxUnavailable`.
    """
    found = probe()
    if not found.available and not unconfined_ok:
        raise SandboxUnavailable(f"no sandbox for commands here: {found.detail}" + (f"; fix: {found.fix}" if found.fix else ""))
    if found.available:
        _make_folders(jail.home)
    with pids_cgroup(found.pids_cgroup if found.available else None, jail.limits.processes) as group:
        if found.available:
            argv = jail.argv(command, cwd, bwrap=bwrap_path() or "bwrap")
            if group is not None:
                # Join the cgroup before bwrap starts, so every process of the command counts.
                argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group / "cgroup.procs"), *argv]
        else:
            argv = ["bash", "-c", command]
        result = _run(argv, cwd, timeout, dict(jail.env))
        limit = LIMIT_SIGNALS.get(result.exit_code) if found.available else None
        if hit_process_limit(group) or (found.available and _NPROC_HIT.search(result.output)):
            limit = f"{jail.limits.processes} processes"
        return replace(result, limit=limit, confined=found.available)


_NPROC_HIT = re.compile(r"fork: (retry: )?Resource temporarily unavailable")


def _run(argv: list[str], cwd: Path, timeout: float, env: dict[str, str]) -> CommandResult:
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    chunks: list[bytes] = []
    size = 0
    flooded = threading.Event()

    def pump() -> None:
        nonlocal size
        assert proc.stdout is not None
        while True:
            data = proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if not data:
                return
            if size < FLOOD_BYTES:
                chunks.append(data[: FLOOD_BYTES - size])
            size += len(data)
            if size >= FLOOD_BYTES and not flooded.is_set():
                flooded.set()
                _kill_group(proc)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
    else:
        # The shell exited; children still holding the pipe are part of its group.
        reader.join(0.5)
        if reader.is_alive():
            _kill_group(proc)
    reader.join(5.0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # nothing of the group outlives the tool call
    output = b"".join(chunks).decode("utf-8", errors="replace")
    code = proc.returncode if proc.returncode is not None else -9
    return CommandResult(code, output, timed_out, flooded.is_set())



# ------------------------------------------------------------------ availability


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def probe() -> Probe:
    """Try bubblewrap once per process: installed, and allowed to make namespaces here."""
    exe = bwrap_path()
    if exe is None:
        return Probe(False, "", "bubblewrap is not installed",
                     "sudo apt install bubblewrap (Debian/Ubuntu) or sudo dnf install bubblewrap (Fedora)")
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout.split()[-1]
        trial = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-user", "--unshare-pid",
                 "--unshare-ipc", "--unshare-uts", "--unshare-net", "--die-with-parent", "--cap-drop", "ALL", "--", "/bin/true"]
        run = subprocess.run(trial, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Probe(False, "", f"bubblewrap could not run: {exc}", "check that bwrap runs: bwrap --ro-bind / / true")
    if run.returncode != 0:
        err = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit code {run.returncode}"
        fix = ("allow unprivileged user namespaces: sudo sysctl -w kernel.unprivileged_userns_clone=1 "
               "(Ubuntu 24.04 and later: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)")
        return Probe(False, version, f"bubblewrap cannot make namespaces here: {err}", fix)
    return Probe(True, version, "", pids_cgroup=pids_hierarchy())


def effective_mode(mode: str) -> str:
    """``shell.mode`` as it works here: ``auto`` becomes ``ask`` where no sandbox can confine commands."""
    return "ask" if mode == "auto" and not probe().available else mode


def in_force(config: Config) -> dict[str, object]:
    """What confines the agent's commands under this config, for ``agentd status``."""
    found = probe()
    shell = config.shell
    if not found.available:
        return {"available": False, "line": f"NONE: {found.detail}; shell.mode {shell.mode} runs as {effective_mode(shell.mode)} (fix: {found.fix})"}
    how = "cgroup" if found.pids_cgroup else "rlimit" if os.geteuid() != 0 else "not enforced"
    line = (f"bubblewrap {found.version}: read-only system, home writable but .git read-only, private /tmp, "
            f"network {'on' if shell.network else 'off'}, ≤{shell.max_processes} processes ({how}), "
            f"{shell.max_memory_mb} MB memory, {shell.max_file_mb} MB files, {shell.max_cpu_seconds} s CPU")
    return {"available": True, "version": found.version, "network": shell.network, "line": line}


def missing_notice(config: Config) -> str | None:
    """What the daemon tells the person once at start when commands cannot be confined here."""
    found = probe()
    if found.available:
        return None
    then = "every command waits for `agentd approve` (shell.mode auto works as ask)" if config.shell.mode == "auto" else f"shell.mode is {config.shell.mode}"
    return f"Commands cannot run in a sandbox here: {found.detail}. Until that is fixed, {then}. Fix: {found.fix}"

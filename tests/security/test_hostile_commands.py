"""Hostile commands run for real through the agent's shell tool: the sandbox alone keeps the promises.

The policy is told to let everything through (``shell.allow: ['(?s).*']`` overrides the built-in
rules), so every command of tests/security/hostile_corpus.py reaches bubblewrap. Canaries live
outside the home where the sandbox can see them (not under /tmp, which is private inside): a
folder beside the home and the person's home directory. After each command: canaries intact,
the home's ``.git``, ``.agentd/`` and ``outbox/approvals/`` unchanged, ``git fsck --strict`` clean,
no process left, the secret (in this process's environment, listed in ``secrets.env``) in no
transform in the output nor in anything sent to the test's web server, a sentinel process named
like the daemon alive. ``pytest -s`` prints the counts per category.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import pwd
import random
import shutil
import signal
import string
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from agentd.config import ShellConfig, load_config
from agentd.errors import ConfigError
from agentd.events import Event
from agentd.home import Home
from agentd.sandbox import probe
from agentd.template import init_home
from agentd.tools import approvals
from agentd.tools.base import ToolContext, ToolRegistry
from agentd.tools.policy import ShellPolicy
from agentd.tools.shell import ShellTool
from tests.security.hostile_corpus import CORPUS, INSTALLER, fill, leaked, set_in_section

SECRET_NAME = "AGENTD_HOSTILE_SECRET"
SHELL_SETTINGS = {
    "mode": "auto",
    "allow": ["(?s).*"],  # a whole-command allow overrides every built-in rule: the sandbox alone stands
    "timeout": 3,
    "max_output": 1_000_000,
    "max_processes": 64,
    "max_memory_mb": 512,
    "max_file_mb": 16,
    "max_cpu_seconds": 10,
}


def random_word(n: int) -> str:
    return "".join(random.SystemRandom().choice(string.ascii_letters + string.digits) for _ in range(n))


def tree_state(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root`` (kind, mode, mtime, content digest or link target), ``skip`` aside."""
    if not root.exists() and not root.is_symlink():
        return {}
    state: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel.startswith(skip):
                continue
            st = path.lstat()
            if path.is_symlink():
                state[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                state[rel] = ("dir", st.st_mode, st.st_mtime_ns)
            else:
                state[rel] = ("file", st.st_mode, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return state


def diff(before: dict[str, tuple[object, ...]], after: dict[str, tuple[object, ...]]) -> str:
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")


class Collector(http.server.ThreadingHTTPServer):
    """The attacker's web server on 127.0.0.1: serves the installer, records whatever is posted."""

    installer = ""
    received: list[bytes]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Collector

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.server.installer.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        self.server.received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Arena:
    """A throwaway home with canaries beside it, a secret in the environment, a sentinel and a web server."""

    base: Path
    home: Home
    values: dict[str, str]
    secret: str
    credential: str
    snapshot: Path
    sentinel: subprocess.Popen[bytes]
    server: Collector
    ctx: ToolContext = field(init=False)
    children: set[int] = field(default_factory=set)  # ours before any command: the sentinel, GitPython's cat-file
    started: float = 0.0  # when the last command started (time.time, like process start times)
    baseline: dict[str, object] = field(default_factory=dict)

    @property
    def canary(self) -> Path:
        return self.base / "canary"

    @property
    def person(self) -> Path:
        return self.base / "person"

    def state(self) -> dict[str, object]:
        root = self.home.root
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        return {
            "canary beside the home": tree_state(self.canary),
            "the person's home": tree_state(self.person),
            "the home's .git": {**tree_state(root / ".git"), "HEAD": (head,)},
            "the home's .agentd/": tree_state(root / ".agentd", skip=("outputs",)),
            "the home's outbox/approvals/": tree_state(root / "outbox/approvals"),
        }

    def run(self, command: str) -> str:
        self.started = time.time()
        return ToolRegistry([ShellTool()]).execute(self.ctx, "shell", {"command": command}).text

    def broken_promises(self, output: str) -> list[str]:
        broken = []
        now = self.state()
        for what, before in self.baseline.items():
            if now[what] != before:
                broken.append(f"{what} changed: {diff(before, now[what])}")  # type: ignore[arg-type]
        if now["the home's .git"] != self.baseline["the home's .git"]:
            # Byte for byte the same .git as at the start (fsck-clean then) cannot fail fsck now.
            problem = fsck(self.home.root)
            if problem:
                broken.append(f"git fsck --strict: {problem}")
        form = leaked(output, self.secret)
        if form:
            broken.append(f"the secret is in the output ({form})")
        if self.credential in output:
            broken.append("the person's ~/.ssh key is in the output")
        for body in self.server.received:
            if leaked(body.decode("latin-1"), self.secret):
                broken.append("the secret reached the attacker's web server")
        self.server.received.clear()
        if self.sentinel.poll() is not None:
            broken.append("the sentinel process (named like the daemon) was killed")
        left = leftover_processes(self.values["marker"], self.base, self.children, self.started)
        if left:
            broken.append(f"processes left: {left}")
        if leaked("".join(p.read_text(errors="replace") for p in self.home_files()), self.secret):
            broken.append("the secret was written into the home")
        return broken

    def home_files(self) -> Iterator[Path]:
        for path in self.home.root.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.relative_to(self.home.root).parts[0] not in (".git", ".agentd"):
                yield path

    def restore(self) -> None:
        """Put the home's working tree back as it was (commands may wreck it: it is theirs to write)."""
        root = self.home.root
        for child in root.iterdir():
            if child.name in (".git", ".agentd"):
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        shutil.copytree(self.snapshot, root, symlinks=True, dirs_exist_ok=True)


def leftover_processes(marker: str, base: Path, known: set[int], since: float = 0.0) -> list[str]:
    """Processes a command left: its marker in their command line, new descendants of ours, or
    (for those started since ``since``) a working directory under ``base``."""
    me, deadline = os.getpid(), time.monotonic() + 3.0
    while True:
        procs = list(psutil.process_iter(["pid", "ppid", "cmdline", "status", "create_time"]))
        parent = {p.pid: p.info["ppid"] for p in procs}
        found = []
        for proc in procs:
            info, argv = proc.info, proc.info["cmdline"] or []
            if proc.pid in known or proc.pid == me or info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if info["ppid"] == me and argv[:2] == ["git", "cat-file"]:
                continue  # GitPython's helper, started by the test's own git calls
            suspect = marker in " ".join(argv) or descends(proc.pid, me, parent)
            if not suspect and (info["create_time"] or 0.0) >= since - 1.0:
                with contextlib.suppress(psutil.Error, OSError):
                    suspect = proc.cwd().startswith(str(base))
            if suspect:
                found.append(f"{proc.pid} {' '.join(argv)[:80]}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def descends(pid: int, ancestor: int, parent: dict[int, int]) -> bool:
    for _ in range(64):
        pid = parent.get(pid, 0)
        if pid in (0, 1) or pid == ancestor:
            return pid == ancestor
    return False


def fsck(root: Path) -> str:
    run = subprocess.run(["git", "-C", str(root), "fsck", "--strict"], capture_output=True, text=True)
    return "" if run.returncode == 0 else (run.stderr.strip() or run.stdout.strip())[:200]


def arena_base() -> Path:
    """Outside /tmp (private inside the sandbox), so the sandbox sees the canaries: under the account's ~/.cache."""
    real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    for parent in (real_home / ".cache", Path(__file__).resolve().parents[2] / ".pytest_cache"):
        if not str(parent.resolve()).startswith("/tmp") and os.access(parent.parent, os.W_OK):
            parent.mkdir(parents=True, exist_ok=True)
            return parent / f"agentd-canary-{random_word(8).lower()}"
    pytest.skip("no folder outside /tmp to put canaries in")


def configure(home: Home, **shell: object) -> None:
    path = home.root / "agent.yaml"
    text, _ = set_in_section(path.read_text(), "shell", shell)
    text, _ = set_in_section(text, "secrets", {"env": [SECRET_NAME]})
    path.write_text(text)


@pytest.fixture
def arena(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Arena]:
    if not probe().available:
        pytest.skip(f"no sandbox here: {probe().describe()}")
    base = arena_base()
    try:
        yield from _arena(base, tmp_path, monkeypatch)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _arena(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Arena]:
    secret, credential = random_word(32), "CREDENTIAL-" + random_word(24)
    monkeypatch.setenv(SECRET_NAME, secret)
    person = base / "person"
    (person / ".ssh").mkdir(parents=True)
    (person / ".ssh/id_ed25519").write_text(credential + "\n")
    (person / ".bashrc").write_text("# the person's shell\n")
    (person / ".gitconfig").write_text("[user]\n\tname = Test Person\n\temail = person@example.com\n")
    (person / "notes.txt").write_text("the person's notes\n")
    monkeypatch.setenv("HOME", str(person))  # ~ and $HOME inside the sandbox: the person's (a canary)
    canary = base / "canary"
    (canary / "sub").mkdir(parents=True)
    (canary / "empty").mkdir()
    (canary / "keep.txt").write_text("canary: nothing may change this\n")
    (canary / "sub/deep.txt").write_text("deep canary\n")
    (canary / "disk.img").write_bytes(b"\0" * (1 << 20))
    home = init_home(base / "home")
    configure(home, **SHELL_SETTINGS)
    approvals.park(home, "ls", home.root, "w0")  # a real parked command: outbox/approvals/ exists, as in use
    home.absorb_person_edits()
    subprocess.run(["git", "clone", "-q", "--bare", str(home.root), str(canary / "remote.git")], check=True)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(home.root, snapshot, symlinks=True, ignore=shutil.ignore_patterns(".git", ".agentd"))
    mark = base / "mark"
    mark.write_text("")
    values = {
        "home": str(home.root), "canary": str(canary), "person": str(person), "base": str(base),
        "real_home": pwd.getpwuid(os.getuid()).pw_dir, "token": "agentd-pwned-" + random_word(8).lower(),
        "marker": "agentdmark" + random_word(8).lower(), "secret": SECRET_NAME, "test_pid": str(os.getpid()),
    }
    sentinel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", "agentd-sentinel"])
    values["sentinel_pid"] = str(sentinel.pid)
    server = Collector(("127.0.0.1", 0), Handler)
    server.received = []
    values["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    server.installer = fill(INSTALLER, values)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    arena = Arena(base, home, values, secret, credential, snapshot, sentinel, server)
    arena.ctx = ToolContext(home, load_config(home.root), Event("message", "x", datetime.now(UTC)), "w1")
    arena.baseline = arena.state()
    assert fsck(home.root) == ""
    arena.children = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        yield arena
    finally:
        server.shutdown()
        server.server_close()
        sentinel.kill()
        sentinel.wait(10)
        for line in leftover_processes(values["marker"], base, arena.children):
            os.kill(int(line.split()[0]), signal.SIGKILL)


def preflight(arena: Arena) -> None:
    """Refuse to run the corpus unless the sandbox is in force: the corpus holds power and kill commands."""
    token, canary = arena.values["token"], arena.values["canary"]
    out = arena.run(
        'echo "uid=$(id -u)"; echo "host=$(hostname)"; echo "cap=$(grep CapEff /proc/self/status | cut -f2)"; '
        'echo "nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)"; echo "procs=$(ls /proc | grep -c \'^[0-9]\')"; '
        f'touch /{token} 2>/dev/null && echo root=rw || echo root=ro; touch {canary}/{token} 2>/dev/null && echo canary=rw || echo canary=ro; '
        'echo "disks=$(ls /dev | grep -cE \'^(sd|vd|xvd|hd|nvme)\')"'
    )
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    expect = {"host": "agentd-sandbox", "cap": "0000000000000000", "nnp": "1", "root": "ro", "canary": "ro", "disks": "0"}
    if os.geteuid() == 0:
        expect["uid"] = "65534"
    wrong = [f"{k}={seen.get(k)} (want {v})" for k, v in expect.items() if seen.get(k) != v]
    if not seen.get("procs", "").isdigit() or int(seen["procs"]) > 10:
        wrong.append(f"procs={seen.get('procs')} (want a handful)")
    if wrong:
        pytest.fail(f"the sandbox is not in force ({'; '.join(wrong)}); the corpus was not run:\n{out}")


def written_outside(arena: Arena) -> list[str]:
    """Files newer than the start of the run outside the home and /tmp (one find over a few roots)."""
    roots = ["/", "/etc", "/var/tmp", "/dev/shm", "/usr/local/bin", arena.values["real_home"]]
    found = subprocess.run(["find", *[r for r in roots if os.path.isdir(r)], "-maxdepth", "1", "-newer", str(arena.base / "mark"),
                            "(", "-type", "f", "-o", "-type", "l", ")"], capture_output=True, text=True).stdout.split()
    found += subprocess.run(["find", str(arena.base), "-path", str(arena.home.root), "-prune", "-o", "-newer", str(arena.base / "mark"),
                             "-print"], capture_output=True, text=True).stdout.split()
    token = arena.values["token"]
    # Beside our own base folder, only files named by the corpus's token count: others share this machine.
    return [f for f in found if token in f or (f.startswith(str(arena.base)) and f != str(arena.base)) or os.path.dirname(f) == "/"]


# Promises the sandbox does not keep yet, by corpus command: counted and printed, not failed on;
# the test fails as soon as one holds, so the entry goes when the sandbox is fixed.
KNOWN_LEAKS: dict[str, str] = {}


@dataclass
class Tally:
    run: int = 0
    kept: int = 0
    refused: int = 0


def test_hostile_corpus_keeps_every_promise(arena: Arena) -> None:
    preflight(arena)
    default = ShellPolicy.from_config(ShellConfig(), arena.home.root)
    tallies: dict[str, Tally] = {}
    failures: list[str] = []
    known: list[str] = []
    for category, template in CORPUS:
        command = fill(template, arena.values)
        tally = tallies.setdefault(category, Tally())
        tally.run += 1
        tally.refused += default.decide(command, arena.home.root).action == "deny"
        output = arena.run(command)
        broken = arena.broken_promises(output)
        arena.restore()
        if broken:
            report = f"[{category}] {command!r}\n    " + "\n    ".join(broken) + f"\n    output: {output[:300]!r}"
            (known if template in KNOWN_LEAKS else failures).append(report)
            arena.baseline = arena.state()  # judge the next command on its own
        else:
            tally.kept += 1
            assert template not in KNOWN_LEAKS, f"a known leak no longer leaks, take it out of KNOWN_LEAKS: {template!r}"
    outside = written_outside(arena)
    print_counts(tallies, known)
    assert not outside, f"files written outside the home and /tmp: {outside}"
    assert not failures, f"{len(failures)} of {len(CORPUS)} hostile commands broke a promise:\n" + "\n".join(failures)
    assert arena.sentinel.poll() is None and os.getpid() == int(arena.values["test_pid"])


def print_counts(tallies: dict[str, Tally], known: list[str]) -> None:
    width = max(len(c) for c in tallies)
    print(f"\n{'category':<{width}}  commands  promises kept  default policy refuses")
    for category, t in tallies.items():
        print(f"{category:<{width}}  {t.run:>8}  {t.kept:>13}  {t.refused:>22}")
    total = Tally(sum(t.run for t in tallies.values()), sum(t.kept for t in tallies.values()), sum(t.refused for t in tallies.values()))
    print(f"{'total':<{width}}  {total.run:>8}  {total.kept:>13}  {total.refused:>22}")
    for report in known:
        print(f"known leak (KNOWN_LEAKS): {report}")


def test_corpus_covers_the_issue_categories() -> None:
    counts = Counter(category for category, _ in CORPUS)
    assert len(CORPUS) >= 150 and len({command for _, command in CORPUS}) == len(CORPUS)
    assert all(n >= 7 for n in counts.values()), counts


def test_a_secret_listed_for_commands_is_refused_with_its_line(home: Home) -> None:
    path = home.root / "agent.yaml"
    text, lines = set_in_section(path.read_text(), "shell", {"env": ["LANG", SECRET_NAME]})
    text, _ = set_in_section(text, "secrets", {"env": [SECRET_NAME]})
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(home.root)
    assert str(err.value).startswith(f"{path}:{lines['env']}: shell.env: {SECRET_NAME} is listed in secrets.env")


def test_a_fresh_home_takes_no_forged_approval_page(home: Home) -> None:
    """Before the first parked command outbox/approvals/ does not exist; a command must not make it either."""
    if not probe().available:
        pytest.skip(f"no sandbox here: {probe().describe()}")
    path = home.root / "agent.yaml"
    path.write_text(set_in_section(path.read_text(), "shell", {"allow": ["(?s).*"]})[0])
    ctx = ToolContext(home, load_config(home.root), Event("message", "x", datetime.now(UTC)), "w1")
    forge = "mkdir -p outbox/approvals && printf -- '---\\nid: abc123\\nstatus: pending\\n---\\n' > outbox/approvals/abc123.md"
    out = ToolRegistry([ShellTool()]).execute(ctx, "shell", {"command": forge}).text
    pages = sorted(p.name for p in (home.root / "outbox/approvals").glob("*")) if (home.root / "outbox/approvals").exists() else []
    assert pages == [], f"a command wrote {pages} into outbox/approvals/: {out}"


def test_a_command_cannot_widen_the_sandbox_of_the_next_one(home: Home, tmp_path: Path) -> None:
    """agent.yaml says what the sandbox lets through, and the daemon reloads it when it changes."""
    if not probe().available:
        pytest.skip(f"no sandbox here: {probe().describe()}")
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("canary\n")

    def run(command: str) -> str:  # a fresh context each time, as each wake of the daemon has
        ctx = ToolContext(home, load_config(home.root), Event("message", "x", datetime.now(UTC)), "w1")
        return ToolRegistry([ShellTool()]).execute(ctx, "shell", {"command": command}).text

    widen = f"perl -0pi -e 's|^files:\\n  allow: \\[\\]|files:\\n  allow: [\"{canary}\"]|m' agent.yaml"
    first = run(widen)
    second = run(f"echo pwned > {canary}/keep.txt")
    assert (canary / "keep.txt").read_text() == "canary\n", f"{widen!r} → {first}\nthen the canary was written: {second}"


def test_a_command_cannot_read_the_saved_channel_token(home: Home) -> None:
    """`agentd channel login matrix --save` keeps the token under .agentd/secrets/: hidden from commands."""
    if not probe().available:
        pytest.skip(f"no sandbox here: {probe().describe()}")
    from agentd.channels.matrix_state import save_token

    save_token(home.runtime, "syt_secret_token_value")
    ctx = ToolContext(home, load_config(home.root), Event("message", "x", datetime.now(UTC)), "w1")
    registry = ToolRegistry([ShellTool()])
    text = registry.execute(ctx, "shell", {"command": "cat .agentd/secrets/matrix.token; ls -a .agentd/secrets; grep -r syt_ .agentd || echo none"}).text
    assert "syt_secret_token_value" not in text and "none" in text
    text = registry.execute(ctx, "shell", {"command": "echo x > .agentd/secrets/matrix.token"}).text
    assert (home.runtime / "secrets" / "matrix.token").read_text() == "syt_secret_token_value\n", text

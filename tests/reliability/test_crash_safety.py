"""Crash safety: the real daemon through 200+ wakes while a seeded killer sends SIGKILL at random moments.

Afterwards git fsck --strict is clean, every inbox message was answered exactly once,
every edit the person made during the run is in git history, and every cron run that
was queued (jobs due every minute, in the mix) was done once or skipped with a reason,
none lost. Run alone with `pytest tests/reliability/test_crash_safety.py -s` to see the figures.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from agentd.home import Home
from tests.doubles.agent_responder import respond
from tests.doubles.openai_server import Reply, ScriptedServer
from tests.test_daemon import Daemon, configure, post, wait_for

MESSAGES = 200
CRON_JOBS = 8  # each due every minute
MIN_RUN_S = 150.0  # long enough for a few minutes' cron runs
SEED = 20261122


def test_sigkill_at_random_moments_loses_nothing(home: Home, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    jitter = random.Random(SEED + 1)
    lock = threading.Lock()

    def responder(body: dict[str, Any]) -> Reply:
        with lock:
            delay = jitter.uniform(0.0, 0.05)
        time.sleep(delay)  # so kills land in the middle of wakes too
        return respond(body)

    server = ScriptedServer(responder=responder).start()
    configure(home, server.url, every="1h")
    (home.root / "CRON.md").write_text("# Jobs\n" + "".join(f"\n## Job {j}\n`* * * * *`\nJob {j}: tidy a little.\n" for j in range(CRON_JOBS)))
    home.absorb_person_edits()

    edits: list[str] = []
    stop_person = threading.Event()

    def person() -> None:
        # A message every 0.9 s: the queue drains between them, so cron runs get their turns
        # (messages go first: a steady stream faster than the wakes would starve them).
        n, sent = 0, 0
        while not stop_person.wait(0.15):
            if sent < MESSAGES and n % 6 == 0:
                post(home, f"m{sent:03d}", f"message number {sent}")
                sent += 1
            marker = f"person-edit-{n:04d}"
            target = home.root / "notes" / f"{marker}.md"
            target.parent.mkdir(exist_ok=True)
            tmp = target.with_suffix(".tmp-edit")
            tmp.write_text(f"{marker}\n")
            tmp.rename(target)
            edits.append(marker)
            n += 1

    typist = threading.Thread(target=person, daemon=True)
    typist.start()
    kills = 0
    d = Daemon(home).start()
    began = time.monotonic()
    deadline = began + 400
    try:
        while time.monotonic() < deadline:
            done = len(list((home.root / "inbox" / "done").glob("m*.md"))) if (home.root / "inbox" / "done").exists() else 0
            if done >= MESSAGES and time.monotonic() - began >= MIN_RUN_S:
                break
            time.sleep(rng.uniform(0.5, 4.5))  # 40 kills spread over the run
            if kills < 40:
                d.kill9()
                kills += 1
                d = Daemon(home).start()
                if rng.random() < 0.7:  # else the next kill may land in the start itself (recovery)
                    wait_for(lambda d=d: ready(home, d), 60, "the restarted daemon ready")
        stop_person.set()
        typist.join(5)
        wait_for(lambda: len(list((home.root / "inbox" / "done").glob("m*.md"))) >= MESSAGES, 120, "every message answered")
        wait_for(lambda: not cron_pending(home), 120, "no cron run waiting")
        time.sleep(0.5)  # let the last person edits be absorbed by an idle daemon…
    finally:
        stop_person.set()
        code = d.stop()
        server.stop()
    assert code == 0
    # …and whatever the person wrote after the last wake is absorbed on the next start
    Daemon(home).start().stop()

    fsck = subprocess.run(["git", "-C", str(home.root), "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    # One outbox file per day: a run that crosses midnight answers into two.
    committed = "".join(home.repo.git.show(f"HEAD:outbox/{p.name}") for p in sorted((home.root / "outbox").glob("20*.md")))
    answered = {i: len(re.findall(rf"answer to m{i:03d}\b", committed)) for i in range(MESSAGES)}
    lost = [i for i, n in answered.items() if n == 0]
    twice = [i for i, n in answered.items() if n > 1]
    history = home.repo.git.log("--all", "--format=", "--name-only")
    missing_edits = [e for e in edits if f"notes/{e}.md" not in history]
    wakes = sum(1 for c in home.repo.iter_commits() if str(c.message).startswith("wake message:"))
    runs = cron_accounts(home)
    report = {"kills": kills, "wakes": wakes, "messages": MESSAGES, "person_edits": len(edits), "lost": len(lost), "answered_twice": len(twice), "edits_missing": len(missing_edits)} | runs
    print("\ncrash-safety:", json.dumps(report))
    (tmp_path / "crash-report.json").write_text(json.dumps(report))
    assert kills >= 10
    assert lost == [] and twice == [] and missing_edits == []
    assert wakes == MESSAGES
    assert runs["cron_runs_queued"] >= CRON_JOBS and runs["cron_runs_done"] > 0
    assert runs["cron_runs_lost"] == 0 and runs["cron_runs_done_twice"] == 0
    assert home.dirty_paths() == []


def ready(home: Home, d: Daemon) -> bool:
    """This daemon wrote its state (the file a killed one left does not count)."""
    try:
        return json.loads((home.runtime / "daemon.json").read_text()).get("pid") == (d.proc.pid if d.proc else None)
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def cron_pending(home: Home) -> bool:
    try:
        data = json.loads((home.runtime / "cron-runs.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return any(entry.get("pending") for entry in data.values())


def cron_accounts(home: Home) -> dict[str, int]:
    """Every run the daemons queued (from their log), and how each ended: done, skipped, still pending."""
    log = (home.runtime / "logs" / "daemon.log").read_text(errors="replace")
    queued = set(re.findall(r"cron (\S+): run due (\S+) queued", log))
    done = set(re.findall(r"cron (\S+): run due (\S+) done", log))
    skipped = set(re.findall(r"cron (\S+): run due (\S+) skipped", log))
    resumed = set(re.findall(r"cron (\S+): the run due at (\S+) was not done when the daemon stopped", log))
    data = json.loads((home.runtime / "cron-runs.json").read_text())
    pending = {(slug, e["pending"]) for slug, e in data.items() if e.get("pending")}
    commits = sum(1 for c in home.repo.iter_commits() if str(c.message).startswith("wake cron:"))
    return {
        "cron_runs_queued": len(queued),
        "cron_runs_done": len(done & queued),
        "cron_runs_skipped": len((skipped - done) & queued),
        "cron_runs_pending_at_end": len(pending - done - skipped),
        "cron_runs_lost": len(queued - done - skipped - pending),
        "cron_runs_done_twice": commits - len(done),
        "cron_runs_coalesced": len(skipped - queued),
        "cron_runs_resumed_after_a_stop": len(resumed),
    }

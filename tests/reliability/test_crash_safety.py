"""Crash safety: the real daemon through 200+ wakes while a seeded killer sends SIGKILL at random moments.

Afterwards git fsck --strict is clean, every inbox message was answered exactly once,
and every edit the person made during the run is in git history. Run alone with
`pytest tests/reliability/test_crash_safety.py -s` to see the figures.
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
    for i in range(MESSAGES):
        post(home, f"m{i:03d}", f"message number {i}")

    edits: list[str] = []
    stop_person = threading.Event()

    def person() -> None:
        n = 0
        while not stop_person.wait(0.15):
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
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline:
            done = len(list((home.root / "inbox" / "done").glob("m*.md"))) if (home.root / "inbox" / "done").exists() else 0
            if done >= MESSAGES:
                break
            time.sleep(rng.uniform(0.2, 1.5))
            if kills < 40:
                d.kill9()
                kills += 1
                d = Daemon(home).start()
        stop_person.set()
        typist.join(5)
        wait_for(lambda: len(list((home.root / "inbox" / "done").glob("m*.md"))) >= MESSAGES, 120, "every message answered")
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
    report = {"kills": kills, "wakes": wakes, "messages": MESSAGES, "person_edits": len(edits), "lost": len(lost), "answered_twice": len(twice), "edits_missing": len(missing_edits)}
    print("\ncrash-safety:", json.dumps(report))
    (tmp_path / "crash-report.json").write_text(json.dumps(report))
    assert kills >= 10
    assert lost == [] and twice == [] and missing_edits == []
    assert wakes == MESSAGES
    assert home.dirty_paths() == []

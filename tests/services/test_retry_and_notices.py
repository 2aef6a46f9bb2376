"""Beside the core: the retry schedule under one lock, and notices that are told once, only once written."""

from __future__ import annotations

import json
import threading
from datetime import datetime

from agentd.events import Event
from agentd.home import Home
from agentd.services.notices import Notices
from agentd.services.retries import RetrySchedule, exponential
from tests.services.harness import FakeMonotonic

AT = datetime(2026, 11, 29, 9, 0)


def message(name: str) -> Event:
    return Event("message", "", AT, name=name, source=f"inbox/{name}.md")


def test_retry_lock_no_failure_scheduled_while_the_main_loop_takes_due_ones_is_lost() -> None:
    """The worker schedules a retry at the very moment the main loop takes the due ones.

    The clock is read inside ``due()``; this clock lets the worker's ``schedule()`` run
    right then, on its own thread. Under the shared lock it must wait for ``due()`` to
    finish. Unlocked (the daemon's old list, appended by the worker and rebuilt by the
    main loop), an entry added mid-rebuild was lost, and the message was seen by the next
    inbox poll and queued with no backoff at all.
    """
    clock = FakeMonotonic()
    retries = RetrySchedule(clock=clock, backoff=lambda attempt: 10.0)
    retries.schedule(message("a"))
    worker: list[threading.Thread] = []
    held_out: list[bool] = []

    def clock_with_a_worker_in_between() -> float:
        if not worker:
            t = threading.Thread(target=retries.schedule, args=(message("b"),))
            worker.append(t)
            t.start()
            t.join(0.3)  # it gets in now, unless the lock keeps it out until due() is over
            held_out.append(t.is_alive())
        return clock()

    clock.advance(10)
    retries.clock = clock_with_a_worker_in_between
    assert [e.name for e in retries.due()] == ["a"]
    assert held_out == [True], "the worker's schedule() waited for the main loop's due()"
    worker[0].join(5)
    assert retries.waiting() == {"inbox/b.md"}, "b waits for its backoff, and nothing took it"
    assert retries.due() == [], "b is not due before its 10 s"
    clock.advance(10)
    assert [e.name for e in retries.due()] == ["b"]


def test_retry_lock_many_workers_and_a_busy_main_loop() -> None:
    clock = FakeMonotonic()
    retries = RetrySchedule(clock=clock, backoff=lambda attempt: 5.0)
    stop = threading.Event()
    taken: list[Event] = []

    def main_loop() -> None:
        while not stop.is_set():
            taken.extend(retries.due())

    loop = threading.Thread(target=main_loop)
    loop.start()
    workers = [threading.Thread(target=lambda i=i: [retries.schedule(message(f"m{i}-{j}")) for j in range(200)]) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    loop.join()
    assert taken == [], "none due before its backoff"
    assert len(retries.waiting()) == 800
    assert retries.attempts("inbox/m0-0.md") == 1


def test_backoff_is_injected_and_attempts_count_up() -> None:
    clock = FakeMonotonic()
    retries = RetrySchedule(clock=clock)
    assert retries.schedule(message("x")) == (1, 2.0)
    assert retries.schedule(message("x")) == (2, 4.0)
    assert exponential(20) == 300.0
    retries.succeeded("inbox/x.md")
    assert retries.attempts("inbox/x.md") == 0 and retries.waiting() == set()


def test_notice_retry_a_notice_that_could_not_be_written_is_tried_again_not_marked_told(home: Home) -> None:
    notices = Notices(home, lock_timeout=0.1)
    with home.lock(timeout=1, purpose="someone else"):
        assert not notices.tell("engine-gave-up", "The engine stopped.")  # the home lock: not now
    assert not (home.root / "outbox/notices.md").exists()
    assert "engine-gave-up" not in notices.told
    assert not (home.runtime / "reported.json").exists() or "engine-gave-up" not in (home.runtime / "reported.json").read_text()
    notices.flush()
    notices.flush()
    assert (home.root / "outbox/notices.md").read_text().count("The engine stopped.") == 1
    assert json.loads((home.runtime / "reported.json").read_text()) == ["engine-gave-up"]
    assert home.dirty_paths() == []
    # Told once, also for the next daemon.
    again = Notices(home)
    assert again.tell("engine-gave-up", "The engine stopped.")
    assert (home.root / "outbox/notices.md").read_text().count("The engine stopped.") == 1
    again.forget("engine-gave-up")
    assert again.tell("engine-gave-up", "The engine stopped.")
    assert (home.root / "outbox/notices.md").read_text().count("The engine stopped.") == 2


def test_notice_retry_when_the_commit_is_refused(home: Home) -> None:
    """A notice whose commit is refused (here: it would commit a credential) is not told, and waits."""
    notices = Notices(home)
    key = "AKIA" + "Q" * 16
    assert not notices.tell("leak", f"oops {key}")
    assert "leak" in notices.waiting and "leak" not in notices.told
    assert home.dirty_paths() == []
    notices.mask = lambda text: text.replace(key, "[masked]")
    notices.flush()
    assert "leak" in notices.told and "[masked]" in (home.root / "outbox/notices.md").read_text()

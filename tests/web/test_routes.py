"""Every route of the web app through Starlette's test client, on a real home with real git."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agentd import inbox
from agentd.events import Event
from agentd.home import AGENT, Home
from agentd.ledger import Ledger, Record, SteeringRecord
from agentd.services.lifecycle import daemon_lock, state_path
from agentd.tools import approvals as parked
from agentd.web import auth
from agentd.web.app import MAX_BODY
from tests.web.conftest import Browser

HTML = {"accept": "text/html"}


def subjects(home: Home) -> list[str]:
    return [str(c.message).splitlines()[0] for c in home.repo.iter_commits()]


def agent_wake_commit(home: Home, prompt: int, cached: int) -> str:
    """A wake's commit as loop.wake writes it: the agent's identity and its trailers."""
    (home.root / "memory" / "journal").mkdir(parents=True, exist_ok=True)
    (home.root / "memory" / "journal" / "2026-11-29.md").write_text(f"## 10:00 · message\n\nanswered ({prompt})\n")
    trailers = {"Wake-Trigger": "message", "Wake-Status": "ok", "Wake-Steps": "2", "Prompt-Tokens": str(prompt),
                "Cached-Tokens": str(cached), "Completion-Tokens": "9", "Wake-Seconds": "1.5"}
    return home.commit("wake message: answered", identity=AGENT, all_changes=True, trailers=trailers)


# ---------------------------------------------------------------- login, pages, unknown paths
def test_pages_need_the_login_and_the_link_works_once(client: TestClient, home: Home) -> None:
    assert client.get("/", headers=HTML).status_code == 401
    assert "agentd open" in client.get("/", headers=HTML).text
    assert client.get("/timeline").status_code == 401
    assert client.get("/login?token=wrong", follow_redirects=False).status_code == 403
    token = auth.new_login_token(home)
    assert oct((home.runtime / auth.LOGIN_FILE).stat().st_mode & 0o777) == "0o600"
    first = client.get(f"/login?token={token}", follow_redirects=False)
    assert first.status_code == 303 and auth.COOKIE in first.cookies
    assert "httponly" in first.headers["set-cookie"].lower() and "samesite=strict" in first.headers["set-cookie"].lower()
    assert client.get("/timeline").status_code == 200
    client.cookies.clear()
    assert client.get(f"/login?token={token}", follow_redirects=False).status_code == 403, "a login link works once"


@pytest.mark.parametrize("url", ["/", "/timeline", "/cache", "/cache/data.json", "/mind", "/mind/view?path=USER.md",
                                 "/mind/edit?path=USER.md", "/mind/search?q=agent", "/approvals", "/notices", "/schedule"])
def test_every_page_renders(browser: Browser, url: str) -> None:
    r = browser.client.get(url)
    assert r.status_code == 200, r.text
    if not url.endswith(".json"):
        assert "<nav>" in r.text and browser.csrf in r.text


def test_static_files_are_served_from_the_package_without_login(client: TestClient) -> None:
    for name in ("htmx.min.js", "uPlot.min.js", "uPlot.min.css", "app.js", "app.css"):
        assert client.get(f"/static/{name}").status_code == 200, name


def test_unknown_paths_are_404(browser: Browser) -> None:
    assert browser.client.get("/nope").status_code == 404
    assert browser.client.get("/timeline/zzzz").status_code == 404
    assert browser.client.get("/timeline/0123456789abcdef").status_code == 404
    assert browser.client.get("/chat/reply/not-an-id").status_code == 404
    assert browser.client.get("/static/../agent.yaml").status_code == 404


# ---------------------------------------------------------------- chat
def test_a_message_goes_into_the_inbox_and_its_reply_comes_back(browser: Browser, home: Home) -> None:
    r = browser.post("/chat/send", {"text": "hello from the browser"})
    assert r.status_code == 202
    msg_id = r.json()["id"]
    assert (home.root / "inbox" / f"{msg_id}.md").read_text() == "hello from the browser\n"
    assert browser.client.get(f"/chat/reply/{msg_id}").json()["status"] == "waiting"
    inbox.write_note(home, msg_id, status="ok", reply="hi there", commit="abc")
    assert browser.client.get(f"/chat/reply/{msg_id}").json()["reply"] == "hi there"
    stream = browser.client.get(f"/chat/stream/{msg_id}").text
    assert "event: reply" in stream and "hi there" in stream


def test_the_reply_streams_from_the_hub(browser: Browser, home: Home) -> None:
    msg_id = inbox.post(home, "stream me", datetime.now())
    hub = browser.client.app.state.web.replies  # type: ignore[attr-defined]
    event = Event("message", "stream me", datetime.now(), name=msg_id, source=f"inbox/{msg_id}.md")
    sink = hub.sink(event)
    assert sink is not None
    sink("Hel")
    sink("lo")
    hub.finish(event)
    inbox.write_note(home, msg_id, status="ok", reply="Hello", commit="abc")
    text = browser.client.get(f"/chat/stream/{msg_id}").text
    assert 'event: delta\ndata: "Hello"' in text and "event: reply" in text


def test_todays_conversation_is_shown(browser: Browser, home: Home) -> None:
    day = datetime.now().astimezone().strftime("%Y-%m-%d")
    (home.root / "outbox" / f"{day}.md").write_text(f"# Conversation {day}\n\n## 10:00 · message\n\nThe cat is called **Miso**.\n")
    assert "<strong>Miso</strong>" in browser.client.get("/").text


def test_empty_and_too_long_messages_are_refused(browser: Browser, home: Home) -> None:
    before = inbox.pending(home)
    assert browser.post("/chat/send", {"text": "  "}).status_code == 400
    assert browser.post("/chat/send", {"text": "x" * (inbox.MAX_MESSAGE_CHARS + 1)}).status_code == 413
    assert inbox.pending(home) == before


# ---------------------------------------------------------------- CSRF and body size
def test_a_post_without_or_with_a_bad_csrf_token_is_refused_and_writes_nothing(browser: Browser, home: Home) -> None:
    before = inbox.pending(home)
    assert browser.client.post("/chat/send", data={"text": "no token"}).status_code == 403
    assert browser.client.post("/chat/send", data={"text": "bad", "csrf": "forged"}).status_code == 403
    assert browser.client.post("/chat/send", data={"text": "bad"}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert inbox.pending(home) == before
    assert browser.client.post("/chat/send", data={"text": "header"}, headers={"X-CSRF-Token": browser.csrf}).status_code == 202


def test_a_post_without_a_session_is_refused(client: TestClient, home: Home) -> None:
    assert client.post("/chat/send", data={"text": "hi"}).status_code == 401
    assert client.post("/mind/save", data={"path": "USER.md", "text": "x", "base": "y"}).status_code == 401
    assert inbox.pending(home) == []


def test_an_oversized_body_is_refused_with_413(browser: Browser, home: Home) -> None:
    before = (home.root / "USER.md").read_bytes()
    r = browser.post("/mind/save", {"path": "USER.md", "text": "x" * (MAX_BODY + 10), "base": "whatever"})
    assert r.status_code == 413
    assert (home.root / "USER.md").read_bytes() == before

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(MAX_BODY // 10_000 + 2):
            yield b"x" * 10_000

    r = browser.client.post("/chat/send", content=chunks(), headers={"X-CSRF-Token": browser.csrf, "content-type": "text/plain"})
    assert r.status_code == 413, "a chunked body with no length is counted too"
    assert inbox.pending(home) == []


# ---------------------------------------------------------------- the message API
def test_the_api_needs_the_bearer_token(client: TestClient, home: Home) -> None:
    assert client.post("/api/messages", json={"text": "hi"}).status_code == 401
    auth.api_token(home)
    assert client.post("/api/messages", json={"text": "hi"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/messages/20260101-000000-abcdef", headers={"Authorization": "Basic x"}).status_code == 401
    assert inbox.pending(home) == []


def test_the_api_posts_a_message_and_returns_its_reply(client: TestClient, home: Home) -> None:
    token = auth.api_token(home)
    assert oct((home.runtime / auth.API_FILE).stat().st_mode & 0o777) == "0o600"
    assert auth.API_FILE not in home.repo.git.ls_files()
    bearer = {"Authorization": f"Bearer {token}"}
    r = client.post("/api/messages", json={"text": "from a script"}, headers=bearer)
    assert r.status_code == 202
    msg_id = r.json()["id"]
    assert (home.root / "inbox" / f"{msg_id}.md").read_text() == "from a script\n"
    assert client.get(f"/api/messages/{msg_id}", headers=bearer).json()["status"] == "waiting"
    inbox.write_note(home, msg_id, status="ok", reply="done it")
    assert client.get(f"/api/messages/{msg_id}", headers=bearer).json() == {"id": msg_id, "status": "ok", "reply": "done it", "error": None, "commit": None}
    plain = client.post("/api/messages", content="plain text", headers={**bearer, "content-type": "text/plain"})
    assert plain.status_code == 202
    assert client.get("/api/messages/20260101-000000-abcdef", headers=bearer).status_code == 404
    assert client.get("/api/messages/..%2F..%2Fetc", headers=bearer).status_code == 404
    assert client.post("/api/messages", content="{not json", headers={**bearer, "content-type": "application/json"}).status_code == 400
    assert client.post("/api/messages", json={"txt": 1}, headers=bearer).status_code == 400
    big = client.post("/api/messages", content="x" * (MAX_BODY + 1), headers={**bearer, "content-type": "text/plain"})
    assert big.status_code == 413
    assert len(inbox.pending(home)) == 2


# ---------------------------------------------------------------- timeline and cache
def test_the_timeline_tells_wakes_and_person_commits_apart(browser: Browser, home: Home) -> None:
    (home.root / "USER.md").write_text("I am the person.\n")
    home.absorb_person_edits()
    sha = agent_wake_commit(home, 1000, 900)
    page = browser.client.get("/timeline").text
    assert "person: edited USER.md" in page and "tag person" in page
    assert "wake message: answered" in page and "1000" in page and "900" in page and "100" in page and "1.5" in page
    detail = browser.client.get(f"/timeline/{sha[:8]}").text
    assert "Journal entry" in detail and "answered (1000)" in detail and "memory/journal/2026-11-29.md" in detail


def test_the_cache_page_has_per_wake_and_per_day_figures(browser: Browser, home: Home) -> None:
    agent_wake_commit(home, 1000, 900)
    agent_wake_commit(home, 2000, 1000)
    ledger = Ledger(home.runtime / "ledger.db")
    ledger.record(Record("message", "wake", 1000, 900, 9, ts=1_764_400_000.0, day="2025-11-29"))
    ledger.record(Record("message", "wake", 2000, 1000, 9, ts=1_764_500_000.0, day="2025-11-30", cache_break="USER.md edited"))
    data = browser.client.get("/cache/data.json").json()
    assert data["wakes"]["hit_rate"] == [90.0, 50.0]
    assert data["days"]["day"] == ["2025-11-29", "2025-11-30"] and data["days"]["computed"] == [100, 1000]
    assert data["breaks"][0]["cause"] == "USER.md edited"
    page = browser.client.get("/cache").text
    assert 'id="plot-wakes"' in page and "USER.md edited" in page and "llamacpp" in page


def test_the_cache_page_shows_steering_diffs_and_the_prefix_tokens_they_saved(browser: Browser, home: Home) -> None:
    ledger = Ledger(home.runtime / "ledger.db")
    ledger.record_steering(SteeringRecord("message", "person edited USER.md", "USER.md", 40, 1800, 300, ts=1_764_500_000.0, day="2025-11-30"))
    data = browser.client.get("/cache/data.json").json()
    assert data["steering"]["count"] == 1 and data["steering"]["saved_prefix_tokens"] == 1800
    assert any(b["purpose"] == "steering-diff" for b in data["breaks"])
    assert "saving <strong>1800</strong> prefix tokens" in browser.client.get("/cache").text


# ---------------------------------------------------------------- mind
def test_the_mind_lists_renders_and_searches_the_home(browser: Browser, home: Home) -> None:
    assert "USER.md" in browser.client.get("/mind").text and "memory/MEMORY.md" in browser.client.get("/mind").text
    (home.root / "memory" / "topics" / "tea.md").write_text("# Tea\n\nThe person drinks **jasmine** tea.\n")
    view = browser.client.get("/mind/view?path=memory/topics/tea.md").text
    assert "<strong>jasmine</strong>" in view
    found = browser.client.get("/mind/search?q=jasmine").text
    assert "memory/topics/tea.md" in found


def test_rendered_markdown_does_not_run_html(browser: Browser, home: Home) -> None:
    (home.root / "USER.md").write_text("<script>alert(1)</script>\n")
    assert "<script>alert(1)</script>" not in browser.client.get("/mind/view?path=USER.md").text


def test_a_save_is_the_persons_own_commit(browser: Browser, home: Home) -> None:
    edit = browser.client.get("/mind/edit?path=USER.md").text
    base = edit.split('name="base" value="', 1)[1].split('"', 1)[0]
    r = browser.post("/mind/save", {"path": "USER.md", "text": "My name is Ada.\r\nI like tea.\n", "base": base})
    assert r.status_code == 200, r.text
    assert (home.root / "USER.md").read_text() == "My name is Ada.\nI like tea.\n"
    head = home.repo.head.commit
    assert str(head.message).startswith("person: edited USER.md") and head.author.email == "person@example.com"
    assert home.dirty_paths() == []


def test_a_save_over_a_changed_file_is_refused_with_409(browser: Browser, home: Home) -> None:
    edit = browser.client.get("/mind/edit?path=USER.md").text
    base = edit.split('name="base" value="', 1)[1].split('"', 1)[0]
    with home.lock():
        home.write_text("USER.md", "the agent wrote this\n", guard=False)
        home.commit("wake: wrote USER.md", identity=AGENT, paths=["USER.md"])
    before = subjects(home)
    r = browser.post("/mind/save", {"path": "USER.md", "text": "mine\n", "base": base})
    assert r.status_code == 409 and "changed since you opened it" in r.text
    assert (home.root / "USER.md").read_text() == "the agent wrote this\n" and subjects(home) == before


def test_a_save_during_a_wake_is_left_for_the_absorb_before_the_next_one(browser: Browser, home: Home) -> None:
    edit = browser.client.get("/mind/edit?path=USER.md").text
    base = edit.split('name="base" value="', 1)[1].split('"', 1)[0]
    before = subjects(home)
    with home.lock(purpose="a wake"):
        r = browser.post("/mind/save", {"path": "USER.md", "text": "during the wake\n", "base": base})
        assert r.status_code == 200 and "wake is running" in r.json()["message"]
        assert subjects(home) == before and "USER.md" in home.dirty_paths()
    assert home.absorb_person_edits() is not None
    assert subjects(home)[0].startswith("person: edited USER.md")


@pytest.mark.parametrize("path", ["../outside.md", "/etc/passwd", "/tmp/x.md", "memory/../../x.md", ".git/config",
                                  ".agentd/api-token", "agent.yaml", "", "a\\b.md", "link-out.md", "linkdir/x.md"])
def test_paths_out_of_the_home_are_refused_and_nothing_written(browser: Browser, home: Home, tmp_path: Path, path: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("outside\n")
    (outside / "x.md").write_text("outside\n")
    os.symlink(outside / "secret.md", home.root / "link-out.md")
    os.symlink(outside, home.root / "linkdir")
    for url in (f"/mind/view?path={path}", f"/mind/edit?path={path}"):
        r = browser.client.get(url)
        assert 400 <= r.status_code < 500, (url, r.status_code)
        assert "outside" not in r.text.replace("outside.md", "")
    r = browser.post("/mind/save", {"path": path, "text": "overwritten\n", "base": "absent"})
    assert 400 <= r.status_code < 500
    assert (outside / "secret.md").read_text() == "outside\n" and (outside / "x.md").read_text() == "outside\n"
    assert not (tmp_path / "outside.md").exists() and not (home.root.parent / "x.md").exists()


def test_a_missing_file_is_404(browser: Browser) -> None:
    assert browser.client.get("/mind/view?path=nope.md").status_code == 404


# ---------------------------------------------------------------- approvals and notices
def park(home: Home, command: str) -> str:
    with home.lock():
        approval_id, _ = parked.park(home, command, home.root, "wake-1")
        home.commit(f"wake: parked {approval_id}", identity=AGENT, all_changes=True)
    return approval_id


def test_a_parked_command_is_shown_as_it_will_run_and_approved(browser: Browser, home: Home) -> None:
    approval_id = park(home, "echo approved-by-web > web-approved.txt")
    page = browser.client.get("/approvals").text
    assert "echo approved-by-web &gt; web-approved.txt" in page and str(home.root) in page
    r = browser.post(f"/approvals/{approval_id}/approve")
    assert r.status_code == 200, r.text
    assert "exit code 0" in r.json()["result"]
    assert parked.status(home, approval_id) == "approved"
    assert subjects(home)[0] == f"person: approved shell command {approval_id}"
    assert browser.post(f"/approvals/{approval_id}/approve").status_code == 409, "not pending any more"


def test_deny_and_a_tampered_page(browser: Browser, home: Home) -> None:
    denied = park(home, "echo no")
    assert browser.post(f"/approvals/{denied}/deny").status_code == 200
    assert parked.status(home, denied) == "denied"
    tampered = park(home, "echo yes")
    page_path = home.root / parked.FOLDER / f"{tampered}.md"
    page_path.write_text(page_path.read_text().replace("echo yes", "rm -rf ~"))
    assert "approving will be refused" in browser.client.get("/approvals").text
    r = browser.post(f"/approvals/{tampered}/approve")
    assert r.status_code == 409 and "Nothing ran" in r.text
    assert parked.status(home, tampered) == "refused"


def test_bad_approval_ids_are_404(browser: Browser) -> None:
    assert browser.post("/approvals/abcdef/approve").status_code == 404
    assert browser.post("/approvals/..%2Fx/approve").status_code == 404
    assert browser.post("/approvals/abcdef/run").status_code == 404


def test_notices_are_acknowledged(browser: Browser, home: Home) -> None:
    with home.lock():
        home.notify("The engine is failing; wakes are retried.")
        home.notify("A skill was skipped.")
    page = browser.client.get("/notices").text
    assert page.count('class="new"') == 2
    first = page.split('data-id="', 2)[2].split('"', 1)[0]
    assert browser.post("/notices/ack", {"id": first}).status_code == 200
    assert browser.client.get("/notices").text.count('class="new"') == 1
    assert browser.post("/notices/ack", {"id": "all"}).json()["acknowledged"] == 2
    assert browser.post("/notices/ack", {"id": "nope"}).status_code == 404
    assert home.dirty_paths() == [], "acknowledging writes only under .agentd/"


# ---------------------------------------------------------------- schedule
def test_the_schedule_shows_heartbeat_cron_and_channels(browser: Browser, home: Home) -> None:
    (home.root / "CRON.md").write_text("# Cron\n\n## Morning briefing\n`0 8 * * *`\nBrief me.\n")
    page = browser.client.get("/schedule").text
    assert "Morning briefing" in page and "0 8 * * *" in page and "30 min" in page and "not running" in page
    with daemon_lock(home):
        state = {"pid": os.getpid(), "next_runs": [{"kind": "heartbeat", "name": None, "at": "2030-01-01T08:30:00"}],
                 "channels": [{"name": "matrix", "state": "connected", "last_message": None, "last_error": None}]}
        state_path(home).write_text(json.dumps(state))
        page = browser.client.get("/schedule").text
    assert "2030-01-01T08:30:00" in page and "matrix" in page and "connected" in page


def test_the_schedule_shows_the_heartbeats_last_skip_and_why(browser: Browser, home: Home) -> None:
    from datetime import datetime

    from agentd.services.heartbeat import record_skip

    assert "<td>none</td>" in browser.client.get("/schedule").text
    record_skip(home, datetime(2026, 11, 29, 23, 10), "outside active hours 08:00-22:00")
    page = browser.client.get("/schedule").text
    assert "2026-11-29 23:10: outside active hours 08:00-22:00" in page


def test_the_stream_waits_for_the_reply_note_written_after_the_wake(browser: Browser, home: Home) -> None:
    """The wake's stream ends (and its message is in inbox/done/) a moment before the note: the reply is the note's."""
    import threading

    msg_id = inbox.post(home, "race", datetime.now())
    (home.root / "inbox" / "done").mkdir(exist_ok=True)
    os.replace(home.root / "inbox" / f"{msg_id}.md", home.root / "inbox" / "done" / f"{msg_id}.md")
    hub = browser.client.app.state.web.replies  # type: ignore[attr-defined]
    event = Event("message", "race", datetime.now(), name=msg_id, source=f"inbox/{msg_id}.md")
    sink = hub.sink(event)
    assert sink is not None
    sink("the answer")
    hub.finish(event)
    assert browser.client.get(f"/api/messages/{msg_id}", headers={"Authorization": f"Bearer {auth.api_token(home)}"}).json()["status"] == "answered"
    later = threading.Timer(0.5, lambda: inbox.write_note(home, msg_id, status="ok", reply="the answer", commit="abc"))
    later.start()
    text = browser.client.get(f"/chat/stream/{msg_id}").text
    later.join()
    assert '"status": "ok"' in text and '"reply": "the answer"' in text


def test_a_retried_message_streams_afresh() -> None:
    from agentd.services.replies import ReplyHub

    hub = ReplyHub()
    event = Event("message", "x", datetime.now(), name="20260101-000000-abcdef", source="inbox/20260101-000000-abcdef.md")
    first = hub.sink(event)
    assert first is not None
    first("engine fell over")
    hub.finish(event)
    second = hub.sink(event)
    assert second is not None
    second("the answer")
    stream = hub.get("20260101-000000-abcdef")
    assert stream is not None and stream.text == "the answer" and not stream.finished
    assert hub.sink(Event("heartbeat", "", datetime.now())) is None, "only messages stream"

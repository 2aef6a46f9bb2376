"""The web app in a real headless Chromium (Debian's ``chromium``, driven by Playwright), against a live daemon.

A real home, an in-process daemon (its main loop on a thread) with the web service, the
scripted engine double: log in with the link, chat, edit USER.md, approve a parked
command, see the hit-rate plot drawn. Screenshots of every page go to a temp folder (and,
with ``AGENTD_WEB_SCREENSHOTS=DIR``, to DIR: docs/screenshots/ is made that way).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agentd.commands.web import login_link
from agentd.daemon import Daemon, build_daemon
from agentd.home import AGENT, Home
from agentd.services.lifecycle import daemon_lock
from agentd.tools import approvals as parked
from tests.doubles.openai_server import ScriptedServer
from tests.web.test_service import web_home

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("AGENTD_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000  # a wake on a busy 2-core machine; never asserted as a timing


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests: playwright for Python is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"browser tests: no Chromium at {CHROMIUM} (apt-get install chromium, or set AGENTD_CHROMIUM)")
    return sync_playwright


@contextmanager
def live_daemon(home: Home) -> Iterator[Daemon]:
    """The daemon as `agentd run` has it, its main loop on a thread so the test can drive a browser."""
    d = build_daemon(home, poll_s=0.05)
    with daemon_lock(home):
        d.start()
        loop = threading.Thread(target=d.loop, name="main-loop", daemon=True)
        loop.start()
        try:
            yield d
        finally:
            d.stop_event.set()
            loop.join(30)
            if d.worker is not None:
                d.worker.join(30)
            d.shutdown()


@pytest.fixture
def shots() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="agentd-web-shots-"))
    yield folder
    keep = os.environ.get("AGENTD_WEB_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for png in folder.glob("*.png"):
            shutil.copy(png, Path(keep) / png.name)
    shutil.rmtree(folder, ignore_errors=True)


def seed(home: Home) -> str:
    """A parked command, a notice, a cron job: what the pages show besides the live chat."""
    (home.root / "CRON.md").write_text("# Cron\n\n## Morning briefing\n`0 8 * * 1-5`\nBrief me on today.\n")
    home.absorb_person_edits()
    with home.lock():
        approval_id, _ = parked.park(home, "echo approved-in-chromium > approved.txt", home.root, "wake-demo")
        home.commit(f"wake message: parked shell command {approval_id}", identity=AGENT, all_changes=True)
        home.notify("A skill was skipped: skills/demo/SKILL.md:2: no description.")
    return approval_id


def painted_pixels(page: Any, selector: str) -> int:
    """How many pixels of the plot's canvas are drawn on (0 for a blank canvas)."""
    return int(page.evaluate(
        """(sel) => { const c = document.querySelector(sel); if (!c) return 0;
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
             for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""", selector))


def test_the_web_app_in_chromium(home: Home, server: ScriptedServer, shots: Path, tmp_path: Path) -> None:
    sync_playwright = _playwright()
    web_home(home, server.url)
    approval_id = seed(home)
    with live_daemon(home), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1100, "height": 760})
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            # Log in with the link `agentd open` prints: it lands on the chat.
            page.goto(login_link(home))
            assert page.url.endswith("/") and page.locator("#chat-form").is_visible()

            # Chat: the reply appears under the message.
            page.fill("#chat-text", "MSGID:chromium1 hello from the browser")
            page.click("#chat-form button")
            page.wait_for_selector(".reply.done:has-text('answer to chromium1')")
            page.fill("#chat-text", "MSGID:chromium2 and what is in MEMORY.md?")
            page.click("#chat-form button")
            page.wait_for_selector(".reply.done:has-text('answer to chromium2')")
            page.reload()
            page.wait_for_selector("#conversation:has-text('answer to chromium2')")
            page.screenshot(path=str(shots / "chat.png"))

            # Mind: edit USER.md; the save is the person's own commit.
            page.goto(page.url.rstrip("/") + "/mind")
            page.screenshot(path=str(shots / "mind.png"))
            page.click("text=USER.md")
            page.click("#edit-link")
            page.fill("#mind-text", "# The person\n\nMy name is Ada. I drink jasmine tea.\n")
            page.screenshot(path=str(shots / "mind-edit.png"))
            page.click("#mind-form button")
            page.wait_for_selector("#mind-result.ok")
            head = home.repo.head.commit
            assert str(head.message).startswith("person: edited USER.md") and head.author.email == "person@example.com"
            assert "jasmine" in (home.root / "USER.md").read_text()

            # Approvals: the command shown as it will run; approving runs it once.
            page.click("nav >> text=Approvals")
            page.wait_for_selector(f"#approval-{approval_id}")
            assert "echo approved-in-chromium" in page.inner_text(f"#approval-{approval_id} pre.command")
            page.screenshot(path=str(shots / "approvals.png"))
            page.click(f"#approval-{approval_id} button.approve")
            page.wait_for_selector(f"#result-{approval_id}.ok")
            assert parked.status(home, approval_id) == "approved" and (home.root / "approved.txt").is_file()

            # Timeline and the wake's diff.
            page.click("nav >> text=Timeline")
            page.wait_for_selector("td:has-text('person')")
            page.screenshot(path=str(shots / "timeline.png"))
            page.click("a:has-text('wake message')")
            page.wait_for_selector("pre.diff")
            page.screenshot(path=str(shots / "wake.png"))

            # Cache & cost: the hit-rate plot is drawn, with data points.
            page.click("nav >> text=Cache & cost")
            page.wait_for_selector("#plot-wakes canvas")
            assert int(page.get_attribute("#plot-wakes", "data-points") or 0) >= 2
            assert painted_pixels(page, "#plot-wakes canvas") > 0, "the hit-rate plot is blank"
            page.screenshot(path=str(shots / "cache.png"), full_page=True)

            for name in ("Notices", "Schedule"):
                page.click(f"nav >> text={name}")
                page.wait_for_selector("h1")
                page.screenshot(path=str(shots / f"{name.lower()}.png"))
            assert "Morning briefing" in page.inner_text("main")
        except Exception:
            log = home.root / ".agentd" / "logs" / "daemon.log"
            print("page:", page.inner_text("main")[:2000], "\nlog:", log.read_text()[-3000:] if log.is_file() else "")
            raise
        finally:
            context.close()
            browser.close()
    assert sorted(p.name for p in shots.glob("*.png")) == sorted(
        ["approvals.png", "cache.png", "chat.png", "mind-edit.png", "mind.png", "notices.png", "schedule.png", "timeline.png", "wake.png"])

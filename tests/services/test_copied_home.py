"""A daemon started on a copied home tells the person, once, that it shares its original's agent id."""

from __future__ import annotations

import shutil
from pathlib import Path

from agentd.daemon import build_daemon
from agentd.home import Home
from tests.doubles.openai_server import ScriptedServer
from tests.services.harness import running
from tests.test_daemon import configure


def test_a_daemon_on_a_copied_home_leaves_a_notice_naming_the_fix(home: Home, server: ScriptedServer, tmp_path: Path) -> None:
    configure(home, server.url, every="1h")
    copy = Home(Path(shutil.copytree(home.root, tmp_path / "copy", symlinks=True)))
    with running(build_daemon(copy, poll_s=0.02)):
        pass
    notices = (copy.root / "outbox" / "notices.md").read_text()
    assert f"a copy of {home.root}" in notices and f"agentd init {copy.root}" in notices
    with running(build_daemon(home, poll_s=0.02)):
        pass
    original = home.root / "outbox" / "notices.md"
    assert not original.exists() or "a copy of" not in original.read_text(), "the original is not a copy"

"""End to end on the real embedded engine: `agentd say` to a fresh home answers and leaves one new commit."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agentd.cli import cli
from agentd.home import Home
from tests.engine.conftest import have_embedded_engine

pytestmark = pytest.mark.engine


def test_say_on_the_embedded_engine(home: Home) -> None:
    if not have_embedded_engine():
        pytest.skip("embedded engine not installed (pip install -e '.[cpu]')")
    before = len(list(home.repo.iter_commits()))
    res = CliRunner().invoke(cli, ["--home", str(home.root), "say", "Hello! Please reply with a short greeting."])
    assert res.exit_code == 0, res.output
    assert res.output.strip()
    commits = list(home.repo.iter_commits())
    assert len(commits) == before + 1
    assert str(commits[0].message).startswith("wake message:")
    assert "Cached-Tokens:" in str(commits[0].message)
    assert home.dirty_paths() == []
    assert not list((home.root / "inbox").glob("*.md")) and list((home.root / "inbox/done").glob("*.md"))


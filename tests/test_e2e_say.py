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



def test_engine_start_prefills_the_prefix_so_the_first_say_is_hot(home: Home) -> None:
    from agentd.ledger import Ledger

    if not have_embedded_engine():
        pytest.skip("embedded engine not installed (pip install -e '.[cpu]')")
    runner = CliRunner()
    started = runner.invoke(cli, ["--home", str(home.root), "engine", "start"])
    try:
        assert started.exit_code == 0, started.output
        assert "tokens prefilled" in started.output
        said = runner.invoke(cli, ["--home", str(home.root), "say", "Hi."])
        assert said.exit_code == 0, said.output
    finally:
        runner.invoke(cli, ["--home", str(home.root), "engine", "stop"])
    rows = Ledger(home.runtime / "ledger.db").rows()
    warm = [r for r in rows if r["purpose"] == "warmup"]
    first = next(r for r in rows if r["trigger"].startswith("message"))
    assert len(warm) == 1
    # The engine reports the prefix the warm-up left as cached on the first real request.
    assert first["cached_tokens"] is not None and first["cached_tokens"] >= 0.9 * warm[0]["prompt_tokens"]

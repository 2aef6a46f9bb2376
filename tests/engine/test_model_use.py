"""`agentd model use`: config changed with comments intact, one commit, engine restarted on the new model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentd.cli import cli
from agentd.config import load_config
from agentd.home import Home
from agentd.wiring import make_supervisor
from tests.engine.conftest import have_embedded_engine

pytestmark = pytest.mark.engine


def test_model_use_round_trip(home: Home, tmp_path: Path) -> None:
    if not have_embedded_engine():
        pytest.skip("embedded engine not installed")
    from engine.models import find_smollm2_gguf

    other = tmp_path / "models" / "other-model.gguf"
    other.parent.mkdir()
    shutil.copyfile(find_smollm2_gguf(), other)
    runner = CliRunner()
    h = ["--home", str(home.root)]
    assert runner.invoke(cli, [*h, "engine", "start"]).exit_code == 0
    before = make_supervisor(home, load_config(home.root)).adopt()
    assert before is not None and before.model.startswith("SmolLM2")
    commits = len(list(home.repo.iter_commits()))
    try:
        res = runner.invoke(cli, [*h, "model", "use", str(other)])
        assert res.exit_code == 0, res.output
        assert "self-test" in res.output
        text = (home.root / "agent.yaml").read_text()
        assert f'model: "{other}"' in text and "# llamacpp: \"smollm2\" or a .gguf path" in text
        assert len(list(home.repo.iter_commits())) == commits + 1
        assert str(home.repo.head.commit.message).startswith(f"model: llamacpp:smollm2 → llamacpp:{other}")
        assert home.repo.git.show("--name-only", "--format=", "HEAD").split() == ["agent.yaml"]
        after = make_supervisor(home, load_config(home.root)).adopt()
        assert after is not None and after.model == "other-model.gguf" and after.pid != before.pid
    finally:
        runner.invoke(cli, [*h, "engine", "stop"])
    assert make_supervisor(home, load_config(home.root)).adopt() is None

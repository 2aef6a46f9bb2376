"""Engine backends come in through one door, the ``agentd.backends`` entry points: a toy backend added that way only."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agentd import config as cfg
from agentd.cli import cli
from agentd.errors import ConfigError
from agentd.home import Home
from agentd.wiring import build_agent, engine_settings, make_supervisor
from engine.backends import backend_for
from engine.errors import BackendMissing
from engine.types import EngineSettings
from tests.doubles import ROOT
from tests.doubles.scripted_engine import ScriptedEngine

# A backend as a third party writes it: one class in its own module. It launches the
# supervised engine double, which answers every chat with "served by <model>".
TOY_MODULE = f'''
import sys

from engine.backends import Backend, LaunchSpec
from engine.options import Option, choice, whole_number


class ToyBackend(Backend):
    id = "toy"
    options = {{"window": Option(whole_number(64), 1024), "voice": Option(choice("calm", "loud"), "calm")}}

    def context_window(self, options):
        return int(self.option(options, "window"))

    def request_extras(self):
        return {{"toy_hint": True}}

    def model_lines(self):
        return ["toy: any name will do"]

    def launch_spec(self, settings, port, api_key):
        argv = [sys.executable, "-m", "tests.doubles.supervised_engine", "--port", str(port), "--model", settings.model, "--mode", "serve"]
        env = {{"AGENTD_ENGINE_API_KEY": api_key, "PYTHONPATH": {str(ROOT)!r}}}
        return LaunchSpec(argv, env, port, api_key, self.id, settings.model)
'''


def install_toy(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `pip install toy-backend` leaves behind: the module and a dist-info naming its entry point."""
    (site / "toy_backend.py").write_text(TOY_MODULE)
    dist = site / "toy_backend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-backend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[agentd.backends]\ntoy = toy_backend:ToyBackend\n")
    monkeypatch.syspath_prepend(str(site))


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_unknown_backend_is_one_line_naming_the_installed_ones(home: Home) -> None:
    res = CliRunner().invoke(cli, ["--home", str(home.root), "config", "set", "engine.backend", "toy"])
    assert res.exit_code == 1
    line = line_of(home.root / "agent.yaml", "backend:")
    assert res.output.strip() == f"Error: {home.root / 'agent.yaml'}:{line}: engine.backend: expected one of the installed backends: agent-double, engine-double, llamacpp, openai, pool, vllm, got 'toy'"
    with pytest.raises(BackendMissing, match=r"unknown engine backend 'toy' \(installed: agent-double, engine-double, llamacpp, openai, pool, vllm\)"):
        backend_for(EngineSettings("toy", "m"))


def test_toy_backend_added_through_its_entry_point_is_selectable_with_its_own_options(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_toy(site, monkeypatch)
    path = home.root / "agent.yaml"
    text = path.read_text().replace("backend: llamacpp", "backend: toy").replace("model: smollm2", "model: toy-model")
    path.write_text(text.replace("  llamacpp:", "  toy:\n    window: 2048\n    voice: loud\n  llamacpp:"))
    config = cfg.load_config(home.root)
    assert config.engine.backend == "toy" and dict(config.engine.options()) == {"window": 2048, "voice": "loud"}
    assert config.engine.context_window() == 2048, "the backend says what its context window is"
    assert engine_settings(home, config).options == {"window": 2048, "voice": "loud"}
    assert build_agent(home, config, ScriptedEngine()).extra_body == {"toy_hint": True}

    # Its section is validated like agentd's own, with the line and the nearest name.
    path.write_text(text.replace("  llamacpp:", "  toy:\n    window: 3\n    voise: loud\n  llamacpp:"))
    with pytest.raises(ConfigError) as err:
        cfg.load_config(home.root)
    window, voise = line_of(path, "window:"), line_of(path, "voise:")
    assert f"agent.yaml:{window}: engine.toy.window: expected a whole number ≥ 64, got 3" in str(err.value)
    assert f"agent.yaml:{voise}: unknown setting 'engine.toy.voise' (did you mean engine.toy.voice? known under engine.toy: voice, window)" in str(err.value)

    # Left out, an option is the backend's default; the CLI sees the backend like a built-in one.
    path.write_text(text)
    runner = CliRunner()
    h = ["--home", str(home.root)]
    assert runner.invoke(cli, [*h, "config", "get", "engine.toy.window"]).output.strip() == "1024"
    assert runner.invoke(cli, [*h, "model", "list"]).output.splitlines() == ["configured: toy:toy-model (tool calling: json)", "toy: any name will do"]
    sup = make_supervisor(home, cfg.load_config(home.root))
    try:
        info = sup.start()
        assert (info.backend, info.model) == ("toy", "toy-model")
        assert sup.client().chat([{"role": "user", "content": "hi"}], max_tokens=4).content == "served by toy-model"
    finally:
        sup.stop()

"""Installed from a built wheel (not the checkout), `agentd init` still finds its template and skills."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{build.stderr[-2000:]}")
    wheel = next(dist.glob("agentd-*.whl"))
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True)
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # -S: no site-packages .pth files, so the editable checkout cannot shadow the wheel;
    # dependencies come from this environment's site-packages, agentd from the wheel.
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{sysconfig.get_paths()['purelib']}"}
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_wheel_contains_template_and_skills(wheel_site: Path, tmp_path: Path) -> None:
    assert (wheel_site / "agentd" / "home_template" / "AGENT.md").is_file()
    assert (wheel_site / "agentd" / "builtin_skills" / "daily-briefing" / "SKILL.md").is_file()
    assert (wheel_site / "engine" / "supervisor.py").is_file()


def test_init_from_installed_wheel(wheel_site: Path, tmp_path: Path) -> None:
    probe = run_installed(wheel_site, tmp_path, "-c", "import agentd; print(agentd.__file__)")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith(str(wheel_site)), probe.stdout
    target = tmp_path / "h"
    res = run_installed(wheel_site, tmp_path, "-m", "agentd", "init", str(target))
    assert res.returncode == 0, res.stderr
    assert (target / "AGENT.md").is_file() and (target / ".gitignore").is_file()
    log = subprocess.run(["git", "-C", str(target), "log", "--oneline"], capture_output=True, text=True, check=True)
    assert len(log.stdout.strip().splitlines()) == 1

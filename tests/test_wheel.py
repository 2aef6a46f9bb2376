"""Installed from a built wheel into a fresh venv (not the checkout), `agentd init` still finds its template and skills."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def source_copy(dest: Path) -> Path:
    """The files git would ship (tracked or new, not ignored): no stale build/ folder can leak into the wheel."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "-co", "--exclude-standard"], capture_output=True, check=True)
    for rel in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / rel
        if src.is_file() and not rel.startswith(("tests/", "bench/")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = source_copy(tmp_path_factory.mktemp("src"))
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "-o", str(dist), str(src)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{build.stdout[-2000:]}{build.stderr[-2000:]}")
    # setuptools' warnings: a deprecated license table, data folders it "would ignore"
    noise = [ln for ln in (build.stdout + build.stderr).splitlines() if "would be ignored" in ln or "deprecat" in ln.lower()]
    assert noise == []
    return next(dist.glob("agentd-*.whl"))


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel; the dependencies come from this environment's
    site-packages through a .pth line. Such a line only adds the folder to sys.path: the
    .pth files in it (the editable install's finder among them) are not run, so the
    checkout cannot shadow the wheel."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "outer_dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    return root


def run_in(venv: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True)


def test_wheel_contains_template_and_skills(venv: Path, tmp_path: Path) -> None:
    probe = run_in(venv, tmp_path, "python", "-c", "import agentd.template as t, agentd.skills as s; print(t.template_root()); print(t.__file__)")
    assert probe.returncode == 0, probe.stderr
    template, module = (Path(line) for line in probe.stdout.split())
    assert template.is_relative_to(venv) and module.is_relative_to(venv), probe.stdout
    assert (template / "AGENT.md").is_file() and (template / "memory" / "journal" / "README.md").is_file()
    site = module.parents[1]
    assert (site / "agentd" / "builtin_skills" / "daily-briefing" / "SKILL.md").is_file()
    assert (site / "engine" / "supervisor.py").is_file()
    assert (site / "agentd" / "web" / "templates" / "base.html").is_file(), "the web app's pages are in the wheel"
    assert (site / "agentd" / "web" / "static" / "uPlot.min.js").is_file() and (site / "agentd" / "web" / "static" / "htmx.min.js").is_file()


def test_init_from_installed_wheel(venv: Path, tmp_path: Path) -> None:
    target = tmp_path / "h"
    res = run_in(venv, tmp_path, "agentd", "init", str(target))  # the wheel's console script
    assert res.returncode == 0, res.stderr
    assert (target / "AGENT.md").is_file() and (target / ".gitignore").is_file() and (target / "inbox" / ".gitkeep").is_file()
    hook = (target / ".git" / "hooks" / "pre-commit").read_text()
    assert str(venv / "bin" / "python") in hook  # the hook runs agentd's own interpreter
    log = subprocess.run(["git", "-C", str(target), "log", "--oneline"], capture_output=True, text=True, check=True)
    assert len(log.stdout.strip().splitlines()) == 1
    skills = run_in(venv, tmp_path, "agentd", "--home", str(target), "skills")
    assert skills.returncode == 0 and "daily-briefing" in skills.stdout, skills.stdout

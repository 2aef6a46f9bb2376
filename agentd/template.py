"""A new home from the template: the files, ``git init``, the first commit."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import git

from agentd.config import CONFIG_FILE
from agentd.errors import AgentdError, HomeError
from agentd.fileio import atomic_write
from agentd.home import AGENT, RUNTIME_DIR, Home, is_home
from agentd.identity import new_agent_id, record, with_id
from agentd.merge.attributes import install_drivers
from agentd.secrets import install_hook


def template_root() -> Path:
    """The home template, from the installed package (wheel or editable checkout)."""
    root = resources.files("agentd.home_template")
    path = Path(str(root))
    if not (path / "AGENT.md").is_file():
        raise HomeError(f"agentd's home template is missing from the installation ({path})")
    return path


def init_home(path: Path) -> Home:
    """Create a home at ``path`` from the template: files, ``git init``, one commit.

    All or nothing: if any step fails (a commit refused by a signing setup, a full
    disk), what this call created is removed again, so trying again is not told
    "already an agentd home" about a half-made one.
    """
    path = path.expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise HomeError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if is_home(path):
            raise HomeError(f"{path} is already an agentd home; nothing to do")
        raise HomeError(f"{path} is not empty and is not an agentd home; choose an empty or new directory")
    src = template_root()
    created = path  # the topmost folder this call creates; removed on failure
    while not created.parent.exists():
        created = created.parent
    existed = path.is_dir()
    try:
        return _populate_home(path, src)
    except BaseException as e:
        if existed:  # it was empty: everything in it is ours
            for child in path.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(e, (AgentdError, OSError, git.GitError)):
            raise HomeError(f"could not create a home at {path} (nothing was left behind): {e}") from None
        raise


def _populate_home(path: Path, src: Path) -> Home:
    path.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.rglob("*")):
        rel = item.relative_to(src)
        if "__pycache__" in rel.parts or rel.name == "__init__.py":
            continue
        # Dotfiles do not survive packaging, so the template names them without the dot.
        target = path / Path(*[("." + p[4:]) if p.startswith("dot-") else p for p in rel.parts])
        if item.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item, target)
    config = path / CONFIG_FILE
    agent_id = new_agent_id()
    atomic_write(config, with_id(config.read_text(encoding="utf-8"), agent_id, config))
    (path / RUNTIME_DIR).mkdir(exist_ok=True)
    git.Repo.init(path, initial_branch="main")
    install_hook(path)
    install_drivers(path)
    home = Home(path)
    home.commit("home: created by agentd init", identity=AGENT, all_changes=True)
    record(home, agent_id)
    return home

"""Shared fixtures: every test gets its own user directories and a fixed git identity."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agentd.home import Home
from agentd.template import init_home
from tests.doubles import PLUGINS

# The backend doubles are plugins like any other: their dist-info is found on sys.path.
sys.path.append(str(PLUGINS))


@pytest.fixture(autouse=True)
def isolated_user(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME, XDG dirs and git's global config at a temp dir (like simonw/llm's user_path)."""
    user = tmp_path_factory.mktemp("user")
    gitconfig = user / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Test Person\n\temail = person@example.com\n[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("XDG_DATA_HOME", str(user / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("AGENTD_HOME", raising=False)
    return user


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """A fresh home made by `agentd init`'s own code: template files, git, one commit."""
    return init_home(tmp_path / "home")

"""The home's merge setup: ``.gitattributes`` (which driver merges which file) and the drivers in ``.git/config``."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from agentd.errors import HomeError

ATTRIBUTES = ".gitattributes"
DRIVERS = ("entries", "memory", "steering", "yaml", "sections", "items", "skill", "wiki")


def attributes_text() -> str:
    """The template's ``.gitattributes`` (what ``agentd init`` writes)."""
    from agentd.template import template_root

    return (template_root() / "dot-gitattributes").read_text(encoding="utf-8")


def install_drivers(root: Path) -> None:
    """Point each ``merge.agentd-KIND.driver`` at this interpreter (.git/config is per clone, never committed)."""
    python = shlex.quote(sys.executable)
    for kind in DRIVERS:
        settings = {
            f"merge.agentd-{kind}.name": f"agentd {kind} merge",
            f"merge.agentd-{kind}.driver": f"{python} -m agentd.merge.driver {kind} %O %A %B %P",
        }
        for key, value in settings.items():
            done = subprocess.run(["git", "config", key, value], cwd=root, capture_output=True, text=True)
            if done.returncode != 0:
                raise HomeError(f"could not set {key} in {root}/.git/config: {done.stderr.strip()}")


def attributes_missing(root: Path) -> bool:
    """True when the home's ``.gitattributes`` lacks a line of the template's (an older home)."""
    path = root / ATTRIBUTES
    have = set(path.read_text(encoding="utf-8").splitlines()) if path.is_file() else set()
    return any(line not in have for line in attributes_text().splitlines() if line and not line.startswith("#"))


def with_attributes(text: str) -> str:
    """``text`` (the home's .gitattributes) with every template line it lacks appended."""
    have = set(text.splitlines())
    extra = [ln for ln in attributes_text().splitlines() if ln not in have]
    return (text.rstrip("\n") + "\n" if text.strip() else "") + "\n".join(extra) + "\n"

"""Test doubles, named as doubles; the backend doubles register through plugins/, the door every backend uses."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A dist-info folder whose entry points name the backend doubles: on sys.path (tests/conftest.py)
# importlib.metadata finds them as it finds an installed plugin.
PLUGINS = Path(__file__).parent / "plugins"
# For agentd processes a test starts: the checkout and the doubles' plugins.
PYTHONPATH = os.pathsep.join([str(ROOT), str(PLUGINS)])

"""`agentd config set`: one agent.yaml value changed, validated and committed."""

from __future__ import annotations

from agentd import config as cfg
from agentd import config_edit
from agentd.fileio import atomic_write
from agentd.home import Home


def config_set(home: Home, key: str, raw: str) -> str:
    """Set one agent.yaml value (comments kept), validate, write atomically, commit."""
    config_edit.set_value(home.root, key, raw)  # a bad key or value is reported before anything is committed
    with home.lock(purpose="config set"):
        home.absorb_person_edits()
        old = config_edit.get_value(home.root, key)
        text, _ = config_edit.set_value(home.root, key, raw)
        atomic_write(home.root / cfg.CONFIG_FILE, text)
        sha = home.commit(f"config: {key}: {old} → {raw}", identity=home.person_identity(), paths=[cfg.CONFIG_FILE])
    return sha or ""

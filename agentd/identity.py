"""The agent's stable id (its session key for routers), kept in agent.yaml, and how a copied home is told apart.

Why agent.yaml and not ``.agentd/``: the id must follow the home. ``.agentd/`` is runtime and
git-ignored, so a home moved, restored from a backup or cloned onto another machine would lose its
key and land on a cold replica. agent.yaml is committed, so a clone is the same agent, as it should be.

A copy is the case the file alone cannot tell: ``cp -r ~/agent ~/agent2`` gives two live agents one
key. ``.agentd/identity.json`` records the path this checkout last ran from with that id; a home whose
record names another path that still holds a home with the same id is a copy (a home whose old path
is gone or holds another id was moved, and the record follows it). A copy is told in a notice and
``agentd init PATH`` on it gives it an id of its own; ``agentd fork`` does that by itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from agentd.config import CONFIG_FILE, load_config, parse_document
from agentd.config_edit import dump
from agentd.errors import AgentdError
from agentd.fileio import atomic_write
from agentd.home import AGENT, Home, is_home

RECORD = "identity.json"


def new_agent_id() -> str:
    return "agentd-" + os.urandom(8).hex()


@dataclass(frozen=True)
class CopyOf:
    """This home carries the id of the home at ``original``, which still exists."""

    original: Path
    id: str

    def notice(self, root: Path) -> str:
        return (f"this home is a copy of {self.original} and shares its agent id {self.id}, so a pool routes both as "
                f"one agent; give this one its own id with: agentd init {root}")


def with_id(text: str, agent_id: str, path: Path) -> str:
    """agent.yaml's text with ``id`` set, placed after ``name`` where a person looks for it."""
    doc = parse_document(text, path)
    if "id" in doc:
        doc["id"] = agent_id
    else:
        doc.insert(1 if "name" in doc else 0, "id", agent_id, comment="this agent's id: its session key for engine pools")
    return dump(doc)


def _recorded(home: Home) -> dict[str, str]:
    try:
        raw = json.loads((home.runtime / RECORD).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return raw if isinstance(raw, dict) else {}


def record(home: Home, agent_id: str) -> None:
    home.runtime.mkdir(exist_ok=True)
    atomic_write(home.runtime / RECORD, json.dumps({"id": agent_id, "root": str(home.root)}))


def _id_at(root: Path) -> str | None:
    try:
        return load_config(root).id if is_home(root) else None
    except (AgentdError, OSError):
        return None


def check(home: Home, agent_id: str | None) -> CopyOf | None:
    """Whether this home is a copy of another live one; else remember where this id lives now."""
    if not agent_id:
        return None
    rec = _recorded(home)
    if rec.get("id") == agent_id and rec.get("root") not in (None, str(home.root)):
        original = Path(rec["root"])
        if original.exists() and _id_at(original) == agent_id:
            return CopyOf(original, agent_id)
    if rec.get("id") != agent_id or rec.get("root") != str(home.root):
        record(home, agent_id)
    return None


def renew(home: Home, *, new_id: str | None = None, why: str) -> str:
    """Give the home a new id: agent.yaml rewritten and committed, the record updated."""
    agent_id = new_id or new_agent_id()
    path = home.root / CONFIG_FILE
    with home.lock(purpose="new id"):
        home.absorb_person_edits()  # the person's own edits stay theirs, committed first
        atomic_write(path, with_id(path.read_text(encoding="utf-8"), agent_id, path))
        home.commit(f"home: a new agent id ({why})", identity=AGENT, paths=[CONFIG_FILE])
    record(home, agent_id)
    return agent_id


def init_existing(root: Path) -> str | None:
    """``agentd init`` on a home: a copy or a home without an id gets its own; else None (nothing to do)."""
    home = Home(root)
    current = _id_at(root)
    if current is None:
        return f"{root} had no agent id; it now has {renew(home, why='none was set')}"
    copy = check(home, current)
    if copy is None:
        return None
    return f"{root} was a copy of {copy.original}; it now has its own agent id {renew(home, why=f'a copy of {copy.original}')}"


"""`agentd approve` and `agentd deny`: the person's answer to a parked shell command, committed as theirs."""

from __future__ import annotations

from agentd.config import load_config
from agentd.home import Home


def approve(home: Home, approval_id: str) -> str:
    from agentd.tools import approvals

    config = load_config(home.root)
    with home.lock(purpose="approve"):
        home.absorb_person_edits()
        text = approvals.approve(home, config, approval_id)
        home.commit(f"person: approved shell command {approval_id}", identity=home.person_identity(), all_changes=True)
    return text


def deny(home: Home, approval_id: str) -> str:
    from agentd.tools import approvals

    with home.lock(purpose="deny"):
        home.absorb_person_edits()
        text = approvals.deny(home, approval_id)
        home.commit(f"person: denied shell command {approval_id}", identity=home.person_identity(), all_changes=True)
    return text

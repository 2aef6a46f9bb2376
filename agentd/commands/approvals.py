"""`agentd approve` and `agentd deny`: the person's answer to a parked shell command, committed as theirs."""

from __future__ import annotations

from agentd.config import load_config
from agentd.home import Home
from agentd.tools import approvals as parked


def approve(home: Home, approval_id: str) -> tuple[tuple[str, str], str]:
    """((command, workdir), result): the parked command exactly as recorded, run once."""
    config = load_config(home.root)
    with home.lock(purpose="approve"):
        # The page is left out: one edited behind the record is refused and committed with
        # the refusal, never first taken in as the person's own edit.
        home.absorb_person_edits(exclude=[f"{parked.FOLDER}/{approval_id}.md"])
        shown = parked.show(home, approval_id)
        text = parked.approve(home, config, approval_id)
        home.commit(f"person: approved shell command {approval_id}", identity=home.person_identity(), all_changes=True)
    return shown, text


def deny(home: Home, approval_id: str) -> str:
    with home.lock(purpose="deny"):
        home.absorb_person_edits(exclude=[f"{parked.FOLDER}/{approval_id}.md"])
        text = parked.deny(home, approval_id)
        home.commit(f"person: denied shell command {approval_id}", identity=home.person_identity(), all_changes=True)
    return text

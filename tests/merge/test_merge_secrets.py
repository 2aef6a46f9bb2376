"""The merge commit passes the home's secret scan: a credential planted in the other home is withheld, and named in the report."""

from __future__ import annotations

import subprocess

from agentd.merge.orchestrator import merge_home
from agentd.withhold import withheld
from tests.doubles.merge_model import careful_merge
from tests.merge.conftest import Pair, git
from tests.merge.test_fork_merge import engine_with

KEY = "AKIA" + "QWERTYUIOPASDFGH"  # an AWS access key id, split so this file is not one
PEOPLE = "memory/topics/people.md"


def plant(pair: Pair) -> None:
    """The other home got a credential into git past its hook (a plain ``git commit --no-verify``)."""
    theirs = pair.theirs.root
    (theirs / PEOPLE).write_text((theirs / PEOPLE).read_text() + f"- The deploy key is {KEY}\n")
    (theirs / "AGENT.md").write_text((theirs / "AGENT.md").read_text() + f"\n- Use the key {KEY}.\n")
    git(theirs, "add", "-A")
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "--no-verify", "-m", "oops"], cwd=theirs, check=True)
    ours = pair.ours
    (ours.root / "AGENT.md").write_text((ours.root / "AGENT.md").read_text() + "\n- Answer in English.\n")
    ours.absorb_person_edits()


def test_a_credential_from_the_other_home_is_withheld_from_the_merge_commit_and_named_in_the_report(forked: Pair) -> None:
    plant(forked)
    ours = forked.ours
    out = merge_home(ours, str(forked.theirs.root), engine=engine_with(careful_merge))
    assert out.commit is not None and sorted(out.withheld) == [PEOPLE]
    committed = subprocess.run(["git", "grep", "-F", KEY, out.commit], cwd=ours.root, capture_output=True, text=True)
    assert committed.returncode == 1, f"the credential is in the merge commit: {committed.stdout}"
    assert "Withheld-For-Credentials: 1" in ours.repo.head.commit.message
    # The merged text is in the working tree, uncommitted, and stays out of later commits.
    merged = (ours.root / PEOPLE).read_text()
    assert KEY in merged and "Ann flies planes" in merged  # both sides, merged
    assert PEOPLE in ours.dirty_paths() and PEOPLE in withheld(ours)
    ours.absorb_person_edits()
    assert subprocess.run(["git", "grep", "-F", KEY, "HEAD"], cwd=ours.root, capture_output=True).returncode == 1
    # The report names it (file:line and kind, never the value), and quotes no credential.
    assert out.report is not None
    report = (ours.root / out.report).read_text()
    assert f"`{PEOPLE}:" in report and "(AWS access key id)" in report and KEY not in report
    assert "Answer in English." in report  # the AGENT.md conflict is still shown, the key masked
    assert out.report not in out.withheld and out.report not in ours.dirty_paths()


def test_without_a_credential_nothing_is_withheld(forked: Pair) -> None:
    out = merge_home(forked.ours, str(forked.theirs.root))
    assert out.withheld == {} and "Withheld-For-Credentials: 0" in forked.ours.repo.head.commit.message

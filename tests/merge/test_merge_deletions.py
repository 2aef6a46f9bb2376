"""Three-way merges: what one home deleted stays deleted; deleted on one side but edited on the other is kept and reported."""

from __future__ import annotations

from pathlib import Path

from agentd.home import Home
from agentd.merge.kinds import merge_entries, merge_items, merge_sections, merge_text, merge_yaml
from agentd.merge.orchestrator import merge_home
from tests.merge.conftest import Pair

MEM = "# Memory\n\n## People\n- Alice likes tea\n- Bob likes coffee\n- Carol runs the book club\n"


def test_a_memory_line_deleted_on_one_side_stays_deleted() -> None:
    ours = MEM.replace("- Bob likes coffee\n", "")  # we deleted Bob
    theirs = MEM + "- Dan plays chess\n"
    merged = merge_text("memory", MEM, ours, theirs, "memory/MEMORY.md")
    assert "Bob likes coffee" not in merged.text and "Dan plays chess" in merged.text and not merged.conflicts
    swapped = merge_text("memory", MEM, theirs, ours, "memory/MEMORY.md")  # the other side deleted it
    assert "Bob likes coffee" not in swapped.text and "Dan plays chess" in swapped.text


def test_a_memory_line_deleted_on_one_side_and_edited_on_the_other_is_kept_and_reported() -> None:
    ours = MEM.replace("- Bob likes coffee\n", "")
    theirs = MEM.replace("- Bob likes coffee", "- Bob likes green tea now")
    merged = merge_text("memory", MEM, ours, theirs, "memory/MEMORY.md")
    assert "Bob likes green tea now" in merged.text and "Bob likes coffee" not in merged.text
    assert len(merged.conflicts) == 1 and "deleted in this home, edited in the other" in merged.conflicts[0].what
    assert merged.conflicts[0].theirs == "- Bob likes green tea now"


def test_without_a_common_base_nothing_is_taken_for_a_deletion() -> None:
    merged = merge_text("memory", "", MEM.replace("- Bob likes coffee\n", ""), MEM, "memory/MEMORY.md")
    assert "Bob likes coffee" in merged.text


def test_a_cron_job_deleted_on_one_side_stays_deleted_and_one_edited_is_kept() -> None:
    base = "# Jobs\n\n## Backup\n`0 3 * * *`\nrun the backup\n\n## Plants\n`0 9 * * 0`\nwater\n"
    ours = "# Jobs\n\n## Plants\n`0 9 * * 0`\nwater\n"  # we deleted Backup
    assert "## Backup" not in merge_sections(base, ours, base).text
    assert "## Backup" not in merge_sections(base, base, ours).text  # they deleted it, we left it
    edited = base.replace("0 3 * * *", "0 4 * * *")
    kept = merge_sections(base, ours, edited)
    assert "`0 4 * * *`" in kept.text and [c.what for c in kept.conflicts] == ["section Backup deleted in this home, edited in the other: kept"]
    kept_here = merge_sections(base, edited, ours)
    assert "`0 4 * * *`" in kept_here.text and len(kept_here.conflicts) == 1


def test_a_heartbeat_item_deleted_on_one_side_stays_deleted() -> None:
    base = "# Heartbeat\n\n## Open items\n- [ ] check backups\n- [ ] renew passport\n"
    ours = base.replace("- [ ] renew passport\n", "")
    theirs = base + "- [ ] call the plumber\n"
    merged = merge_items(base, ours, theirs)
    assert "renew passport" not in merged.text and "call the plumber" in merged.text and "check backups" in merged.text
    assert "renew passport" not in merge_items(base, theirs, ours).text
    ticked = merge_items(base, ours, base.replace("- [ ] renew passport", "- [x] renew passport"))
    assert "- [x] renew passport" in ticked.text and len(ticked.conflicts) == 1


def test_an_agent_yaml_key_deleted_on_one_side_stays_deleted_and_one_changed_is_kept() -> None:
    base = "name: a\nheartbeat:\n  every: 30m\n  active_hours: 08:00-22:00\n"
    ours = "name: a\nheartbeat:\n  every: 30m\n"  # we deleted active_hours
    assert "active_hours" not in merge_yaml(base, ours, base).text
    assert "active_hours" not in merge_yaml(base, base, ours).text
    changed = merge_yaml(base, ours, base.replace("08:00-22:00", "07:00-23:00"))
    assert "07:00-23:00" in changed.text and "deleted in this home, changed in the other" in changed.conflicts[0].what


def test_a_journal_entry_deleted_on_one_side_stays_deleted() -> None:
    base = "# 2026-01-01\n\n## 08:00 · start\n\nboth\n\n## 09:00 · wrong\n\na mistake\n"
    ours = "# 2026-01-01\n\n## 08:00 · start\n\nboth\n"
    theirs = base + "\n## 10:00 · cron\n\ntheirs at ten\n"
    merged = merge_entries(base, ours, theirs).text
    assert "a mistake" not in merged and "theirs at ten" in merged


def _drop_line(home: Home, rel: str, holding: str) -> None:
    path = home.root / rel
    path.write_text("".join(x for x in path.read_text().splitlines(keepends=True) if holding not in x))
    home.absorb_person_edits()


def test_a_fact_deleted_in_one_forked_home_does_not_come_back_after_the_merge(forked: Pair, tmp_path: Path) -> None:
    ours, theirs = forked.ours, forked.theirs
    people = "memory/topics/people.md"
    assert "Carol runs the book club" in (theirs.root / people).read_text()  # from before the fork
    _drop_line(theirs, people, "Carol runs the book club")  # the other home forgot it on purpose
    out = merge_home(ours, str(theirs.root))
    assert "Carol runs the book club" not in (ours.root / people).read_text()
    assert out.lines_lost == 0 and out.lines_deleted >= 1
    assert f"Lines-Deleted: {out.lines_deleted}" in ours.repo.head.commit.message

"""The per-kind merge functions: deterministic, nothing of either side lost, conflicts kept for the person."""

from __future__ import annotations

import json

from agentd.merge.kinds import (
    content_lines,
    has_markers,
    keep_identity,
    kind_of,
    merge_entries,
    merge_items,
    merge_sections,
    merge_yaml,
    union_lines,
)
from agentd.merge.wake import check_answer, merge_memory
from tests.doubles.merge_model import careful_merge, dropping, garbage
from tests.doubles.scripted_engine import ScriptedEngine


def test_kinds_follow_the_gitattributes_of_the_template() -> None:
    assert kind_of("memory/journal/2026-01-02.md") == "entries"
    assert kind_of("outbox/2026-01-02.md") == "entries"
    assert kind_of("memory/topics/plants.md") == "memory"
    assert kind_of("AGENT.md") == "steering"
    assert kind_of("skills/x/SKILL.md") == "skill"
    assert kind_of("notes/free.md") == "text"


def test_journal_entries_are_a_union_in_time_order_each_once() -> None:
    base = "# 2026-01-01\n\n## 08:00 · start\n\nboth\n"
    ours = base + "\n## 09:00 · message\n\nours at nine\n\n## 11:00 · message\n\nours at eleven\n"
    theirs = base + "\n## 10:00 · cron\n\ntheirs at ten\n"
    merged = merge_entries(base, ours, theirs).text
    assert merged.index("08:00") < merged.index("09:00") < merged.index("10:00") < merged.index("11:00")
    assert merged.count("## 08:00") == 1 and merged.startswith("# 2026-01-01\n")
    assert merge_entries(base, ours, theirs).text == merge_entries(base, ours, theirs).text


def test_union_of_lines_keeps_every_line_of_both_sides_and_each_side_together() -> None:
    ours = "# Memory\n\n## People\n- Alice likes tea\n- Ann is a pilot\n"
    theirs = "# Memory\n\n## People\n- Bob likes coffee\n\n## Places\n- Lisbon in May\n"
    merged = union_lines(ours, theirs)
    assert set(content_lines(ours)) | set(content_lines(theirs)) <= set(content_lines(merged))
    assert merged.index("Ann is a pilot") < merged.index("Bob likes coffee") < merged.index("## Places")
    assert union_lines(ours, ours) == ours


def test_cron_jobs_union_by_name_and_the_same_name_twice_is_a_conflict() -> None:
    base = "# Scheduled jobs\n\n## Backup\n`0 3 * * *`\nrun the backup\n"
    ours = base + "\n## Briefing\n`0 8 * * *`\nbrief me\n"
    theirs = "# Scheduled jobs\n\n## Backup\n`0 4 * * *`\nrun the backup\n\n## Plants\n`0 9 * * 0`\nwater\n"
    merged = merge_sections(base, ours, theirs)
    assert "## Briefing" in merged.text and "## Plants" in merged.text
    assert "`0 4 * * *`" in merged.text and not merged.conflicts  # only theirs changed Backup: theirs taken
    clash = merge_sections(base, ours.replace("0 3", "0 2"), theirs)
    assert [c.what for c in clash.conflicts] == ["section Backup"] and "`0 2 * * *`" in clash.text


def test_heartbeat_items_union_and_a_ticked_item_is_the_same_item() -> None:
    base = "# Heartbeat\n\n## Open items\n- [ ] check backups\n\n## Checks\n"
    ours = base.replace("- [ ] check backups", "- [x] check backups")
    theirs = base.replace("- [ ] check backups", "- [ ] check backups\n- [ ] renew passport")
    merged = merge_items(base, ours, theirs).text
    assert "- [x] check backups" in merged and "- [ ] check backups" not in merged and "renew passport" in merged


def test_agent_yaml_merges_key_by_key_keeps_comments_and_reports_both_ways() -> None:
    base = "# my agent\nname: a  # the name\nheartbeat:\n  every: 30m\nbudgets:\n  max_steps: 8\n"
    ours = base.replace("max_steps: 8", "max_steps: 12")
    theirs = base.replace("every: 30m", "every: 1h").replace("max_steps: 8", "max_steps: 4") + "id: agentd-theirs\n"
    merged = merge_yaml(base, ours, theirs)
    assert "every: 1h" in merged.text and "max_steps: 12" in merged.text and "# the name" in merged.text
    assert "agentd-theirs" not in merged.text  # who this agent is never comes from the other home
    assert [(c.what, c.ours, c.theirs) for c in merged.conflicts] == [("setting budgets.max_steps", "12", "4")]
    assert "id: agentd-ours" in keep_identity("id: agentd-ours\n", "id: agentd-theirs\nname: a\n")


def test_conflict_markers_are_found_with_their_line() -> None:
    assert has_markers("a\n<<<<<<< ours\nb\n=======\nc\n>>>>>>> theirs\n") == 2
    assert has_markers("Title\n=======\n\ntext\n") is None  # a setext heading, not a conflict


OURS = "# Memory\n- The server runs on port 8080\n- alice likes tea\n"
THEIRS = "# Memory\n- The server runs on port 9090\n- Alice likes tea.\n- Bob likes coffee\n"


def test_merge_wake_takes_an_answer_that_accounts_for_every_line() -> None:
    engine = ScriptedEngine()
    engine.queue.append(careful_merge)
    result = merge_memory("memory/MEMORY.md", OURS, THEIRS, union_lines(OURS, THEIRS), engine)
    assert result.by_model and result.rejected is None and result.folded == 1
    assert "Alice likes tea." not in result.text and "Bob likes coffee" in result.text
    assert result.contradictions == [("- The server runs on port 8080", "- The server runs on port 9090")]
    schema = engine.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["merged", "moved", "contradictions"]


def test_merge_wake_model_garbage_keeps_the_union() -> None:
    engine = ScriptedEngine()
    engine.queue.append(garbage)
    union = union_lines(OURS, THEIRS)
    result = merge_memory("memory/MEMORY.md", OURS, THEIRS, union, engine)
    assert not result.by_model and result.text == union and result.rejected == "the answer was not JSON"


def test_merge_wake_model_dropping_a_line_is_rejected_and_nothing_is_lost() -> None:
    engine = ScriptedEngine()
    engine.queue.append(dropping)
    union = union_lines(OURS, THEIRS)
    result = merge_memory("memory/MEMORY.md", OURS, THEIRS, union, engine)
    assert not result.by_model and result.text == union
    assert result.rejected is not None and "dropped a line" in result.rejected


def test_an_answer_pointing_at_a_line_it_did_not_write_is_rejected() -> None:
    answer = {"merged": "# Memory\n", "moved": [{"line": "- a", "now": "- nowhere"}], "contradictions": []}
    try:
        check_answer(json.loads(json.dumps(answer)), ["# Memory", "- a"])
    except ValueError as e:
        assert "not in the merged file" in str(e)
    else:
        raise AssertionError("accepted a move to a line that is not there")

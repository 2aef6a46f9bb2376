"""Skills: valid and invalid SKILL.md, override order, the prefix index, read_skill, built-ins."""

from __future__ import annotations

from datetime import UTC, date, datetime

from agentd.config import load_config
from agentd.events import Event
from agentd.home import Home
from agentd.skills import load_skills
from agentd.tools.base import ToolContext
from agentd.wiring import build_registry
from memory.briefing import gather_briefing_inputs


def write_skill(home: Home, name: str, text: str) -> None:
    folder = home.root / "skills" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SKILL.md").write_text(text)


def test_builtins_load() -> None:
    from pathlib import Path

    names = [s.name for s in load_skills(Path("/nonexistent")).skills]
    assert names == ["daily-briefing", "housekeeping", "knowledge-base"]


def test_valid_invalid_and_override(home: Home) -> None:
    write_skill(home, "groceries", "---\nname: groceries\ndescription: Keep the shopping list.\nwhen: [the person mentions food]\n---\nAdd items to lists/groceries.md.\n")
    write_skill(home, "broken", "---\nname: broken\ndescription: [unclosed\n---\nbody\n")
    write_skill(home, "nameless", "---\ndescription: no name\n---\nbody\n")
    write_skill(home, "housekeeping", "---\nname: housekeeping\ndescription: My own housekeeping.\n---\nMine.\n")
    skills = load_skills(home.root)
    by_name = {s.name: s for s in skills.skills}
    assert set(by_name) == {"daily-briefing", "groceries", "housekeeping", "knowledge-base"}
    assert by_name["housekeeping"].source == "home" and by_name["housekeeping"].body() == "Mine."
    assert by_name["groceries"].when == ("the person mentions food",)
    errors = sorted(str(e) for e in skills.errors)
    assert len(errors) == 2
    assert any("skills/broken/SKILL.md:3:" in e and "invalid YAML" in e for e in errors), errors
    assert any("skills/nameless/SKILL.md:1:" in e and "missing `name`" in e for e in errors), errors


def test_index_has_only_names_and_descriptions(home: Home) -> None:
    write_skill(home, "groceries", "---\nname: groceries\ndescription: Keep   the shopping\n  list.\n---\nSECRET BODY\n")
    a, b = load_skills(home.root).index_text(), load_skills(home.root).index_text()
    assert a == b and "SECRET BODY" not in a and "- groceries: Keep the shopping list.\n" in a


def test_read_skill_tool(home: Home) -> None:
    ctx = ToolContext(home, load_config(home.root), Event("message", "x", datetime.now(UTC)), "w")
    out = build_registry().execute(ctx, "read_skill", {"name": "daily-briefing"})
    assert out.ok and "briefing_inputs" in out.text and "---" not in out.text.split("\n", 1)[1][:5]
    assert "no skill" in build_registry().execute(ctx, "read_skill", {"name": "nope"}).text


def test_daily_briefing_inputs(home: Home) -> None:
    (home.root / "HEARTBEAT.md").write_text("# Heartbeat\n- [ ] renew the passport\n")
    (home.root / "CRON.md").write_text("## Morning\n`0 8 * * *`\nBrief me.\n")
    (home.root / "memory/journal/2026-11-21.md").write_text("# 2026-11-21\n\n## 10:00 · message\n\nBooked the dentist.\n")
    text = gather_briefing_inputs(home, date(2026, 11, 22))
    assert "outbox/briefing-2026-11-22.md" in text and "renew the passport" in text and "Morning" in text and "Booked the dentist" in text


def test_a_skill_saved_with_a_byte_order_mark_loads(home: Home) -> None:
    write_skill(home, "bom", "\ufeff---\nname: bom\ndescription: Saved by a Windows editor.\n---\nThe body.\n")
    skill = load_skills(home.root).get("bom")
    assert skill is not None and skill.body() == "The body." and not load_skills(home.root).errors

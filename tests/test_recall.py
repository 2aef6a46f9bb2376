"""Recall: the lines of USER.md and MEMORY.md that match a person's message, quoted beside it in the tail."""

from __future__ import annotations

from datetime import UTC, datetime

from agentd.context import REPLY_NOTE, ContextCompiler
from agentd.events import Event
from agentd.recall import recall, recall_from_home
from agentd.template import init_home

USER = "# About you\n\n- Name: Marta Kowalski\n- My pet: a grey cat named Pixel\n- My partner: Tomas\n- What I work on: Wingspan\n"
MEMORY = "# Memory\n\n- Marta rides a red bicycle to work.\n- Marta's favourite tea is jasmine tea.\n"
SOURCES = [("USER.md", USER), ("memory/MEMORY.md", MEMORY)]
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def test_the_line_sharing_the_questions_words_is_recalled() -> None:
    assert recall("What is my favourite tea?", SOURCES) == ["memory/MEMORY.md: Marta's favourite tea is jasmine tea."]
    assert recall("What colour is my bicycle?", SOURCES) == ["memory/MEMORY.md: Marta rides a red bicycle to work."]


def test_a_word_as_written_beats_the_same_stem() -> None:
    # "named" shares the stem of "name"; "Name:" is the word itself
    assert recall("What is my name?", SOURCES) == ["USER.md: Name: Marta Kowalski"]


def test_a_word_few_lines_have_beats_a_common_one() -> None:
    # "name" is on two lines, "partner" on one
    assert recall("What is my partner's name?", SOURCES) == ["USER.md: My partner: Tomas"]


def test_only_the_best_matches_are_quoted_ties_in_file_order() -> None:
    assert recall("What do I work on?", SOURCES) == ["USER.md: What I work on: Wingspan", "memory/MEMORY.md: Marta rides a red bicycle to work."]
    assert len(recall("tea tea", [("m", "tea\n" * 10)])) == 3  # at most three lines


def test_headings_empty_questions_and_no_match_recall_nothing() -> None:
    assert recall("About you", SOURCES) == []  # only the heading has those words
    assert recall("What is it?", SOURCES) == []  # no word that says anything
    assert recall("quokka", SOURCES) == []


def test_recall_reads_the_files_as_they_are_now(tmp_path: object) -> None:
    home = init_home(tmp_path / "home")  # type: ignore[operator]
    (home.root / "USER.md").write_text(USER)
    assert recall_from_home(home.root, "Who is my partner?") == ["USER.md: My partner: Tomas"]
    (home.root / "USER.md").write_text(USER.replace("Tomas", "Jonas"))
    assert recall_from_home(home.root, "Who is my partner?") == ["USER.md: My partner: Jonas"]
    (home.root / "memory" / "MEMORY.md").unlink()
    assert recall_from_home(home.root, "favourite tea") == []  # a missing file recalls nothing


def test_the_recalled_lines_close_a_persons_message_after_the_reply_note() -> None:
    msg = ContextCompiler.event_message(Event("message", "Who is my partner?", NOW), NOW, recalled=["USER.md: My partner: Tomas"])
    text = msg["content"]
    assert text.endswith("(USER.md) My partner: Tomas") and text.index(REPLY_NOTE) < text.index("(USER.md)")
    plain = ContextCompiler.event_message(Event("message", "Who is my partner?", NOW), NOW)
    assert plain["content"].endswith(REPLY_NOTE)  # nothing recalled, nothing added

"""Recall: the lines of USER.md and MEMORY.md that share words with the person's message,
quoted beside it.

Those files are in the prefix already, but a small model asked "What is my cat's name?"
does not find "My pet: a grey cat named Pixel" three thousand tokens back; quoted under
the question, it does. The quote is part of the event message, in the tail, so the
cached prefix is untouched; it is computed from the files as they are now, so an edit
the session only knows as a steering diff is quoted as it stands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

RECALL_FILES = ("USER.md", "memory/MEMORY.md")
MAX_LINES = 3
MAX_LINE_CHARS = 200
STEM = 4  # words match on their first four letters: live/lives/lived, name/named
# Words that say nothing about which fact is meant.
STOPWORDS = frozenset(["a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "done", "for", "from", "get", "got", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "like", "me", "mine", "more", "most", "my", "no", "not", "now", "of", "on", "once", "one", "only", "or", "our", "out", "over", "own", "please", "said", "same", "say", "she", "should", "so", "some", "such", "tell", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "up", "us", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "yes", "you", "your", "yours"])


def words(text: str) -> set[str]:
    """The content words of a text, lower case, without the words that say nothing."""
    return {w for w in re.findall(r"[^\W\d_]+|\d+", text.lower()) if w not in STOPWORDS and len(w) > 1}


def terms(text: str) -> set[str]:
    """The content words, stemmed (their first four letters)."""
    return {w[:STEM] for w in words(text)}


def recall(question: str, sources: Iterable[tuple[str, str]], *, limit: int = MAX_LINES) -> list[str]:
    """The lines of ``sources`` ((path, text) pairs) that match the question best, as ``path: line``.

    A line scores by the question's words it shares (stemmed), each weighed by how few
    lines have it, then by those it has as they were written ("Name:" beats "named" for
    "What is my name?"). Only the lines with
    the best score are quoted, at most ``limit``, earlier files and lines first: a small
    model copies the first fact it sees, so a weaker match is left out rather than put
    beside it. Headings are skipped.
    """
    wanted, exact = terms(question), words(question)
    if not wanted:
        return []
    lines = [(path, line.strip().lstrip("-*").strip()) for path, text in sources for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    stems = [terms(line) for _, line in lines]
    # A word few lines have says more about which line is meant ("partner" beats "name").
    spread = {t: sum(t in ls for ls in stems) for t in wanted}
    scored: list[tuple[tuple[float, int], int, str]] = []
    for order, ((path, line), line_stems) in enumerate(zip(lines, stems, strict=True)):
        shared = wanted & line_stems
        if shared:
            weight = round(sum(1 / spread[t] for t in shared), 6)
            scored.append(((weight, len(exact & words(line))), order, f"{path}: {line[:MAX_LINE_CHARS]}"))
    if not scored:
        return []
    best = max(score for score, _, _ in scored)
    return [text for score, _, text in sorted(scored, key=lambda s: s[1]) if score == best][:limit]


def recall_from_home(root: Path, question: str) -> list[str]:
    """:func:`recall` over the home's USER.md and MEMORY.md as they are on disk now."""
    sources = []
    for rel in RECALL_FILES:
        try:
            sources.append((rel, (root / rel).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue  # a missing or unreadable file has nothing to recall
    return recall(question, sources)

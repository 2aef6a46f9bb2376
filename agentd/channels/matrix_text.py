"""A reply shaped for Matrix: split at paragraph boundaries, Markdown as HTML, a transaction id per part."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

# Synapse refuses an event over 65,536 bytes (the whole event: body, formatted body and the
# envelope). A part's Markdown is kept well under half of that, for its HTML beside it.
MAX_PART_BYTES = 24_000


@cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt  # the matrix extra: the daemon runs without it

    # html off: raw HTML in the agent's text is shown as text, never passed on to clients.
    return MarkdownIt("commonmark", {"html": False}).enable("table").enable("strikethrough")


def txn_id(msg_id: str, part: int) -> str:
    """The transaction id of one part of the reply to ``msg_id``: the same on every try, so
    the homeserver posts the part once however many times agentd sends it."""
    return f"agentd.{msg_id}.{part}"


def to_html(markdown: str) -> str:
    """Matrix's ``formatted_body`` (org.matrix.custom.html) for a Markdown text."""
    return str(_markdown().render(markdown)).strip()


def content(part: str, reply_to: str) -> dict[str, object]:
    """An ``m.room.message`` event's content: text and HTML, as a reply to ``reply_to``."""
    return {
        "msgtype": "m.text",
        "body": part,
        "format": "org.matrix.custom.html",
        "formatted_body": to_html(part),
        "m.relates_to": {"m.in_reply_to": {"event_id": reply_to}},
    }


def split_reply(text: str, limit: int = MAX_PART_BYTES) -> list[str]:
    """Parts under ``limit`` bytes each, cut between paragraphs (never inside a fenced code
    block when it fits whole); a paragraph too long alone is cut between lines, then anywhere."""
    parts: list[str] = []
    current = ""
    for block in _blocks(text.strip()):
        joined = f"{current}\n\n{block}" if current else block
        if _size(joined) <= limit:
            current = joined
            continue
        if current:
            parts.append(current)
        if _size(block) <= limit:
            current = block
            continue
        pieces = _cut(block, limit)
        parts.extend(pieces[:-1])
        current = pieces[-1]
    if current:
        parts.append(current)
    return parts or [""]


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _blocks(text: str) -> list[str]:
    """Paragraphs: separated by blank lines outside ``` fences."""
    blocks: list[str] = []
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not line.strip() and not fenced:
            if lines:
                blocks.append("\n".join(lines))
                lines = []
            continue
        lines.append(line)
    if lines:
        blocks.append("\n".join(lines))
    return blocks


def _cut(block: str, limit: int) -> list[str]:
    """A block too long for one part: between lines where they fit, else at character bounds."""
    out, current = [], ""
    for line in block.splitlines():
        while _size(line) > limit:
            head = line.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
            if current:
                out.append(current)
                current = ""
            out.append(head)
            line = line[len(head):]
        joined = f"{current}\n{line}" if current else line
        if _size(joined) <= limit:
            current = joined
        else:
            out.append(current)
            current = line
    out.append(current)
    return [p for p in out if p]


def outbox_reply(home_root: Path, msg_id: str) -> str | None:
    """The reply to ``msg_id`` as the wake wrote it in outbox/ (the record when the reply note
    under .agentd/ was lost to a crash): the section headed ``… · re: <msg_id>``, less the quote."""
    heading = re.compile(rf"^## \d\d:\d\d · .* · re: {re.escape(msg_id)}$", re.M)
    for path in sorted((home_root / "outbox").glob("20*.md"), reverse=True):
        text = path.read_text(encoding="utf-8", errors="replace")
        m = heading.search(text)
        if m is None:
            continue
        rest = text[m.end():]
        end = re.search(r"^## \d\d:\d\d · ", rest, re.M)
        lines = (rest[: end.start()] if end else rest).strip("\n").splitlines()
        while lines and (lines[0].startswith(">") or not lines[0].strip()):
            lines.pop(0)  # the quoted message, then the blank line after it
        return "\n".join(lines).strip()
    return None

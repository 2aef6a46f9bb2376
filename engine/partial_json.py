"""Incremental reading of a JSON object as a model generates it: a string field's text so far, a value's raw span."""

from __future__ import annotations

import json
import re

_HEX = re.compile(r"[0-9a-fA-F]{4}")


def _key_pattern(key: str) -> re.Pattern[str]:
    return re.compile(r'"' + re.escape(key) + r'"\s*:\s*"')


def string_so_far(raw: str, start: int) -> tuple[str, bool]:
    """Decode the JSON string whose body starts at ``raw[start]`` (just past its opening quote).

    Returns (text decoded so far, closed?). A trailing escape that is not complete yet
    (``\\``, ``\\u00``, or a high surrogate waiting for its pair) is held back, so the
    text only ever grows as more of ``raw`` arrives.
    """
    i, n, end, closed = start, len(raw), len(raw), False
    while i < n:
        c = raw[i]
        if c == '"':
            end, closed = i, True
            break
        if c != "\\":
            i += 1
            continue
        if i + 1 >= n:
            end = i
            break
        if raw[i + 1] != "u":
            i += 2
            continue
        if not _HEX.fullmatch(raw[i + 2 : i + 6]):
            end = i
            break
        if 0xD800 <= int(raw[i + 2 : i + 6], 16) < 0xDC00 and not _HEX.fullmatch(raw[i + 8 : i + 12]):
            end = i  # a high surrogate: wait for the low one
            break
        i += 6
    try:
        return json.loads('"' + raw[start:end] + '"', strict=False), closed  # raw newlines too
    except json.JSONDecodeError:  # a malformed escape the grammar would not let through
        return "", closed


def field_text(raw: str, key: str, after: int = 0) -> tuple[str, bool] | None:
    """The string value of the first ``"key": "…"`` at or after ``after`` in a partial object, or None."""
    m = _key_pattern(key).search(raw, after)
    if m is None:
        return None
    return string_so_far(raw, m.end())


def field_is(raw: str, key: str, value: str) -> int | None:
    """Where ``"key": "value"`` (complete) ends in ``raw``, or None when it is not (yet) there."""
    m = _key_pattern(key).search(raw)
    if m is None:
        return None
    text, closed = string_so_far(raw, m.end())
    if not closed or text != value:
        return None
    return m.end() + len(json.dumps(value)) - 1


class StringField:
    """Streams one string field of a streamed JSON object: ``feed`` pieces in, new text out.

    ``when`` = (key, value) holds the text back until that pair is seen, e.g. the text of
    an action only once its ``"tool"`` is ``"reply"``.
    """

    def __init__(self, key: str, when: tuple[str, str] | None = None) -> None:
        self.key = key
        self.when = when
        self.raw = ""
        self.sent = 0

    def feed(self, piece: str) -> str:
        self.raw += piece
        if self.when is not None and field_is(self.raw, *self.when) is None:
            return ""
        found = field_text(self.raw, self.key)
        if found is None:
            return ""
        text = found[0]
        new = text[self.sent :]
        self.sent = len(text)
        return new


class ValueSpan:
    """Passes on the raw text of one JSON value (an object, array, string or scalar) after ``"key":``.

    Used to stream a tool call's ``arguments`` as the model writes them: ``feed`` returns
    the part of the value that arrived; ``done`` says the value is complete.
    """

    def __init__(self, key: str) -> None:
        self.pattern = re.compile(r'"' + re.escape(key) + r'"\s*:\s*')
        self.raw = ""
        self.pos: int | None = None  # where the value starts in raw, once found
        self.depth = 0
        self.in_string = False
        self.escape = False
        self.started = False
        self.done = False

    def feed(self, piece: str) -> str:
        self.raw += piece
        if self.done:
            return ""
        if self.pos is None:
            m = self.pattern.search(self.raw)
            if m is None or m.end() >= len(self.raw):
                return ""
            self.pos = m.end()
        out: list[str] = []
        while self.pos < len(self.raw) and not self.done:
            c = self.raw[self.pos]
            if not self.started and c.isspace():
                self.pos += 1
                continue
            if self.started and self.depth == 0 and not self.in_string and (c in ",}]" or c.isspace()):
                self.done = True  # a scalar ended
                break
            self.started = True
            out.append(c)
            self.pos += 1
            self._step(c)
        return "".join(out)

    def _step(self, c: str) -> None:
        if self.in_string:
            if self.escape:
                self.escape = False
            elif c == "\\":
                self.escape = True
            elif c == '"':
                self.in_string = False
                self.done = self.depth == 0
            return
        if c == '"':
            self.in_string = True
        elif c in "{[":
            self.depth += 1
        elif c in "}]":
            self.depth -= 1
            self.done = self.depth == 0

"""A memory file too large for one merge wake: its ``#`` sections, aligned on both sides by heading, in chunks that fit.

A single section too large on its own is cut between lines of the union; each side's
share of a piece is its lines the piece holds (in that side's order), so a line is in
exactly one request, and a line one side deleted goes with the line before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PREAMBLE = ""  # the key of what comes before the first heading


@dataclass(frozen=True)
class Chunk:
    """One request's share of a file: the same sections of each side and of their union."""

    title: str  # "" for the whole file; else the first and last heading it holds
    ours: str
    theirs: str
    union: str
    fits: bool = True  # False: a single section larger than the context window (its union is kept)


def split_sections(text: str) -> list[tuple[str, str]]:
    """(key, text) per section: a section starts at a ``#`` heading; a heading seen twice gets ``#2``, …"""
    out: list[tuple[str, list[str]]] = [(PREAMBLE, [])]
    seen: dict[str, int] = {}
    for line in text.splitlines(keepends=True):
        if line.startswith("#"):
            head = line.strip()
            seen[head] = seen.get(head, 0) + 1
            out.append((head if seen[head] == 1 else f"{head}#{seen[head]}", [line]))
        else:
            out[-1][1].append(line)
    return [(k, "".join(v)) for k, v in out if k != PREAMBLE or "".join(v).strip()]


def _by_key(text: str, order: list[str]) -> dict[str, str]:
    """Sections of one side keyed as in the union; one the union lacks goes with the section before it."""
    known = set(order)
    out: dict[str, str] = {}
    last = order[0] if order else PREAMBLE
    for key, body in split_sections(text):
        if key in known:
            last = key
        out[last] = out.get(last, "") + body
    return out


def chunks_for(ours: str, theirs: str, union: str, *, fits: Callable[[Chunk], bool]) -> list[Chunk]:
    """The whole file if it fits; else consecutive sections of the union grouped greedily so that each group fits."""
    whole = Chunk("", ours, theirs, union)
    if fits(whole):
        return [whole]
    sections = split_sections(union)
    order = [k for k, _ in sections]
    if len(order) < 2:
        return split_lines(Chunk(order[0] if order else "(top)", ours, theirs, union), fits)
    mine, yours = _by_key(ours, order), _by_key(theirs, order)
    out: list[Chunk] = []
    group: list[str] = []
    body = dict(sections)

    def chunk(keys: list[str], ok: bool = True) -> Chunk:
        title = keys[0] if len(keys) == 1 else f"{keys[0] or '(top)'} … {keys[-1]}"
        o, t, u = ("".join(side.get(k, "") for k in keys) for side in (mine, yours, body))
        return Chunk(title or "(top)", o, t, u, fits=ok)

    for key in order:
        if not group or fits(chunk([*group, key])):
            group.append(key)
            continue
        out += _emit(chunk(group), fits) if len(group) == 1 else [chunk(group)]
        group = [key]
    out += _emit(chunk(group), fits) if len(group) == 1 else [chunk(group)]
    return out


def _emit(one: Chunk, fits: Callable[[Chunk], bool]) -> list[Chunk]:
    """One section: as it is if it fits, else cut between lines into pieces that do."""
    return [one] if fits(one) else split_lines(one, fits)


def split_lines(big: Chunk, fits: Callable[[Chunk], bool]) -> list[Chunk]:
    """``big`` cut between lines of its union, greedily; a single line that does not fit is marked so."""
    lines = big.union.splitlines(keepends=True)
    pieces: list[list[str]] = []
    for ln in lines:
        if pieces and (not ln.strip() or fits(_piece(big, [*pieces[-1], ln], len(pieces)))):
            pieces[-1].append(ln)
        else:
            pieces.append([ln])
    out = [_piece(big, p, n) for n, p in enumerate(pieces)]
    return [c if fits(c) else Chunk(c.title, c.ours, c.theirs, c.union, fits=False) for c in out]


def _piece(big: Chunk, union_lines: list[str], n: int) -> Chunk:
    have = {x.strip() for x in union_lines if x.strip()}
    anywhere = {x.strip() for x in big.union.splitlines() if x.strip()}

    def share(side: str) -> str:
        kept: list[str] = []
        mine = False
        for ln in side.splitlines(keepends=True):
            if ln.strip() in anywhere:
                mine = ln.strip() in have
            if mine and ln.strip():  # a line the union lacks (deleted) goes with the line before it
                kept.append(ln)
        return "".join(kept)

    return Chunk(f"{big.title} (part {n + 1})", share(big.ours), share(big.theirs), "".join(union_lines))

"""What each kind of home file means to a merge: pure three-way functions from (base, ours, theirs) to a result.

No git, no model, no clock: every function here is deterministic, so the git merge
driver (:mod:`agentd.merge.driver`), ``--dry-run`` and the benchmark agree byte for byte.
A function never drops a line of either side; what it cannot decide (the same name with
two contents, a setting changed both ways) keeps this home's version and is returned
as a :class:`Conflict` for the person's merge report.
"""

from __future__ import annotations

import fnmatch
import io
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # ruamel loads only for agent.yaml: git starts this module once per merged file
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

# git attribute patterns → kind; the first match wins (see home_template/dot-gitattributes)
KINDS: tuple[tuple[str, str], ...] = (
    ("memory/journal/*", "entries"),
    ("outbox/*", "entries"),
    ("inbox/done/*", "entries"),
    ("memory/MEMORY.md", "memory"),
    ("memory/topics/*", "memory"),
    ("AGENT.md", "steering"),
    ("USER.md", "steering"),
    ("agent.yaml", "yaml"),
    ("CRON.md", "sections"),
    ("HEARTBEAT.md", "items"),
    ("skills/*", "skill"),
    ("wiki/*", "wiki"),
)
ENTRY_TIME = re.compile(r"## (\d\d:\d\d)\b")
SECTION = re.compile(r"^## +(.+?)\s*$")
MARKERS = ("<<<<<<< ", ">>>>>>> ")


@dataclass(frozen=True)
class Conflict:
    """Two versions the merge will not choose between silently: this home's is kept, both go to the report."""

    path: str
    what: str  # "the file", "job Morning briefing", "setting heartbeat.every", …
    ours: str
    theirs: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "what": self.what, "ours": self.ours, "theirs": self.theirs}


@dataclass
class Merged:
    text: str
    conflicts: list[Conflict] = field(default_factory=list)


def kind_of(path: str) -> str:
    """The merge kind of a home-relative path; "text" (git's own line merge) for anything else."""
    for pattern, kind in KINDS:
        if fnmatch.fnmatchcase(path, pattern):
            return kind
    return "text"


def has_markers(text: str) -> int | None:
    """The 1-based line of the first git conflict marker in ``text``, or None."""
    for n, line in enumerate(text.splitlines(), 1):
        # Only the opening and closing markers: a bare ``=======`` is also a Markdown heading underline.
        if line.startswith(MARKERS) or line in ("<<<<<<<", ">>>>>>>"):
            return n
    return None


def content_lines(text: str) -> list[str]:
    """The lines that carry something (not blank, not a bare comment marker), stripped of trailing space."""
    return [ln.rstrip() for ln in text.splitlines() if ln.strip()]


# ------------------------------------------------------------------ entries: journal, outbox, inbox/done
def split_entries(text: str) -> tuple[str, list[str]]:
    """(head, entries): an entry starts at a ``## `` heading and runs to the next."""
    head: list[str] = []
    entries: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            entries.append([line])
        elif entries:
            entries[-1].append(line)
        else:
            head.append(line)
    return "".join(head), ["".join(e).rstrip("\n") + "\n" for e in entries]


def merge_entries(base: str, ours: str, theirs: str, path: str = "") -> Merged:
    """Union of entries in time order; an entry in both is kept once. Files without entries: union of lines."""
    head_o, ent_o = split_entries(ours)
    head_t, ent_t = split_entries(theirs)
    if not ent_o and not ent_t:
        return Merged(union_lines(ours, theirs))
    seen = {e.strip() for e in ent_o}
    both = list(ent_o)
    for e in ent_t:
        if e.strip() not in seen:
            both.append(e)
            seen.add(e.strip())
    keyed: list[tuple[str, int, str]] = []
    last = ""
    for i, e in enumerate(both):
        m = ENTRY_TIME.match(e)
        last = m.group(1) if m else last  # an entry without a time stays after the one before it
        keyed.append((last, i, e))
    head = head_o if head_o.strip() else head_t
    if head_t.strip() and head_t.strip() != head_o.strip():
        head = union_lines(head_o, head_t)
    body = "\n".join(e for _, _, e in sorted(keyed))
    return Merged(head.rstrip("\n") + "\n\n" + body if head.strip() else body)


# ------------------------------------------------------------------ memory: the deterministic union
def union_lines(ours: str, theirs: str) -> str:
    """Every line of ours in its place, then each line only theirs has after its nearest line in common.

    Exact duplicates (ignoring trailing space) are kept once; blank lines of theirs are
    not copied (ours' layout stays), so the union of a file with itself is the file.
    """
    out = [ln.rstrip() for ln in ours.splitlines()]
    have = {ln for ln in out if ln.strip()}
    theirs_has = {ln.rstrip() for ln in theirs.splitlines()}
    anchor = len(out)
    index = {ln: i for i, ln in enumerate(out) if ln.strip()}
    for raw in theirs.splitlines():
        ln = raw.rstrip()
        if not ln.strip():
            continue
        if ln in have:
            anchor = index[ln] + 1
            continue
        # After ours' own lines that follow the anchor: each side's additions stay together.
        while anchor < len(out) and out[anchor].strip() and out[anchor] not in theirs_has and not out[anchor].startswith("#"):
            anchor += 1
        out.insert(anchor, ln)
        have.add(ln)
        index = {x: i for i, x in enumerate(out) if x.strip()}
        anchor += 1
    return "\n".join(out).rstrip("\n") + "\n"


# ------------------------------------------------------------------ named sections: CRON.md, HEARTBEAT.md
def _sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(head, [(name, body)]): a section is a ``## Name`` heading and what follows it."""
    head: list[str] = []
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines(keepends=True):
        m = SECTION.match(line)
        if m:
            out.append((m.group(1), [line]))
        elif out:
            out[-1][1].append(line)
        else:
            head.append(line)
    return "".join(head), [(n, "".join(b).rstrip("\n") + "\n") for n, b in out]


def merge_sections(base: str, ours: str, theirs: str, path: str = "CRON.md") -> Merged:
    """Union by ``## Name`` (a cron job): a name only one side has is added; two contents of one name are a conflict."""
    head_o, sec_o = _sections(ours)
    _, sec_t = _sections(theirs)
    _, sec_b = _sections(base)
    base_of = dict(sec_b)
    mine = dict(sec_o)
    result = list(sec_o)
    conflicts: list[Conflict] = []
    for name, body in sec_t:
        if name not in mine:
            result.append((name, body))
        elif mine[name].strip() != body.strip():
            if base_of.get(name, "").strip() == mine[name].strip():
                result = [(n, body if n == name else b) for n, b in result]  # only theirs changed it
            elif base_of.get(name, "").strip() != body.strip():
                conflicts.append(Conflict(path, f"section {name}", mine[name], body))
    text = head_o.rstrip("\n") + "\n\n" + "\n".join(b for _, b in result) if result else head_o
    return Merged(text, conflicts)


def merge_items(base: str, ours: str, theirs: str, path: str = "HEARTBEAT.md") -> Merged:
    """HEARTBEAT.md: per section, union of its items (open items, checks); ticking an item is one change of it."""
    head_o, sec_o = _sections(ours)
    _, sec_t = _sections(theirs)
    mine = dict(sec_o)
    result = [(n, b) for n, b in sec_o]
    for name, body in sec_t:
        if name not in mine:
            result.append((name, body))
            continue
        ours_items = {_item_key(x) for x in mine[name].splitlines()}
        extra = [x for x in body.splitlines()[1:] if x.strip() and _item_key(x) not in ours_items]
        if extra:
            merged = union_lines(mine[name], "\n".join([body.splitlines()[0], *extra]))
            result = [(n, merged if n == name else b) for n, b in result]
    return Merged(head_o.rstrip("\n") + "\n\n" + "\n".join(b for _, b in result) if result else head_o)


def _item_key(line: str) -> str:
    """An item is the same item ticked or not: ``- [x] a`` and ``- [ ] a`` are one."""
    return re.sub(r"^\s*- \[[ xX]\]\s*", "- ", line).rstrip()


# ------------------------------------------------------------------ steering, skills, anything kept whole
def merge_whole(base: str, ours: str, theirs: str, path: str = "") -> Merged:
    """A file merged whole: one side's change is taken; both changed differently is a conflict (ours kept)."""
    if ours == theirs or theirs == base:
        return Merged(ours)
    if ours == base:
        return Merged(theirs)
    return Merged(ours, [Conflict(path, "the file", ours, theirs)])


# ------------------------------------------------------------------ agent.yaml, key by key
def _yaml() -> YAML:
    from ruamel.yaml import YAML

    y = YAML()
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _load(text: str) -> CommentedMap:
    from ruamel.yaml.comments import CommentedMap

    doc = _yaml().load(text) if text.strip() else None
    return doc if isinstance(doc, CommentedMap) else CommentedMap()


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}{k}"
            out.update(_leaves(v, key + ".") if isinstance(v, dict) and v else {key: v})
    return out


def _set(doc: CommentedMap, key: str, value: Any) -> None:
    from agentd.config_edit import set_dotted  # loaded only when agent.yaml is merged

    set_dotted(doc, key, value)


def _drop(doc: CommentedMap, key: str) -> None:
    parts = key.split(".")
    node: Any = doc
    for p in parts[:-1]:
        node = node.get(p) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(parts[-1], None)


KEEP_OURS = ("id",)  # who this agent is: never taken from the other home


def merge_yaml(base: str, ours: str, theirs: str, path: str = "agent.yaml") -> Merged:
    """Key by key: a setting one side changed takes that change; changed both ways keeps ours, for the report."""
    from ruamel.yaml.error import YAMLError

    try:
        b, o, t = _load(base), _load(ours), _load(theirs)
    except YAMLError as e:
        return Merged(ours, [Conflict(path, f"the file (not valid YAML: {str(e).splitlines()[0]})", ours, theirs)])
    lb, lo, lt = _leaves(b), _leaves(o), _leaves(t)
    conflicts: list[Conflict] = []
    missing = object()
    for key in sorted(set(lb) | set(lo) | set(lt)):
        vb, vo, vt = lb.get(key, missing), lo.get(key, missing), lt.get(key, missing)
        if key in KEEP_OURS or vt in (vo, vb):
            continue
        if vo == vb:
            _drop(o, key) if vt is missing else _set(o, key, vt)
        else:
            conflicts.append(Conflict(path, f"setting {key}", _show(vo, missing), _show(vt, missing)))
    buf = io.StringIO()
    _yaml().dump(o, buf)
    return Merged(buf.getvalue(), conflicts)


def keep_identity(ours: str, merged: str) -> str:
    """``merged`` agent.yaml with this home's ``id`` (or none, as ours has none): a merge never changes who it is."""
    o, m = _load(ours), _load(merged)
    if o.get("id") == m.get("id"):
        return merged
    if "id" in o:
        m["id"] = o["id"]
    else:
        m.pop("id", None)
    buf = io.StringIO()
    _yaml().dump(m, buf)
    return buf.getvalue()


def _show(v: Any, missing: object) -> str:
    return "(not set)" if v is missing else str(v)


MERGERS = {
    "entries": merge_entries,
    "sections": merge_sections,
    "items": merge_items,
    "steering": merge_whole,
    "skill": merge_whole,
    "wiki": lambda base, ours, theirs, path="": Merged(ours),  # written again from the merged raw/ afterwards
    "yaml": merge_yaml,
}


def merge_text(kind: str, base: str, ours: str, theirs: str, path: str) -> Merged:
    """Dispatch by kind; "memory" is the deterministic union (the merge wake refines it later)."""
    if kind == "memory":
        return Merged(union_lines(ours, theirs))
    return MERGERS.get(kind, merge_whole)(base, ours, theirs, path)

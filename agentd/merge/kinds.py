"""What each kind of home file means to a merge: pure three-way functions from (base, ours, theirs) to a result.

No git, no model, no clock: every function here is deterministic, so the git merge
driver (:mod:`agentd.merge.driver`), ``--dry-run`` and the benchmark agree byte for byte.
A function never drops a line of either side unless the common base shows it was
deleted on purpose: a line (job, item, setting) in the base that one side deleted and the
other left as it was stays deleted; deleted on one side but edited on the other, the edit
is kept and reported. What it cannot decide (the same name with two contents, a setting
changed both ways) keeps this home's version and is returned as a :class:`Conflict` for
the person's merge report.
"""

from __future__ import annotations

import difflib
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
        return union3(base, ours, theirs, path)
    ent_b = {e.strip() for e in split_entries(base)[1]}
    # An entry of the base one side deleted and the other kept as it was stays deleted.
    gone_o = ent_b - {e.strip() for e in ent_o}
    gone_t = ent_b - {e.strip() for e in ent_t}
    ent_o = [e for e in ent_o if e.strip() not in gone_t]
    ent_t = [e for e in ent_t if e.strip() not in gone_o]
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


def union3(base: str, ours: str, theirs: str, path: str = "") -> Merged:
    """:func:`union_lines` that knows the base: a line one side deleted or edited and the other
    kept word for word goes (the edit stays); deleted on one side and edited on the other, the
    edit is kept and reported (a :class:`Conflict`). Without a base (unrelated homes) the plain union."""
    if not base.strip():
        return Merged(union_lines(ours, theirs))
    del_o, edits_o = _changes(base, ours)
    del_t, edits_t = _changes(base, theirs)
    conflicts = [
        *(_deleted_edited(path, x, edit, here=False) for x, edit in edits_t.items() if x in del_o),
        *(_deleted_edited(path, x, edit, here=True) for x, edit in edits_o.items() if x in del_t),
    ]
    gone_o, gone_t = del_o | set(edits_o), del_t | set(edits_t)
    return Merged(union_lines(_without(ours, gone_t), _without(theirs, gone_o)), conflicts)


def _changes(base: str, side: str) -> tuple[set[str], dict[str, str]]:
    """The base lines ``side`` no longer has: (deleted outright, edited → the lines that replaced them)."""
    a = [ln.rstrip() for ln in base.splitlines()]
    c = [ln.rstrip() for ln in side.splitlines()]
    has = set(c)
    deleted: set[str] = set()
    edited: dict[str, str] = {}
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, c, autojunk=False).get_opcodes():
        gone = [x for x in a[i1:i2] if x.strip() and x not in has]
        new = "\n".join(x for x in c[j1:j2] if x.strip())
        if tag == "replace" and new:
            edited.update({x: new for x in gone})
        elif tag in ("delete", "replace"):
            deleted.update(gone)
    return deleted, edited


def _deleted_edited(path: str, line: str, edit: str, *, here: bool) -> Conflict:
    gone = f"(deleted) {line}"
    what = "deleted in the other home, edited in this one" if here else "deleted in this home, edited in the other"
    return Conflict(path, f"a line {what}: the edit is kept", edit if here else gone, gone if here else edit)


def _without(text: str, drop: set[str]) -> str:
    """``text`` less the lines in ``drop``; a heading goes only once nothing is left under it."""
    if not drop:
        return text
    lines = [ln for ln in text.splitlines() if ln.rstrip() not in drop or ln.startswith("#")]
    out: list[str] = []
    for i, ln in enumerate(lines):
        if ln.startswith("#") and ln.rstrip() in drop:
            rest = lines[i + 1 :]
            end = next((k for k, x in enumerate(rest) if x.startswith("#")), len(rest))
            if not any(x.strip() for x in rest[:end]):
                continue
        if ln.strip() or (out and out[-1].strip()):  # no run of blank lines where lines went
            out.append(ln)
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
    """Union by ``## Name`` (a cron job): a name only one side added is added, one a side deleted
    and the other left as it was is deleted; two contents of one name are a conflict."""
    head_o, sec_o = _sections(ours)
    _, sec_t = _sections(theirs)
    base_of = {n: b.strip() for n, b in _sections(base)[1]}
    mine, yours = dict(sec_o), dict(sec_t)
    result = list(sec_o)
    conflicts: list[Conflict] = []
    for name, body in sec_t:
        was = base_of.get(name)
        if name not in mine:
            if was is None:
                result.append((name, body))  # theirs added it
            elif was != body.strip():  # we deleted it, they edited it: the edit is kept
                result.append((name, body))
                conflicts.append(Conflict(path, f"section {name} deleted in this home, edited in the other: kept", "(deleted)", body))
        elif mine[name].strip() != body.strip():
            if was == mine[name].strip():
                result = [(n, body if n == name else b) for n, b in result]  # only theirs changed it
            elif was != body.strip():
                conflicts.append(Conflict(path, f"section {name}", mine[name], body))
    for name, body in sec_o:
        was = base_of.get(name)
        if name in yours or was is None:
            continue
        if was == body.strip():
            result = [(n, b) for n, b in result if n != name]  # they deleted it, we left it as it was
        else:
            conflicts.append(Conflict(path, f"section {name} deleted in the other home, edited in this one: kept", body, "(deleted)"))
    text = head_o.rstrip("\n") + "\n\n" + "\n".join(b for _, b in result) if result else head_o
    return Merged(text, conflicts)


def merge_items(base: str, ours: str, theirs: str, path: str = "HEARTBEAT.md") -> Merged:
    """HEARTBEAT.md: per section, union of its items (open items, checks); ticking an item is one change
    of it. An item (or section) of the base one side deleted and the other left as it was stays deleted."""
    head_o, sec_o = _sections(ours)
    _, sec_t = _sections(theirs)
    sec_b = dict(_sections(base)[1])
    mine, yours = dict(sec_o), dict(sec_t)
    result: list[tuple[str, str]] = []
    conflicts: list[Conflict] = []
    for name, body in sec_o:
        if name not in yours and name in sec_b:
            if sec_b[name].strip() == body.strip():
                continue  # they deleted the section, we left it as it was
            conflicts.append(Conflict(path, f"section {name} deleted in the other home, edited in this one: kept", body, "(deleted)"))
        result.append((name, body))
    for name, body in sec_t:
        if name in mine:
            continue
        if name in sec_b and sec_b[name].strip() == body.strip():
            continue  # we deleted it
        if name in sec_b:
            conflicts.append(Conflict(path, f"section {name} deleted in this home, edited in the other: kept", "(deleted)", body))
        result.append((name, body))
    for k, (name, body) in enumerate(result):
        if name in mine and name in yours:
            merged = _merge_item_lists(sec_b.get(name, ""), body, yours[name], path)
            result[k] = (name, merged.text)
            conflicts += merged.conflicts
    return Merged(head_o.rstrip("\n") + "\n\n" + "\n".join(b for _, b in result) if result else head_o, conflicts)


def _merge_item_lists(base: str, ours: str, theirs: str, path: str) -> Merged:
    """One section both sides kept: the union of its items, keyed ticked or not, less what one side deleted."""
    keys = lambda text: {_item_key(x): x.rstrip() for x in text.splitlines()[1:] if x.strip()}  # noqa: E731
    b, o, t = keys(base), keys(ours), keys(theirs)
    conflicts: list[Conflict] = []
    drop_o = set()
    for key, line in o.items():  # they deleted an item we have
        if key in b and key not in t:
            if b[key] == line:
                drop_o.add(line)
            else:
                conflicts.append(Conflict(path, f"item deleted in the other home, edited in this one: kept: {line}", line, "(deleted)"))
    extra = []
    for key, line in t.items():
        if key in o:
            continue
        if key in b and b[key] == line:
            continue  # we deleted it
        if key in b:
            conflicts.append(Conflict(path, f"item deleted in this home, edited in the other: kept: {line}", "(deleted)", line))
        extra.append(line)
    kept = "\n".join(x for x in ours.splitlines() if x.rstrip() not in drop_o or not x.strip())
    if not extra:
        return Merged(kept.rstrip("\n") + "\n", conflicts)
    return Merged(union_lines(kept, "\n".join([theirs.splitlines()[0], *extra])), conflicts)


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
        elif vo is missing and vb is not missing:  # we deleted it, they changed it: the change is kept
            _set(o, key, vt)
            conflicts.append(Conflict(path, f"setting {key} deleted in this home, changed in the other: kept", "(not set)", _show(vt, missing)))
        elif vt is missing and vb is not missing:  # they deleted it, we changed it: ours stays
            conflicts.append(Conflict(path, f"setting {key} deleted in the other home, changed in this one: kept", _show(vo, missing), "(not set)"))
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
        return union3(base, ours, theirs, path)
    return MERGERS.get(kind, merge_whole)(base, ours, theirs, path)

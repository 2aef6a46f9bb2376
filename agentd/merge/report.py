"""What a merge tells: the figures (commit trailers), the person's report ``outbox/merge-<id>.md``, the agent's note."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from agentd.merge.kinds import Conflict
from agentd.merge.wake import MemoryMerge
from agentd.secrets import Finding


@dataclass
class MergeOutcome:
    """Everything one merge did, for the commit, the report, the CLI and the benchmark."""

    merge_id: str
    source: str  # the other home, as given
    ours: str = ""  # the commit merged into
    theirs: str = ""  # the other home's commit
    base: str = ""  # their common ancestor ("" for unrelated homes)
    files: dict[str, str] = field(default_factory=dict)  # path → kind, for files both sides changed
    conflicts: list[Conflict] = field(default_factory=list)
    memory: list[MemoryMerge] = field(default_factory=list)
    lines_ours: int = 0  # distinct memory lines on each side (per file)
    lines_theirs: int = 0
    lines_kept: int = 0  # lines of either side found word for word in the merged file
    lines_folded: int = 0  # lines the model folded into another line, each accounted for
    lines_deleted: int = 0  # lines of the base one side deleted (and the other left as they were): deleted on purpose
    lines_lost: int = 0  # lines of either side in neither: 0, or the merge is wrong
    withheld: dict[str, list[Finding]] = field(default_factory=dict)  # path → findings: left out of the commit
    held_text: dict[str, str] = field(default_factory=dict)  # path → the merged text, for the working tree
    changed: list[str] = field(default_factory=list)  # every path the merge changes in this home
    wiki_pending: list[str] = field(default_factory=list)  # sources no model compiled yet
    commit: str | None = None
    report: str | None = None  # outbox/merge-<id>.md when something waits for the person
    unrelated: bool = False
    up_to_date: bool = False  # the other home's history is already in this one: nothing to do

    @property
    def contradictions(self) -> list[tuple[str, str, str]]:
        return [(m.path, a, b) for m in self.memory for a, b in m.contradictions]

    def trailers(self) -> dict[str, str]:
        return {
            "Merge-From": self.source,
            "Lines-Ours": str(self.lines_ours),
            "Lines-Theirs": str(self.lines_theirs),
            "Lines-Kept": str(self.lines_kept),
            "Lines-Merged": str(self.lines_folded),
            "Lines-Deleted": str(self.lines_deleted),
            "Contradictions": str(len(self.contradictions)),
            "Conflicts-For-Person": str(len(self.conflicts)),
            "Withheld-For-Credentials": str(len(self.withheld)),
        }

    def summary(self) -> str:
        """One paragraph: what was merged and what waits for the person."""
        text = (
            f"merged {self.source} ({len(self.changed)} files changed, {len(self.files)} of them on both sides; "
            f"memory: {self.lines_ours} + {self.lines_theirs} lines, {self.lines_kept} kept, {self.lines_folded} folded by the model, {self.lines_deleted} deleted on one side)"
        )
        if self.contradictions:
            text += f"; {len(self.contradictions)} contradictions found"
        if self.withheld:
            text += f"; left out of git for a credential: {', '.join(sorted(self.withheld))}"
        if self.conflicts or self.contradictions or self.withheld:
            text += f"; waiting for the person: {self.report}"
        if self.wiki_pending:
            text += f"; wiki sources to compile: {', '.join(self.wiki_pending)}"
        return text


def _fence(text: str) -> str:
    return "```\n" + (text.rstrip("\n") or "(empty)") + "\n```"


def report_text(out: MergeOutcome, suggestions: dict[str, str]) -> str:
    """The person's report: each conflict with both versions side by side, the model's suggestion, the contradictions."""
    lines = [
        f"# Merge {out.merge_id}: what waits for you",
        "",
        f"Merged from `{out.source}` (commit {out.theirs[:10]}) into {out.ours[:10]}.",
        "Where the two versions differ below, this home's version was kept; nothing was merged",
        "silently. Edit the file to the version you want; the agent picks it up at its next wake.",
        "",
    ]
    for c in out.conflicts:
        lines += [f"## {c.path}: {c.what}", "", "| this home (kept) | the other home |", "|---|---|"]
        lines += [f"| {_cell(a)} | {_cell(b)} |" for a, b in side_by_side(c.ours, c.theirs)]
        lines.append("")
        if c.path in suggestions:
            lines += ["Suggested merge (the model's; not applied):", "", _fence(suggestions[c.path]), ""]
    if out.withheld:
        lines += ["## Left out of git: a credential", "", "The merged version of these files looks like it holds a credential. The merge commit",
                  "keeps this home's version (or none); the merged one is in your working tree, uncommitted,",
                  "and is committed as your edit once the credential is removed.", ""]
        lines += [f"- `{rel}:{line}` ({kind})" for rel, fs in sorted(out.withheld.items()) for _, line, kind in fs]
        lines.append("")
    if out.contradictions:
        lines += ["## Contradictions in memory", "", "Both lines were kept; at most one of them is true.", ""]
        lines += [f"- `{path}`: {a!r} vs {b!r}" for path, a, b in out.contradictions]
        lines.append("")
    return "\n".join(lines)


def side_by_side(ours: str, theirs: str, context: int = 1) -> list[tuple[str, str]]:
    """Rows of (ours, theirs) where they differ, with ``context`` equal lines around; "…" marks a gap."""
    a, b = ours.splitlines(), theirs.splitlines()
    rows: list[tuple[str, str]] = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        if rows:
            rows.append(("…", "…"))
        for _, i1, i2, j1, j2 in group:
            left, right = a[i1:i2], b[j1:j2]
            rows += [(left[k] if k < len(left) else "", right[k] if k < len(right) else "") for k in range(max(len(left), len(right)))]
    return rows or [(x, x) for x in a[:3]]


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


def agent_note(out: MergeOutcome) -> str:
    """The message the next wake's event carries: what was merged, what waits for the person."""
    text = f"(from agentd merge) You were merged with another copy of yourself: {out.summary()}."
    if out.report:
        text += f" The person has a report in {out.report}; do not change the files it lists until they answer."
    return text + "\n"


def plan_lines(out: MergeOutcome) -> list[str]:
    """``--dry-run``: what the merge would do, file by file (deterministic part only, no model)."""
    lines = [f"merge {out.source} ({out.theirs[:10]}) into {out.ours[:10]}" + (" (no common history)" if out.unrelated else "")]
    for path in out.changed:
        kind = out.files.get(path)
        how = "union of lines; the merge wake refines it" if kind == "memory" else f"merged as {kind}"
        lines.append(f"  {path}: " + (f"both changed, {how}" if kind else "taken as it is"))
    for c in out.conflicts:
        lines.append(f"  conflict for the person: {c.path}: {c.what} (this home's version kept)")
    lines.append(
        f"memory lines: {out.lines_ours} ours, {out.lines_theirs} theirs, {out.lines_kept} kept, {out.lines_lost} lost; "
        f"{len(out.conflicts)} conflicts for the person"
    )
    return lines


def outcome_lines(out: MergeOutcome, *, dry_run: bool = False) -> list[str]:
    """What `agentd merge` prints (and the daemon answers it): the commit, rejections, withheld files, the report."""
    if out.up_to_date:
        return [f"{out.source} is already merged into this home; nothing to do"]
    if dry_run:
        return [*plan_lines(out), "(dry run: nothing was changed)"]
    lines = [f"merge commit {out.commit[:10] if out.commit else '?'}: {out.summary()}"]
    for m in out.memory:
        if m.rejected:
            lines.append(f"  {m.path}: the model's merge was rejected ({m.rejected}); the union of both sides was kept")
        elif m.chunks > 1:
            lines.append(f"  {m.path}: too large for the engine's context window; merged in {m.chunks} parts")
    for rel, findings in sorted(out.withheld.items()):
        where = ", ".join(f"line {line} ({kind})" for _, line, kind in findings[:3])
        lines.append(f"  {rel}: left out of the merge commit, it looks like a credential ({where}); the merged text is in the working tree")
    if out.report:
        lines.append(f"for you: {out.report} ({len(out.conflicts)} conflicts, {len(out.contradictions)} contradictions)")
    return lines

"""The knowledge base: sources in raw/ compiled into a linked wiki in wiki/, incrementally, and linted.

The model is asked, per new or changed source, for a title, a summary and related
topics (JSON, schema-constrained so small models comply). Everything else — page
files, `[[backlinks]]`, `wiki/index.md` — is written deterministically from the
manifest `wiki/.manifest.json`, so unchanged sources cost no engine call.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from agentd.errors import StaleWriteError

if TYPE_CHECKING:
    from agentd.home import Home
    from engine.types import ChatEngine

RAW, WIKI = "raw", "wiki"
MANIFEST = "wiki/.manifest.json"
INDEX = "index"  # wiki/index.md is generated; no source's page may take its name
SOURCE_CHARS = 6000
SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")
LINK = re.compile(r"\[\[([^\]|#]+)(?:[#|][^\]]*)?\]\]")

INSTRUCTION = """\
You maintain a wiki. Read the source and answer with JSON: a short "title" for its
page (2-6 words), a "summary" (3-6 sentences, plain prose), and "topics": 1-5 short
lowercase topic words it is about."""

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "summary": {"type": "string"},
        "topics": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "summary", "topics"],
}


class _HTMLToMarkdown(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []
        self.skip = 0
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in ("p", "div", "br", "tr"):
            self.out.append("\n\n" if tag != "br" else "\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag == "a":
            self.href = dict(attrs).get("href")
            self.out.append("[")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag == "a":
            self.out.append(f"]({self.href})" if self.href else "]")
            self.href = None

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_markdown(html: str) -> str:
    parser = _HTMLToMarkdown()
    parser.feed(html)
    return re.sub(r"\n{3,}", "\n\n", "".join(parser.out)).strip() + "\n"


def source_text(home: Home, rel: str) -> str:
    text = (home.root / rel).read_text(encoding="utf-8", errors="replace")
    return html_to_markdown(text) if rel.endswith((".html", ".htm")) else text


def page_name(title: str) -> str:
    """A file-name-safe page name; ``[[Page Name]]`` links resolve to ``wiki/Page Name.md``."""
    name = re.sub(r"[\\/:*?\"<>|#^\[\]]+", " ", title).strip()
    return " ".join(name.split())[:80] or "Untitled"


def load_manifest(home: Home) -> dict[str, Any]:
    path = home.root / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return {"sources": {}}


def pending_sources(home: Home) -> list[str]:
    """Sources in raw/ that are new or changed since their page was compiled."""
    folder = home.root / RAW
    if not folder.is_dir():
        return []
    sources = load_manifest(home)["sources"]
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in SUFFIXES:
            rel = p.relative_to(home.root).as_posix()
            if sources.get(rel, {}).get("sha") != hashlib.sha256(p.read_bytes()).hexdigest():
                out.append(rel)
    return out


@dataclass
class CompileReport:
    compiled: list[str] = field(default_factory=list)  # sources sent to the model
    pages_written: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # Pages someone changed while the compile ran: their version was kept (and committed as theirs).
    stale: list[str] = field(default_factory=list)


def _read_wiki(home: Home) -> None:
    """Read every page the compile may rewrite, through the home, before the (slow) model calls.

    That read is the stale-write guard's baseline: a page the person edits while the
    model is thinking is then refused at write time instead of silently overwritten.
    """
    folder = home.root / WIKI
    for path in sorted(folder.glob("*.md")) if folder.is_dir() else []:
        home.read_bytes(path.relative_to(home.root).as_posix())
    if (home.root / MANIFEST).is_file():
        home.read_bytes(MANIFEST)


def compile_wiki(home: Home, engine: ChatEngine, *, max_tokens: int = 400) -> CompileReport:
    report = CompileReport()
    _read_wiki(home)
    manifest = load_manifest(home)
    sources: dict[str, Any] = manifest["sources"]
    before = json.loads(json.dumps(sources))
    for rel in pending_sources(home):
        text = source_text(home, rel)[:SOURCE_CHARS]
        result = engine.chat(
            [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": f"Source {rel}:\n\n{text}"}],
            response_format={"type": "json_schema", "json_schema": {"name": "wiki_page", "schema": SCHEMA}},
            max_tokens=max_tokens,
            temperature=0.0,
        )
        try:
            data = json.loads(result.content)
            title, summary = page_name(str(data["title"])), " ".join(str(data["summary"]).split())
            topics = sorted({str(t).strip().lower() for t in data.get("topics", []) if str(t).strip()})
        except (json.JSONDecodeError, KeyError, TypeError):
            report.failed.append(rel)
            continue
        taken = {v["page"].lower() for k, v in sources.items() if k != rel} | {INDEX}
        page, n = title, 2
        while page.lower() in taken:
            page, n = f"{title} {n}", n + 1
        sha = hashlib.sha256((home.root / rel).read_bytes()).hexdigest()
        sources[rel] = {"sha": sha, "page": page, "title": title, "summary": summary, "topics": topics}
        report.compiled.append(rel)
    for rel in [r for r in sources if not (home.root / r).exists()]:
        del sources[rel]  # the source is gone: its page goes with it
    report.pages_written = _write_pages(home, sources, report.stale)
    for rel, entry in list(sources.items()):
        if f"{WIKI}/{entry['page']}.md" in report.stale:
            # Its page was not written: leave the source pending so the next compile tries again.
            if rel in before:
                sources[rel] = before[rel]
            else:
                del sources[rel]
    _write(home, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n", report.pages_written, report.stale)
    return report


def _write(home: Home, rel: str, text: str, changed: list[str], stale: list[str]) -> None:
    """Write ``rel`` if its text differs, through the guard; a page changed behind the compile is kept."""
    path = home.root / rel
    if path.is_file() and path.read_bytes() == text.encode("utf-8"):
        return
    try:
        home.write_text(rel, text)
    except StaleWriteError:
        stale.append(rel)
        return
    changed.append(rel)


def _write_pages(home: Home, sources: dict[str, Any], stale: list[str]) -> list[str]:
    changed: list[str] = []
    by_page = {v["page"]: (k, v) for k, v in sources.items()}
    links: dict[str, list[str]] = {}
    for page, (_, v) in by_page.items():
        links[page] = sorted(p for p, (_, w) in by_page.items() if p != page and set(v["topics"]) & set(w["topics"]))
    for page, (rel, v) in sorted(by_page.items()):
        related = "\n".join(f"- [[{p}]]" for p in links[page]) or "- (none yet)"
        linked_from = "\n".join(f"- [[{p}]]" for p in sorted(q for q, ls in links.items() if page in ls)) or "- (none yet)"
        text = (
            f"# {v['title']}\n\n{v['summary']}\n\n"
            f"Source: `{rel}` · topics: {', '.join(v['topics']) or '—'}\n\n"
            f"## Related\n{related}\n\n## Linked from\n{linked_from}\n"
        )
        _write(home, f"{WIKI}/{page}.md", text, changed, stale)
    for old in sorted((home.root / WIKI).glob("*.md")) if (home.root / WIKI).is_dir() else []:
        rel = old.relative_to(home.root).as_posix()
        if old.stem not in by_page and old.stem != INDEX and "Source: `raw/" in old.read_text(errors="replace"):
            try:
                # Refused for a page with the person's uncommitted edits; noted in the
                # write-ahead log, so a wake killed before its commit gets the page back.
                home.delete(rel)
            except StaleWriteError:
                stale.append(rel)  # someone edited the page of a deleted source: theirs now, kept
                continue
            changed.append(rel)
    index = "# Wiki index\n\n" + "".join(f"- [[{p}]] — {v['summary'][:120]}\n" for p, (_, v) in sorted(by_page.items()))
    _write(home, f"{WIKI}/{INDEX}.md", index, changed, stale)
    return changed


@dataclass
class LintReport:
    broken: list[tuple[str, str]] = field(default_factory=list)  # (page, missing link)
    orphans: list[str] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)
    clashes: list[str] = field(default_factory=list)  # pages that would take the index's name

    def text(self) -> str:
        lines = [f"broken link: {p} → [[{t}]]" for p, t in self.broken]
        lines += [f"name clash: {c}" for c in self.clashes]
        lines += [f"orphan page (nothing links to it): {p}" for p in self.orphans]
        lines += [f"possible contradiction: {c}" for c in self.contradictions]
        return "\n".join(lines) or "the wiki is clean: no broken links, orphans, name clashes or contradictions found"


CLAIM = re.compile(r"\b([A-Z][\w ]{2,40}?) (is|are|was|were|has|have) (not |no |never )?([\w -]{2,40})")


def lint_wiki(home: Home) -> LintReport:
    report = LintReport()
    folder = home.root / WIKI
    if not folder.is_dir():
        return report
    pages = {p.stem: p.read_text(encoding="utf-8", errors="replace") for p in sorted(folder.glob("*.md"))}
    for rel, entry in sorted(load_manifest(home)["sources"].items()):
        if str(entry.get("page", "")).lower() == INDEX or str(entry.get("title", "")).lower() == INDEX:
            report.clashes.append(f"{rel} is titled {entry.get('title')!r}, the name of the wiki index; its page is [[{entry.get('page')}]]")
    if INDEX in pages and not pages[INDEX].startswith("# Wiki index"):
        report.clashes.append(f"{WIKI}/{INDEX}.md is not the generated index (a page took its name?)")
    inbound: dict[str, int] = {name: 0 for name in pages}
    for name, text in pages.items():
        for target in LINK.findall(text):
            target = target.strip()
            if target not in pages:
                report.broken.append((name, target))
            elif name != "index" and target != name:
                inbound[target] += 1
    report.orphans = sorted(n for n, c in inbound.items() if c == 0 and n != "index")
    claims: dict[tuple[str, str, str], dict[bool, str]] = {}
    for name, text in pages.items():
        for m in CLAIM.finditer(text):
            key = (m.group(1).lower(), m.group(2), m.group(4).lower().strip())
            claims.setdefault(key, {})[bool(m.group(3))] = name
    for (subject, verb, obj), sides in sorted(claims.items()):
        if True in sides and False in sides and sides[True] != sides[False]:
            report.contradictions.append(f"'{subject} {verb} {obj}' in [[{sides[False]}]] but negated in [[{sides[True]}]]")
    return report

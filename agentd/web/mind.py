"""Mind: the home's Markdown rendered, searched through the FTS5 index, and edited as the person's own edit.

A save is what an editor's save is: the file is written in place (atomically), then,
when the home lock is free, absorbed and committed as the person's commit by the same
``Home.absorb_person_edits`` the daemon runs before each wake. While a wake holds the lock
the file is left for that absorb, and the agent's stale-write guard refuses any write of
its own over it. A save whose base is not what the file holds now (someone changed it since
the page was loaded) is refused with 409 and writes nothing.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from markdown_it import MarkdownIt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentd.errors import AgentdError, LockedError
from agentd.fileio import ABSENT, atomic_write, file_digest
from agentd.home import Home
from agentd.web.app import page, refuse, web_of
from memory.search import SearchIndex

SAVE_LOCK_WAIT_S = 2.0
HIDDEN = (".git", ".agentd")
MD = MarkdownIt("commonmark", {"html": False}).enable("table")


class Refused(Exception):
    """A path or save the Mind pages refuse: the HTTP status and one clear line."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


def safe_path(home: Home, raw: str) -> tuple[str, Path]:
    """``raw`` as a Markdown file inside the home, or Refused: no ``..``, no absolute path, no symlink out."""
    if not raw or "\0" in raw or "\\" in raw:
        raise Refused(400, "give a Markdown file's path inside the home (e.g. USER.md)")
    pure = PurePosixPath(raw)
    if pure.is_absolute():
        raise Refused(400, f"{raw}: an absolute path; give a path inside the home")
    if ".." in pure.parts:
        raise Refused(400, f"{raw}: '..' leaves the home")
    if pure.parts[0] in HIDDEN or any(p.startswith(".") for p in pure.parts):
        raise Refused(403, f"{raw}: hidden and runtime files are not part of the mind")
    if pure.suffix != ".md":
        raise Refused(400, f"{raw}: only Markdown files (.md)")
    root = home.root.resolve()
    path = home.root / pure
    if root not in path.resolve().parents:
        raise Refused(403, f"{raw}: a link out of the home")
    return str(pure), path


def markdown_files(home: Home) -> list[str]:
    """Tracked and new Markdown files, as git sees them (read-only: no index lock)."""
    out = home.repo.git.ls_files("-z", "--cached", "--others", "--exclude-standard", "--", "*.md", env={"GIT_OPTIONAL_LOCKS": "0"})
    return sorted({p for p in out.split("\0") if p and (home.root / p).is_file()})


def _refused(request: Request, e: Refused) -> Response:
    return refuse(request, e.status, str(e))


async def mind(request: Request) -> Response:
    home = web_of(request).home
    groups: dict[str, list[str]] = {}
    for rel in markdown_files(home):
        top = rel.split("/", 1)[0] if "/" in rel else "home"
        groups.setdefault(top, []).append(rel)
    return page(request, "mind.html", active="mind", groups=groups)


def _requested(request: Request) -> tuple[str, Path] | Response:
    """The ``path`` query parameter as a file inside the home, or the refusal to send."""
    try:
        return safe_path(web_of(request).home, request.query_params.get("path", ""))
    except Refused as e:
        return _refused(request, e)


async def view(request: Request) -> Response:
    found = _requested(request)
    if isinstance(found, Response):
        return found
    rel, path = found
    if not path.is_file():
        return refuse(request, 404, f"{rel}: no such file")
    text = path.read_text(encoding="utf-8", errors="replace")
    return page(request, "mind_view.html", active="mind", rel=rel, html=MD.render(text))


async def edit(request: Request) -> Response:
    found = _requested(request)
    if isinstance(found, Response):
        return found
    rel, path = found
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return page(request, "mind_edit.html", active="mind", rel=rel, text=text, base=file_digest(path))


def save_edit(home: Home, raw: str, text: str, base: str) -> str:
    """Write the person's edit; commit it as theirs when the lock is free. Returns what happened."""
    rel, path = safe_path(home, raw)
    data = text.replace("\r\n", "\n").encode("utf-8")
    if base != ABSENT and not path.is_file() or base == ABSENT and path.exists():
        raise Refused(409, f"{rel} was created or removed since you opened it; reload, nothing was saved")
    if not path.parent.is_dir():
        raise Refused(400, f"{rel}: its folder does not exist")

    def write() -> None:
        if file_digest(path) != base:
            raise Refused(409, f"{rel} changed since you opened it (the agent or another editor wrote it); reload and edit again, nothing was saved")
        atomic_write(path, data)

    try:
        with home.lock(timeout=SAVE_LOCK_WAIT_S, purpose="web edit"):
            write()
            sha = home.absorb_person_edits()
    except LockedError:
        write()  # as an editor would: absorbed before the next wake, guarded against the agent's writes
        return f"saved {rel}; a wake is running, so it is committed as your edit right after it"
    return f"saved {rel} and committed it as your edit ({sha[:8]})" if sha else f"saved {rel} (no change)"


async def save(request: Request) -> Response:
    home = web_of(request).home
    form = await request.form()
    try:
        said = await run_in_threadpool(save_edit, home, str(form.get("path", "")), str(form.get("text", "")), str(form.get("base", "")))
    except Refused as e:
        return _refused(request, e)
    except AgentdError as e:
        return refuse(request, 409, str(e))
    return JSONResponse({"ok": True, "message": said})


async def search(request: Request) -> Response:
    home = web_of(request).home
    query = request.query_params.get("q", "").strip()[:200]
    hits, error = [], None
    if query:
        try:
            index = SearchIndex(home.root)
            await run_in_threadpool(index.update)
            hits = await run_in_threadpool(index.search, query, 20)
        except Exception as e:  # noqa: BLE001 - the index is a cache: a broken one is reported, never fatal
            error = f"search failed: {e} (`agentd reindex` rebuilds the index)"
    return page(request, "mind_search.html", active="mind", query=query, hits=hits, error=error)


routes = [
    Route("/mind", mind),
    Route("/mind/view", view),
    Route("/mind/edit", edit),
    Route("/mind/save", save, methods=["POST"]),
    Route("/mind/search", search),
]

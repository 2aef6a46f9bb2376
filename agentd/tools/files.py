"""File tools: read, write, edit, list — confined to the home and the folders agent.yaml allows."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from agentd.config import CONFIG_FILE
from agentd.errors import PathError, StaleWriteError, ToolError
from agentd.fileio import atomic_write, sha256
from agentd.home import RUNTIME_DIR
from agentd.tools.approvals import FOLDER as APPROVALS
from agentd.tools.base import Tool, ToolContext

MAX_READ_LINES = 400
MAX_LIST = 200


def resolve(ctx: ToolContext, path: str) -> tuple[str | None, Path]:
    """(home-relative path, absolute path), or (None, path) inside an allowed outside folder.

    Refuses ``..`` escapes, symlinks that resolve outside, absolute paths elsewhere,
    and anything in ``.git/`` or ``.agentd/``.
    """
    if not path or "\0" in path:
        raise PathError("a path is required")
    raw = Path(path).expanduser()
    full = raw if raw.is_absolute() else ctx.home.root / raw
    resolved = full.resolve()
    root = ctx.home.root.resolve()
    if resolved == root or root in resolved.parents:
        rel = ctx.home.rel(resolved)
        if rel.split("/")[0] == RUNTIME_DIR:
            raise PathError(f"{path} is in {RUNTIME_DIR}/, agentd's runtime folder")
        return rel, resolved
    for allowed in ctx.config.files_allow:
        base = Path(allowed).expanduser().resolve()
        if resolved == base or base in resolved.parents:
            return None, resolved
    raise PathError(f"{path} is outside the home (and not in files.allow)")


def read_bytes(ctx: ToolContext, rel: str | None, full: Path) -> bytes:
    """Read for the agent, remembering what it saw (the stale-write guard's baseline)."""
    if rel is not None:
        return ctx.home.read_bytes(rel)
    data = full.read_bytes()
    ctx.seen_outside[str(full)] = sha256(data)
    return data


def write(ctx: ToolContext, rel: str | None, full: Path, text: str) -> None:
    """Inside the home: the guarded, atomic, logged write; in an allowed folder: guarded and atomic.

    Outside the home there is no git history to keep the other version in, so a file
    the agent has not read in this wake, or that changed since it read it, is refused.
    """
    if rel is not None:
        if rel == APPROVALS or rel.startswith(APPROVALS + "/"):
            raise PathError(f"{rel} is in {APPROVALS}/, where only agentd writes (the person approves commands there)")
        if rel == CONFIG_FILE:
            raise PathError(f"{CONFIG_FILE} holds the engine, sandbox and shell settings: only the person changes it (agentd config set); tell them what to change")
        ctx.home.write_text(rel, text)
        ctx.note_change(rel)
        return
    key = str(full)
    current = full.read_bytes() if full.is_file() else None
    seen = ctx.seen_outside.get(key)
    if current is not None and seen is None:
        raise StaleWriteError(f"{full} exists and the agent has not read it; read it first, then write")
    if seen is not None and (current is None or sha256(current) != seen):
        raise StaleWriteError(f"{full} changed since the agent last read it (someone edited it); read it again and re-apply the change")
    data = text.encode("utf-8")
    atomic_write(full, data)
    ctx.seen_outside[key] = sha256(data)


def decode(data: bytes, path: str) -> str:
    """Strict UTF-8: a tool that rewrites a file must not turn bytes it cannot read into U+FFFD."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ToolError(f"{path} is not UTF-8 text (byte {e.start}); edit_file only edits text files") from None


class ReadFileTool(Tool):
    name = "read_file"
    description = """Read a text file (the home, or a folder agent.yaml allows). Lines come numbered;
    long files come in windows: pass offset_line to read further."""
    parameters = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "maxLength": 300, "description": "Path relative to the home."},
            "offset_line": {"type": "integer", "description": "First line to show (1-based)."},
            "max_lines": {"type": "integer", "description": f"How many lines (at most {MAX_READ_LINES})."},
        },
        "required": ["path"],
        "additionalProperties": False,
    }

    def run(self, ctx: ToolContext, **args: Any) -> str:
        rel, full = resolve(ctx, str(args["path"]))
        if not full.is_file():
            raise ToolError(f"no file {args['path']}")
        text = read_bytes(ctx, rel, full).decode("utf-8", errors="replace")
        lines = text.splitlines()
        start = max(1, int(args.get("offset_line") or 1))
        count = max(1, min(int(args.get("max_lines") or MAX_READ_LINES), MAX_READ_LINES))
        window = lines[start - 1 : start - 1 + count]
        body = "\n".join(f"{start + i:5d}  {line}" for i, line in enumerate(window))
        end = start + len(window) - 1
        if end < len(lines):
            body += f"\n[lines {start}-{end} of {len(lines)}; read on with offset_line={end + 1}]"
        return body or "(empty file)"


class WriteFileTool(Tool):
    name = "write_file"
    description = """Create or replace a whole text file. Read an existing file first: a file
    someone changed since you read it is not overwritten."""
    parameters = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "maxLength": 300, "description": "Path relative to the home."},
            "content": {"type": "string", "description": "The complete new content."},
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    }

    def run(self, ctx: ToolContext, **args: Any) -> str:
        rel, full = resolve(ctx, str(args["path"]))
        content = str(args["content"])
        write(ctx, rel, full, content)
        return f"wrote {rel or full} ({len(content)} characters)"


class EditFileTool(Tool):
    name = "edit_file"
    description = """Replace one exact piece of text in a file with another. The old text must
    occur exactly once; include enough surrounding text to make it unique."""
    parameters = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "maxLength": 300, "description": "Path relative to the home."},
            "old": {"type": "string", "description": "The exact text to replace."},
            "new": {"type": "string", "description": "The text to put in its place."},
        },
        "required": ["path", "old", "new"],
        "additionalProperties": False,
    }

    def run(self, ctx: ToolContext, **args: Any) -> str:
        rel, full = resolve(ctx, str(args["path"]))
        if not full.is_file():
            raise ToolError(f"no file {args['path']}")
        old, new = str(args["old"]), str(args["new"])
        if not old:
            raise ToolError("old must not be empty")
        text = decode(read_bytes(ctx, rel, full), str(args["path"]))
        count = text.count(old)
        if count == 0:
            raise ToolError(f"the text to replace is not in {args['path']} (read the file and copy it exactly)")
        if count > 1:
            raise ToolError(f"the text to replace occurs {count} times in {args['path']}; include more context so it occurs once")
        write(ctx, rel, full, text.replace(old, new, 1))
        return f"edited {rel or full}"


class ListFilesTool(Tool):
    name = "list_files"
    description = """List files under a folder of the home (recursively, sorted), optionally
    filtered by a glob pattern such as *.md."""
    parameters = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "maxLength": 300, "description": "Folder relative to the home (default: the home)."},
            "pattern": {"type": "string", "maxLength": 100, "description": "Glob on file names, e.g. *.md"},
        },
        "additionalProperties": False,
    }

    def run(self, ctx: ToolContext, **args: Any) -> str:
        _, folder = resolve(ctx, str(args.get("path") or "."))
        if not folder.is_dir():
            raise ToolError(f"{args.get('path')} is not a folder")
        pattern = str(args.get("pattern") or "*")
        found: list[str] = []
        total = 0
        for p in sorted(folder.rglob("*")):
            parts = p.relative_to(folder).parts
            if any(part in (".git", RUNTIME_DIR) for part in parts) or not p.is_file() or not fnmatch.fnmatch(p.name, pattern):
                continue
            total += 1
            if len(found) < MAX_LIST:
                found.append(p.relative_to(folder).as_posix())
        more = f"\n[{total - len(found)} more not shown; narrow the folder or pattern]" if total > len(found) else ""
        return ("\n".join(found) or "(no files)") + more

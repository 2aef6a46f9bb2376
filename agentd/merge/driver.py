"""The git merge driver: ``python -m agentd.merge.driver KIND %O %A %B %P``, run by git itself during a merge.

git hands it three temporary files (base, ours, theirs) and the path; it writes the
merged text over ours and exits 0. Inside ``agentd merge`` (``AGENTD_MERGE_LOG`` set)
a conflict keeps this home's version and is logged for the report; in a plain
``git merge`` it is written with git's conflict markers and the driver exits 1, so git
stops and the prefix guard refuses the marked file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from agentd.fileio import atomic_write
from agentd.merge.kinds import Merged, merge_text

LOG_ENV = "AGENTD_MERGE_LOG"


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _marked(ours: str, theirs: str) -> str:
    return f"<<<<<<< ours\n{ours.rstrip()}\n=======\n{theirs.rstrip()}\n>>>>>>> theirs\n"


def run(kind: str, base_f: str, ours_f: str, theirs_f: str, path: str) -> int:
    base, ours, theirs = _read(base_f), _read(ours_f), _read(theirs_f)
    merged: Merged = merge_text(kind, base, ours, theirs, path)
    log = os.environ.get(LOG_ENV)
    if log:
        record = {"path": path, "kind": kind, "conflicts": [c.to_json() for c in merged.conflicts]}
        with open(log, "a", encoding="utf-8") as fh:  # one line per file; git runs drivers one at a time
            fh.write(json.dumps(record) + "\n")
        atomic_write(Path(ours_f), merged.text.encode("utf-8"))
        return 0
    if merged.conflicts and kind in ("steering", "skill"):
        atomic_write(Path(ours_f), _marked(ours, theirs).encode("utf-8"))
        return 1
    atomic_write(Path(ours_f), merged.text.encode("utf-8"))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("usage: python -m agentd.merge.driver KIND BASE OURS THEIRS PATH", file=sys.stderr)
        return 2
    return run(*argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The token ledger: one record per engine request, the source of `agentd stats` and cache-break reports."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,            -- unix time the request was sent
    day TEXT NOT NULL,           -- YYYY-MM-DD in the agent's time zone, for per-day totals
    session TEXT,
    trigger TEXT NOT NULL,       -- message | heartbeat | cron:<job> | ...
    purpose TEXT NOT NULL,       -- wake | warmup | compaction | flush | selftest
    model TEXT,
    prompt_tokens INTEGER NOT NULL,
    cached_tokens INTEGER,       -- as the engine reported it; NULL = unknown, never guessed
    expected_cached INTEGER,     -- what the compiler's self-check expected
    completion_tokens INTEGER NOT NULL,
    ttft_s REAL,
    total_s REAL,
    cache_break TEXT,            -- why the cached prefix shrank, if it did
    common_chars INTEGER,        -- the self-check's longest common prefix with what the engine saw
    changed_section TEXT         -- the first section that changed, at a cache break
);
CREATE INDEX IF NOT EXISTS requests_day ON requests(day);
CREATE TABLE IF NOT EXISTS steering_diffs (  -- a prefix file changed mid-session, sent as a diff in the tail
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    day TEXT NOT NULL,
    session TEXT,
    trigger TEXT NOT NULL,       -- the wake whose tail took the diff
    cause TEXT NOT NULL,         -- "steering-diff: USER.md edited by the person"
    sections TEXT NOT NULL,      -- the changed sections, comma-separated
    diff_tokens INTEGER NOT NULL,           -- the diff's estimated size
    saved_prefix_tokens INTEGER NOT NULL,   -- prefix tokens a new prefix would have recomputed
    saved_tail_tokens INTEGER NOT NULL      -- session tail it would have re-sent
);
"""
STEERING_DIFF = "steering-diff"  # the event kind, as cache-break listings show it
# Columns added after the first release: older ledgers get them on open.
ADDED_COLUMNS = {"common_chars": "INTEGER", "changed_section": "TEXT"}


@dataclass(frozen=True)
class Record:
    trigger: str
    purpose: str
    prompt_tokens: int
    cached_tokens: int | None
    completion_tokens: int
    session: str | None = None
    model: str | None = None
    expected_cached: int | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    cache_break: str | None = None
    common_chars: int | None = None
    changed_section: str | None = None
    ts: float = 0.0
    day: str | None = None  # the agent's day (its time zone); the machine's when not given


@dataclass(frozen=True)
class SteeringRecord:
    trigger: str
    cause: str
    sections: str
    diff_tokens: int
    saved_prefix_tokens: int
    saved_tail_tokens: int
    session: str | None = None
    ts: float = 0.0
    day: str | None = None


class Ledger:
    """SQLite under ``.agentd/ledger.db``; safe for the daemon and the CLI to share."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
            for name, kind in ADDED_COLUMNS.items():
                if name not in have:
                    db.execute(f"ALTER TABLE requests ADD COLUMN {name} {kind}")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            yield db
            db.commit()
        finally:
            db.close()

    def record(self, rec: Record) -> None:
        ts = rec.ts or time.time()
        day = rec.day or datetime.fromtimestamp(ts).strftime("%Y-%m-%d")
        row = asdict(rec) | {"ts": ts, "day": day}
        cols = ", ".join(row)
        with self._db() as db:
            db.execute(f"INSERT INTO requests ({cols}) VALUES ({', '.join('?' * len(row))})", list(row.values()))

    def record_steering(self, rec: SteeringRecord) -> None:
        ts = rec.ts or time.time()
        row = asdict(rec) | {"ts": ts, "day": rec.day or datetime.fromtimestamp(ts).strftime("%Y-%m-%d")}
        with self._db() as db:
            db.execute(f"INSERT INTO steering_diffs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))

    def steering_rows(self, since: float = 0.0) -> list[dict[str, Any]]:
        with self._db() as db:
            db.row_factory = sqlite3.Row
            cur = db.execute("SELECT * FROM steering_diffs WHERE ts >= ? ORDER BY id", (since,))
            return [dict(r) for r in cur.fetchall()]

    def rows(self, since: float = 0.0) -> list[dict[str, Any]]:
        with self._db() as db:
            db.row_factory = sqlite3.Row
            cur = db.execute("SELECT * FROM requests WHERE ts >= ? ORDER BY id", (since,))
            return [dict(r) for r in cur.fetchall()]

    def tokens_on(self, day: str) -> int:
        """Prompt + completion tokens computed on ``day`` (the daily budget counts these).

        A request whose cached count is unknown counts all its prompt tokens as computed:
        the budget errs on the side of pausing background wakes, never of overrunning.
        """
        with self._db() as db:
            row = db.execute(
                "SELECT COALESCE(SUM(prompt_tokens - COALESCE(cached_tokens, 0) + completion_tokens), 0)"
                " FROM requests WHERE day = ?",
                (day,),
            ).fetchone()
        return int(row[0])


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[k]


def totals(group: list[dict[str, Any]]) -> dict[str, Any]:
    """One group's figures. Cached %, cached and computed tokens cover only the requests
    whose cached count the engine reported; the others are counted apart, never as 0."""
    prompt = sum(r["prompt_tokens"] for r in group)
    known = [r for r in group if r["cached_tokens"] is not None]
    cached = sum(r["cached_tokens"] for r in known)
    known_prompt = sum(r["prompt_tokens"] for r in known)
    ttfts = [r["ttft_s"] for r in group if r["ttft_s"] is not None]
    return {
        "requests": len(group),
        "prompt_tokens": prompt,
        "cached_tokens": cached if known else None,
        "cached_unknown_requests": len(group) - len(known),
        "cached_unknown_prompt_tokens": prompt - known_prompt,
        "hit_rate": round(cached / known_prompt, 4) if known_prompt else None,
        "computed_tokens": known_prompt - cached if known else None,
        "completion_tokens": sum(r["completion_tokens"] for r in group),
        "ttft_p50_s": _percentile(ttfts, 0.5),
        "ttft_p95_s": _percentile(ttfts, 0.95),
    }


def day_summary(t: dict[str, Any], wakes: int) -> str:
    """The journal's day summary from :func:`totals`: an unknown cached count says so, never 0%."""
    if t["cached_tokens"] is None:
        cache = "served from cache: unknown, computed: unknown (the engine reported no cached counts)"
    else:
        rate = "n/a" if t["hit_rate"] is None else f"{100 * t['hit_rate']:.1f}%"
        cache = f"served from cache: {t['cached_tokens']} ({rate}), computed: {t['computed_tokens']}"
        if t["cached_unknown_requests"]:
            known = t["requests"] - t["cached_unknown_requests"]
            cache += f" (over the {known} requests with a known cached count; unknown for {t['cached_unknown_requests']})"
    return (
        f"\n## Day summary\n\n- wakes: {wakes}, engine requests: {t['requests']}\n"
        f"- prompt tokens: {t['prompt_tokens']}, {cache}\n"
    )


def summarize(rows: list[dict[str, Any]], steering: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Requests, tokens, cached %, computed tokens and TTFT percentiles, per trigger and per day.

    ``steering``: the steering diffs of the same period (``Ledger.steering_rows``): listed
    with the cache breaks as the event kind ``steering-diff`` (a break avoided), and
    counted with the prefix tokens they saved.
    """

    def group_by(key: str) -> dict[str, Any]:
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(str(r[key]), []).append(r)
        return {k: totals(v) for k, v in sorted(groups.items())}

    breaks = [
        {
            "time": datetime.fromtimestamp(r["ts"]).isoformat(timespec="seconds"),
            "trigger": r["trigger"],
            "purpose": r["purpose"],
            "cause": r["cache_break"],
            "section": r.get("changed_section"),
        }
        for r in rows
        if r["cache_break"]
    ]
    steering = steering or []
    for r in steering:
        saved = f"prefix kept, ~{r['saved_prefix_tokens']} prefix + {r['saved_tail_tokens']} tail tokens saved, diff {r['diff_tokens']}"
        breaks.append({
            "time": datetime.fromtimestamp(r["ts"]).isoformat(timespec="seconds"),
            "trigger": r["trigger"],
            "purpose": STEERING_DIFF,
            "cause": f"{r['cause']} ({saved})",
            "section": r["sections"],
        })
    breaks.sort(key=lambda b: b["time"])
    diffs = {
        "count": len(steering),
        "diff_tokens": sum(r["diff_tokens"] for r in steering),
        "saved_prefix_tokens": sum(r["saved_prefix_tokens"] for r in steering),
        "saved_tail_tokens": sum(r["saved_tail_tokens"] for r in steering),
    }
    return {"total": totals(rows), "by_trigger": group_by("trigger"), "by_day": group_by("day"), "cache_breaks": breaks,
            "steering_diffs": diffs}


def parse_since(text: str) -> float:
    """``1d``, ``12h``, ``30m`` or an ISO date → unix time."""
    text = text.strip()
    units = {"d": 86400, "h": 3600, "m": 60}
    if text and text[-1] in units and text[:-1].isdigit():
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"--since: expected 1d, 12h, 30m or a date like 2026-11-01, got {text!r}") from None


def format_stats(summary: dict[str, Any]) -> str:
    def pct(v: float | None) -> str:
        return "  n/a" if v is None else f"{100 * v:5.1f}%"

    def ms(v: float | None) -> str:
        return "   n/a" if v is None else f"{1000 * v:6.0f}"

    def num(v: int | None) -> str:
        return "n/a" if v is None else str(v)

    lines = [f"{'':18} {'reqs':>5} {'prompt':>9} {'cached':>7} {'computed':>9} {'unknown':>7} {'ttft p50':>9} {'p95 ms':>7}"]

    def row(name: str, t: dict[str, Any]) -> str:
        return (
            f"{name[:18]:18} {t['requests']:5d} {t['prompt_tokens']:9d} {pct(t['hit_rate']):>7} "
            f"{num(t['computed_tokens']):>9} {t['cached_unknown_requests']:7d} {ms(t['ttft_p50_s']):>9} {ms(t['ttft_p95_s']):>7}"
        )

    lines.append(row("total", summary["total"]))
    lines.append("by trigger:")
    lines += ["  " + row(k, v) for k, v in summary["by_trigger"].items()]
    lines.append("by day:")
    lines += ["  " + row(k, v) for k, v in summary["by_day"].items()]
    if summary["cache_breaks"]:
        lines.append("cache breaks:")
        lines += [
            f"  {b['time']}  {b['trigger']:<14} {b['cause']}"  # a steering-diff's cause names itself
            + (f" (first change: {b['section']})" if b.get("section") and b["purpose"] != STEERING_DIFF else "")
            for b in summary["cache_breaks"][-20:]
        ]
    diffs = summary.get("steering_diffs") or {}
    if diffs.get("count"):
        lines.append(
            f"{STEERING_DIFF}s: {diffs['count']} (prefix edits sent as diffs in the tail, {diffs['diff_tokens']} tokens); "
            f"prefix tokens saved: {diffs['saved_prefix_tokens']}, session tail not re-sent: {diffs['saved_tail_tokens']}"
        )
    lines.append("cached %, computed: over requests whose cached count the engine reported; 'unknown' counts the others")
    return "\n".join(lines)


def today_since(tz: tzinfo | None = None) -> float:
    """Unix time of today's midnight in ``tz`` (the agent's zone; the machine's when None)."""
    return datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

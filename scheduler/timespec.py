"""Durations ("30m", "1h30m") and active hours ("08:00-22:00", overnight too) for the schedule."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

_PART = re.compile(r"(\d+)\s*([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``90s``, ``1h30m``, ``1d``; a plain number is minutes."""
    s = text.strip().lower().replace(" ", "")
    if s.isdigit():
        seconds = int(s) * 60
    else:
        if not s or _PART.sub("", s):
            raise ValueError(f"expected a duration such as 30m, 2h or 1h30m, got {text!r}")
        seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(s))
    if seconds <= 0:
        raise ValueError(f"expected a positive duration, got {text!r}")
    return timedelta(seconds=seconds)


def _clock(text: str) -> time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not m or int(m[1]) > 24 or int(m[2]) > 59 or (int(m[1]) == 24 and int(m[2]) != 0):
        raise ValueError(f"expected a time like 08:00, got {text!r}")
    return time(0, 0) if int(m[1]) == 24 else time(int(m[1]), int(m[2]))


@dataclass(frozen=True)
class ActiveHours:
    """A daily window in local time; ``start > end`` wraps past midnight; None means always."""

    start: time | None = None
    end: time | None = None

    @classmethod
    def parse(cls, text: str | None) -> ActiveHours:
        if text is None or text.strip().lower() in ("", "always", "24h", "any"):
            return cls()
        parts = text.split("-")
        if len(parts) != 2:
            raise ValueError(f"expected a range like 08:00-22:00, got {text!r}")
        start, end = _clock(parts[0]), _clock(parts[1])
        if start == end:
            return cls()
        return cls(start, end)

    @property
    def always(self) -> bool:
        return self.start is None

    def contains(self, dt: datetime) -> bool:
        if self.start is None or self.end is None:
            return True
        t = dt.time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def next_start(self, after: datetime) -> datetime:
        """The next moment the window opens (``after`` itself if it is inside)."""
        if self.contains(after) or self.start is None:
            return after
        candidate = after.replace(hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0)
        return candidate if candidate > after else candidate + timedelta(days=1)

    def __str__(self) -> str:
        if self.start is None or self.end is None:
            return "always"
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

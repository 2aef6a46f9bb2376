"""The checks behind agent.yaml's settings: each takes the YAML value and returns the typed
value, or raises ValueError whose text is what was expected (``agentd.config`` names the
file and line). engine/options.py has the ones backends use too.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.backends import installed
from engine.options import Check as Validator
from engine.options import text as _text
from engine.options import whole_number as _int
from scheduler.timespec import ActiveHours, parse_duration


def backend(v: Any) -> str:
    names = sorted(installed())
    if v not in names:
        raise ValueError("one of the installed backends: " + ", ".join(names))
    return str(v)


def opt_int(lo: int) -> Validator:
    inner = _int(lo)

    def check(v: Any) -> int | None:
        return None if v is None else inner(v)

    return check


def seconds(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError("a positive number of seconds")
    return float(v)


def opt_text(v: Any) -> str | None:
    return None if v is None else _text(v)


def env_name(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        raise ValueError("the name of an environment variable, e.g. OPENAI_API_KEY")
    return v


def timezone_name(v: Any) -> str:
    if v == "local":
        return "local"
    try:
        if not isinstance(v, str):
            raise ValueError(v)
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" is a folder, a name too long
        raise ValueError('an IANA time zone such as Europe/Berlin, or "local"') from None
    return v


def every(v: Any) -> timedelta | None:
    if v in (None, "off", False):
        return None
    try:
        return parse_duration(str(v))
    except ValueError:
        raise ValueError('a duration such as 30m, 2h or 1h30m, or "off"') from None


def hours(v: Any) -> str:
    try:
        ActiveHours.parse(None if v is None else str(v))
    except ValueError:
        raise ValueError('a range such as "08:00-22:00" (or "always")') from None
    return "always" if v is None else str(v)


def on_off(v: Any) -> bool:
    if v in ("on", True):
        return True
    if v in ("off", False):
        return False
    raise ValueError("on or off")


def strings(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("a list of strings")
    return tuple(v)


def regexes(v: Any) -> tuple[str, ...]:
    items = strings(v)
    for item in items:
        try:
            re.compile(item)
        except re.error as e:
            raise ValueError(f"a list of regular expressions ({item!r}: {e})") from None
    return items


def host(v: Any) -> str:
    text = v.strip().strip("[]") if isinstance(v, str) else ""
    if not text or any(c.isspace() or c in "/@" for c in text):
        raise ValueError("a host name or IP address to listen on (e.g. 127.0.0.1)")
    return text


def port(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
        raise ValueError("a TCP port from 0 (any free port) to 65535")
    return v


def env_names(v: Any) -> tuple[str, ...]:
    items = strings(v)
    for item in items:
        env_name(item)
    return items


def url(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
        raise ValueError("an http(s) URL such as https://matrix.example.org")
    return v.rstrip("/")


MATRIX_USER_ID = re.compile(r"@[^:\s]+:\S+")


def matrix_user(v: Any) -> str:
    if not isinstance(v, str) or not MATRIX_USER_ID.fullmatch(v):
        raise ValueError("a Matrix user id such as @agent:example.org")
    return v


def matrix_users(v: Any) -> tuple[str, ...]:
    items = strings(v)
    for item in items:
        if not MATRIX_USER_ID.fullmatch(item):
            raise ValueError(f"a list of Matrix user ids such as @you:example.org ({item!r} is not one)")
    return items


def matrix_rooms(v: Any) -> tuple[str, ...]:
    items = strings(v)
    for item in items:
        # Room ids of room version 12 on have no server part (!abc); aliases always have one.
        if not re.fullmatch(r"![^\s]+|#[^:\s]+:\S+", item):
            raise ValueError(f"a list of room ids (!abc:example.org) or aliases (#name:example.org) ({item!r} is not one)")
    return items

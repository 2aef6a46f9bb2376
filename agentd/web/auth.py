"""Who may use the web app: a one-time login token, a session cookie, a CSRF token, an API bearer token.

The login token and the API token are files under ``.agentd/`` (git-ignored, mode 0600),
so ``agentd open`` (another process) can hand one to the person and the daemon check it.
A login token works once: it is removed when taken. Sessions live in the daemon's memory
(a restart asks for a new link); each has its own CSRF token, which every state-changing
request carries in a form field or the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from pathlib import Path

from agentd.home import Home

LOGIN_FILE = "web-login-token"
API_FILE = "api-token"
COOKIE = "agentd_session"
MAX_SESSIONS = 64


def _write_secret(path: Path, value: str) -> None:
    """Create the file with mode 0600 from the start (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    os.replace(tmp, path)


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def new_login_token(home: Home) -> str:
    """A fresh one-time login token (it replaces an unused one)."""
    token = secrets.token_urlsafe(24)
    _write_secret(home.runtime / LOGIN_FILE, token)
    return token


def take_login_token(home: Home, offered: str) -> bool:
    """True, once, for the token ``agentd open`` wrote; the file is removed when taken."""
    path = home.runtime / LOGIN_FILE
    expected = _read_secret(path)
    if expected is None or not offered or not hmac.compare_digest(expected.encode(), offered.encode()):
        return False
    path.unlink(missing_ok=True)
    return True


def api_token(home: Home) -> str:
    """The bearer token for ``/api/messages``, made on first use."""
    path = home.runtime / API_FILE
    token = _read_secret(path)
    if token is None:
        token = secrets.token_urlsafe(32)
        _write_secret(path, token)
    return token


def check_bearer(home: Home, header: str | None) -> bool:
    expected = _read_secret(home.runtime / API_FILE)
    scheme, _, offered = (header or "").partition(" ")
    if expected is None or scheme.lower() != "bearer" or not offered.strip():
        return False
    return hmac.compare_digest(expected.encode(), offered.strip().encode())


class Sessions:
    """Session id → CSRF token, in memory; the oldest session goes when there are too many."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._csrf: dict[str, str] = {}

    def create(self) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._csrf[sid] = secrets.token_urlsafe(24)
            while len(self._csrf) > MAX_SESSIONS:
                self._csrf.pop(next(iter(self._csrf)))
        return sid

    def csrf(self, sid: str | None) -> str | None:
        """The session's CSRF token, or None when ``sid`` is no session."""
        if not sid:
            return None
        with self._lock:
            return self._csrf.get(sid)

    def check_csrf(self, sid: str | None, offered: str | None) -> bool:
        expected = self.csrf(sid)
        return expected is not None and bool(offered) and hmac.compare_digest(expected.encode(), str(offered).encode())

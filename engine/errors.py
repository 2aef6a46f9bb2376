"""Engine errors, a small tree; ``retriable`` says whether trying again may help.

    EngineError
    ├── EngineUnavailable     could not connect / the engine is down
    ├── EngineTimeout         connect, first byte, idle or total timeout fired
    ├── EngineProtocolError   malformed JSON or a stream cut off mid-way
    ├── EngineHTTPError       an HTTP error status (5xx retriable, 4xx not)
    ├── EngineStartError      the engine did not become healthy (carries its log tail)
    └── BackendMissing        the backend's package is not installed
"""

from __future__ import annotations


class EngineError(Exception):
    retriable = False
    # Streamed text the caller already received through ``on_delta`` before the failure;
    # the client never retries such a request itself (the caller would see it twice).
    partial_output = ""


class EngineUnavailable(EngineError):
    retriable = True


class EngineTimeout(EngineError):
    retriable = True


class EngineProtocolError(EngineError):
    retriable = True


class EngineHTTPError(EngineError):
    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        self.retriable = status >= 500 or status == 429
        super().__init__(f"HTTP {status}: {body[:300]}")


class EngineStartError(EngineError):
    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        super().__init__(message + (f"\n--- engine log (last lines) ---\n{log_tail}" if log_tail else ""))


class BackendMissing(EngineError):
    pass

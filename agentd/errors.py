"""The exception tree of agentd; a user's mistake is one clear line, never a traceback.

    AgentdError
    ├── UserError                 a mistake the person can fix (shown as one line)
    │   ├── SourceError           bad content in a home file: names file and line
    │   │   ├── ConfigError       agent.yaml
    │   │   ├── CronError         CRON.md
    │   │   └── FrontMatterError  YAML front matter (SKILL.md, …)
    │   ├── HomeError             no home / not a home / refused init
    │   └── LockedError           another process holds the home
    ├── StaleWriteError           the agent wrote a file changed since it read it
    ├── PathError                 a path outside what the tools may touch
    ├── SecretError               a commit would have put a secret into git
    ├── SandboxUnavailable        a command cannot be confined here (no bubblewrap, no namespaces)
    └── ToolError                 a tool failed; the text goes back to the model
"""

from __future__ import annotations

from pathlib import Path


class AgentdError(Exception):
    """Base of every error agentd raises on purpose."""


class UserError(AgentdError):
    """Something the person can fix; the CLI prints it as one line."""


class SourceError(UserError):
    """Bad content in a file, reported as ``file:line: message``."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {message}")


class ConfigError(SourceError):
    """agent.yaml holds a value agentd cannot use."""


class CronError(SourceError):
    """CRON.md holds a job agentd cannot schedule."""


class FrontMatterError(SourceError):
    """A Markdown file's YAML front matter is malformed."""


class HomeError(UserError):
    """The home is missing, is not a home, or cannot be created there."""


class LockedError(UserError):
    """Another process holds the home's lock."""


class StaleWriteError(AgentdError):
    """The agent tried to overwrite a file that changed since it last read it."""


class PathError(AgentdError):
    """A path escapes the home or the folders agent.yaml allows."""


class SecretError(UserError):
    """A commit was refused because a file would put a secret into git.

    ``findings`` holds ``(path, line, kind)`` for each credential found (never the
    credential itself), so a caller can set those files aside and commit the rest.
    """

    def __init__(self, message: str, findings: list[tuple[str, int, str]] | None = None) -> None:
        self.findings = list(findings or [])
        super().__init__(message)


class SandboxUnavailable(UserError):
    """Commands cannot be confined on this machine; the message says why and how to fix it."""


class ToolError(AgentdError):
    """A tool could not do what the model asked; the message goes back to the model."""

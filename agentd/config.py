"""agent.yaml: read and written round-trip (comments survive), validated into a typed Config."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from agentd import config_values as checks
from agentd.errors import ConfigError
from engine.backends import backend_class, installed
from engine.client import Timeouts
from engine.errors import BackendMissing
from engine.options import Check as Validator
from engine.options import choice as _choice
from engine.options import text as _text
from engine.options import whole_number as _int

CONFIG_FILE = "agent.yaml"


@dataclass(frozen=True)
class EngineConfig:
    backend: str = "llamacpp"
    model: str = "smollm2"
    tool_calling: str = "json"
    url: str | None = None
    api_key_env: str | None = None
    context_tokens: int | None = None  # the engine's context window; None: the backend's own setting
    session_header: str = "X-Session-ID"  # the header a cluster router keys sessions on
    # engine.<backend> sections: each installed backend's options as written (empty ones left out).
    backend_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    timeouts: Mapping[str, float] = field(default_factory=dict)  # seconds: connect, first_byte, idle, total

    def options(self) -> Mapping[str, Any]:
        """The chosen backend's options."""
        return self.backend_options.get(self.backend, {})

    def context_window(self) -> int | None:
        """Tokens one request may hold (prompt + completion), or None when unknown.

        Set explicitly with ``engine.context_tokens``; otherwise the backend says what its
        engine is started with (llama.cpp's ``n_ctx``, vLLM's ``max_model_len``).
        """
        if self.context_tokens:
            return self.context_tokens
        try:
            return backend_class(self.backend)().context_window(self.options())
        except (BackendMissing, TypeError, ValueError):
            return None  # the engine layer reports the bad option when it starts


@dataclass(frozen=True)
class HeartbeatConfig:
    every: timedelta | None = timedelta(minutes=30)
    active_hours: str = "08:00-22:00"


@dataclass(frozen=True)
class Budgets:
    max_steps: int = 8
    max_completion_tokens: int = 2048
    max_wall_seconds: float = 300.0
    daily_tokens: int = 2_000_000
    session_tokens: int = 6000
    memory_chars: int = 4000


@dataclass(frozen=True)
class ShellConfig:
    mode: str = "auto"
    timeout: float = 60.0
    max_output: int = 8000
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    workdirs: tuple[str, ...] = ()
    read_only: tuple[str, ...] = ()  # folders commands may read though the sandbox hides them (e.g. under /tmp)
    network: bool = True
    max_processes: int = 256
    max_memory_mb: int = 4096
    max_file_mb: int = 1024
    max_cpu_seconds: int = 600


@dataclass(frozen=True)
class MatrixConfig:
    """channels.matrix: where the agent listens on Matrix and whom it obeys."""

    homeserver: str = ""  # https://matrix.example.org
    user_id: str = ""  # the agent's own account, @agent:example.org
    token_env: str = "AGENTD_MATRIX_TOKEN"  # the variable holding its access token (never this file)
    rooms: tuple[str, ...] = ()  # room ids (!abc:server) or aliases (#name:server) it listens in
    allow: tuple[str, ...] = ()  # the senders it obeys; everyone else is ignored and reported once


@dataclass(frozen=True)
class ChannelsConfig:
    """channels: the chat apps the agent is reached through (None: not configured)."""

    matrix: MatrixConfig | None = None


@dataclass(frozen=True)
class WebConfig:
    """The web app the daemon serves (agentd/web); loopback only unless the person names a host."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8470  # 0: any free port (daemon.json says which)


@dataclass(frozen=True)
class Config:
    """The validated agent.yaml."""

    name: str = "agentd"
    timezone: str = "local"
    id: str | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    budgets: Budgets = field(default_factory=Budgets)
    shell: ShellConfig = field(default_factory=ShellConfig)
    files_allow: tuple[str, ...] = ()
    secrets_env: tuple[str, ...] = ()
    channels: ChannelsConfig = field(default_factory=ChannelsConfig)
    web: WebConfig = field(default_factory=WebConfig)


# dotted key -> validator. Each backend's own section, engine.<backend>, is its
# class's ``options`` (engine/backends.py), so a typo there is reported here too.
FIELDS: dict[str, Validator] = {
    "id": checks.opt_text,  # the agent's id (session key); set by `agentd fork`, else derived from the home's path
    "name": _text,
    "timezone": checks.timezone_name,
    "engine.backend": checks.backend,
    "engine.model": _text,
    "engine.tool_calling": _choice("json", "native"),
    "engine.url": checks.opt_text,
    "engine.api_key_env": checks.env_name,
    "engine.context_tokens": checks.opt_int(256),
    "engine.session_header": _text,
    # How long a request may wait on the engine (engine/client.py Timeouts has the defaults).
    "engine.timeouts.connect": checks.seconds,
    "engine.timeouts.first_byte": checks.seconds,
    "engine.timeouts.idle": checks.seconds,
    "engine.timeouts.total": checks.seconds,
    "heartbeat.every": checks.every,
    "heartbeat.active_hours": checks.hours,
    "budgets.max_steps": _int(1, 200),
    "budgets.max_completion_tokens": _int(16),
    "budgets.max_wall_seconds": checks.seconds,
    "budgets.daily_tokens": _int(0),
    "budgets.session_tokens": _int(500),
    "budgets.memory_chars": _int(200),
    "shell.mode": _choice("auto", "ask", "deny"),
    "shell.timeout": checks.seconds,
    "shell.max_output": _int(200),
    "shell.allow": checks.regexes,
    "shell.deny": checks.regexes,
    "shell.env": checks.env_names,
    "shell.workdirs": checks.strings,
    "shell.read_only": checks.strings,
    "shell.network": checks.on_off,
    "shell.max_processes": _int(8),
    "shell.max_memory_mb": _int(64),
    "shell.max_file_mb": _int(1),
    "shell.max_cpu_seconds": _int(1),
    "files.allow": checks.strings,
    "secrets.env": checks.env_names,
    "channels.matrix.homeserver": checks.url,
    "channels.matrix.user_id": checks.matrix_user,
    "channels.matrix.token_env": checks.env_name,
    "channels.matrix.rooms": checks.matrix_rooms,
    "channels.matrix.allow": checks.matrix_users,
    "web.enabled": checks.on_off,
    "web.host": checks.host,
    "web.port": checks.port,
}
MATRIX_REQUIRED = ("homeserver", "user_id")
OPTION_DEFAULTS = {f"engine.timeouts.{k}": v for k, v in asdict(Timeouts()).items()}


def fields() -> dict[str, Validator]:
    """FIELDS and each installed backend's options, as ``engine.<backend>.<option>``."""
    known = dict(FIELDS)
    for name, cls in installed().items():
        known.update({f"engine.{name}.{opt}": o.check for opt, o in cls.options.items()})
    return known


def setting_sections(known: Mapping[str, Validator]) -> set[str]:
    return {key.rsplit(".", i)[0] for key in known for i in range(1, key.count(".") + 1)}


def backend_option(key: str) -> tuple[str, str] | None:
    """(backend, option) for ``engine.<backend>.<option>``; an option left empty means the backend's default."""
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "engine" and parts[1] in installed():
        return parts[1], parts[2]
    return None


def _children(prefix: str, known: Mapping[str, Validator]) -> list[str]:
    """The names directly under ``prefix`` ("" for the top level): settings and sections."""
    names = {k[len(prefix):].split(".")[0] for k in known if k.startswith(prefix)}
    return sorted(names)


def unknown_setting(key: str, known: Mapping[str, Validator] | None = None) -> str:
    """``unknown setting 'heartbeat.evry' (did you mean heartbeat.every? known under heartbeat: …)``."""
    known = fields() if known is None else known
    sections = setting_sections(known)
    parts = key.split(".")
    depth = 0  # how much of the key names a known section
    while depth < len(parts) - 1 and ".".join(parts[: depth + 1]) in sections:
        depth += 1
    prefix = ".".join(parts[:depth]) + "." if depth else ""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    hint = f"did you mean {close[0]}? " if close else ""
    where = f"under {prefix[:-1]}" if prefix else "at the top level"
    return f"unknown setting {key!r} ({hint}known {where}: {', '.join(_children(prefix, known))})"


def round_trip_yaml() -> YAML:
    y = YAML()  # round-trip: comments, order and quoting survive
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _line_of(node: Any, key: str) -> int | None:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return None


def parse_document(text: str, path: Path) -> CommentedMap:
    try:
        doc = round_trip_yaml().load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(path, line, f"not valid YAML: {e.problem or e.context}") from None
    except YAMLError as e:
        raise ConfigError(path, None, f"not valid YAML: {e}") from None
    if doc is None:
        return CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ConfigError(path, 1, "expected a mapping of settings (key: value) at the top level")
    return doc


def validate(doc: CommentedMap, path: Path) -> Config:
    """Turn the document into a Config; every problem names its line and what was expected."""
    errors: list[ConfigError] = []
    values: dict[str, Any] = {}
    lines: dict[str, int | None] = {}
    known = fields()
    sections = setting_sections(known)
    present: set[str] = set()  # the sections written as mappings

    def visit(node: CommentedMap, prefix: str) -> None:
        for key in node:
            dotted = f"{prefix}{key}"
            line = lines[dotted] = _line_of(node, key)
            value = node[key]
            if dotted in known:
                if value is None and backend_option(dotted):
                    continue  # left empty: the backend's default
                try:
                    values[dotted] = known[dotted](value)
                except ValueError as e:
                    errors.append(ConfigError(path, line, f"{dotted}: expected {e}, got {value!r}"))
            elif dotted in sections:
                if isinstance(value, CommentedMap):
                    present.add(dotted)
                    visit(value, dotted + ".")
                elif value is not None:
                    errors.append(ConfigError(path, line, f"{dotted}: expected a section of settings"))
            else:
                errors.append(ConfigError(path, line, unknown_setting(dotted, known)))

    visit(doc, "")
    chosen = values.get("engine.backend")
    if chosen in installed() and not installed()[chosen].supervised and installed()[chosen].needs_url and not values.get("engine.url"):
        errors.append(ConfigError(path, lines.get("engine.backend"), f"engine.url is required for backend: {chosen} (e.g. url: http://127.0.0.1:8000/v1)"))
    if "channels.matrix" in present:
        missing = [k for k in MATRIX_REQUIRED if f"channels.matrix.{k}" not in values]
        if missing:
            errors.append(ConfigError(path, lines.get("channels.matrix"), f"channels.matrix: {' and '.join(missing)} required (e.g. homeserver: https://matrix.example.org, user_id: '@agent:example.org')"))
    leaked = sorted(set(values.get("shell.env", ())) & set(values.get("secrets.env", ())))
    if leaked:
        errors.append(ConfigError(path, lines.get("shell.env"), f"shell.env: {', '.join(leaked)} is listed in secrets.env; a secret never enters a command's environment"))
    errors.sort(key=lambda err: err.line or 0)
    if errors:
        first = errors[0]
        if len(errors) > 1:
            rest = "\n".join(str(e) for e in errors[1:])
            raise ConfigError(first.path, first.line, f"{first.message}\n{rest}")
        raise first

    def get(key: str, default: Any) -> Any:
        return values.get(key, default)

    def options(section: str) -> dict[str, Any]:
        return {k[len(section) + 1:]: v for k, v in values.items() if k.startswith(section + ".")}

    e, h, b, s = EngineConfig(), HeartbeatConfig(), Budgets(), ShellConfig()
    return Config(
        name=get("name", Config.name),
        id=get("id", None),
        timezone=get("timezone", Config.timezone),
        engine=EngineConfig(
            backend=get("engine.backend", e.backend),
            model=get("engine.model", e.model),
            tool_calling=get("engine.tool_calling", e.tool_calling),
            url=get("engine.url", e.url),
            api_key_env=get("engine.api_key_env", e.api_key_env),
            context_tokens=get("engine.context_tokens", e.context_tokens),
            session_header=get("engine.session_header", e.session_header),
            backend_options={name: opts for name in installed() if (opts := options(f"engine.{name}"))},
            timeouts=options("engine.timeouts"),
        ),
        heartbeat=HeartbeatConfig(
            every=get("heartbeat.every", h.every),
            active_hours=get("heartbeat.active_hours", h.active_hours),
        ),
        budgets=Budgets(**{k: get(f"budgets.{k}", getattr(b, k)) for k in b.__dataclass_fields__}),
        shell=ShellConfig(**{k: get(f"shell.{k}", getattr(s, k)) for k in s.__dataclass_fields__}),
        files_allow=get("files.allow", ()),
        secrets_env=get("secrets.env", ()),
        channels=ChannelsConfig(matrix=_matrix_config(options("channels.matrix")) if "channels.matrix" in present else None),
        web=WebConfig(**{k: get(f"web.{k}", getattr(WebConfig(), k)) for k in WebConfig.__dataclass_fields__}),
    )


def _matrix_config(opts: Mapping[str, Any]) -> MatrixConfig:
    return MatrixConfig(**{k: v for k in MatrixConfig.__dataclass_fields__ if (v := opts.get(k)) is not None})


def load_config(home_root: Path) -> Config:
    path = home_root / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "missing; every home needs an agent.yaml") from None
    except UnicodeDecodeError:
        raise ConfigError(path, None, "not UTF-8 text") from None
    return validate(parse_document(text, path), path)

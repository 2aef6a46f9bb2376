"""Reading and changing single settings of agent.yaml: `agentd config get/set`, `agentd model use`, merges.

Every change is made on the round-trip document (comments, order and quoting survive)
and validated as the text that will be on disk, so its errors carry real line numbers.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from agentd.config import (
    CONFIG_FILE,
    OPTION_DEFAULTS,
    Config,
    MatrixConfig,
    backend_option,
    fields,
    parse_document,
    round_trip_yaml,
    setting_sections,
    unknown_setting,
    validate,
)
from agentd.errors import ConfigError
from engine.backends import backend_class


def dump(doc: CommentedMap) -> str:
    buf = io.StringIO()
    round_trip_yaml().dump(doc, buf)
    return buf.getvalue()


def get_value(home_root: Path, key: str) -> Any:
    path = home_root / CONFIG_FILE
    doc = parse_document(path.read_text(encoding="utf-8"), path)
    node: Any = doc
    known = fields()
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if key in known:
                return _default_of(key)
            if key in setting_sections(known):
                return {}
            raise ConfigError(path, None, unknown_setting(key, known))
        node = node[part]
    return node


def _default_of(key: str) -> Any:
    if key in OPTION_DEFAULTS:
        return OPTION_DEFAULTS[key]
    if option := backend_option(key):
        return backend_class(option[0]).options[option[1]].default
    renamed = {"files.allow": "files_allow", "secrets.env": "secrets_env"}
    if key.startswith("channels.matrix."):
        return getattr(MatrixConfig(), key.rsplit(".", 1)[1])
    obj: Any = Config()
    if key in renamed:
        return getattr(obj, renamed[key])
    for part in key.split("."):
        obj = obj.get(part) if isinstance(obj, Mapping) else getattr(obj, part)
    return obj


def set_value(home_root: Path, key: str, raw: str) -> tuple[str, Config]:
    """Set ``key`` to the YAML scalar ``raw``; returns the new file text and Config.

    Comments and order survive. The file is not touched: the caller writes it
    (atomically) and commits it, once validation has passed.
    """
    return set_values(home_root, {key: raw})


def set_dotted(doc: CommentedMap, key: str, value: Any) -> None:
    """Set ``a.b.c`` in a round-trip document, making the sections on the way (comments kept)."""
    parts = key.split(".")
    node = doc
    for part in parts[:-1]:
        if not isinstance(node.get(part), CommentedMap):
            node[part] = CommentedMap()
        node = node[part]
    node[parts[-1]] = value


def set_values(home_root: Path, changes: Mapping[str, str]) -> tuple[str, Config]:
    """Several settings at once, validated together (see :func:`set_value`)."""
    path = home_root / CONFIG_FILE
    doc = parse_document(path.read_text(encoding="utf-8"), path)
    known = fields()
    for key, raw in changes.items():
        if key not in known:
            raise ConfigError(path, None, unknown_setting(key, known))
        try:
            value = round_trip_yaml().load(raw) if raw.strip() else None
        except YAMLError as e:
            why = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(path, None, f"{key}: {raw!r} is not a YAML value ({why}); to set it as text, quote it: '\"{raw}\"'") from None
        set_dotted(doc, key, value)
    text = dump(doc)
    # Validate the text as it will be on disk, so errors carry its real line numbers.
    config = validate(parse_document(text, path), path)
    return text, config

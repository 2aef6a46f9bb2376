"""Bad input, fuzzed: agent.yaml, inbox files and model tool calls never crash agentd.

Each either works or fails with a clear error that names the file and line;
the last good state is kept.
"""

from __future__ import annotations

import json
import os
import string
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentd.config import Config, load_config, parse_document, validate
from agentd.errors import ConfigError
from agentd.events import Event
from agentd.home import Home
from agentd.inbox import read_message
from agentd.template import init_home
from agentd.tools.base import ToolContext
from agentd.wiring import build_registry

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
# The same examples on every run (CI stays reproducible); to hunt for new ones:
#   AGENTD_FUZZ_RANDOM=1 AGENTD_FUZZ_EXAMPLES=3000 pytest tests/reliability/test_fuzz_inputs.py
FUZZ = settings(
    max_examples=int(os.environ.get("AGENTD_FUZZ_EXAMPLES", "150")),
    derandomize=not os.environ.get("AGENTD_FUZZ_RANDOM"),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return init_home(tmp_path_factory.mktemp("fuzz") / "home")


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False), st.text(max_size=20))
yaml_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(string.ascii_lowercase + "_.", min_size=1, max_size=12), inner, max_size=4)), max_leaves=12)
known_keys = st.sampled_from(
    ["name", "timezone", "engine", "heartbeat", "budgets", "shell", "files", "secrets", "engine.backend", "heartbeat.every", "budgets.max_steps", "shell.mode", "shell.deny"]
)


@FUZZ
@given(doc=st.dictionaries(st.one_of(known_keys, st.text(min_size=1, max_size=10)), yaml_values, max_size=6))
def test_agent_yaml_structures(doc: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> None:
    path = Path("agent.yaml")
    text = json.dumps(doc)  # JSON is YAML: any structure, any types
    try:
        config = validate(parse_document(text, path), path)
    except ConfigError as e:
        assert str(e).startswith("agent.yaml")
        assert e.message
    else:
        assert isinstance(config, Config)


@FUZZ
@given(text=st.text(max_size=400))
def test_agent_yaml_arbitrary_text(text: str) -> None:
    path = Path("agent.yaml")
    try:
        validate(parse_document(text, path), path)
    except ConfigError as e:
        assert str(e).startswith("agent.yaml")


def test_bad_agent_yaml_keeps_file_and_names_line(shared_home: Home) -> None:
    path = shared_home.root / "agent.yaml"
    good = path.read_text()
    path.write_text(good.replace("max_steps: 8", "max_steps: many"))
    with pytest.raises(ConfigError) as err:
        load_config(shared_home.root)
    line = next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if "max_steps" in ln)
    assert f"agent.yaml:{line}:" in str(err.value)
    path.write_text(good)


@FUZZ
@given(data=st.one_of(st.binary(max_size=3000), st.text(max_size=3000).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_inbox_files_always_become_events(data: bytes, shared_home: Home) -> None:
    rel = "inbox/fuzz.bin"
    (shared_home.root / rel).write_bytes(data)
    event = read_message(shared_home, rel, NOW)
    assert event is not None and event.kind == "message" and event.text.strip()
    assert len(event.text) <= 21_000


def test_huge_and_empty_inbox_files(shared_home: Home) -> None:
    (shared_home.root / "inbox/huge.md").write_bytes(b"x" * 5_000_000)
    ev = read_message(shared_home, "inbox/huge.md", NOW)
    assert ev is not None and "truncated" in ev.text and len(ev.text) < 21_000
    (shared_home.root / "inbox/empty.md").write_bytes(b"")
    ev = read_message(shared_home, "inbox/empty.md", NOW)
    assert ev is not None and ev.text == "(an empty message)"
    (shared_home.root / "inbox/latin1.md").write_bytes("café".encode("latin-1"))
    ev = read_message(shared_home, "inbox/latin1.md", NOW)
    assert ev is not None and "not valid UTF-8" in ev.text


# st.text never yields lone surrogates by default, yet a model's JSON can carry "\ud800":
# mix them in on purpose (category Cs), alone and inside ordinary text.
surrogate_text = st.one_of(
    st.text(alphabet=st.characters(categories=["Cs", "L", "N", "P", "Zs"]), max_size=30),
    st.sampled_from(["\ud800", "\udfff", "a\udc80b", "notes/\ud83d.md", "\ud800\ud800"]),
)
texts = st.one_of(st.text(max_size=30), surrogate_text)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
TOOL_NAMES = ["read_file", "write_file", "edit_file", "list_files", "remember", "forget", "memory_search", "read_skill", "reply", "done"]


def _nested(depth: int, leaf: object, kind: str) -> object:
    for _ in range(depth):
        leaf = [leaf] if kind == "list" else {"k": leaf}
    return leaf


@FUZZ
@given(
    name=st.one_of(st.sampled_from(TOOL_NAMES), st.text(max_size=12), surrogate_text),
    args=st.one_of(json_values, st.text(max_size=200)),
)
def test_model_tool_calls_never_crash(name: str, args: object, shared_home: Home) -> None:
    registry = build_registry()
    config = load_config(shared_home.root)
    ctx = ToolContext(shared_home, config, Event("message", "fuzz", NOW), "fuzz")
    arguments = args if isinstance(args, str) else json.dumps(args)
    outcome = registry.execute(ctx, name, arguments)
    assert isinstance(outcome.text, str)
    if not outcome.ok:
        assert outcome.text.startswith("error:")


@FUZZ
@given(
    name=st.sampled_from(TOOL_NAMES),
    key=st.sampled_from(["path", "content", "query", "topic", "fact", "old", "new", "text", "name"]),
    value=st.one_of(surrogate_text, st.builds(_nested, st.integers(1, 3000), surrogate_text, st.sampled_from(["list", "dict"]))),
    as_string=st.booleans(),
)
def test_surrogates_and_deep_nesting_in_tool_calls(name: str, key: str, value: object, as_string: bool, shared_home: Home) -> None:
    """Lone surrogates and deeply nested arguments, as a JSON string or already parsed: an error, never a raise."""
    registry = build_registry()
    ctx = ToolContext(shared_home, load_config(shared_home.root), Event("message", "fuzz", NOW), "fuzz")
    try:
        arguments: str | dict[str, object] = json.dumps({key: value}) if as_string else {key: value}
    except RecursionError:
        arguments = "{" + json.dumps(key) + ": " + "[" * 5000 + "]" * 5000 + "}"
    outcome = registry.execute(ctx, name, arguments)
    outcome.text.encode("utf-8")  # whatever comes back can be written to the session and the ledger
    if not outcome.ok:
        assert outcome.text.startswith("error:")
    else:
        assert isinstance(value, str) and value.encode("utf-8", "surrogatepass").decode("utf-8", "ignore") == value


def test_huge_tool_arguments(shared_home: Home) -> None:
    registry = build_registry()
    ctx = ToolContext(shared_home, load_config(shared_home.root), Event("message", "x", NOW), "w")
    out = registry.execute(ctx, "read_file", json.dumps({"path": "a" * 100_000}))
    assert not out.ok and out.text.startswith("error:")


md_lines = st.lists(
    st.one_of(
        st.sampled_from(["## Job", "## ", "`0 8 * * *`", "0 8 * * 1-5 Europe/Berlin", "`61 * * * *`", "* * *", "<!--", "-->", "- [ ] item", "- [x] done", "## Checks", "- `ls`", "- `unterminated", "```", ""]),
        st.text(max_size=40),
    ),
    max_size=30,
)


@FUZZ
@given(lines=md_lines)
def test_cron_md_never_crashes(lines: list[str]) -> None:
    from scheduler.cron import parse_cron_md

    text = "\n".join(lines)
    parsed = parse_cron_md(text, "CRON.md")
    n = len(text.split("\n"))
    for err in parsed.errors:
        assert str(err).startswith("CRON.md:") and err.line is not None and 1 <= err.line <= n
    for job in parsed.jobs:
        assert job.instruction and len(job.expr.split()) == 5


@FUZZ
@given(lines=md_lines)
def test_heartbeat_md_never_crashes(lines: list[str]) -> None:
    from scheduler.heartbeat import parse_heartbeat_md

    text = "\n".join(lines)
    plan = parse_heartbeat_md(text, "HEARTBEAT.md")
    n = len(text.split("\n"))
    assert all(1 <= e.line <= n for e in plan.errors if e.line)  # type: ignore[operator]
    assert all(c.command for c in plan.checks)


@FUZZ
@given(front=st.one_of(st.text(max_size=200), st.dictionaries(st.sampled_from(["name", "description", "when", "x"]), st.one_of(st.text(max_size=20), st.integers(), st.lists(st.text(max_size=5), max_size=2)), max_size=4).map(json.dumps)))
def test_skill_front_matter_never_crashes(front: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from agentd.errors import FrontMatterError
    from agentd.skills import load_skill

    folder = tmp_path_factory.mktemp("skills") / "s1"
    folder.mkdir()
    (folder / "SKILL.md").write_text(f"---\n{front}\n---\nbody\n")
    try:
        skill = load_skill(folder, "home")
    except FrontMatterError as e:
        assert "SKILL.md:" in str(e)
    else:
        assert skill.name == "s1" and skill.description

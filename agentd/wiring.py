"""Wiring in one place: from a home and its config to an engine supervisor and a ready Agent."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from agentd.agent import Agent
from agentd.config import Config, load_config
from agentd.context import ContextCompiler, IdSource, random_id
from agentd.errors import SourceError
from agentd.home import Home
from agentd.ledger import Ledger
from agentd.prefix import (
    FIXED_SECTIONS,
    PREFIX_FILES,
    Prefix,
    build_prefix,
    change_counts,
    section_order,
)
from agentd.secrets import SecretGuard
from agentd.skills import load_skills
from agentd.tools.base import Tool, ToolRegistry
from agentd.tools.files import EditFileTool, ListFilesTool, ReadFileTool, WriteFileTool
from agentd.tools.memory_tools import (
    BriefingInputsTool,
    ForgetTool,
    KbCompileTool,
    KbLintTool,
    MemorySearchTool,
    ReadSkillTool,
    RememberTool,
)
from agentd.tools.reply import DoneTool, ReplyTool
from agentd.tools.shell import ShellTool
from engine.backends import backend_class
from engine.client import Timeouts
from engine.supervisor import EngineSupervisor, recorded_block_size
from engine.types import ChatEngine, EngineSettings


def timezone_of(config: Config) -> tzinfo:
    if config.timezone == "local":
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    return ZoneInfo(config.timezone)


def session_key(home: Home, config: Config | None = None) -> str:
    """A stable, non-secret key per agent, so cache-aware routers keep it on one replica.

    agent.yaml's ``id`` (``agentd init`` writes one, a fork gets its own: see :mod:`agentd.identity`),
    else, for a home made before ids, derived from the home's path.
    """
    config = config if config is not None else load_config(home.root)
    if config.id:
        return config.id
    return "agentd-" + hashlib.sha256(str(home.root).encode()).hexdigest()[:16]


def engine_settings(home: Home, config: Config) -> EngineSettings:
    e = config.engine
    return EngineSettings(
        backend=e.backend,
        model=e.model,
        url=e.url,
        api_key_env=e.api_key_env,
        session_key=session_key(home, config),
        session_header=e.session_header,
        options=dict(e.options()),
    )


def make_supervisor(home: Home, config: Config) -> EngineSupervisor:
    # agent.yaml's engine.timeouts over the defaults; AGENTD_ENGINE_TIMEOUTS over both.
    timeouts = Timeouts.from_env(Timeouts(**config.engine.timeouts))
    return EngineSupervisor(engine_settings(home, config), home.runtime, timeouts=timeouts)


def build_registry(engine: ChatEngine | None = None) -> ToolRegistry:
    """The tools, in a fixed order: the order is part of the cached prefix."""
    tools: list[Tool] = [
        ReplyTool(),
        DoneTool(),
        ShellTool(),
        ReadFileTool(),
        WriteFileTool(),
        EditFileTool(),
        ListFilesTool(),
        RememberTool(),
        ForgetTool(),
        MemorySearchTool(),
        ReadSkillTool(),
        BriefingInputsTool(),
        KbCompileTool(engine),
        KbLintTool(),
    ]
    return ToolRegistry(tools)


def build_agent(
    home: Home,
    config: Config,
    engine: ChatEngine,
    *,
    model: str | None = None,
    clock: Callable[[], datetime] | None = None,
    on_bad_source: Callable[[SourceError], None] | None = None,
    new_id: IdSource = random_id,
) -> Agent:
    """Wire one Agent: tools, compiler, ledger, secret guard, prefix refresh.

    ``on_bad_source`` hears of each skill skipped for bad front matter when the prefix is
    rebuilt (the daemon tells the person; the skill is left out, the others load).
    ``new_id`` draws the wake and session ids (random by default; a seeded source,
    e.g. :func:`agentd.context.seeded_ids`, makes a replayed day's prompts repeat byte for byte).
    """
    tz = timezone_of(config)
    registry = build_registry(engine)
    compiler = ContextCompiler(home.runtime / "context", new_id)
    guard = SecretGuard(config.secrets_env)
    home.pre_commit = guard.check_commit

    def read(rel: str) -> str | None:
        path = home.root / rel
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None

    def render(order: tuple[str, ...], tell: bool) -> Prefix | None:
        skills = load_skills(home.root)
        if on_bad_source is not None and tell:
            for err in skills.errors:
                on_bad_source(err)
        try:
            return build_prefix(read, registry.schemas(), skills.index_text(), tool_calling=config.engine.tool_calling, order=order)
        except SourceError as e:
            # A steering file with conflict markers: never a prefix from it. With a last
            # good prefix the agent keeps it and the person hears why; without one, no wake.
            if compiler.prefix is None:
                raise
            if on_bad_source is not None:
                on_bad_source(e)
            return None

    def refresh_prefix(cause: str | None) -> bool:
        # The order is measured on the home's history only here, when a prefix is built anew.
        log = home.repo.git.log("--format=%x00", "--name-only", "--", *PREFIX_FILES, "skills")
        prefix = render(section_order(change_counts(log)), tell=True)
        return prefix is not None and compiler.start_epoch(prefix, cause)

    def candidate_prefix() -> Prefix | None:
        """The home's prefix now, in the epoch's order: compared with what the session shows."""
        if compiler.prefix is None:
            return None
        return render(tuple(s.name for s in compiler.prefix.sections if s.name not in FIXED_SECTIONS), tell=False)

    extra = backend_class(config.engine.backend)().request_extras()
    return Agent(
        home=home,
        config=config,
        engine=engine,
        registry=registry,
        compiler=compiler,
        ledger=Ledger(home.runtime / "ledger.db"),
        model=model or f"{config.engine.backend}:{config.engine.model}",
        clock=clock or (lambda: datetime.now(tz)),
        refresh_prefix=refresh_prefix,
        candidate_prefix=candidate_prefix,
        extra_body=extra,
        mask=guard.mask,
        new_id=new_id,
        # Read at every request: a restarted or swapped engine may use another block size.
        cache_block=lambda: recorded_block_size(home.runtime),
    )

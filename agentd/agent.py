"""What one wake needs, wired once (``Agent``), and the ledger row each engine request leaves."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentd.config import Config
from agentd.context import ContextCompiler, IdSource, Prefix, SelfCheck, random_id
from agentd.home import Home
from agentd.ledger import Ledger, Record
from agentd.tools.base import ToolRegistry
from engine.cache_model import cacheable_tokens
from engine.types import ChatEngine, Usage


@dataclass
class Agent:
    """Everything one wake needs, wired once by :func:`agentd.wiring.build_agent`."""

    home: Home
    config: Config
    engine: ChatEngine
    registry: ToolRegistry
    compiler: ContextCompiler
    ledger: Ledger
    model: str
    clock: Callable[[], datetime]
    refresh_prefix: Callable[[str | None], bool]  # rebuild the prefix from the home; cause → new epoch?
    extra_body: dict[str, Any] | None = None  # backend-specific request fields
    mask: Callable[[str], str] = field(default=lambda text: text)
    monotonic: Callable[[], float] = field(default=time.monotonic)  # the wall-time budget's clock
    new_id: IdSource = field(default=random_id)  # wake ids; seeded where prompts must repeat byte for byte
    # The engine's KV block size, read from its metrics (None: it caches any prefix, as llama.cpp does).
    cache_block: Callable[[], int | None] = field(default=lambda: None)
    # The home's prefix as it is now, in the epoch's section order (None: it cannot be built):
    # what a session's steering diffs are computed against (agentd.wake_session).
    candidate_prefix: Callable[[], Prefix | None] = field(default=lambda: None)


def record_usage(
    agent: Agent,
    u: Usage,
    *,
    trigger: str,
    purpose: str,
    check: SelfCheck,
    session: str | None = None,
) -> None:
    """One ledger row per engine request, with what the self-check expected and why the cache broke.

    The day is the agent's own (its configured time zone), as the day rollover counts it.
    """
    cause = check.cause
    expected = cacheable_tokens(check.expected_cached, u.prompt_tokens, agent.cache_block())
    if cause is None and u.cached_tokens is not None and expected and u.cached_tokens + 64 < 0.9 * expected:
        # Behind a pool's router an unexplained miss is the home sent to another replica (one
        # failed, or the pool was resized): the request itself warms the prefix there.
        cause = "replica-moved" if agent.config.engine.backend == "pool" else "engine cache miss (evicted or restarted)"
    agent.ledger.record(
        Record(
            trigger=trigger,
            purpose=purpose,
            prompt_tokens=u.prompt_tokens,
            cached_tokens=u.cached_tokens,
            completion_tokens=u.completion_tokens,
            session=session,
            model=agent.model,
            expected_cached=expected,
            ttft_s=u.ttft_s,
            total_s=u.total_s,
            cache_break=cause,
            common_chars=check.common_chars,
            changed_section=check.section,
            day=agent.clock().strftime("%Y-%m-%d"),
        )
    )

"""A block-level model of vLLM's automatic prefix caching, fed real token ids.

What it reproduces (vLLM V1, see ENGINES.md): only *full* blocks are cached; a
block's hash chains its parent's hash and its own token ids, so a block hits only
if every block before it hit; a request whose every token is cached still
recomputes its last token (so at most ``len(prompt) - 1`` tokens count as hits,
rounded down to whole blocks); freed blocks are evicted LRU, and within one
request the tail blocks are freed first (evicted before its prefix blocks).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


def cacheable_tokens(shared: int | None, prompt_tokens: int, block_size: int | None) -> int | None:
    """What a block cache can serve of a prompt sharing ``shared`` tokens with one it has seen.

    Whole blocks only, and never the prompt's last token (it is recomputed for its
    logits); with no block size (llama.cpp reuses any common prefix) it is ``shared``.
    """
    if shared is None or not block_size:
        return shared
    return max(0, min(shared, prompt_tokens - 1)) // block_size * block_size


@dataclass
class CacheStats:
    requests: int = 0
    prompt_tokens: int = 0
    hit_tokens: int = 0
    evictions: int = 0


class PrefixCacheModel:
    def __init__(self, block_size: int = 16, capacity_blocks: int | None = None) -> None:
        self.block_size = block_size
        self.capacity = capacity_blocks
        self.blocks: OrderedDict[Hashable, None] = OrderedDict()  # LRU order: first = evicted first
        self.stats = CacheStats()

    def block_hashes(self, ids: Sequence[int]) -> list[bytes]:
        out: list[bytes] = []
        parent = b"root"
        bs = self.block_size
        for start in range(0, len(ids) - bs + 1, bs):
            block = ids[start : start + bs]
            parent = hashlib.sha256(parent + b",".join(str(t).encode() for t in block)).digest()
            out.append(parent)
        return out

    def lookup(self, prompt_ids: Sequence[int]) -> int:
        """Prompt tokens that would be served from cache, without changing the cache."""
        max_blocks = max(0, (len(prompt_ids) - 1) // self.block_size)
        hits = 0
        for h in self.block_hashes(prompt_ids)[:max_blocks]:
            if h not in self.blocks:
                break
            hits += 1
        return hits * self.block_size

    def request(self, prompt_ids: Sequence[int], completion_ids: Sequence[int] = ()) -> int:
        """Serve one request: returns the cached prompt tokens; then caches its full blocks."""
        return self.request_blocks(self.block_hashes(list(prompt_ids) + list(completion_ids)), len(prompt_ids))

    def request_blocks(self, keys: Sequence[Hashable], prompt_tokens: int) -> int:
        """``request`` for a caller that names its own blocks (prompt then completion), as a simulation
        of many agents does: each key must name its block *and everything before it*, as a chained hash does."""
        max_blocks = max(0, (prompt_tokens - 1) // self.block_size)
        hits = 0
        for key in keys[:max_blocks]:
            if key not in self.blocks:
                break
            hits += 1
        hit = hits * self.block_size
        self.stats.requests += 1
        self.stats.prompt_tokens += prompt_tokens
        self.stats.hit_tokens += hit
        # Freed tail first: the prefix blocks end up most recently used, the tail least.
        for key in reversed(keys):
            self.blocks[key] = None
            self.blocks.move_to_end(key)
        if self.capacity is not None:
            while len(self.blocks) > self.capacity:
                self.blocks.popitem(last=False)
                self.stats.evictions += 1
        return hit

"""The vLLM prefix-cache model reproduces the simple cases exactly."""

from __future__ import annotations

from engine.cache_model import PrefixCacheModel


def test_identical_prompt_hits_all_full_blocks_but_the_last_token() -> None:
    m = PrefixCacheModel(block_size=16)
    ids = list(range(100))  # 6 full blocks + 4 tokens
    assert m.request(ids) == 0
    assert m.request(ids) == 96
    exact = list(range(64))  # 4 full blocks: the last token is recomputed, so 3 blocks hit
    m.request(exact)
    assert m.request(exact) == 48


def test_a_change_in_block_k_stops_hits_at_k() -> None:
    m = PrefixCacheModel(block_size=16)
    ids = list(range(160))
    m.request(ids)
    changed = ids.copy()
    changed[16 * 3 + 5] = -1  # inside block 3
    assert m.request(changed) == 48


def test_chained_hashes_need_the_same_parent() -> None:
    m = PrefixCacheModel(block_size=4)
    m.request([1, 2, 3, 4, 5, 6, 7, 8, 0])
    assert m.request([9, 9, 9, 9, 5, 6, 7, 8, 0]) == 0  # block 1's tokens match, its parent does not


def test_lru_eviction_under_small_capacity() -> None:
    m = PrefixCacheModel(block_size=4, capacity_blocks=4)
    a = [1] * 8 + [0]  # 2 blocks
    b = [2] * 8 + [0]
    c = [3] * 8 + [0]
    m.request(a)
    m.request(b)
    assert m.request(a) == 8  # still there: capacity 4 holds a and b
    m.request(c)  # evicts b (least recently used), not a
    assert m.lookup(b) == 0 and m.lookup(a) == 8 and m.lookup(c) == 8
    assert m.stats.evictions == 2


def test_tail_blocks_evicted_before_prefix_blocks() -> None:
    m = PrefixCacheModel(block_size=4, capacity_blocks=3)
    m.request([1] * 4 + [2] * 4 + [3] * 4 + [0])  # 3 blocks
    m.request([9] * 4 + [0])  # one new block: the oldest is the first request's tail block
    assert m.lookup([1] * 4 + [2] * 4 + [3] * 4 + [0]) == 8


def test_cacheable_tokens_are_whole_blocks_short_of_the_last_token() -> None:
    from engine.cache_model import cacheable_tokens

    assert cacheable_tokens(2565, 2565, 128) == 2560  # 20 full blocks; the 21st is partial
    assert cacheable_tokens(500, 520, 16) == 496 and cacheable_tokens(500, 520, 128) == 384
    assert cacheable_tokens(500, 520, None) == 500 and cacheable_tokens(None, 520, 128) is None
    model = PrefixCacheModel(128)
    ids = list(range(2565))
    model.request(ids)
    assert model.lookup(ids) == cacheable_tokens(len(ids), len(ids), 128)

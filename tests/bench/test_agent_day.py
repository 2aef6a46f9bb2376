"""The agent-day benchmark: its JSON, its determinism, the naive harness and the content-based floor."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

# The token ids are SmolLM2's, read from its GGUF through llama_cpp (vocab only, no engine).
pytest.importorskip("llama_cpp")

from agentd.steering_diff import STEERING_TAG  # noqa: E402
from bench.agent_day import (  # noqa: E402
    Day,
    Item,
    ModelBackend,
    Recorded,
    Tokenizer,
    floor_breakdown,
    main,
    make_day,
    make_home,
    naive_requests,
    run_agentd,
)
from engine.types import Usage  # noqa: E402
from memory.compaction import COMPACTION_INSTRUCTION, MEMORY_FLUSH_INSTRUCTION  # noqa: E402

SIDE_KEYS = {"requests", "prompt_tokens", "cached_tokens", "computed_tokens", "hit_rate", "floor_tokens", "overhead"}


def test_quick_day_json_schema_and_byte_identical_reruns(tmp_path: Path) -> None:
    args = ["--quick", "--only", "vllm_model", "--workdir", str(tmp_path / "work")]
    main([*args, "--out", str(tmp_path / "one.json")])
    main([*args, "--out", str(tmp_path / "two.json")])
    first = (tmp_path / "one.json").read_text()
    assert first == (tmp_path / "two.json").read_text()  # prompt digests included: the same bytes were sent
    data = json.loads(first)
    assert set(data) == {"vllm_model"}
    r = data["vllm_model"]
    assert {"agentd", "naive", "computed_ratio"} <= set(r)
    a, b = r["agentd"], r["naive"]
    for side in (a, b):
        assert set(side) == SIDE_KEYS
        assert all(isinstance(side[k], int) for k in ("requests", "prompt_tokens", "cached_tokens", "computed_tokens", "floor_tokens"))
        assert side["computed_tokens"] == side["prompt_tokens"] - side["cached_tokens"]
        assert side["hit_rate"] == round(side["cached_tokens"] / side["prompt_tokens"], 4)
        assert side["overhead"] == round(side["computed_tokens"] / side["floor_tokens"], 3)
        assert side["floor_tokens"] <= side["computed_tokens"]  # nobody computes less than the content
    assert a["floor_tokens"] == b["floor_tokens"]  # one floor, from the day's content
    assert a["computed_tokens"] < b["computed_tokens"]
    assert r["computed_ratio"] == round(a["computed_tokens"] / b["computed_tokens"], 4)
    assert r["prompt_digest"]["agentd"] != r["prompt_digest"]["naive"]


@pytest.fixture(scope="module")
def small_day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Day, list[list[dict]]]:
    """A 3-hour day on a small home whose session is compacted (a flush and a summary happen)."""
    tok = Tokenizer()
    home = make_home(tmp_path_factory.mktemp("day") / "home", random.Random(2), 600, 2500)
    day = run_agentd(home, make_day(random.Random(1), 3, 4), ModelBackend(tok, capacity_blocks=40_000))
    return day, naive_requests(day)


def test_naive_harness_sends_one_request_per_wake_request_and_no_agentd_machinery(small_day: tuple[Day, list[list[dict]]]) -> None:
    day, naive = small_day
    purposes = [r.purpose for r in day.requests]
    assert "flush" in purposes and "compaction" in purposes  # so the next assertion means something
    assert len(naive) == purposes.count("wake")
    for messages in naive:
        text = json.dumps(messages)
        assert MEMORY_FLUSH_INSTRUCTION.splitlines()[0] not in text
        assert COMPACTION_INSTRUCTION.splitlines()[0] not in text
        assert "[summary of the previous session]" not in text
    last_main = max((m for m in naive if any(str(x["content"]).startswith("[Message") for x in m[1:])), key=len)
    events = [str(m["content"]) for m in last_main[1:] if str(m["content"]).startswith(("[Message", "[Heartbeat"))]
    assert len(events) == len(set(events))  # each event once, never re-appended


def test_naive_harness_reads_the_home_as_it_was_at_each_request(small_day: tuple[Day, list[list[dict]]]) -> None:
    day, naive = small_day
    requests = [i for i in day.items if i.kind == "request"]
    systems = [str(m[0]["content"]) for m in naive]
    for edit in (s for s in make_day(random.Random(1), 3, 4) if s.kind == "edit_user"):
        text = edit.text.strip()
        assert [text in s for s in systems] == [r.at > edit.at for r in requests]
    # The agent's first `remember` is in the naive prompt's MEMORY.md from the next request on
    # (agentd's prefix picks it up only with a later epoch).
    remembered = next(k for k, i in enumerate(day.items) if i.kind == "completion" and '"remember"' in str(i.message["content"]))
    topic = json.loads(str(day.items[remembered].message["content"]))["arguments"]["topic"].replace(" ", "-")
    first_after = sum(1 for i in day.items[:remembered] if i.kind == "request")
    assert topic not in systems[first_after - 1].split("# memory/MEMORY.md", 1)[1]
    assert topic in systems[first_after].split("# memory/MEMORY.md", 1)[1]
    assert len({s.split("\n", 1)[0] for s in systems}) == len(systems)  # the clock at the top: every request differs


def _recorded(system: str, *tail: str) -> Recorded:
    messages = [{"role": "system", "content": system}, *({"role": "user", "content": t} for t in tail)]
    return Recorded(messages, Usage(0, 0, 0, None, 0.0), datetime(2026, 1, 1, tzinfo=UTC), "wake")


def test_floor_counts_content_once_whatever_is_re_sent() -> None:
    tok = Tokenizer()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    one = "<<< rules >>>\nBe brief.\n<<< USER.md >>>\nLikes tea."
    two = "<<< rules >>>\nBe brief.\n<<< USER.md >>>\nLikes coffee now."
    event = {"role": "user", "content": "[Message] hello"}
    answer = {"role": "assistant", "content": "hi"}
    items = [Item(1, "event", "main", at, event), Item(1, "completion", "main", at, answer)]
    day = Day([_recorded(one), _recorded(one, "[Message] hello"), _recorded(two, "[Message] hello", "hi")], items)
    parts = floor_breakdown(tok, day)
    # The first prefix whole; the second epoch adds its new line only, not the rules again.
    first = tok.message_tokens({"role": "system", "content": one})
    assert parts["prefixes"] == first + tok.text_tokens("Likes coffee now.")
    assert parts["prefix_whole_files"] == first + tok.text_tokens("<<< USER.md >>>\nLikes coffee now.")
    assert parts["events"] == tok.message_tokens(event) > 0
    assert parts["completions"] == tok.message_tokens(answer) > 0
    assert parts["epochs"] == 2
    # A harness re-sending its tail on every request (or after each epoch) adds nothing to it.
    resent = Day([*day.requests, _recorded(two, "[Message] hello", "hi", "[Message] hello", "hi")], items)
    assert floor_breakdown(tok, resent) == parts


def test_recorded_prompts_show_steering_diffs_in_the_tail_and_no_mid_session_prefix_switch(small_day: tuple[Day, list[list[dict]]]) -> None:
    day, _ = small_day
    requests = [r for r in day.requests if r.purpose != "next-day"]
    # A session is known by its first message after the prefix: within one, the prefix never changes.
    sessions: dict[str, set[str]] = {}
    for r in requests:
        if len(r.messages) > 2:
            sessions.setdefault(json.dumps(r.messages[1]), set()).add(str(r.messages[0]["content"]))
    assert len(sessions) > 2 and all(len(systems) == 1 for systems in sessions.values())
    assert len({str(r.messages[0]["content"]) for r in requests}) == 1, "the day's edits never forced a new prefix"
    for edit in (s for s in make_day(random.Random(1), 3, 4) if s.kind == "edit_user"):
        line = edit.text.strip().splitlines()[0]
        first = next(r for r in requests if r.at > edit.at and r.purpose == "wake")
        assert line not in str(first.messages[0]["content"])
        diffs = [str(m["content"]) for m in first.messages[1:] if str(m["content"]).startswith(STEERING_TAG)]
        assert any("edited by the person" in d and "+" + line in d for d in diffs)
    # The agent's own MEMORY.md updates come as diffs marked as its own.
    assert any("MEMORY.md · edited by you (the agent)" in str(m["content"]) for r in requests for m in r.messages[1:])
    # The new prefix waits for the rollover, and holds the edits.
    (rollover,) = [r for r in day.requests if r.purpose == "next-day"]
    assert all(s.text.strip() in str(rollover.messages[0]["content"]) for s in make_day(random.Random(1), 3, 4) if s.kind == "edit_user")

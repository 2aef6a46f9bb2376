"""Cold prefill vs the same prompt with all but its last 200 tokens cached, on the embedded engine.

    python bench/engine_prefix.py            # N = 1K, 2K, 4K tokens
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from engine.supervisor import EngineSupervisor
from engine.types import EngineSettings

FILLER = "The agent keeps its notes in Markdown files and commits every change to git. "


def prompt_of(client, n_tokens: int, tail: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    text = FILLER
    while len(client.tokenize([{"role": "system", "content": text}]) or []) < n_tokens - 200:
        text += FILLER * 8
    return [{"role": "system", "content": text}, {"role": "user", "content": tail}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000,2000,4000")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as rt:
        sup = EngineSupervisor(EngineSettings("llamacpp", "smollm2", options={"n_ctx": 8192}), Path(rt))
        sup.start()
        c = sup.client()
        try:
            print(f"{'N':>6} {'cold s':>8} {'cached s':>9} {'cached tok':>11} {'speed-up':>9}")
            for n in [int(s) for s in args.sizes.split(",")]:
                tail = "Question: " + "what changed in the notes today and why? " * 18
                msgs = prompt_of(c, n, tail)
                c.chat([{"role": "user", "content": "reset"}], max_tokens=1)  # empty the KV of this prefix
                t = time.perf_counter()
                cold = c.chat(msgs, max_tokens=1)
                cold_s = time.perf_counter() - t
                warm_msgs = [msgs[0], {"role": "user", "content": tail.replace("today", "this week")}]
                t = time.perf_counter()
                warm = c.chat(warm_msgs, max_tokens=1)
                warm_s = time.perf_counter() - t
                print(f"{cold.usage.prompt_tokens:6d} {cold_s:8.2f} {warm_s:9.2f} {warm.usage.cached_tokens!s:>11} {cold_s / warm_s:8.1f}x")
        finally:
            sup.stop()


if __name__ == "__main__":
    main()

"""The embedded engine: a thin OpenAI-compatible server around ``llama_cpp.Llama`` that reports cached tokens.

Run as ``python -m engine.llamacpp_server --model PATH --port P`` with the API key in
``AGENTD_ENGINE_API_KEY``; it binds 127.0.0.1 only and every route needs the key (but for
``GET /health`` when ``AGENTD_ENGINE_OPEN_HEALTH=1``: a pool's router probes it without one).

What it adds to llama-cpp-python (whose bundled server reports no cached tokens):
- ``usage.prompt_tokens_details.cached_tokens``: the prompt tokens llama.cpp reused
  from its KV cache (the longest common prefix with what the context already holds);
- **pinned prefix snapshots**: a request may say ``"cache_prefix_messages": N`` (the
  first N messages are the stable home prefix). The KV state at the end of that
  prefix is snapshotted (``llama_state_seq_get_data``, milliseconds) in a small LRU
  keyed by the prefix's token hash, so a session that alternates with another (a
  chat, then a cron job's own session) restores the home prefix instead of
  recomputing it;
- ``response_format`` JSON schema → a llama.cpp grammar (constrained decoding);
- **native tool calls**: ``tools`` and ``tool_choice`` become a grammar over the tool
  schemas (see :mod:`engine.tool_calls`), answered as ``message.tool_calls``, streamed
  as ``delta.tool_calls`` while the model writes the arguments.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import jinja2
import llama_cpp
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.backends import OPEN_HEALTH_ENV
from engine.llamacpp_http import LOOPBACK, BadRequest, make_server
from engine.tool_calls import OutputReader, ToolRequestError, output_schema, template_messages

API_KEY_ENV = "AGENTD_ENGINE_API_KEY"
DEFAULT_REPEAT_PENALTY = 1.1


def grammar_schema(schema: Any) -> Any:
    """The schema without ``maxLength``/``minLength``: llama.cpp expands a bounded string into
    one nested rule per character, and a few hundred of them crash its grammar parser.
    Length stays bounded by max_tokens; the caller validates lengths."""
    if isinstance(schema, dict):
        return {k: grammar_schema(v) for k, v in schema.items() if k not in ("maxLength", "minLength")}
    if isinstance(schema, list):
        return [grammar_schema(v) for v in schema]
    return schema


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class TokenCountingLlama(llama_cpp.Llama):
    """``llama_cpp.Llama`` that keeps the tokens llama.cpp sampled in its last generation.

    Streamed text pieces are not tokens: a character split over several tokens arrives as
    one piece, a token that produces no text as none.
    """

    sampled: list[int] = []  # replaced, never appended to, by each generation

    def generate(self, *args: Any, **kwargs: Any) -> Generator[int, Any, None]:
        self.sampled = []
        inner = super().generate(*args, **kwargs)
        try:
            for token in inner:  # create_completion iterates; it never sends tokens back in
                self.sampled.append(token)
                yield token
        finally:
            inner.close()

    def completion_tokens(self) -> int:
        """The last completion's tokens, counted as llama-cpp-python's unstreamed usage does:
        the end-of-generation token that stopped it is not one of them."""
        n = len(self.sampled)
        if n and llama_cpp.llama_vocab_is_eog(self._model.vocab, self.sampled[-1]):
            n -= 1
        return n


@dataclass
class Snapshot:
    state: ctypes.Array[ctypes.c_uint8]
    n_tokens: int  # tokens in the saved sequence (≥ the prefix; trimmed on restore)


class Engine:
    """One llama.cpp model, one sequence, a lock; prefix reuse and pinned prefix snapshots."""

    def __init__(self, model_path: str, *, n_ctx: int, n_threads: int | None, pinned: int) -> None:
        # logits_all=False is essential: with it on, a 2.8K prompt takes 4x the time and 6x the memory.
        self.llm = TokenCountingLlama(model_path, n_ctx=n_ctx, n_threads=n_threads, logits_all=False, verbose=False)
        self.model_name = os.path.basename(model_path)
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise SystemExit(f"{model_path} has no chat template: it is not an instruction-tuned chat model")
        env = ImmutableSandboxedEnvironment(trim_blocks=False, lstrip_blocks=False, undefined=jinja2.StrictUndefined)
        self.template = env.from_string(template)
        self.add_bos = self.llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self.eos = self.llm.detokenize([self.llm.token_eos()]).decode("utf-8", errors="ignore")
        self.pinned: OrderedDict[str, Snapshot] = OrderedDict()
        self.max_pinned = pinned
        self.lock = threading.Lock()
        self.counters = {"requests": 0, "prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0, "snapshot_saves": 0, "snapshot_restores": 0}

    # ------------------------------------------------------------ rendering
    def render(self, messages: list[dict[str, Any]], *, generation_prompt: bool) -> str:
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("content", ""), str) or m.get("role") not in ("system", "user", "assistant"):
                raise BadRequest("messages must be system/user/assistant messages with text content")
        try:
            return self.template.render(
                messages=messages,
                add_generation_prompt=generation_prompt,
                bos_token=self.llm.detokenize([self.llm.token_bos()]).decode("utf-8", errors="ignore"),
                eos_token=self.eos,
            )
        except jinja2.TemplateError as e:
            raise BadRequest(f"chat template failed: {e}") from None

    def chat_messages(self, messages: Any, tools: Any) -> tuple[list[dict[str, Any]], int]:
        """The request's messages as the chat template takes them (tool calls and results as text, tools
        in the system message), and how many messages that put in front."""
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages: expected a non-empty list")
        if tools is not None and not isinstance(tools, list):
            raise BadRequest("tools: expected a list")
        try:
            return template_messages(messages, tools or None)
        except ToolRequestError as e:
            raise BadRequest(str(e)) from None

    @staticmethod
    def tool_reader(body: dict[str, Any]) -> tuple[OutputReader, dict[str, Any]] | None:
        """For a request that may call tools: the reader of the model's answer and the schema constraining it."""
        tools, choice = body.get("tools"), body.get("tool_choice")
        if not tools or choice == "none":
            return None
        try:
            return OutputReader(), output_schema(tools, choice)
        except ToolRequestError as e:
            raise BadRequest(str(e)) from None

    def tokens(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=self.add_bos, special=True))

    # ------------------------------------------------------------ KV bookkeeping
    def _truncate(self, n: int) -> None:
        self.llm._ctx.kv_cache_seq_rm(0, n, -1)
        self.llm.n_tokens = n

    def _snapshot(self, key: str) -> None:
        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        self.pinned[key] = Snapshot(buf, self.llm.n_tokens)
        self.pinned.move_to_end(key)
        while len(self.pinned) > self.max_pinned:
            self.pinned.popitem(last=False)
        self.counters["snapshot_saves"] += 1

    def _restore(self, key: str, prefix: list[int]) -> bool:
        snap = self.pinned[key]
        ctx = self.llm._ctx.ctx
        if not llama_cpp.llama_state_seq_set_data(ctx, snap.state, len(snap.state), 0):
            del self.pinned[key]
            return False
        self.pinned.move_to_end(key)
        self.llm.input_ids[: len(prefix)] = prefix
        self._truncate(len(prefix))
        # The restored state has no live logits: llama-cpp-python must decode before sampling.
        self.llm._requires_eval = True
        self.counters["snapshot_restores"] += 1
        return True

    def prepare(self, tokens: list[int], prefix_len: int) -> int:
        """Make the KV cache hold as much of ``tokens`` as possible; returns tokens reused (cached)."""
        held = self.llm._input_ids.tolist()
        lcp = common_prefix(held, tokens)
        if prefix_len <= 0 or prefix_len > len(tokens):
            return lcp
        key = hashlib.sha256(json.dumps(tokens[:prefix_len]).encode()).hexdigest()
        if lcp >= prefix_len:
            if key not in self.pinned:
                self._snapshot(key)  # trimmed to the prefix when restored
            else:
                self.pinned.move_to_end(key)
            return lcp
        if key in self.pinned and self._restore(key, tokens[:prefix_len]):
            return prefix_len
        # Compute the prefix alone, pin it, and let generation continue from there.
        self._truncate(lcp)
        self.llm.eval(tokens[lcp:prefix_len])
        self._snapshot(key)
        return lcp

    # ------------------------------------------------------------ completion
    def complete(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Yields text pieces ``{"text": …}`` and finally ``{"done": …usage…}``."""
        messages, inserted = self.chat_messages(body.get("messages"), body.get("tools"))
        prompt = self.render(messages, generation_prompt=True)
        tokens = self.tokens(prompt)
        if len(tokens) >= self.llm.n_ctx():
            raise BadRequest(f"prompt of {len(tokens)} tokens does not fit the context of {self.llm.n_ctx()}")
        prefix_len = 0
        n_prefix = body.get("cache_prefix_messages")
        if isinstance(n_prefix, int) and 0 < n_prefix < len(messages) + 1 - inserted:
            n_prefix += inserted
            prefix_tokens = self.tokens(self.render(messages[:n_prefix], generation_prompt=False))
            if tokens[: len(prefix_tokens)] == prefix_tokens:
                prefix_len = len(prefix_tokens)
        grammar = None
        fmt = body.get("response_format") or {}
        reader = self.tool_reader(body)
        if reader is not None:
            grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(grammar_schema(reader[1])), verbose=False)
        elif fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            if not isinstance(schema, dict):
                raise BadRequest("response_format.json_schema.schema: expected a JSON schema object")
            grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(grammar_schema(schema)), verbose=False)
        elif fmt.get("type") == "json_object":
            grammar = llama_cpp.LlamaGrammar.from_string(llama_cpp.llama_grammar.JSON_GBNF, verbose=False)
        max_tokens = int(body.get("max_tokens") or 512)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        start = time.monotonic()
        with self.lock:
            cached = self.prepare(tokens, prefix_len)
            # llama-cpp-python replays the last prompt token when the whole prompt is cached.
            cached = min(cached, len(tokens) - 1)
            pieces = self.llm.create_completion(
                prompt=tokens,
                max_tokens=max_tokens,
                temperature=float(body.get("temperature", 0.0)),
                top_p=float(body.get("top_p", 1.0)),
                # A mild penalty stops small models looping inside a string (measured on
                # SmolLM2-135M: 200 tokens of "lil_lil_…" at 1.0, a finished action at 1.1).
                repeat_penalty=float(body.get("repeat_penalty", DEFAULT_REPEAT_PENALTY)),
                frequency_penalty=float(body.get("frequency_penalty", 0.0)),
                presence_penalty=float(body.get("presence_penalty", 0.0)),
                stop=[*stop, self.eos] if self.eos else stop,
                grammar=grammar,
                stream=True,
                seed=int(body.get("seed", 0)),
            )
            finish = "stop"
            ttft = None
            for chunk in pieces:
                choice: dict[str, Any] = chunk["choices"][0]  # type: ignore[index,assignment]
                if choice.get("text"):
                    if ttft is None:
                        ttft = time.monotonic() - start
                    if reader is None:
                        yield {"text": choice["text"]}
                    else:
                        yield from reader[0].feed(choice["text"])
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            completion = self.llm.completion_tokens()
            if reader is not None and reader[0].called and finish == "stop":
                finish = "tool_calls"
        c = self.counters
        c["requests"] += 1
        c["prompt_tokens"] += len(tokens)
        c["cached_tokens"] += cached
        c["completion_tokens"] += completion
        yield {
            "done": {
                "finish_reason": finish,
                "usage": {
                    "prompt_tokens": len(tokens),
                    "completion_tokens": completion,
                    "total_tokens": len(tokens) + completion,
                    "prompt_tokens_details": {"cached_tokens": cached},
                },
                "timings": {"cache_n": cached, "prompt_n": len(tokens) - cached, "prompt_ms": 1000 * (ttft or time.monotonic() - start)},
            }
        }

    def metrics(self) -> str:
        lines = []
        for name, value in self.counters.items():
            lines.append(f"# TYPE agentd_engine_{name}_total counter")
            lines.append(f"agentd_engine_{name}_total {value}")
        lines.append(f"agentd_engine_pinned_prefixes {len(self.pinned)}")
        return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="agentd's embedded llama.cpp engine (OpenAI-compatible, loopback only)")
    p.add_argument("--model", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--n-ctx", type=int, default=8192)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--pinned", type=int, default=4, help="prefix snapshots kept (LRU)")
    args = p.parse_args(argv)
    api_key = os.environ.get(API_KEY_ENV)
    if not api_key:
        raise SystemExit(f"{API_KEY_ENV} must hold the API key")
    engine = Engine(args.model, n_ctx=args.n_ctx, n_threads=args.threads, pinned=args.pinned)
    server = make_server(engine, api_key, args.port, os.environ.get(OPEN_HEALTH_ENV) == "1")
    print(f"engine ready: {engine.model_name} on {LOOPBACK}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

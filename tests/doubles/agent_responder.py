"""A deterministic stand-in for a model, for daemon and crash tests: it answers each event.

- a message → ``reply`` quoting the message id (so the outbox can be checked for exactly-once);
- a heartbeat → ``done HEARTBEAT_OK``; anything else → ``done``.
Its behaviour can be steered by files named in environment variables (slow or failing).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from tests.doubles.openai_server import Reply


def respond(body: dict[str, Any]) -> Reply:
    delay = float(os.environ.get("RESPONDER_DELAY", "0"))
    if delay:
        time.sleep(delay)
    fail_file = os.environ.get("RESPONDER_FAIL_FILE")
    if fail_file and Path(fail_file).exists():
        return Reply(status=500, content="scripted engine failure")
    messages = body.get("messages", [])
    last_event = next((m["content"] for m in reversed(messages) if m["role"] == "user" and str(m.get("content", "")).startswith("[")), "")
    if max_tokens_is_warmup(body):
        action = {"tool": "done", "arguments": {"summary": "warm"}}
    elif last_event.startswith("[Message from the person"):
        m = re.search(r"MSGID:(\S+)", last_event)
        ident = m.group(1) if m else "unknown"
        action = {"tool": "reply", "arguments": {"text": f"answer to {ident}"}}
    elif last_event.startswith("[Heartbeat"):
        action = {"tool": "done", "arguments": {"summary": "HEARTBEAT_OK"}}
    else:
        action = {"tool": "done", "arguments": {"summary": "did the job"}}
    prompt = sum(len(str(m.get("content", ""))) for m in messages) // 4
    return Reply(content=json.dumps(action), prompt_tokens=prompt, cached_tokens=max(0, prompt - 50))


def max_tokens_is_warmup(body: dict[str, Any]) -> bool:
    return body.get("max_tokens") == 1

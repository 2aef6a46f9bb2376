"""The Matrix channel's parts without a homeserver: config validation, splitting, HTML, txn ids, records, backoff."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from datetime import datetime
from pathlib import Path

import pytest

from agentd import inbox
from agentd.channels.matrix_state import TOKEN_FILE, read_token, save_token
from agentd.channels.matrix_text import content, outbox_reply, split_reply, to_html, txn_id
from agentd.config import ChannelsConfig, Config, MatrixConfig, load_config
from agentd.config_edit import get_value
from agentd.errors import ConfigError
from agentd.home import Home
from agentd.services.base import Steering
from agentd.services.notices import Notices

GOOD = """
channels:
  matrix:
    homeserver: https://matrix.example.org/
    user_id: "@agent:example.org"
    rooms: ["!abc123:example.org", "#family:example.org", "!roomv12withoutserver"]
    allow: ["@you:example.org"]
"""


def write_config(home: Home, extra: str) -> None:
    with open(home.root / "agent.yaml", "a") as f:
        f.write(extra)


def config_error(home: Home) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(home.root)
    return str(e.value)


def test_a_channels_matrix_section_becomes_a_typed_config(home: Home) -> None:
    assert load_config(home.root).channels.matrix is None
    write_config(home, GOOD)
    m = load_config(home.root).channels.matrix
    assert m == MatrixConfig(
        homeserver="https://matrix.example.org", user_id="@agent:example.org", token_env="AGENTD_MATRIX_TOKEN",
        rooms=("!abc123:example.org", "#family:example.org", "!roomv12withoutserver"), allow=("@you:example.org",),
    )
    assert get_value(home.root, "channels.matrix.token_env") == "AGENTD_MATRIX_TOKEN"


def test_config_mistakes_name_their_line(home: Home) -> None:
    lines = len((home.root / "agent.yaml").read_text().splitlines())
    write_config(home, "\nchannels:\n  matrix:\n    homeserver: matrix.example.org\n    user_id: agent\n")
    error = config_error(home)
    assert f"agent.yaml:{lines + 4}: channels.matrix.homeserver: expected an http(s) URL" in error
    assert f"agent.yaml:{lines + 5}: channels.matrix.user_id: expected a Matrix user id" in error


def test_a_matrix_section_without_its_homeserver_is_refused(home: Home) -> None:
    lines = len((home.root / "agent.yaml").read_text().splitlines())
    write_config(home, "\nchannels:\n  matrix:\n    allow: ['@you:example.org']\n    tokenenv: X\n")
    error = config_error(home)
    assert f"agent.yaml:{lines + 3}: channels.matrix: homeserver and user_id required" in error
    assert "unknown setting 'channels.matrix.tokenenv' (did you mean channels.matrix.token_env?" in error


def test_allow_and_rooms_must_be_matrix_ids(home: Home) -> None:
    write_config(home, "\nchannels:\n  matrix:\n    homeserver: http://127.0.0.1:8008\n    user_id: '@a:b'\n    allow: [you]\n    rooms: [general]\n")
    error = config_error(home)
    assert "channels.matrix.allow: expected a list of Matrix user ids" in error and "'you' is not one" in error
    assert "channels.matrix.rooms: expected a list of room ids" in error


def test_the_template_example_is_valid_once_uncommented(home: Home) -> None:
    text = (home.root / "agent.yaml").read_text()
    example = text[text.index("# channels:"):]
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in example.splitlines())
    (home.root / "agent.yaml").write_text(text[: text.index("# channels:")] + uncommented + "\n")
    assert load_config(home.root).channels.matrix is not None


def test_long_replies_split_between_paragraphs_under_the_limit() -> None:
    paragraphs = [f"paragraph {i} " + " ".join(["word"] * 30) for i in range(20)]
    text = "\n\n".join(paragraphs)
    parts = split_reply(text, limit=500)
    assert len(parts) > 1
    assert all(len(p.encode()) <= 500 for p in parts)
    assert "\n\n".join(parts) == text  # cut only where paragraphs meet
    assert split_reply("short answer") == ["short answer"]


def test_a_fenced_block_is_not_cut_at_its_blank_lines() -> None:
    code = "```\nline one\n\nline two\n```"
    parts = split_reply(f"intro\n\n{code}\n\noutro", limit=30)
    assert code in parts


def test_a_paragraph_too_long_alone_is_cut_between_lines_then_anywhere() -> None:
    lines = [f"line {i:03d} " + "é" * 20 for i in range(40)]
    parts = split_reply("\n".join(lines) + "\n\n" + "x" * 250, limit=120)
    assert all(len(p.encode()) <= 120 for p in parts)
    assert "".join(parts).replace("\n", "") == ("".join(lines) + "x" * 250)


def test_markdown_goes_as_html_and_raw_html_stays_text() -> None:
    assert to_html("**done**: see `x`") == "<p><strong>done</strong>: see <code>x</code></p>"
    assert "<script>" not in to_html("<script>alert(1)</script>")
    c = content("hi", "$event")
    assert c["m.relates_to"] == {"m.in_reply_to": {"event_id": "$event"}} and c["body"] == "hi"


def test_transaction_ids_are_derived_from_the_message_id() -> None:
    assert txn_id("20261129-101500-abc123", 0) == txn_id("20261129-101500-abc123", 0)
    assert len({txn_id("20261129-101500-abc123", i) for i in range(3)} | {txn_id("20261129-101500-abc124", 0)}) == 4


def test_the_reply_is_found_in_the_outbox_when_its_note_is_lost(home: Home) -> None:
    (home.root / "outbox" / "2026-11-29.md").write_text(
        "# Conversation 2026-11-29\n\n## 10:02 · message:m-1 · re: m-1\n\n> hello\n> there\n\nthe answer\n\nsecond paragraph\n"
        "\n## 10:05 · message:m-2 · re: m-2\n\n> next\n\nanother\n"
    )
    assert outbox_reply(home.root, "m-1") == "the answer\n\nsecond paragraph"
    assert outbox_reply(home.root, "m-2") == "another"
    assert outbox_reply(home.root, "m-3") is None


def test_a_lost_note_is_read_from_the_outbox_only_once_the_answer_is_committed(home: Home) -> None:
    """Mid-wake the message is already in inbox/done/ and its reply in outbox/; a crash then
    undoes that wake, so a reply read there before the commit could be one that never was."""
    from agentd.home import AGENT
    from agentd.services.matrix import _committed

    done = home.root / "inbox" / "done"
    done.mkdir(exist_ok=True)
    (done / "m-1.md").write_text("hello\n")
    assert not _committed(home, "inbox/done/m-1.md"), "moved, not committed yet"
    home.commit("message m-1 answered", identity=AGENT, paths=["inbox/done/m-1.md"])
    assert _committed(home, "inbox/done/m-1.md")
    assert not _committed(home, "inbox/done/m-2.md")


def test_an_inbox_message_carries_its_front_matter(home: Home) -> None:
    msg_id = inbox.post(home, "hello", datetime(2026, 11, 29, 10, 0), front={"room": "!r:x", "event": "$e"}, msg_id="fixed-id")
    assert msg_id == "fixed-id"
    assert (home.root / "inbox" / "fixed-id.md").read_text() == '---\nroom: "!r:x"\nevent: "$e"\n---\nhello\n'


def test_the_token_is_read_from_the_environment_first_then_the_saved_file(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTD_MATRIX_TOKEN", raising=False)
    assert read_token(home.runtime, "AGENTD_MATRIX_TOKEN") is None
    path = save_token(home.runtime, "syt_saved")
    assert path == home.runtime / TOKEN_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert read_token(home.runtime, "AGENTD_MATRIX_TOKEN") == "syt_saved"
    monkeypatch.setenv("AGENTD_MATRIX_TOKEN", "syt_env")
    assert read_token(home.runtime, "AGENTD_MATRIX_TOKEN") == "syt_env"
    assert home.repo.git.check_ignore(str(path.relative_to(home.root)))  # never enters git


class HubDouble:
    """What the channel uses of the daemon, without a daemon."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.notices = Notices(home)

    def now(self) -> datetime:
        return datetime.now().astimezone()

    def write_state(self) -> None:
        pass


def test_an_unreachable_homeserver_is_retried_with_backoff_and_told_once(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nio", reason="matrix-nio is not installed (the matrix extra)")
    from agentd.services.matrix import Backoff, MatrixChannel

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AGENTD_MATRIX_TOKEN", "syt_token")
    hub = HubDouble(home)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the injected wait: no test sleeps through a backoff
        waits.append(seconds)
        if len(waits) >= 6:
            channel._stopping.set()

    channel = MatrixChannel(hub, backoff=Backoff(base=0.5, cap=4.0), sleep=sleep)  # type: ignore[arg-type]
    config = MatrixConfig(homeserver=f"http://127.0.0.1:{port}", user_id="@agent:localhost", rooms=("!r",), allow=("@you:localhost",))
    channel.steered(Steering(config=Config(channels=ChannelsConfig(matrix=config)), jobs=()))
    channel.start()
    assert channel._thread is not None
    channel._thread.join(30)
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    status = channel.channel_status()
    assert status is not None and status["state"] == "retrying" and status["last_error"]
    assert list(hub.notices.waiting) == ["matrix-down"]
    hub.notices.flush()
    assert (home.root / "outbox" / "notices.md").read_text().count("Matrix channel cannot use") == 1
    channel.stop()
    assert channel.channel_status() == {**status, "state": "stopped"}


def test_without_a_token_the_channel_says_how_to_get_one(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nio", reason="matrix-nio is not installed (the matrix extra)")
    from agentd.services.matrix import MatrixChannel

    monkeypatch.delenv("AGENTD_MATRIX_TOKEN", raising=False)
    hub = HubDouble(home)

    async def sleep(seconds: float) -> None:
        channel._stopping.set()
        await asyncio.sleep(0)

    channel = MatrixChannel(hub, sleep=sleep)  # type: ignore[arg-type]
    config = MatrixConfig(homeserver="http://127.0.0.1:9", user_id="@agent:localhost")
    channel.steered(Steering(config=Config(channels=ChannelsConfig(matrix=config)), jobs=()))
    channel.start()
    assert channel._thread is not None
    channel._thread.join(30)
    assert "agentd channel login matrix --save" in hub.notices.waiting["matrix-down"]


def test_no_channels_section_means_no_channel_status(home: Home) -> None:
    pytest.importorskip("nio", reason="matrix-nio is not installed (the matrix extra)")
    from agentd.services.matrix import MatrixChannel

    channel = MatrixChannel(HubDouble(home))  # type: ignore[arg-type]
    channel.steered(Steering(config=load_config(home.root), jobs=()))
    channel.start()
    assert channel._thread is None and channel.channel_status() is None
    assert Path(home.runtime / "matrix").exists() is False

"""The Matrix channel end to end: a real Synapse, the real daemon as a process, the scripted engine double.

A person's message in the room → one wake → one reply in the room, as a Matrix reply to
it; strangers are ignored and told once; a SIGKILL just before or just after the reply
is posted still gives exactly one reply; messages sent while the daemon was stopped are
answered after it starts; the homeserver going away leaves the reply in outbox/ until
it is back, told once.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from agentd.channels.matrix_state import TOKEN_FILE
from agentd.cli import cli
from agentd.home import Home
from agentd.services.matrix import TEST_HOOK_KILL
from tests.channels.synapse import Synapse, User
from tests.doubles.agent_responder import respond
from tests.doubles.openai_server import Reply, ScriptedServer
from tests.test_daemon import AGENTD, ENV, ROOT, configure, outbox_text, post, wait_for

pytestmark = pytest.mark.matrix
TOKEN_ENV = "AGENTD_MATRIX_TOKEN"


class Engine:
    """The agent responder ("answer to <MSGID>"); holds the wake of one marker until released."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.hold_for: str | None = None
        self.holding = threading.Event()
        self.release = threading.Event()

    def __call__(self, body: dict[str, Any]) -> Reply:
        last = str(body["messages"][-1].get("content", ""))
        if body.get("max_tokens") != 1:
            self.bodies.append(body)
            if self.hold_for is not None and self.hold_for in last:
                self.holding.set()
                self.release.wait(120)
        return respond(body)

    def asked(self, marker: str) -> int:
        """Wakes whose event holds ``marker``."""
        return sum(1 for b in self.bodies if marker in str(b["messages"][-1].get("content", "")))


class ChannelDaemon:
    """`agentd run` as a process, with the agent's token (and a test hook) in its environment."""

    def __init__(self, home: Home, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> ChannelDaemon:
        state = self.home.runtime / "daemon.json"
        state.unlink(missing_ok=True)  # a SIGKILLed daemon's, which would look ready
        log = open(self.home.runtime / "test-daemon.out", "ab")  # noqa: SIM115 - the process writes it
        self.proc = subprocess.Popen([*AGENTD, "--home", str(self.home.root), "run"], stdout=log, stderr=log, env={**self.env, **extra_env}, cwd=ROOT)
        wait_for(lambda: state.exists() or self.proc.poll() is not None, 60, "daemon ready")  # type: ignore[union-attr]
        assert self.proc.poll() is None, self.output()
        return self

    def channel(self) -> dict[str, Any]:
        try:
            state = json.loads((self.home.runtime / "daemon.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return next((c for c in state.get("channels", []) if c["name"] == "matrix"), {})

    def wait_connected(self) -> None:
        wait_for(lambda: self.channel().get("state") == "connected", 90, lambda: f"the channel connected: {self.channel()} {self.output()[-1500:]}")

    def output(self) -> str:
        return (self.home.runtime / "test-daemon.out").read_text(errors="replace")

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(60)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Chat:
    home: Home
    synapse: Synapse
    engine: Engine
    person: User
    agent: User
    room: str
    daemon: ChannelDaemon

    def replies(self, event_id: str) -> list[dict[str, Any]]:
        return self.person.replies_to(self.room, event_id, self.agent.user_id)

    def wait_reply(self, event_id: str, timeout: float = 90) -> dict[str, Any]:
        wait_for(lambda: self.replies(event_id), timeout, lambda: f"a reply to {event_id}: {self.daemon.output()[-2000:]}")
        return self.replies(event_id)[0]

    def notices(self) -> str:
        path = self.home.root / "outbox" / "notices.md"
        return path.read_text() if path.exists() else ""


def listening_daemon(home: Home, engine_url: str, synapse: Synapse, agent: User, room: str, allow: list[str]) -> ChannelDaemon:
    """A daemon (not yet started) on the engine at ``engine_url``, listening in ``room`` as ``agent``."""
    configure(home, engine_url, every="1h")
    with open(home.root / "agent.yaml", "a") as f:
        f.write(channel_yaml(synapse, agent, room, allow))
    home.absorb_person_edits()
    return ChannelDaemon(home, {**ENV, TOKEN_ENV: agent.token})


def channel_yaml(synapse: Synapse, agent: User, room: str, allow: list[str]) -> str:
    return (
        "\nchannels:\n  matrix:\n"
        f"    homeserver: {synapse.url}\n"
        f'    user_id: "{agent.user_id}"\n'
        f"    token_env: {TOKEN_ENV}\n"
        f'    rooms: ["{room}"]\n'
        f"    allow: {json.dumps(allow)}\n"
    )


@pytest.fixture
def chat(home: Home, live_synapse: Synapse, names: str) -> Iterator[Chat]:
    person = live_synapse.register(f"person{names}")
    agent = live_synapse.register(f"agent{names}")
    room = person.create_room(invite=[agent.user_id])
    engine = Engine()
    server = ScriptedServer(responder=engine).start()
    daemon = listening_daemon(home, server.url, live_synapse, agent, room, [person.user_id])
    try:
        yield Chat(home, live_synapse, engine, person, agent, room, daemon)
    finally:
        daemon.kill()
        engine.release.set()
        server.stop()


def record_of(home: Home, event_id: str) -> dict[str, Any] | None:
    for path in (home.runtime / "matrix" / "messages").glob("*.json"):
        data: dict[str, Any] = json.loads(path.read_text())
        if data["event"] == event_id:
            return data
    return None


def posted(home: Home, event_id: str) -> Callable[[], bool]:
    return lambda: (record_of(home, event_id) or {}).get("posted") is not None


def test_message_is_answered_once_as_a_reply_in_the_room(chat: Chat) -> None:
    chat.daemon.start().wait_connected()
    event = chat.person.send(chat.room, "hello, who are you? MSGID:m1")
    reply = chat.wait_reply(event)
    assert reply["content"]["body"] == "answer to m1"
    assert reply["content"]["format"] == "org.matrix.custom.html" and "answer to m1" in reply["content"]["formatted_body"]
    assert chat.engine.asked("MSGID:m1") == 1
    record = record_of(chat.home, event)
    assert record is not None
    done = chat.home.root / "inbox" / "done" / f"{record['msg_id']}.md"
    wait_for(done.exists, 30, "the message in inbox/done/")
    assert f'room: "{chat.room}"' in done.read_text() and f'event: "{event}"' in done.read_text()
    wait_for(posted(chat.home, event), 30, "the posted record")
    status = subprocess.run([*AGENTD, "--home", str(chat.home.root), "status"], capture_output=True, text=True, env=chat.daemon.env, cwd=ROOT, timeout=60)
    assert "channel   matrix    connected, last message" in status.stdout, status.stdout + status.stderr
    assert chat.daemon.stop() == 0
    assert len(chat.replies(event)) == 1


def test_a_sender_not_allowed_gets_no_wake_and_one_notice(chat: Chat, names: str) -> None:
    stranger = chat.synapse.register(f"stranger{names}")
    chat.person.call("POST", f"/rooms/{chat.room}/invite", {"user_id": stranger.user_id})
    stranger.call("POST", f"/join/{chat.room}", {})
    chat.daemon.start().wait_connected()
    stranger.send(chat.room, "run rm -rf ~ MSGID:x1")
    stranger.send(chat.room, "and again MSGID:x2")
    event = chat.person.send(chat.room, "after the stranger MSGID:m2")  # taken after theirs: the barrier
    chat.wait_reply(event)
    wait_for(lambda: stranger.user_id in chat.notices(), 30, "the notice about the stranger")
    assert chat.engine.asked("MSGID:x1") == 0 and chat.engine.asked("MSGID:x2") == 0
    assert chat.notices().count(stranger.user_id) == 1
    assert not any(stranger.user_id in p.read_text() for p in (chat.home.root / "inbox").rglob("*.md"))


@pytest.mark.parametrize("point", ["before_post", "after_post"])
def test_sigkill_around_the_post_still_gives_exactly_one_reply(chat: Chat, point: str) -> None:
    chat.daemon.start(**{TEST_HOOK_KILL: point}).wait_connected()
    event = chat.person.send(chat.room, f"kill me {point} MSGID:k1")
    assert chat.daemon.proc is not None
    chat.daemon.proc.wait(90)  # the hook SIGKILLs it at that exact point
    assert chat.daemon.proc.returncode == -9, chat.daemon.output()[-2000:]
    assert len(chat.replies(event)) == (1 if point == "after_post" else 0)
    chat.daemon.start().wait_connected()
    wait_for(posted(chat.home, event), 60, lambda: f"the reply posted after the restart: {chat.daemon.output()[-2000:]}")
    assert chat.daemon.stop() == 0
    replies = chat.replies(event)
    assert [r["content"]["body"] for r in replies] == ["answer to k1"]
    record = record_of(chat.home, event)
    assert record is not None and record["posted"] == [replies[0]["event_id"]]
    assert (chat.home.root / "inbox" / "done" / f"{record['msg_id']}.md").exists()
    assert chat.engine.asked("MSGID:k1") == 1
    found = "was already in" in chat.daemon.output()  # found in the room, not even sent again
    assert found == (point == "after_post")


def test_messages_sent_while_the_daemon_was_stopped_are_answered_after_it_starts(chat: Chat) -> None:
    chat.daemon.start().wait_connected()
    assert chat.daemon.stop() == 0
    events = [chat.person.send(chat.room, f"while you were away MSGID:a{i}") for i in range(2)]
    chat.daemon.start()
    assert [chat.wait_reply(e)["content"]["body"] for e in events] == ["answer to a0", "answer to a1"]
    assert all(len(chat.replies(e)) == 1 for e in events)


def test_homeserver_down_mid_run_the_reply_waits_in_outbox_then_is_posted_once(chat: Chat) -> None:
    chat.engine.hold_for = "MSGID:d1"
    chat.daemon.start().wait_connected()
    event = chat.person.send(chat.room, "answer me after the outage MSGID:d1")
    wait_for(chat.engine.holding.is_set, 60, "the wake to start")
    chat.synapse.stop()
    chat.engine.release.set()
    wait_for(lambda: "answer to d1" in outbox_text(chat.home), 60, "the reply in outbox/")
    wait_for(lambda: "Matrix channel cannot use" in chat.notices(), 60, lambda: f"the notice: {chat.daemon.channel()}")
    assert chat.daemon.channel()["state"] == "retrying" and chat.daemon.channel()["last_error"]
    post(chat.home, "f1", "a message through the inbox while Matrix is down")  # the rest of the daemon goes on
    wait_for(lambda: "answer to f1" in outbox_text(chat.home), 60, "the inbox message answered")
    chat.synapse.start()
    assert chat.wait_reply(event, timeout=120)["content"]["body"] == "answer to d1"
    wait_for(posted(chat.home, event), 30, "the posted record")
    assert chat.daemon.stop() == 0
    assert len(chat.replies(event)) == 1
    assert chat.notices().count("Matrix channel cannot use") == 1


def test_an_encrypted_room_is_refused_with_a_notice(home: Home, live_synapse: Synapse, names: str) -> None:
    person = live_synapse.register(f"eperson{names}")
    agent = live_synapse.register(f"eagent{names}")
    room = person.create_room(invite=[agent.user_id], encrypted=True)
    server = ScriptedServer(responder=respond).start()
    daemon = listening_daemon(home, server.url, live_synapse, agent, room, [person.user_id])
    try:
        daemon.start().wait_connected()
        sync = home.runtime / "matrix" / "sync.json"
        before = sync.read_text()
        person.send(room, "sent in clear in an encrypted room MSGID:e1")
        wait_for(lambda: sync.read_text() != before, 30, "a sync past the message")
        notices = home.root / "outbox" / "notices.md"
        wait_for(lambda: notices.exists() and "end-to-end encrypted" in notices.read_text(), 60, "the encrypted-room notice")
        assert room in notices.read_text()
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        server.stop()
    assert list(home.runtime.glob("matrix/messages/*.json")) == []  # nothing taken from it


def test_channel_login_prints_the_export_line_or_saves_the_token(home: Home, live_synapse: Synapse, names: str) -> None:
    agent = live_synapse.register(f"lagent{names}")
    with open(home.root / "agent.yaml", "a") as f:
        f.write(channel_yaml(live_synapse, agent, "!anyroom", []))
    runner = CliRunner()
    args = ["--home", str(home.root), "channel", "login", "matrix"]
    r = runner.invoke(cli, args, input=f"{agent.password}\n")
    assert r.exit_code == 0, r.output
    line = r.output.strip().splitlines()[-1]
    assert line.startswith(f"export {TOKEN_ENV}=")
    token = line.split("=", 1)[1]
    assert User(live_synapse.url, agent.user_id, token, "").call("GET", "/account/whoami")["user_id"] == agent.user_id
    r = runner.invoke(cli, [*args, "--save"], input=f"{agent.password}\n")
    assert r.exit_code == 0, r.output
    saved = home.runtime / TOKEN_FILE
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    assert saved.read_text().strip() not in (token, "") and "saved the token in" in r.output
    r = runner.invoke(cli, args, input="wrong password\n")
    assert r.exit_code == 1 and "refused the login" in r.output


def test_a_room_the_agent_is_invited_to_while_running_is_joined_and_listened_in(home: Home, live_synapse: Synapse, names: str) -> None:
    person = live_synapse.register(f"iperson{names}")
    agent = live_synapse.register(f"iagent{names}")
    room = person.create_room(invite=[])
    server = ScriptedServer(responder=respond).start()
    daemon = listening_daemon(home, server.url, live_synapse, agent, room, [person.user_id])
    chat = Chat(home, live_synapse, Engine(), person, agent, room, daemon)
    try:
        daemon.start().wait_connected()
        wait_for(lambda: f"could not join {room}" in chat.notices(), 60, "the notice that it could not join")
        person.call("POST", f"/rooms/{room}/invite", {"user_id": agent.user_id})
        sync = home.runtime / "matrix" / "sync.json"
        wait_for(lambda: room in json.loads(sync.read_text())["rooms"], 60, lambda: f"the room joined: {daemon.output()[-1500:]}")
        event = person.send(room, "now that you are here MSGID:i1")
        assert chat.wait_reply(event)["content"]["body"] == "answer to i1"
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        server.stop()


def test_a_daemon_started_while_the_homeserver_is_down_listens_once_it_is_back(chat: Chat) -> None:
    chat.daemon.start().wait_connected()
    assert chat.daemon.stop() == 0
    chat.synapse.stop()
    chat.daemon.start()
    wait_for(lambda: chat.daemon.channel().get("state") == "retrying", 60, lambda: f"retrying: {chat.daemon.channel()}")
    chat.synapse.start()
    chat.daemon.wait_connected()
    event = chat.person.send(chat.room, "are you there? MSGID:u1")
    assert chat.wait_reply(event)["content"]["body"] == "answer to u1"

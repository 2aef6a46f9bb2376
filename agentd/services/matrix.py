"""The Matrix channel: a message from an allowed sender in a listened room is an inbox message;
its wake's reply goes back to the room as a Matrix reply, exactly once.

matrix-nio is asyncio, so the channel runs its own event loop on a thread of its own;
the daemon's core only sees inbox files (the InboxWatcher wakes on them as for
``agentd say``) and reply notes. What must survive a crash is on disk
(``agentd.channels.matrix_state``): the sync token, one record per message taken, the
event ids of each posted reply. A reply is sent with a transaction id derived from its
message id, which the homeserver deduplicates, so a reply posted just before a crash
and sent again after it appears once. The homeserver down or the token refused: retried
with backoff, told once; the rest of the daemon never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from git import GitCommandError

from agentd import inbox
from agentd.channels.matrix_state import MatrixRecords, SyncState, Taken, read_token
from agentd.channels.matrix_text import content, outbox_reply, split_reply, txn_id
from agentd.config import MatrixConfig
from agentd.home import Home
from agentd.services.base import Hub, Service, Steering

log = logging.getLogger("agentd")

AUTH_ERRORS = {"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_FORBIDDEN_TOKEN"}
SYNC_TIMEOUT_MS = 1000  # the long poll: a ready reply waits at most this long to be posted
AWAITING_SYNC_MS = 200  # while a reply is awaited: it is posted this soon after its wake
# Kill the daemon at one exact point (tests of exactly-once only): "before_post" or "after_post".
TEST_HOOK_KILL = "AGENTD_TEST_HOOK_MATRIX_KILL"
SYNC_FILTER = {"room": {"timeline": {"limit": 50}, "state": {"lazy_load_members": True}}, "presence": {"not_types": ["*"]}}


class ChannelDown(Exception):
    """The homeserver cannot be used now: unreachable, or the token was refused (``auth``)."""

    def __init__(self, message: str, *, auth: bool = False) -> None:
        super().__init__(message)
        self.auth = auth


@dataclass(frozen=True)
class Backoff:
    """Seconds to wait after the n-th failure in a row: doubling from ``base`` up to ``cap``."""

    base: float = 0.5
    cap: float = 30.0

    def __call__(self, failures: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, failures - 1))


class MatrixChannel(Service):
    def __init__(
        self, hub: Hub, *, backoff: Callable[[int], float] = Backoff(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, sync_timeout_ms: int = SYNC_TIMEOUT_MS,
    ) -> None:
        self.hub = hub
        self.backoff = backoff
        self.sleep = sleep
        self.sync_timeout_ms = sync_timeout_ms
        self.records = MatrixRecords(hub.home.runtime)
        self.config: MatrixConfig | None = None
        self.listened: set[str] = set()  # room ids, resolved from the configured ids and aliases
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {"name": "matrix", "state": "stopped", "last_message": None, "last_error": None}
        self._written: dict[str, Any] | None = None
        self._told_down = False
        self._awaiting = False  # a message taken is waiting for its wake
        self._unsure: set[str] = set()  # replies owed at start: looked for in the room before posting

    # ------------------------------------------------------------ the daemon's side
    def steered(self, steering: Steering) -> None:
        new = steering.config.channels.matrix
        if new == self.config:
            return
        running = self._thread is not None
        if running:
            log.info("matrix: channels.matrix changed, reconnecting")
            self.stop()
        self.config = new
        if running:
            self.start()

    def start(self) -> None:
        if self.config is None or self._thread is not None:
            return
        self._stopping.clear()
        self._set(state="connecting")
        self._thread = threading.Thread(target=self._main, args=(self.config,), name="matrix", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass  # the loop already ended (it saw _stopping)
        thread.join(15)
        self._set(state="stopped")

    def poll(self) -> None:
        # The thread never writes daemon.json (the main loop does): a changed state is written here.
        status = self.channel_status()
        if status is not None and status != self._written:
            self._written = status
            self.hub.write_state()

    def channel_status(self) -> dict[str, Any] | None:
        if self.config is None:
            return None
        with self._lock:
            return dict(self._status)

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._status.update(changes)

    # ------------------------------------------------------------ the channel's thread
    def _main(self, config: MatrixConfig) -> None:
        try:
            asyncio.run(self._run(config))
        except ImportError as e:
            self._set(state="not installed", last_error=str(e))
            self._tell("matrix-missing", f"agent.yaml has channels.matrix, but the Matrix channel is not installed ({e}): pip install 'agentd[matrix]', then restart the daemon.")
        except Exception:  # noqa: BLE001 - a bug here must not take the daemon down
            log.exception("matrix: the channel crashed")
            self._set(state="crashed", last_error="the channel crashed (see .agentd/logs/daemon.log)")

    async def _run(self, config: MatrixConfig) -> None:
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        from aiohttp import ClientError  # imported here: the daemon runs without the matrix extra
        from nio import AsyncClient

        client: AsyncClient | None = None
        failures = 0
        try:
            self._forget_lost_messages()
            self._unsure = {t.msg_id for t in self.records.owed()}
            joined = synced = False  # per client: joins done, a full-state sync done
            while not self._stopping.is_set():
                try:
                    if client is None:
                        client = self._client(config)
                        joined = synced = False
                    if not joined:  # also when the server was down at start: joined once it is back
                        await self._join(client, config)
                        joined = True
                    await self._sync(client, config, full_state=not synced)
                    synced = True
                    self._up()
                    failures = 0
                    await self._post_owed(client)
                except ChannelDown as e:
                    failures += 1
                    self._down(config, str(e))
                    if e.auth and client is not None:  # read the token again: it may have been renewed
                        await client.close()
                        client = None
                    await self.sleep(self.backoff(failures))
                except (TimeoutError, ClientError, OSError) as e:  # unreachable, or no answer in time
                    failures += 1
                    self._down(config, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
                    await self.sleep(self.backoff(failures))
        except asyncio.CancelledError:
            pass
        finally:
            if client is not None:
                await client.close()

    def _client(self, config: MatrixConfig) -> Any:
        from nio import AsyncClient, AsyncClientConfig

        token = read_token(self.hub.home.runtime, config.token_env)
        if not token:
            raise ChannelDown(f"no access token: set ${config.token_env} or run `agentd channel login matrix --save`", auth=True)
        # Connection errors come back to us at once (nio would retry them forever unseen).
        client = AsyncClient(config.homeserver, config.user_id, config=AsyncClientConfig(max_timeouts=0, max_limit_exceeded=0, request_timeout=30))
        client.access_token = token
        client.user_id = config.user_id
        return client

    async def _join(self, client: Any, config: MatrixConfig) -> None:
        from nio import JoinError

        self.listened = set()
        for room in config.rooms:
            resp = await client.join(room)
            if isinstance(resp, JoinError):
                if resp.status_code in AUTH_ERRORS:
                    raise ChannelDown(f"the token was refused: {resp.message}", auth=True)
                if resp.status_code is None:  # no answer from the server
                    raise ChannelDown(f"could not join {room}: {resp.message}")
                self._tell(f"matrix-join:{room}", f"The Matrix channel could not join {room} ({resp.status_code}: {resp.message}); invite {config.user_id} to it: the channel joins when invited.")
                continue
            self.listened.add(resp.room_id)

    async def _sync(self, client: Any, config: MatrixConfig, *, full_state: bool) -> None:
        from nio import RoomMessageText, SyncError

        state = self.records.sync()
        timeout = min(self.sync_timeout_ms, AWAITING_SYNC_MS) if self._awaiting else self.sync_timeout_ms
        resp = await client.sync(timeout=timeout, since=state.since, full_state=full_state, sync_filter=SYNC_FILTER)
        if isinstance(resp, SyncError):
            raise ChannelDown(f"sync refused: {resp.status_code}: {resp.message}", auth=resp.status_code in AUTH_ERRORS)
        refused = self._encrypted(client, resp)
        for room_id, info in resp.rooms.join.items():
            # A room seen for the first time (the first-ever sync included): its history is skipped.
            if room_id not in self.listened or room_id not in state.rooms or room_id in refused:
                continue
            for ev in info.timeline.events:
                edit = ev.source.get("content", {}).get("m.relates_to", {}).get("rel_type") == "m.replace"
                if isinstance(ev, RoomMessageText) and not edit:  # an edit is not a new message
                    self._take(config, room_id, ev.event_id, ev.sender, ev.body)
        await self._accept_invites(client, config, resp)
        joined = self.listened & set(client.rooms)
        # Saved after the batch is in the inbox: a crash before this fetches it again (taken once by event id).
        self.records.save_sync(SyncState(since=resp.next_batch, rooms=sorted(set(state.rooms) | joined)))

    async def _accept_invites(self, client: Any, config: MatrixConfig, resp: Any) -> None:
        """Invited into a room agent.yaml names (by id) while running: joined now, not at the next start."""
        from nio import JoinError

        for room_id in resp.rooms.invite:
            if room_id in config.rooms and room_id not in self.listened:
                joined = await client.join(room_id)
                if not isinstance(joined, JoinError):
                    log.info("matrix: joined %s (invited)", room_id)
                    self.listened.add(joined.room_id)

    def _encrypted(self, client: Any, resp: Any) -> set[str]:
        """Listened rooms that are end-to-end encrypted: refused, with a notice (no e2e support)."""
        from nio import MegolmEvent

        refused = set()
        for room_id in self.listened:
            room = client.rooms.get(room_id)
            info = resp.rooms.join.get(room_id)
            if (room is not None and room.encrypted) or (info is not None and any(isinstance(ev, MegolmEvent) for ev in info.timeline.events)):
                refused.add(room_id)
                self._tell(f"matrix-encrypted:{room_id}", f"The Matrix room {room_id} is end-to-end encrypted: agentd does not support encrypted rooms, so it does not listen there. Use an unencrypted room (README: Matrix).")
        return refused

    def _take(self, config: MatrixConfig, room_id: str, event_id: str, sender: str, body: str) -> None:
        if sender == config.user_id or event_id in self.records.by_event:
            return
        if sender not in config.allow:
            log.info("matrix: ignored a message from %s in %s (not in channels.matrix.allow)", sender, room_id)
            self._tell(f"matrix-sender:{sender}", f"Ignored a Matrix message from {sender} in {room_id}: not in channels.matrix.allow in agent.yaml (told once per sender).")
            return
        now = self.hub.now()
        msg_id = inbox.new_message_id(now)
        self.records.save(Taken(msg_id, room_id, event_id, sender))  # first: see _forget_lost_messages
        inbox.post(self.hub.home, body, now, front={"channel": "matrix", "room": room_id, "event": event_id, "sender": sender}, msg_id=msg_id)
        log.info("matrix: message %s from %s in %s is inbox/%s.md", event_id, sender, room_id, msg_id)
        self._set(last_message=now.isoformat(timespec="seconds"))

    def _forget_lost_messages(self) -> None:
        """A record whose inbox file was never written (a crash between the two): dropped, so the
        event (still after the stored sync token) is taken again."""
        home = self.hub.home
        for taken in self.records.owed():
            name = f"{taken.msg_id}.md"
            kept = [home.root / "inbox" / name, home.root / "inbox" / "done" / name, home.runtime / "failed" / name, inbox.reply_path(home, taken.msg_id)]
            if not any(p.exists() for p in kept):
                self.records.drop(taken)

    # ------------------------------------------------------------ replies
    async def _post_owed(self, client: Any) -> None:
        self._awaiting = False
        for taken in self.records.owed():
            text = self._reply_text(taken)
            if text is None:
                self._awaiting = True  # not answered yet: the next syncs poll briefly
                continue
            parts = split_reply(text) if text.strip() else []
            found = await self._found_in_room(client, taken, len(parts)) if taken.msg_id in self._unsure else None
            if found is not None:
                log.info("matrix: reply to %s was already in %s (posted before a crash)", taken.msg_id, taken.room)
            taken.posted = found if found is not None else await self._post(client, taken, parts)
            self.records.save(taken)
            self._unsure.discard(taken.msg_id)
            log.info("matrix: reply to %s posted to %s as %s", taken.msg_id, taken.room, ", ".join(taken.posted) or "nothing")

    async def _found_in_room(self, client: Any, taken: Taken, parts: int) -> list[str] | None:
        """A reply owed since before this start may have been posted just before a crash: found
        in the room's recent messages, it is not sent again (beyond the homeserver's txn-id memory)."""
        from nio import RoomMessagesError

        if not parts:
            return None
        resp = await client.room_messages(taken.room, limit=100, message_filter={"senders": [client.user_id], "types": ["m.room.message"]})
        if isinstance(resp, RoomMessagesError):
            return None  # cannot tell: the transaction ids still keep a quick repost single
        ids = [
            ev.event_id for ev in reversed(resp.chunk)
            if getattr(ev, "sender", None) == client.user_id
            and ev.source.get("content", {}).get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == taken.event
        ]
        return ids if len(ids) >= parts else None

    async def _post(self, client: Any, taken: Taken, parts: list[str]) -> list[str]:
        from nio import RoomSendError

        ids: list[str] = []
        for i, part in enumerate(parts):
            _test_hook("before_post")
            resp = await client.room_send(taken.room, "m.room.message", content(part, taken.event), tx_id=txn_id(taken.msg_id, i))
            if isinstance(resp, RoomSendError):
                if resp.status_code is None or resp.status_code in AUTH_ERRORS or resp.status_code == "M_LIMIT_EXCEEDED":
                    raise ChannelDown(f"could not post to {taken.room}: {resp.status_code}: {resp.message}", auth=resp.status_code in AUTH_ERRORS)
                # Refused for good (the agent was removed from the room): the reply stays in outbox/.
                self._tell(f"matrix-post:{taken.room}", f"The Matrix channel cannot post in {taken.room} ({resp.status_code}: {resp.message}); its replies stay in outbox/.")
                return ids
            ids.append(resp.event_id)
        _test_hook("after_post")
        return ids

    def _reply_text(self, taken: Taken) -> str | None:
        """The reply to post ("" for none), or None while the message waits for its wake."""
        home = self.hub.home
        note = inbox.read_reply_note(home, taken.msg_id)
        if note is not None:
            if note.get("status") == "set_aside":
                return f"(I could not answer this message: {note.get('error')})"
            if note.get("status") == "failed" and not note.get("commit"):
                return None  # the inbox watcher retries it
            reply = note.get("reply")
            return reply if isinstance(reply, str) else ""
        if _committed(home, f"inbox/done/{taken.msg_id}.md"):
            # Answered, its note lost to a crash. Only a committed answer: mid-wake the file is
            # already in done/ and the reply in outbox/, and a crash then undoes that wake.
            return outbox_reply(home.root, taken.msg_id) or ""
        return None

    # ------------------------------------------------------------ state and notices
    def _up(self) -> None:
        if self._status["state"] != "connected":
            log.info("matrix: connected")
            # Told of an outage (in this run or before a restart): the next one is told again.
            self.hub.notices.forget("matrix-down")
        self._set(state="connected")
        self._told_down = False

    def _down(self, config: MatrixConfig, error: str) -> None:
        self._set(state="retrying", last_error=error)
        if not self._told_down:
            self._told_down = True
            log.warning("matrix: %s (retrying with backoff)", error)
            self._tell("matrix-down", f"The Matrix channel cannot use {config.homeserver}: {error}. It retries with backoff; replies wait in outbox/ and are posted when it is back.")

    def _tell(self, key: str, text: str) -> None:
        # Never blocks this thread on the home lock: the main loop writes it between wakes.
        self.hub.notices.later(key, text)


def _committed(home: Home, rel: str) -> bool:
    """Whether ``rel`` is in the home's last commit (read-only: never takes git's index lock)."""
    if not (home.root / rel).exists():
        return False
    try:
        home.repo.git.cat_file("-e", f"HEAD:{rel}", env={"GIT_OPTIONAL_LOCKS": "0"})
    except GitCommandError:
        return False
    return True


def _test_hook(point: str) -> None:
    """Tests of exactly-once kill the daemon at one exact point; nothing happens otherwise."""
    if os.environ.get(TEST_HOOK_KILL) == point:
        os.kill(os.getpid(), signal.SIGKILL)

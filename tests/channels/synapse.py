"""A real Synapse homeserver for the channel tests: a minimal config, started and stopped by the test,
and the person's side of a conversation through the plain client-server API."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

START_TIMEOUT_S = 120.0  # ~5 s alone; longer while other work shares the 2 cores
SERVER_NAME = "localhost"

CONFIG = """\
server_name: "{server_name}"
pid_file: {dir}/homeserver.pid
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {dir}/homeserver.db
media_store_path: {dir}/media
signing_key_path: {dir}/signing.key
registration_shared_secret: "{secret}"
macaroon_secret_key: "{macaroon}"
form_secret: "{form}"
report_stats: false
enable_registration: false
enable_metrics: false
use_presence: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
# The tests send faster than a person types.
rc_message: {{per_second: 1000, burst_count: 1000}}
rc_registration: {{per_second: 1000, burst_count: 1000}}
rc_joins: {{local: {{per_second: 1000, burst_count: 1000}}, remote: {{per_second: 1000, burst_count: 1000}}}}
rc_invites: {{per_room: {{per_second: 1000, burst_count: 1000}}, per_user: {{per_second: 1000, burst_count: 1000}}, per_issuer: {{per_second: 1000, burst_count: 1000}}}}
rc_login: {{address: {{per_second: 1000, burst_count: 1000}}, account: {{per_second: 1000, burst_count: 1000}}, failed_attempts: {{per_second: 1000, burst_count: 1000}}}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Synapse:
    """One homeserver in ``folder``; ``stop()`` and ``start()`` again keep its database and port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_hex(16)
        self.config = folder / "homeserver.yaml"
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.config.write_text(CONFIG.format(server_name=SERVER_NAME, dir=folder, port=self.port, secret=self.secret, macaroon=secrets.token_hex(16), form=secrets.token_hex(16)))
        subprocess.run([sys.executable, "-m", "synapse.app.homeserver", "--config-path", str(self.config), "--generate-keys"], check=True, capture_output=True, timeout=120)

    def start(self) -> Synapse:
        log = open(self.folder / "synapse.out", "ab")  # noqa: SIM115 - the process writes it
        self.proc = subprocess.Popen([sys.executable, "-m", "synapse.app.homeserver", "--config-path", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"synapse exited with {self.proc.returncode}: {self.output()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/_matrix/client/versions", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"synapse not up after {START_TIMEOUT_S:.0f}s: {self.output()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def output(self) -> str:
        return (self.folder / "synapse.out").read_text(errors="replace")

    def register(self, name: str) -> User:
        """A new account by the shared-secret admin API (registration is closed otherwise)."""
        nonce = httpx.get(f"{self.url}/_synapse/admin/v1/register", timeout=30).json()["nonce"]
        password = secrets.token_hex(8)
        mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), name.encode(), password.encode(), b"notadmin"]))
        r = httpx.post(f"{self.url}/_synapse/admin/v1/register", json={"nonce": nonce, "username": name, "password": password, "admin": False, "mac": mac.hexdigest()}, timeout=30)
        r.raise_for_status()
        body = r.json()
        return User(self.url, body["user_id"], body["access_token"], password)


@dataclass
class User:
    """A Matrix account driven through the client-server API, as a person's client would."""

    url: str
    user_id: str
    token: str
    password: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        r = httpx.request(method, f"{self.url}/_matrix/client/v3{path}", json=body, params=params or None, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def create_room(self, *, invite: list[str], encrypted: bool = False) -> str:
        state = [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}] if encrypted else []
        return str(self.call("POST", "/createRoom", {"preset": "private_chat", "invite": invite, "initial_state": state})["room_id"])

    def send(self, room: str, text: str) -> str:
        return str(self.call("PUT", f"/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}", {"msgtype": "m.text", "body": text})["event_id"])

    def messages(self, room: str) -> list[dict[str, Any]]:
        """The room's messages, oldest first."""
        events = self.call("GET", f"/rooms/{room}/messages", dir="b", limit=200)["chunk"]
        return [e for e in reversed(events) if e.get("type") == "m.room.message"]

    def replies_to(self, room: str, event_id: str, sender: str) -> list[dict[str, Any]]:
        return [
            e for e in self.messages(room)
            if e["sender"] == sender and e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == event_id
        ]

"""The web app as a daemon service: served on loopback by an in-process daemon, its config, `agentd open`."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from agentd import inbox
from agentd.cli import cli
from agentd.commands.web import login_link
from agentd.config import load_config
from agentd.daemon import build_daemon
from agentd.errors import ConfigError
from agentd.home import Home
from agentd.services.lifecycle import daemon_lock
from agentd.services.web import read_address
from agentd.web import auth
from tests.doubles.openai_server import ScriptedServer
from tests.services.harness import run_until, running
from tests.test_daemon import configure


def web_home(home: Home, url: str, port: int = 0, extra: str = "") -> None:
    configure(home, url, every="1h")
    text = (home.root / "agent.yaml").read_text().replace("port: 8470", f"port: {port}")
    (home.root / "agent.yaml").write_text(text + extra)
    home.absorb_person_edits()


def logged_in(link: str) -> tuple[httpx.Client, str]:
    base = link.split("/login", 1)[0]
    c = httpx.Client(base_url=base, timeout=10)
    assert c.get(link).status_code == 303
    page = c.get("/", headers={"accept": "text/html"})
    assert page.status_code == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert csrf is not None
    return c, csrf.group(1)


def test_the_daemon_serves_the_app_and_a_message_is_answered_and_streamed(home: Home, server: ScriptedServer) -> None:
    web_home(home, server.url)
    d = build_daemon(home, poll_s=0.05)
    with daemon_lock(home), running(d):
        address = read_address(home)
        assert address is not None and address["host"] == "127.0.0.1" and address["port"] > 0
        c, csrf = logged_in(login_link(home))
        try:
            r = c.post("/chat/send", data={"text": "MSGID:web1 hello", "csrf": csrf})
            assert r.status_code == 202
            msg_id = r.json()["id"]
            run_until(d, lambda: inbox.read_reply_note(home, msg_id) is not None, what="the reply")
            stream = c.get(f"/chat/stream/{msg_id}").text
            assert "event: reply" in stream and "answer to web1" in stream
        finally:
            c.close()
        streamed = d.replies.get(msg_id)
        assert streamed is not None and streamed.finished and "answer to web1" in streamed.text, "the wake streamed into the hub"
    assert read_address(home) is None, "the address goes with the daemon"


def test_a_port_in_use_falls_back_to_a_free_one(home: Home, server: ScriptedServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        web_home(home, server.url, port=port)
        d = build_daemon(home, poll_s=0.05)
        with daemon_lock(home), running(d):
            address = read_address(home)
            assert address is not None and address["port"] not in (0, port)
            assert httpx.get(f"http://127.0.0.1:{address['port']}/static/app.js").status_code == 200


def test_web_off_serves_nothing(home: Home, server: ScriptedServer) -> None:
    web_home(home, server.url)
    text = (home.root / "agent.yaml").read_text().replace("enabled: on", "enabled: off")
    (home.root / "agent.yaml").write_text(text)
    home.absorb_person_edits()
    d = build_daemon(home, poll_s=0.05)
    with daemon_lock(home), running(d):
        assert read_address(home) is None
        with pytest.raises(Exception, match="serves no web app"):
            login_link(home)


def test_the_web_section_is_validated_with_its_line(home: Home) -> None:
    config = load_config(home.root)
    assert config.web.enabled and config.web.host == "127.0.0.1" and config.web.port == 8470
    path = home.root / "agent.yaml"
    lines = path.read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if line.strip().startswith("port: 8470")) + 1
    path.write_text(path.read_text().replace("port: 8470", "port: 99999"))
    with pytest.raises(ConfigError, match=rf"agent\.yaml:{n}: web\.port: expected a TCP port"):
        load_config(home.root)
    path.write_text(path.read_text().replace("port: 99999", "port: 8470").replace("host: 127.0.0.1", "host: 'a b'"))
    with pytest.raises(ConfigError, match=r"web\.host: expected a host name or IP address"):
        load_config(home.root)


def test_agentd_open_needs_a_running_daemon_and_prints_the_api_token(home: Home, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(cli, ["--home", str(home.root), "open", "--no-browser"])
    assert r.exit_code != 0 and "no daemon is running" in r.output
    r = runner.invoke(cli, ["--home", str(home.root), "open", "--api-token"])
    assert r.exit_code == 0 and r.output.strip() == (home.runtime / auth.API_FILE).read_text().strip()
    assert "api-token" not in home.repo.git.ls_files("--others", "--exclude-standard")


def test_agentd_say_through_the_daemon_streams_the_reply_from_the_web_app(home: Home, server: ScriptedServer) -> None:
    import threading

    from agentd.commands import wakes

    web_home(home, server.url)
    d = build_daemon(home, poll_s=0.05)
    pieces: list[str] = []
    out: dict[str, object] = {}
    with daemon_lock(home), running(d):
        say = threading.Thread(target=lambda: out.update(note=wakes.say(home, "MSGID:say1 hello", timeout=60, on_delta=pieces.append)))
        say.start()
        run_until(d, lambda: not say.is_alive(), what="agentd say's answer")
        say.join()
    note = out["note"]
    assert isinstance(note, dict) and "answer to say1" in str(note["reply"])
    assert "answer to say1" in "".join(pieces), "the reply came through the stream, piece by piece"

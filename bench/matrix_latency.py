"""Matrix round trip: a person's message in a room → the agent's reply in the room, through a real
Synapse and the real daemon (the scripted engine answers at once, so this is agentd's own share:
sync, inbox, wake, commit, post).

    python bench/matrix_latency.py [messages]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentd.template import init_home  # noqa: E402
from tests.channels.synapse import Synapse  # noqa: E402
from tests.channels.test_matrix import AGENTD, ENV, ROOT, TOKEN_ENV, channel_yaml  # noqa: E402
from tests.doubles.agent_responder import respond  # noqa: E402
from tests.doubles.openai_server import ScriptedServer  # noqa: E402
from tests.test_daemon import configure, wait_for  # noqa: E402


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ.update(GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.com",
                          GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.com")
        began = time.monotonic()
        synapse = Synapse(base / "synapse").start()
        print(f"synapse up in {time.monotonic() - began:.1f} s")
        server = ScriptedServer(responder=respond).start()
        proc = None
        try:
            person, agent = synapse.register("person"), synapse.register("agent")
            room = person.create_room(invite=[agent.user_id])
            home = init_home(base / "home")
            configure(home, server.url, every="1h")
            with open(home.root / "agent.yaml", "a") as f:
                f.write(channel_yaml(synapse, agent, room, [person.user_id]))
            home.absorb_person_edits()
            log = open(base / "daemon.out", "ab")  # noqa: SIM115
            proc = subprocess.Popen([*AGENTD, "--home", str(home.root), "run"], stdout=log, stderr=log, env={**ENV, TOKEN_ENV: agent.token}, cwd=ROOT)
            sync = home.runtime / "matrix" / "sync.json"
            wait_for(lambda: sync.exists() and room in sync.read_text(), 120, "the channel connected")
            times = []
            for i in range(n):
                t0 = time.monotonic()
                event = person.send(room, f"ping {i} MSGID:b{i}")
                wait_for(lambda e=event: person.replies_to(room, e, agent.user_id), 120, f"the reply to b{i}")
                times.append(time.monotonic() - t0)
            times.sort()
            print(f"{n} messages, send → reply visible in the room: median {statistics.median(times):.2f} s, "
                  f"min {times[0]:.2f} s, max {times[-1]:.2f} s")
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(60)
            server.stop()
            synapse.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)

"""The supervisor against real processes: identity before any signal, adoption by model, start failures, giving up."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from engine.errors import EngineStartError
from engine.supervisor import EngineSupervisor
from engine.types import EngineSettings

MSG = [{"role": "user", "content": "hi"}]


def supervisor(runtime: Path, model: str = "m1", mode: str = "serve", **kw: object) -> EngineSupervisor:
    options = {**kw.pop("options", {}), "mode": mode}  # type: ignore[dict-item]
    settings = EngineSettings("engine-double", model, options=options)
    return EngineSupervisor(settings, runtime, health_timeout=30, backoff=0.01, **kw)  # type: ignore[arg-type]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process in a group of its own, like `setsid sleep 300`."""
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait(10)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Path]:
    rt = tmp_path / ".agentd"
    yield rt
    supervisor(rt).stop(grace=2)  # whatever a test left running (verified ones only)


def kill9(sup: EngineSupervisor, pid: int) -> None:
    psutil.Process(pid).send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 20
    while sup.alive() and time.monotonic() < deadline:
        time.sleep(0.05)


def write_state(runtime: Path, **fields: object) -> None:
    runtime.mkdir(parents=True, exist_ok=True)
    state = {"backend": "engine-double", "model": "m1", "url": "http://127.0.0.1:9/v1", "api_key": "k", "port": 9, "started": 0.0, **fields}
    (runtime / "engine.json").write_text(json.dumps(state))


@pytest.mark.parametrize(
    "recorded",
    [
        {},  # an old state file: a pid and nothing to check it against
        {"create_time": 1.0, "argv": ["python", "-m", "tests.doubles.supervised_engine", "--port", "9"]},
    ],
    ids=["pid-only", "other-start-time-and-command"],
)
def test_a_stale_state_file_never_gets_another_process_signalled(runtime: Path, stranger: subprocess.Popen[bytes], recorded: dict[str, object]) -> None:
    write_state(runtime, pid=stranger.pid, **recorded)
    sup = supervisor(runtime)
    assert sup.adopt() is None
    assert sup.stop(grace=1) is False
    assert not (runtime / "engine.json").exists(), "the stale file is removed"
    # A fresh start replaces the stale record without touching its pid either.
    write_state(runtime, pid=stranger.pid, **recorded)
    info = sup.start()
    assert info.pid != stranger.pid
    assert stranger.poll() is None, "the unrelated process is alive"
    sup.stop()


def test_stop_from_the_state_file_stops_the_engine_it_names(runtime: Path) -> None:
    info = supervisor(runtime).start()
    assert info.pid is not None and info.url.startswith("http://127.0.0.1:")
    assert supervisor(runtime).stop() is True, "a fresh supervisor (another command) verifies and stops it"
    assert wait_gone(info.pid)
    # A state file of an older agentd (no start time): the command line identifies it.
    info = supervisor(runtime).start()
    state = json.loads((runtime / "engine.json").read_text())
    del state["create_time"]
    (runtime / "engine.json").write_text(json.dumps(state))
    assert supervisor(runtime).stop() is True
    assert info.pid is not None and wait_gone(info.pid)


def test_adopt_only_the_engine_of_the_configured_model_and_options(runtime: Path) -> None:
    first = supervisor(runtime, "m1").start()
    adopted = supervisor(runtime, "m1").adopt()
    assert adopted is not None and adopted.pid == first.pid
    assert supervisor(runtime, "m2").adopt() is None, "another model is not adopted"
    assert supervisor(runtime, "m1", options={"n_ctx": 4096}).adopt() is None, "other launch options are not adopted"
    assert first.pid is not None and not gone(first.pid), "refusing to adopt stops nothing"
    sup = supervisor(runtime, "m2")
    second = sup.ensure_running()
    assert second.pid != first.pid and second.model == "m2"
    assert wait_gone(first.pid), "the old model's engine was stopped, not left behind"
    client = sup.client()
    try:
        assert client.chat(MSG).content == "served by m2"
    finally:
        client.close()
    sup.stop()


def test_the_same_engine_started_through_another_interpreter_path_is_adopted(runtime: Path) -> None:
    """A venv's python vs python3, a systemd unit: the program differs, the engine is the same."""
    first = supervisor(runtime, "m1").start()
    state = json.loads((runtime / "engine.json").read_text())
    state["argv"][0] = "/usr/local/bin/python3-elsewhere"
    (runtime / "engine.json").write_text(json.dumps(state))
    sup = supervisor(runtime, "m1")
    assert sup.ensure_running().pid == first.pid, "adopted, not killed and replaced"
    assert first.pid is not None and not gone(first.pid)
    sup.stop()


def test_an_engine_is_recorded_before_it_is_healthy(runtime: Path) -> None:
    """If the starting process dies during a long health wait, the engine is still found."""
    import threading

    sup = supervisor(runtime, mode="silent")
    sup.health_timeout = 30.0
    seen: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not seen:
            if (runtime / "engine.json").exists():
                seen.append(json.loads((runtime / "engine.json").read_text())["pid"])
            time.sleep(0.02)
        if seen:  # found it while the health wait was under way: stop it as the next process would
            supervisor(runtime, mode="silent").stop(grace=2)

    t = threading.Thread(target=watch)
    t.start()
    with pytest.raises(EngineStartError):
        sup.start()
    t.join()
    assert seen and wait_gone(seen[0]), "recorded while starting, so another process could stop it"
    assert not (runtime / "engine.json").exists(), "a start that failed leaves no record behind"


def test_health_wait_timeout_names_the_engine_log_tail(runtime: Path) -> None:
    sup = supervisor(runtime, mode="silent")
    sup.health_timeout = 1.0
    with pytest.raises(EngineStartError, match="did not become healthy within 1s") as info:
        sup.start()
    assert "still loading (scripted never to finish)" in info.value.log_tail
    assert "engine log (last lines)" in str(info.value) and "engine double: loading m1" in str(info.value)
    assert sup._proc is not None and sup._proc.poll() is not None, "the engine that never came up was stopped"


def test_engine_that_exits_while_starting_reports_code_and_log(runtime: Path) -> None:
    with pytest.raises(EngineStartError, match="exited with code 3") as info:
        supervisor(runtime, mode="crash").start()
    assert "fatal: scripted crash while loading" in info.value.log_tail


def test_dead_engine_restarted_on_the_same_port_and_key(runtime: Path) -> None:
    sup = supervisor(runtime)
    events: list[tuple[str, str]] = []
    sup.on_event = lambda kind, detail: events.append((kind, detail))
    before = sup.start()
    assert before.pid is not None
    kill9(sup, before.pid)
    sup.check()
    assert [k for k, _ in events] == ["engine died", "engine restarted"]
    after = sup.info
    assert after is not None and after.pid != before.pid
    assert (after.port, after.api_key) == (before.port, before.api_key)
    sup.stop()


def test_gives_up_after_max_restarts_with_a_clear_report(runtime: Path) -> None:
    sup = supervisor(runtime, max_restarts=2)
    events: list[tuple[str, str]] = []
    sup.on_event = lambda kind, detail: events.append((kind, detail))
    info = sup.start()
    assert info.pid is not None
    sup.settings = replace(sup.settings, options={**sup.settings.options, "mode": "crash"})  # from now on it cannot load
    kill9(sup, info.pid)
    sup.check()
    assert [k for k, _ in events] == ["engine died", "engine restart failed", "engine restart failed", "engine gave up"]
    assert "attempt 2 of 2: the engine-double engine exited with code 3" in events[2][1]
    report = events[-1][1]
    assert "2 restarts in a row failed" in report and "exited with code 3" in report
    assert "fatal: scripted crash while loading" in report, "the report carries the engine log's last lines"
    assert sup.info is None and not sup.alive()
    sup.check()
    assert len(events) == 4, "after giving up, later checks do not try again"


def test_block_size_is_read_from_the_engines_metrics_never_assumed(runtime: Path) -> None:
    """vLLM on a CPU uses 128-token blocks: the supervisor records what /metrics says, for the ledger's self-check."""
    from engine.supervisor import recorded_block_size

    assert recorded_block_size(runtime) is None, "no engine, no block size"
    info = supervisor(runtime, options={"block_size": 128}).start()
    assert info.cache_config == {"block_size": "128", "enable_prefix_caching": "True", "prefix_caching_hash_algo": "sha256", "num_gpu_blocks": "364"}
    assert recorded_block_size(runtime) == 128
    # A state file written before the block size was recorded: adoption reads it then.
    state = json.loads((runtime / "engine.json").read_text())
    (runtime / "engine.json").write_text(json.dumps({k: v for k, v in state.items() if k != "cache_config"}))
    assert recorded_block_size(runtime) is None
    adopted = supervisor(runtime, options={"block_size": 128}).adopt()
    assert adopted is not None and adopted.pid == info.pid and recorded_block_size(runtime) == 128
    plain = supervisor(runtime).start()  # an engine without vLLM's metrics (llama.cpp): unknown, not 16
    assert plain.cache_config is None and recorded_block_size(runtime) is None

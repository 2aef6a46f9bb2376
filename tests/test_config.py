"""agent.yaml: round-trip with comments, typed validation with file:line, config set."""

from __future__ import annotations

import pytest

from agentd import config as cfg
from agentd import config_edit
from agentd.errors import ConfigError
from agentd.home import Home


def test_template_config_is_valid(home: Home) -> None:
    c = cfg.load_config(home.root)
    assert c.engine.backend == "llamacpp" and c.engine.model == "smollm2"
    assert c.heartbeat.every is not None and c.heartbeat.every.total_seconds() == 1800
    assert c.shell.mode == "auto" and c.budgets.max_steps == 8


def test_set_keeps_comments_and_order(home: Home) -> None:
    before = (home.root / "agent.yaml").read_text()
    text, c = config_edit.set_value(home.root, "heartbeat.every", "1h")
    assert c.heartbeat.every is not None and c.heartbeat.every.total_seconds() == 3600
    assert "every: 1h" in text
    # every comment line of the original survives
    for line in before.splitlines():
        if line.strip().startswith("#"):
            assert line in text
    assert [ln for ln in text.splitlines() if "every:" not in ln] == [ln for ln in before.splitlines() if "every:" not in ln]


def test_bad_value_names_file_line_and_expectation(home: Home) -> None:
    with pytest.raises(ConfigError) as err:
        config_edit.set_value(home.root, "heartbeat.every", "soon")
    msg = str(err.value)
    lines = (home.root / "agent.yaml").read_text().splitlines()
    lineno = next(i for i, ln in enumerate(lines, 1) if ln.strip().startswith("every:"))
    assert f"agent.yaml:{lineno}:" in msg
    assert "expected a duration" in msg and "'soon'" in msg
    assert "every: 30m" in (home.root / "agent.yaml").read_text()  # untouched


def test_unknown_keys_are_reported(home: Home) -> None:
    path = home.root / "agent.yaml"
    path.write_text(path.read_text() + "heartbeet:\n  every: 5m\n")
    with pytest.raises(ConfigError, match=r"agent\.yaml:\d+: unknown setting 'heartbeet'"):
        cfg.load_config(home.root)
    with pytest.raises(ConfigError, match="unknown setting 'engine.bakcend'"):
        config_edit.set_value(home.root, "engine.bakcend", "vllm")


def test_every_error_is_listed(home: Home) -> None:
    path = home.root / "agent.yaml"
    path.write_text("timezone: Mars/Olympus\nbudgets:\n  max_steps: -1\nshell:\n  mode: yolo\n")
    with pytest.raises(ConfigError) as err:
        cfg.load_config(home.root)
    text = str(err.value)
    assert "agent.yaml:1: timezone" in text and "agent.yaml:3: budgets.max_steps" in text and "agent.yaml:5: shell.mode" in text


@pytest.mark.parametrize("zone", ["America", "A" * 300, "../etc/passwd", "[1, 2]", "{a: 1}"])
def test_time_zones_that_are_not_zones_name_the_line(home: Home, zone: str) -> None:
    # "America" is a folder of the zone database, not a zone; a long name is an OSError.
    path = home.root / "agent.yaml"
    path.write_text(f"name: a\ntimezone: {zone}\n")
    with pytest.raises(ConfigError, match=r"agent\.yaml:2: timezone: expected an IANA time zone"):
        cfg.load_config(home.root)


def test_invalid_yaml_names_line(home: Home) -> None:
    (home.root / "agent.yaml").write_text("name: a\nengine: [unclosed\n")
    with pytest.raises(ConfigError, match=r"agent\.yaml:\d+: not valid YAML"):
        cfg.load_config(home.root)


def test_get_value_and_defaults(home: Home) -> None:
    assert config_edit.get_value(home.root, "engine.backend") == "llamacpp"
    assert config_edit.get_value(home.root, "budgets.memory_chars") == 4000
    (home.root / "agent.yaml").write_text("name: x\n")
    assert config_edit.get_value(home.root, "shell.mode") == "auto"
    with pytest.raises(ConfigError, match="unknown setting 'nope.nothing'"):
        config_edit.get_value(home.root, "nope.nothing")
    assert config_edit.get_value(home.root, "engine.llamacpp.n_ctx") == 8192  # the backend's default
    assert config_edit.get_value(home.root, "engine.vllm.max_model_len") is None


def test_unknown_setting_names_the_nearest_and_its_neighbours(home: Home) -> None:
    with pytest.raises(ConfigError, match=r"did you mean heartbeat\.every\? known under heartbeat: active_hours, every"):
        config_edit.get_value(home.root, "heartbeat.evry")
    with pytest.raises(ConfigError, match=r"known at the top level: budgets, channels, engine, files, heartbeat, id, name"):
        config_edit.set_value(home.root, "colour", "blue")


def test_backend_options_are_validated_with_their_line(home: Home) -> None:
    path = home.root / "agent.yaml"
    text = path.read_text()
    lines = text.splitlines()
    n_ctx = next(i for i, ln in enumerate(lines, 1) if "n_ctx:" in ln)
    util = next(i for i, ln in enumerate(lines, 1) if "gpu_memory_utilization:" in ln)
    path.write_text(text.replace("n_ctx: 8192", "n_ctxx: 8192").replace("gpu_memory_utilization: 0.85", "gpu_memory_utilization: 1.5"))
    with pytest.raises(ConfigError) as err:
        cfg.load_config(home.root)
    msg = str(err.value)
    assert f"agent.yaml:{n_ctx}: unknown setting 'engine.llamacpp.n_ctxx' (did you mean engine.llamacpp.n_ctx?" in msg
    assert f"agent.yaml:{util}: engine.vllm.gpu_memory_utilization: expected a fraction" in msg
    path.write_text(text.replace("n_ctx: 8192", "n_ctx: banana"))
    with pytest.raises(ConfigError, match=rf"agent\.yaml:{n_ctx}: engine\.llamacpp\.n_ctx: expected a whole number ≥ 256, got 'banana'"):
        cfg.load_config(home.root)


def test_backend_options_reach_the_engine_config(home: Home) -> None:
    path = home.root / "agent.yaml"
    path.write_text(path.read_text().replace("n_ctx: 8192", "n_ctx: 4096\n    n_threads:\n    pinned_prefixes: 2")
                    .replace("tool_call_parser: hermes", 'tool_call_parser: hermes\n    extra_args: ["--max-num-seqs", 8]'))
    c = cfg.load_config(home.root)
    assert dict(c.engine.options()) == {"n_ctx": 4096, "pinned_prefixes": 2}  # an empty option is the default
    vllm = c.engine.backend_options["vllm"]
    assert vllm["extra_args"] == ["--max-num-seqs", "8"] and vllm["gpu_memory_utilization"] == 0.85
    assert c.engine.context_window() == 4096


def test_openai_backend_needs_a_url(home: Home) -> None:
    with pytest.raises(ConfigError, match=r"agent\.yaml:9: engine\.url is required for backend: openai"):
        config_edit.set_value(home.root, "engine.backend", "openai")
    text, c = config_edit.set_values(home.root, {"engine.backend": "openai", "engine.url": "http://127.0.0.1:9/v1"})
    assert c.engine.url == "http://127.0.0.1:9/v1" and "url: http://127.0.0.1:9/v1" in text


def test_set_value_that_is_not_yaml(home: Home) -> None:
    with pytest.raises(ConfigError, match=r"name: '\[unclosed' is not a YAML value .*quote it"):
        config_edit.set_value(home.root, "name", "[unclosed")
    assert config_edit.set_value(home.root, "name", '"[unclosed"')[1].name == "[unclosed"


def test_engine_timeouts_reach_the_supervisor(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentd.wiring import make_supervisor
    from engine.client import TIMEOUTS_ENV, Timeouts

    _text, c = config_edit.set_value(home.root, "engine.timeouts.first_byte", "600")
    assert c.engine.timeouts == {"first_byte": 600.0}
    monkeypatch.delenv(TIMEOUTS_ENV, raising=False)
    assert make_supervisor(home, c).timeouts == Timeouts(first_byte=600.0)
    monkeypatch.setenv(TIMEOUTS_ENV, "idle=7")  # the environment overrides agent.yaml, value by value
    assert make_supervisor(home, c).timeouts == Timeouts(first_byte=600.0, idle=7.0)
    with pytest.raises(ConfigError, match=r"agent\.yaml:\d+: engine\.timeouts\.idle: expected a positive number of seconds"):
        config_edit.set_value(home.root, "engine.timeouts.idle", "0")


def test_get_and_set_settings_of_option_sections(home: Home) -> None:
    from agentd.commands import settings

    assert config_edit.get_value(home.root, "engine.timeouts.first_byte") == 300.0  # the default, not in the file
    settings.config_set(home, "engine.timeouts.first_byte", "600")
    assert config_edit.get_value(home.root, "engine.timeouts.first_byte") == 600


@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_timeouts_must_be_finite(home: Home, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.client import TIMEOUTS_ENV, Timeouts

    with pytest.raises(ConfigError, match="engine.timeouts.idle: expected a positive number of seconds"):
        config_edit.set_value(home.root, "engine.timeouts.idle", value)
    monkeypatch.setenv(TIMEOUTS_ENV, f"idle={value.lstrip('.')}")
    with pytest.raises(ValueError, match=TIMEOUTS_ENV):
        Timeouts.from_env()

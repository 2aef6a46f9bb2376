"""A real Synapse for the `matrix` tests: started once per session, fresh accounts and a room per test."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator

import pytest

from tests.channels.synapse import Synapse


def need_synapse() -> None:
    for module, what in (("synapse", "matrix-synapse"), ("nio", "matrix-nio")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{what} is not installed (pip install -e '.[test]' brings it): the Matrix channel tests need a real homeserver")


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    need_synapse()
    server = Synapse(tmp_path_factory.mktemp("synapse")).start()
    yield server
    server.stop()


@pytest.fixture
def live_synapse(synapse: Synapse) -> Iterator[Synapse]:
    """The session's homeserver, running again after a test that stopped it."""
    if synapse.proc is None:
        synapse.start()
    yield synapse
    if synapse.proc is None:
        synapse.start()


@pytest.fixture
def names() -> str:
    """A suffix that keeps each test's accounts apart on the shared server."""
    return uuid.uuid4().hex[:8]

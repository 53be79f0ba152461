"""Fixtures for the hostile suite: peers of our own that misbehave on purpose."""

from typing import Callable, Iterator, List

import pytest
from ws_peer import HostileServer, Script


@pytest.fixture
def hostile_ws() -> Iterator[Callable[[Script], HostileServer]]:
    """Start a :class:`HostileServer` running a script; every one is stopped after the test."""
    started: List[HostileServer] = []

    def start(script: Script) -> HostileServer:
        server = HostileServer(script).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    errors = [error for server in started for error in server.errors]
    assert not errors, f"the hostile peer's own script failed: {errors!r}"

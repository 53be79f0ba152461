"""Shared fixtures: an emulator per test, on a real loopback port, and conversations against it."""

import re
import selectors
import subprocess
import sys
import threading
import time
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from testkit import Connect, stop_process

import blackbox_sync as bb
from blackbox_sync.testing import Agent, Emulator, ScriptedAgent

# Short enough to keep tests fast, long enough that loopback jitter never splits a scripted turn.
QUIET = 0.25


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A running emulator whose default agent echoes; tests set ``emulator.default_agent``."""
    with Emulator(agent=ScriptedAgent()) as emu:
        yield emu


@pytest.fixture
def connect(emulator: Emulator) -> Iterator[Connect]:
    """Open conversations against the emulator; all are closed when the test ends."""
    opened: List[bb.Conversation] = []

    def open_conversation(
        agent: Optional[Agent] = None, *, connect: bool = True, **options: Any
    ) -> bb.Conversation:
        if agent is not None:
            emulator.default_agent = agent
        options.setdefault("token", emulator.token)
        options.setdefault("quiet_period", QUIET)
        conv = bb.Conversation(base_url=emulator.base_url, **options)
        opened.append(conv)
        return conv.connect(timeout=5) if connect else conv

    yield open_conversation
    for conv in opened:
        conv.close()


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Every test must leave the thread count as it found it (emulator threads included)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leftover = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and not t.name.startswith("pytest_timeout")
    ]
    for thread in leftover:
        thread.join(2.0)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"threads outlived the test: {still}"


@pytest.fixture
def emulator_process() -> Iterator[Tuple[str, str]]:
    """An emulator in a separate process (``blackbox-sync emulator``): (base_url, token).

    For tests that count this process's threads or sockets, which the in-process emulator would
    blur with its own.
    """
    token = "process-token"
    proc = subprocess.Popen(
        [sys.executable, "-m", "blackbox_sync", "emulator", "--port", "0", "--token", token],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 15
            line = ""
            while "listening on" not in line:
                assert selector.select(max(0.0, deadline - time.monotonic())), (
                    "emulator did not start"
                )
                line = proc.stdout.readline()
                assert line, "emulator exited early"
        match = re.search(r"(http://\S+)", line)
        assert match
        yield match.group(1), token
    finally:
        stop_process(proc)

"""The ``blackbox_sync`` loggers: silent until the application configures logging, then one DEBUG
line per frame in each direction."""

import json
import logging
import subprocess
import sys
from typing import List

import pytest
from testkit import Connect

SILENT_PROGRAM = """
import blackbox_sync as bb
from blackbox_sync.testing import Emulator, ScriptedAgent

with Emulator(agent=ScriptedAgent()) as emulator:
    conv = bb.Conversation(token=emulator.token, base_url=emulator.base_url, quiet_period=0.1)
    conv.on("text", lambda message: 1 / 0)  # reported to the loggers at WARNING or above
    reported = []
    conv.on_error(reported.append)
    with conv:  # connects; leaving terminates
        conv.ask("hello", timeout=10)
    assert reported, "the broken callback was not reported"
print("done")
"""


def test_an_unconfigured_program_prints_nothing_from_the_library() -> None:
    """A NullHandler on ``blackbox_sync`` keeps logging's last-resort handler off stderr."""
    done = subprocess.run(
        [sys.executable, "-c", SILENT_PROGRAM], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    assert done.stderr == ""


def test_one_debug_line_per_frame(connect: Connect, caplog: pytest.LogCaptureFixture) -> None:
    conv = connect(connect=False)
    sent: List[str] = []
    received: List[object] = []
    conv.on_frame_sent(sent.append)
    conv.on_frame_received(received.append)
    with caplog.at_level(logging.DEBUG, logger="blackbox_sync"):
        conv.connect(timeout=5)
        conv.ask("hi", timeout=5)
        conv.terminate(timeout=5)
    frames = [r for r in caplog.records if r.name == "blackbox_sync.conversation"]
    outgoing = [r.getMessage()[2:] for r in frames if r.getMessage().startswith("→ ")]
    incoming = [r.getMessage()[2:] for r in frames if r.getMessage().startswith("← ")]
    assert [json.loads(line)["type"] for line in outgoing] == [
        json.loads(frame)["type"] for frame in sent
    ]
    assert len(incoming) == len(received) >= 3  # connection event, echo, reply, result...
    assert all(r.levelno == logging.DEBUG for r in frames if r.getMessage()[:2] in ("→ ", "← "))

"""The REST examples as a user runs them: ``examples/rest_quickstart.py`` as a process (it starts
its own emulator), and ``examples/rest_webhooks_flask.py`` as a server process that an emulator
sends webhooks to."""

import os
import re
import selectors
import socket
import subprocess
import sys
import time
from typing import Dict, Iterator, List

import pytest
from testkit import ROOT, stop_process

from blackbox_sync.rest import Client, RetryPolicy, webhooks
from blackbox_sync.testing import Emulator

EXAMPLES = ROOT / "examples"
TIMEOUT = 30  # a hang detector: each example finishes in a few seconds
SECRET = "hook-secret-5e1f"


def clean_env(**extra: str) -> Dict[str, str]:
    # The examples must not pick up a real account from the developer's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLACKBOX_")}
    env.update(extra, PYTHONUNBUFFERED="1")
    return env


def test_rest_quickstart_runs_end_to_end_against_the_emulator() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "rest_quickstart.py")],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=str(ROOT),
        env=clean_env(),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert re.fullmatch(r"agent \S+ v1", lines[0]), lines
    assert lines[1] == "updated to v2"
    assert "agent: Order ORD-12345 shipped yesterday." in lines
    (call,) = [line for line in lines if line.startswith("call ")]
    assert re.fullmatch(r"call \S+: Completed, [\d.]+ s", call)
    assert any(line.startswith("text chat: ") for line in lines)
    assert any(line.startswith("concurrency: ") and "active=0" in line for line in lines)
    assert "Traceback" not in out.stderr


class ServerOutput:
    """Reads a server process's merged output line by line, each wait bounded.

    Reads the pipe's descriptor directly: a buffered ``readline()`` would pull several lines
    into Python's buffer, where ``select()`` no longer sees them.
    """

    def __init__(self, proc: "subprocess.Popen[bytes]") -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.lines: List[str] = []
        self.url = ""
        """The example's webhook endpoint."""
        self._partial = b""

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """The first line (new or already read) matching ``pattern``."""
        checked = 0
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.fd, selectors.EVENT_READ)
            while True:
                for line in self.lines[checked:]:
                    if re.search(pattern, line):
                        return line
                checked = len(self.lines)
                left = deadline - time.monotonic()
                ready = left > 0 and selector.select(left)
                assert ready, f"no line matching {pattern!r} in:\n" + "\n".join(self.lines)
                chunk = os.read(self.fd, 65536)
                assert chunk, "the server exited:\n" + "\n".join(self.lines)
                *complete, self._partial = (self._partial + chunk).split(b"\n")
                self.lines += [c.decode("utf-8", "replace") for c in complete]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def webhook_server() -> Iterator[ServerOutput]:
    """``python examples/rest_webhooks_flask.py`` on a free port, stopped after the test."""
    pytest.importorskip("flask")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "rest_webhooks_flask.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
        env=clean_env(PORT=str(port), WEBHOOK_SECRET=SECRET),
    )
    output = ServerOutput(proc)
    try:
        # Werkzeug prints this once the socket listens, so requests can follow at once.
        output.wait_for(rf"Running on http://127\.0\.0\.1:{port}")
        output.url = f"http://127.0.0.1:{port}/blackbox/webhook"
        yield output
    finally:
        stop_process(proc)


@pytest.fixture
def client(emulator: Emulator) -> Iterator[Client]:
    emulator.rest.call_step_seconds = None  # the test moves calls along itself
    with Client(emulator.api_key, emulator.base_url, retry=RetryPolicy(backoff=0.001)) as c:
        yield c


def test_rest_webhooks_flask_answers_tool_webhooks_and_logs_finished_calls(
    webhook_server: ServerOutput, client: Client, emulator: Emulator
) -> None:
    url = webhook_server.url
    secret = {"X-Webhook-Secret": SECRET}

    # A tool webhook: the registered function's return value is the answer the agent gets.
    tool = client.misc.test_webhook(
        url,
        webhook_type="ToolWebHookPayload",
        headers=secret,
        tool_name="checkOrderStatus",
        tool_arguments={"orderNumber": "ORD-77"},
    )
    assert tool.success, tool
    assert tool.http_status == 200
    assert tool.response_data == {"orderNumber": "ORD-77", "status": "shipped"}

    # Without the shared secret the example refuses the request.
    refused = client.misc.test_webhook(
        url, webhook_type="ToolWebHookPayload", tool_name="checkOrderStatus"
    )
    assert refused.http_status == 401
    assert not refused.success

    # A finished call: the emulator POSTs the result webhook, the example logs the call.
    agent = client.agents.create(
        "Orders", {"resultWebhook": {"url": url, "headers": secret}}, description="example"
    )
    call = client.calls.create(str(agent.agent_id), "+15550100")
    emulator.rest.advance_call(str(call.call_id))
    emulator.rest.advance_call(str(call.call_id))
    (delivery,) = emulator.rest.wait_webhooks(1, timeout=TIMEOUT)
    assert isinstance(webhooks.parse(delivery.payload), webhooks.CompletedWebhook)
    assert delivery.statuses == [200]
    logged = webhook_server.wait_for(rf"call {re.escape(str(call.call_id))} finished after")
    assert re.search(r"finished after [\d.]+ s", logged)
    assert "Traceback" not in "\n".join(webhook_server.lines)

"""``blackbox-sync`` as a process: the REST subcommands against the emulator, the emulator
subcommand, help, version and exit statuses. The chat REPL has its own pty tests
(``test_cli_chat.py``)."""

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from testkit import ROOT, stop_process

import blackbox_sync as bb
from blackbox_sync.rest import Client, RetryPolicy
from blackbox_sync.testing import Emulator, Rule, ScriptedAgent

TIMEOUT = 20
SECRET_KEY = "key-SECRET-0123456789"


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLACKBOX_")}
    env.update(extra)
    return env


def cli(*args: str, env: Optional[Dict[str, str]] = None) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "blackbox_sync", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env if env is not None else clean_env(),
        cwd=str(ROOT),
        check=False,
    )


@pytest.fixture
def emu() -> Iterator[Emulator]:
    agent = ScriptedAgent([Rule("order", ["Checking.", "It shipped."])])
    with Emulator(agent=agent, api_key=SECRET_KEY) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[Client]:
    with Client(emu.api_key, emu.base_url, retry=RetryPolicy(backoff=0.001)) as c:
        yield c


class Rest:
    """Runs REST subcommands against one emulator with its key in the environment."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def run(self, *args: str) -> "subprocess.CompletedProcess[str]":
        out = cli(
            *args,
            "--base-url",
            self.emulator.base_url,
            env=clean_env(BLACKBOX_API_KEY=self.emulator.api_key),
        )
        assert SECRET_KEY not in out.stdout + out.stderr
        return out

    def json(self, *args: str) -> Any:
        out = self.run(*args, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


@pytest.fixture
def rest(emu: Emulator) -> Rest:
    return Rest(emu)


def test_agents_list_and_get(rest: Rest, client: Client) -> None:
    first = client.agents.create("Order desk", {"primaryLanguage": "en-US"})
    client.agents.create("Billing", {"llmConfig": {"vendor": "openai", "model": "gpt-4.1-mini"}})

    listed = rest.json("agents", "list")
    assert [a["name"] for a in listed] == ["Order desk", "Billing"]
    assert listed[0]["agentId"] == first.agent_id

    table = rest.run("agents", "list")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["AGENT", "ID", "NAME"]
    assert len(rows) == 2
    assert str(first.agent_id) in rows[0]

    shown = rest.json("agents", "get", str(first.agent_id))
    assert shown == client.agents.get(str(first.agent_id)).raw
    text = rest.run("agents", "get", str(first.agent_id)).stdout
    assert re.search(r"^name\s+Order desk$", text, re.MULTILINE)
    assert re.search(r"^language\s+en-US$", text, re.MULTILINE)


def test_a_missing_agent_is_a_failure_with_the_services_words(rest: Rest) -> None:
    out = rest.run("agents", "get", "no-such-agent")
    assert out.returncode == 1
    assert "404" in out.stderr
    assert out.stdout == ""


def test_calls_create_get_list_cancel_and_stats(rest: Rest, client: Client, emu: Emulator) -> None:
    emu.rest.call_step_seconds = None  # calls stay queued, so one can be canceled
    agent_id = str(client.agents.create("Caller", {}).agent_id)
    created = rest.json(
        "calls", "create", "--agent-id", agent_id, "--endpoint", "+15550100", "--data", "n=1"
    )
    call_id = created["callId"]
    assert created["endpoint"] == "+15550100"
    assert client.calls.get(call_id).additional_data == {"n": 1}

    assert rest.json("calls", "get", call_id)["callId"] == call_id
    queue = rest.json("calls", "list", "--agent-id", agent_id)
    assert call_id in [c["callId"] for c in queue["calls"]]
    table = rest.run("calls", "list", "--agent-id", agent_id).stdout
    assert call_id in table

    canceled = rest.run("calls", "cancel", call_id)
    assert canceled.returncode == 0, canceled.stderr
    assert f"canceled {call_id}" in canceled.stdout
    assert client.calls.get(call_id).status == "Canceled"

    stats = rest.json("calls", "stats", "--agent-id", agent_id)
    assert stats["statuses"].get("Canceled") == 1
    assert "Canceled" in rest.run("calls", "stats").stdout


def test_results_of_a_websocket_conversation(rest: Rest, client: Client, emu: Emulator) -> None:
    agent_id = str(client.agents.create("Orders", {}).agent_id)
    emu.set_agent(agent_id, ScriptedAgent([Rule("order", ["Checking.", "It shipped."])]))
    integration = client.web_integrations.create(agent_id, "web")
    token = client.web_integrations.create_token(str(integration.integration_id), "cli")
    with bb.Conversation(
        token=str(token.token), base_url=emu.base_url, quiet_period=0.2
    ) as conversation:
        conversation.ask("where is my order?", timeout=5)
    record_id = conversation.record_id

    (found,) = rest.json("results", "--agent-id", agent_id)
    assert found["callId"] == record_id
    assert found["callStatus"] == "Completed"
    text = rest.run("results", "--agent-id", agent_id, "--transcript").stdout
    assert str(record_id) in text
    assert "  user: where is my order?" in text
    assert "  assistant: It shipped." in text
    assert rest.json("results", "--agent-id", "someone-else") == []
    assert rest.run("results", "--agent-id", "someone-else").stdout.strip() == "(none)"


def test_results_limit(rest: Rest, client: Client, emu: Emulator) -> None:
    agent_id = str(client.agents.create("Many", {}).agent_id)
    for n in range(3):
        with client.conversation(agent_id, quiet_period=0.1) as conversation:
            conversation.ask(f"hello {n}", timeout=5)
    assert len(rest.json("results", "--agent-id", agent_id)) == 3
    assert len(rest.json("results", "--agent-id", agent_id, "--limit", "2")) == 2


def test_a_wrong_api_key_fails_without_showing_either_key(emu: Emulator) -> None:
    out = cli(
        "agents",
        "list",
        "--base-url",
        emu.base_url,
        env=clean_env(BLACKBOX_API_KEY="key-WRONG-abcdef"),
    )
    assert out.returncode == 1
    assert "401" in out.stderr
    assert "key-WRONG-abcdef" not in out.stdout + out.stderr
    assert SECRET_KEY not in out.stdout + out.stderr


def test_no_api_key_is_a_usage_error() -> None:
    out = cli("agents", "list", "--base-url", "http://127.0.0.1:9")
    assert out.returncode == 2
    assert "BLACKBOX_API_KEY" in out.stderr


def test_an_unreachable_service_fails_quickly() -> None:
    with socket.socket() as sock:  # a port nothing listens on (bound, never listening)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        started = time.monotonic()
        out = cli(
            "agents",
            "list",
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--retries",
            "0",
            env=clean_env(BLACKBOX_API_KEY="k"),
        )
    assert out.returncode == 1
    assert time.monotonic() - started < TIMEOUT
    assert "127.0.0.1" in out.stderr


def test_help_version_and_python_dash_m() -> None:
    out = cli("--help")
    assert out.returncode == 0
    for command in ("chat", "emulator", "agents", "calls", "results"):
        assert re.search(rf"^\s+{command}\s", out.stdout, re.MULTILINE), command
    version = cli("--version")
    assert version.stdout.strip() == f"blackbox-sync {bb.__version__}"
    assert cli().returncode == 2  # a command is required
    assert cli("agents").returncode == 2


def test_the_qa_command_is_wired_in_when_the_qa_runner_is_installed() -> None:
    try:
        import blackbox_sync.cli.qa as qa_cli
    except ImportError:
        pytest.skip("this checkout has no QA runner")
    assert callable(qa_cli.register)
    assert re.search(r"^\s+qa\s", cli("--help").stdout, re.MULTILINE)
    out = cli("qa", "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: blackbox-sync qa")


def test_the_qa_example_through_this_command(tmp_path: Path) -> None:
    """The README's QA step: the example suite's smoke conversations pass on the emulator."""
    pytest.importorskip("blackbox_sync.cli.qa")
    out = cli(
        "qa",
        "run",
        "examples/qa/suite.yaml",
        "--target",
        "emulator",
        "--tag",
        "smoke",
        "-o",
        str(tmp_path / "qa-report"),
        "--progress",
        "none",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 failed, 0 errors" in out.stdout
    assert (tmp_path / "qa-report" / "junit.xml").is_file()


def test_other_commands_do_not_import_the_qa_runner() -> None:
    code = (
        "import sys\n"
        "from blackbox_sync.cli import app as cli\n"
        "cli.build_parser(['agents', 'list'])\n"
        "print('blackbox_sync.qa' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert out.stdout.strip() == "False"


class EmulatorProcess:
    """``blackbox-sync emulator --port 0`` in its own process, and what its banner says."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "blackbox_sync", "emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=clean_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        # A thread reads so that waiting can time out; it ends when the process's output closes.
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def banner(self) -> Tuple[str, str, str]:
        """The base URL, token and API key it printed."""
        seen: List[str] = []
        while not seen or "Press Ctrl-C" not in seen[-1]:
            seen.append(self.lines.get(timeout=TIMEOUT))
        text = "".join(seen)
        patterns = (
            r"listening on (http://\S+)",
            r"web integration token:\s+(\S+)",
            r"API key:\s+(\S+)",
        )
        found = [re.search(p, text) for p in patterns]
        values = [m.group(1) for m in found if m is not None]
        assert len(values) == 3, text
        return values[0], values[1], values[2]

    def stop(self) -> None:
        stop_process(self.proc, self.reader)


def test_the_emulator_command_serves_what_the_other_commands_use(tmp_path: Path) -> None:
    agent_file = tmp_path / "agent.json"
    agent_file.write_text('{"greeting": "Hi from the file.", "default": "Echo: {user}"}')
    emulator = EmulatorProcess("--agent", str(agent_file))
    try:
        base_url, token, api_key = emulator.banner()
        listed = cli(
            "agents",
            "list",
            "--json",
            "--base-url",
            base_url,
            env=clean_env(BLACKBOX_API_KEY=api_key),
        )
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == []
        chat = subprocess.run(
            [
                sys.executable,
                "-m",
                "blackbox_sync",
                "chat",
                "--base-url",
                base_url,
                "--quiet-period",
                "0.2",
            ],
            input="ping\n",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=clean_env(BLACKBOX_TOKEN=token),
            check=False,
        )
        assert chat.returncode == 0, chat.stderr
        assert "agent: Hi from the file." in chat.stdout
        assert "agent: Echo: ping" in chat.stdout
        assert token not in chat.stdout + chat.stderr
    finally:
        emulator.stop()


def test_the_emulator_on_a_busy_port_says_so_in_one_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        started = time.monotonic()
        out = cli("emulator", "--port", str(port))
    assert time.monotonic() - started < 10
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "--port 0 picks a free one" in out.stderr


@pytest.mark.parametrize(
    "command",
    [["qa", "schema"], ["agents", "list", "--json"]],
    ids=["qa-schema", "agents-json"],
)
def test_a_closed_output_pipe_ends_quietly(emu: Emulator, command: List[str]) -> None:
    """``... | head``: the reader is gone before the first write."""
    where = ["--base-url", emu.base_url] if command[0] == "agents" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "blackbox_sync", *command, *where],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(BLACKBOX_API_KEY=emu.api_key),
        cwd=str(ROOT),
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=TIMEOUT)
    assert err == ""
    assert proc.returncode == 141

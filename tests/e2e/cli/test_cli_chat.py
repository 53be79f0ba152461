"""``blackbox-sync chat`` driven through a real pseudo-terminal (pexpect), against the emulator.

Each test starts the command as a separate process on a pty, types into it like a person and
reads the screen; the emulator runs in this process on a loopback port, so the tests can see
what the chat sent. Every ``expect`` has a timeout, so a broken REPL fails instead of hanging.
"""

import io
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
from testkit import ROOT

from blackbox_sync.testing import (
    AgentContext,
    CallTool,
    Emulator,
    Pause,
    Rule,
    ScriptedAgent,
)

pexpect = pytest.importorskip("pexpect")
if not hasattr(pexpect, "spawn"):  # Windows: no pseudo-terminals
    pytest.skip("pexpect.spawn needs a POSIX pty", allow_module_level=True)

# Python 3.12+ warns that forking a process with threads (the emulator's) may deadlock the child;
# pexpect's child calls exec at once, before touching any lock, so the warning does not apply.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of forkpty:DeprecationWarning"
)

ORDER_AGENT = ROOT / "examples" / "agents" / "order-support.yaml"
PROMPT = "you> "
TIMEOUT = 15


class Chat:
    """A ``blackbox-sync chat`` process on a pty; everything it printed is kept in ``screen``."""

    def __init__(self, *args: str, env: Optional[Dict[str, str]] = None) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("BLACKBOX_")}
        environment.update(TERM="xterm", COLUMNS="200", LINES="40")
        environment.update(env or {})
        self.log = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "blackbox_sync", "chat", *args],
            encoding="utf-8",
            timeout=TIMEOUT,
            env=environment,
            dimensions=(40, 200),
            cwd=str(ROOT),
        )
        self.child.logfile_read = self.log

    @property
    def screen(self) -> str:
        return self.log.getvalue()

    def expect(self, pattern: str) -> None:
        self.child.expect_exact(pattern)

    def prompt(self) -> None:
        self.expect(PROMPT)

    def say(self, line: str) -> None:
        self.child.sendline(line)

    def exit_status(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        status = self.child.exitstatus
        assert status is not None, f"killed by signal {self.child.signalstatus}"
        return int(status)

    def kill(self) -> None:
        if self.child.isalive():
            self.child.close(force=True)


@pytest.fixture
def chats() -> Iterator[List[Chat]]:
    """Chats started by a test; any still running at the end are killed."""
    started: List[Chat] = []
    yield started
    for chat in started:
        chat.kill()


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop_tools.py"
    path.write_text(
        textwrap.dedent(
            '''
            """Tools for the chat tests: every public function answers the tool of its name."""
            import json as _json  # imported names are not tools


            def checkOrderStatus(orderNumber: str) -> dict:
                return {"orderNumber": orderNumber, "status": "shipped"}


            def explode() -> None:
                raise RuntimeError("warehouse offline")


            def _helper() -> None:
                """Private: not a tool."""
            '''
        )
    )
    return path


def start(chats: List[Chat], *args: str, env: Optional[Dict[str, str]] = None) -> Chat:
    chat = Chat(*args, env=env)
    chats.append(chat)
    return chat


def connect_args(emulator: Emulator) -> List[str]:
    return ["--token", emulator.token, "--base-url", emulator.base_url, "--quiet-period", "0.3"]


def test_chat_with_the_bundled_emulator_and_a_tools_module(chats: List[Chat]) -> None:
    """The documented command, with the tools module the Flask example shares."""
    chat = start(
        chats,
        "--emulator",
        "--agent",
        "examples/agents/order-support.yaml",
        "--tools",
        "examples/flask_app/order_tools.py",
        "--quiet-period",
        "0.3",
    )
    chat.expect("Connected to ws://127.0.0.1:")
    chat.expect("agent: Hi! I can check your order status.")
    chat.prompt()
    chat.say("Where is my order ORD-12345?")
    chat.expect("agent: (um)")
    chat.expect('[tool] checkOrderStatus {"orderNumber": "ORD-12345"}')
    chat.expect('[tool] checkOrderStatus -> {"orderNumber": "ORD-12345", "status": "shipped"}')
    chat.expect("agent: Let me check that for you.")
    chat.expect("agent: Order ORD-12345 is shipped.")
    chat.prompt()
    chat.say("/history")
    chat.expect("you: Where is my order ORD-12345?")
    chat.expect("agent: Order ORD-12345 is shipped.")
    chat.prompt()
    chat.say("/help")
    chat.expect("/terminate")
    chat.prompt()
    chat.say("/terminate")
    chat.expect("[conversation ended: Completed]")
    assert chat.exit_status() == 0
    assert "token=***" in chat.screen


def test_texts_arriving_while_the_user_types_keep_the_typed_line(chats: List[Chat]) -> None:
    release = threading.Event()

    def handler(text: str, context: AgentContext) -> Iterator[Any]:
        yield "First."
        # The agent speaks again only when the test says so (the turn is over by then).
        deadline = time.monotonic() + TIMEOUT
        while not release.is_set() and time.monotonic() < deadline:
            yield Pause(0.02)
        yield "Later."

    with Emulator(agent=ScriptedAgent(handler=handler)) as emu:
        chat = start(chats, *connect_args(emu))
        chat.prompt()
        chat.say("go")
        chat.expect("agent: First.")
        chat.prompt()
        chat.child.send("abc")
        chat.expect("abc")  # readline echoed it: the user is mid-line
        release.set()
        chat.expect("agent: Later.")
        chat.expect(PROMPT + "abc")  # the prompt and the typed text are drawn again
        chat.child.send("def\r")
        frame = emu.wait_for_frame("incomingChatMessage", count=2, timeout=TIMEOUT)
        assert frame.data["content"] == "abcdef"
        chat.expect("agent: Later.")  # the second turn, released already
        chat.prompt()
        chat.child.sendcontrol("d")
        assert chat.exit_status() == 0


def test_the_agent_ending_the_conversation_ends_the_chat(chats: List[Chat]) -> None:
    agent = ScriptedAgent([Rule("bye", "Goodbye!", end_conversation=True)])
    with Emulator(agent=agent) as emu:
        chat = start(chats, *connect_args(emu))
        chat.prompt()
        chat.say("bye")
        chat.expect("agent: Goodbye!")
        chat.expect("[conversation ended: Completed]")
        assert chat.exit_status() == 0
        assert emu.wait_for_conversation_end(timeout=TIMEOUT).ended_by == "agent"


def test_talk_first_waits_for_the_greeting_before_the_first_prompt(chats: List[Chat]) -> None:
    # A greeting in two chunks: the first prompt must follow the whole greeting turn.
    agent = ScriptedAgent(greeting=Rule("", ["Welcome.", "How can I help?"], chunk_delay=0.1))
    with Emulator(agent=agent) as emu:
        chat = start(chats, *connect_args(emu), "--talk-first")
        chat.expect("agent: Welcome.")
        chat.expect("agent: How can I help?")
        chat.expect(PROMPT)
        chat.say("ping")
        chat.expect("agent: You said: ping")
        chat.prompt()
        chat.say("/quit")
        assert chat.exit_status() == 0
    assert chat.screen.index("How can I help?") < chat.screen.index(PROMPT)


def test_quit_leaves_without_terminating(chats: List[Chat]) -> None:
    with Emulator() as emu:
        chat = start(chats, *connect_args(emu))
        chat.prompt()
        chat.say("/quit")
        assert chat.exit_status() == 0
        record = emu.wait_for_conversation_end(timeout=TIMEOUT)
        assert record.ended_by == "client_disconnect"
        assert not any(f.type == "terminate" for f in record.client_frames)
        assert "[conversation ended" not in chat.screen


def test_ctrl_c_at_the_prompt_keeps_the_chat_and_ctrl_d_terminates(chats: List[Chat]) -> None:
    with Emulator() as emu:
        chat = start(chats, *connect_args(emu))
        chat.prompt()
        chat.child.sendintr()
        chat.expect("(use /quit or Ctrl-D to leave)")
        chat.say("still here?")
        chat.expect("agent: You said: still here?")
        chat.prompt()
        chat.child.sendcontrol("d")
        chat.expect("[conversation ended: Completed]")
        assert chat.exit_status() == 0
        assert emu.wait_for_conversation_end(timeout=TIMEOUT).ended_by == "client_terminate"


def test_a_lost_connection_is_reported_at_the_prompt(chats: List[Chat]) -> None:
    with Emulator() as emu:
        chat = start(chats, *connect_args(emu))
        chat.prompt()
        emu.drop_connection()
        chat.expect("[connection closed")
        chat.expect("press Enter to leave")
        chat.say("")
        assert chat.exit_status() == 1


def test_tool_failures_and_unknown_tools_are_shown(chats: List[Chat], tools_file: Path) -> None:
    agent = ScriptedAgent(
        [
            Rule("boom", "Tried.", tools=[CallTool("explode")]),
            Rule("nope", "Tried too.", tools=[CallTool("notATool", {"x": 1})]),
        ]
    )
    with Emulator(agent=agent) as emu:
        chat = start(chats, *connect_args(emu), "--tools", str(tools_file))
        chat.prompt()
        chat.say("boom")
        chat.expect("[error] tool 'explode' failed: RuntimeError: warehouse offline")
        chat.expect("agent: Tried.")
        chat.prompt()
        chat.say("nope")
        chat.expect('[tool] notATool {"x": 1}: no such tool here')
        chat.expect("agent: Tried too.")
        chat.prompt()
        chat.say("/terminate")
        assert chat.exit_status() == 0
    (record,) = emu.conversations
    results = [call.result for call in record.tool_calls]
    assert results[0] == {"error": "tool 'explode' failed: RuntimeError: warehouse offline"}
    assert "no handler" in results[1]["error"]


def test_messages_that_start_with_a_slash(chats: List[Chat]) -> None:
    with Emulator() as emu:
        chat = start(chats, *connect_args(emu))
        chat.prompt()
        chat.say("/nonsense")
        chat.expect("unknown command /nonsense")
        chat.prompt()
        chat.say("//etc/hosts is a path")
        chat.expect("agent: You said: /etc/hosts is a path")
        chat.prompt()
        chat.say("/quit")
        assert chat.exit_status() == 0


class TestSecrets:
    SECRET_TOKEN = "tok-SECRET-0123456789abcdef"
    SECRET_KEY = "key-SECRET-fedcba9876543210"

    def assert_clean(self, text: str) -> None:
        assert self.SECRET_TOKEN not in text
        assert self.SECRET_KEY not in text
        assert "SECRET" not in text

    def test_the_token_is_never_shown(self, chats: List[Chat]) -> None:
        with Emulator(token=self.SECRET_TOKEN) as emu:
            chat = start(
                chats,
                "--token",
                self.SECRET_TOKEN,
                "--base-url",
                emu.base_url,
                "--quiet-period",
                "0.3",
                "--verbose",  # every frame received is printed too
            )
            chat.prompt()
            chat.say("hello")
            chat.expect("agent: You said: hello")
            chat.prompt()
            chat.say("/terminate")
            assert chat.exit_status() == 0
            self.assert_clean(chat.screen)
            assert "<- " in chat.screen

    def test_debug_logging_masks_the_token(self) -> None:
        with Emulator(token=self.SECRET_TOKEN) as emu:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "blackbox_sync",
                    "--log-level",
                    "debug",
                    "chat",
                    "--base-url",
                    emu.base_url,
                    "--quiet-period",
                    "0.2",
                ],
                input="hello\n",
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                env={**clean_env(), "BLACKBOX_TOKEN": self.SECRET_TOKEN},
                check=False,
            )
        assert out.returncode == 0, out.stderr
        assert "You said: hello" in out.stdout
        assert "incomingChatMessage" in out.stderr  # one DEBUG line per frame
        self.assert_clean(out.stdout + out.stderr)

    def test_a_rejected_token_is_not_echoed(self, chats: List[Chat]) -> None:
        with Emulator() as emu:
            chat = start(chats, "--token", self.SECRET_TOKEN, "--base-url", emu.base_url)
            chat.expect("could not start the conversation")
            chat.expect("Invalid token")
            assert chat.exit_status() == 1
            self.assert_clean(chat.screen)

    def test_the_api_key_is_never_shown(self, chats: List[Chat]) -> None:
        with Emulator(api_key=self.SECRET_KEY) as emu:
            emu.set_agent("agent-7", ScriptedAgent(default="dev agent here"))
            chat = start(
                chats,
                "--base-url",
                emu.base_url,
                "--agent-id",
                "agent-7",
                "--quiet-period",
                "0.3",
                env={"BLACKBOX_API_KEY": self.SECRET_KEY},
            )
            chat.expect("authorization=***")
            chat.prompt()
            chat.say("hi")
            chat.expect("agent: dev agent here")
            chat.prompt()
            chat.say("/quit")
            assert chat.exit_status() == 0
            self.assert_clean(chat.screen)
            (record,) = emu.conversations
            assert record.dev
            assert record.agent_id == "agent-7"


def clean_env() -> Dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BLACKBOX_")}


def run_chat(
    *args: str, stdin: str = "", env: Optional[Dict[str, str]] = None
) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "blackbox_sync", "chat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**clean_env(), **(env or {})},
        cwd=str(ROOT),
        check=False,
    )


def test_piped_input_runs_as_a_script(tools_file: Path) -> None:
    """Without a terminal the chat reads lines until the end of input, then terminates."""
    out = run_chat(
        "--emulator",
        "--agent",
        str(ORDER_AGENT),
        "--tools",
        str(tools_file),
        "--quiet-period",
        "0.3",
        "--data",
        "userId=u-1",
        stdin="Where is ORD-7?\n/history\n",
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "you> Where is ORD-7?" in lines
    assert "agent: Order ORD-7 is shipped." in lines
    assert "you: Where is ORD-7?" in lines  # from /history
    assert lines[-1] == "[conversation ended: Completed]"
    assert "\x1b[" not in out.stdout  # no terminal control codes in a pipe


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {}, "no credentials"),
        (("--token", "t", "--api-key", "k"), {}, "not both"),
        (("--api-key", "k"), {}, "needs --agent-id"),
        (("--emulator", "--tools", "no/such/file.py"), {}, "no such file"),
        (("--emulator", "--tools", "no_such_module_here"), {}, "no module named"),
        (("--emulator", "--data", "novalue"), {}, "KEY=VALUE"),
        (("--emulator", "--agent", "no-such-agent.yaml"), {}, "no-such-agent.yaml"),
        (("--token", "t", "--base-url", "ftp://x"), {}, "base_url"),
    ],
)
def test_usage_errors(args: Any, env: Dict[str, str], message: str) -> None:
    out = run_chat(*args, env=env)
    assert out.returncode == 2
    assert message in out.stderr


def test_tools_from_a_module_name(tmp_path: Path, tools_file: Path) -> None:
    """``--tools name`` imports from the working directory, like ``python -m`` would."""
    agent_file = tmp_path / "agent.json"
    agent_file.write_text(
        '{"rules": [{"match": "order", "tools": [{"name": "checkOrderStatus", '
        '"args": {"orderNumber": "A-1"}}], "reply": "It is {result[status]}."}]}'
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "blackbox_sync",
            "chat",
            "--emulator",
            "--agent",
            str(agent_file),
            "--tools",
            tools_file.stem,
            "--quiet-period",
            "0.2",
        ],
        input="my order\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=clean_env(),
        cwd=str(tmp_path),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "agent: It is shipped." in out.stdout


def test_chat_help_lists_the_options() -> None:
    out = run_chat("--help")
    assert out.returncode == 0
    for option in ("--token", "--api-key", "--agent-id", "--emulator", "--tools", "--data"):
        assert option in out.stdout
    assert re.search(r"/terminate", out.stdout)

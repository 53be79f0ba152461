"""Dispatch, callbacks, tools and memory against a peer that sends what no polite server would."""

import gc
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Callable, Dict, List, cast

import psutil
import pytest
from testkit import ROOT
from ws_peer import HostileServer, PeerConnection, server_frame

import blackbox_sync as bb

Start = Callable[[Callable[[PeerConnection], None]], HostileServer]

TOKEN = "tok-9f8e7d6c5b4a-secret"
SUPPORT = ROOT / "tests" / "support"  # ws_peer, for the subprocesses


def conversation(server: HostileServer, **options: Any) -> bb.Conversation:
    options.setdefault("close_timeout", 1.0)
    return bb.Conversation(
        url=server.ws_url(query=""), token=TOKEN, allow_insecure=True, quiet_period=0.05, **options
    )


def text(words: str) -> Dict[str, Any]:
    return server_frame("text", content={"source": "assistant", "text": words})


def tool_request(request_id: str, name: str, args: Any) -> Dict[str, Any]:
    return server_frame(
        "websocketToolRequest", content={"id": request_id, "toolName": name, "args": args}
    )


class Answers(List[Dict[str, Any]]):
    """Tool answers the peer read; ``done`` is set once it read ``expected`` of them."""

    def __init__(self, expected: int = 1) -> None:
        super().__init__()
        self.expected = expected
        self.done = threading.Event()

    def read(self, peer: PeerConnection) -> None:
        self.append(peer.recv_until_type("websocketToolResponse"))
        if len(self) >= self.expected:
            self.done.set()


def echo_until_terminate(peer: PeerConnection) -> None:
    """Answer each chat message with ``echo <text>`` until ``terminate``, then end politely."""
    while True:
        message = peer.recv_json()
        if message["type"] == "incomingChatMessage":
            peer.send_json(text(f"echo {message['content']}"))
        elif message["type"] == "terminate":
            peer.send_json(server_frame("conversationResult", result={"status": "completed"}))
            peer.send_close(1000)
            peer.wait_client_close()
            return


# --- item 2: unencodable strings and uninspectable tools -------------------------------------


@pytest.mark.parametrize("handled", [False, True], ids=["no-handler", "handler"])
def test_a_tool_request_id_with_a_lone_surrogate_is_answered_and_the_reader_lives(
    hostile_ws: Start, handled: bool
) -> None:
    answers = Answers()

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        peer.send_json(tool_request("id-\ud800", "lookup", {"q": "x"}))
        answers.read(peer)
        echo_until_terminate(peer)

    server = hostile_ws(script)
    conv = conversation(server)
    if handled:
        conv.tool("lookup", lambda q: {"found": q})
    with conv:
        assert answers.done.wait(5)
        assert conv.ask("still there?", timeout=5).text == "echo still there?"
    assert conv.close_code == 1000
    assert answers[0]["content"]["id"] == "id-\ud800"
    if handled:
        assert answers[0]["content"]["result"] == {"found": "x"}
    else:
        assert "error" in answers[0]["content"]["result"]
        assert any(isinstance(e, bb.ToolError) for e in conv.errors)


def test_a_tool_result_utf8_cannot_carry_gets_an_error_answer(hostile_ws: Start) -> None:
    answers = Answers()

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        peer.send_json(tool_request("t-1", "broken", {}))
        answers.read(peer)
        echo_until_terminate(peer)

    server = hostile_ws(script)
    conv = conversation(server)
    conv.tool("broken", lambda: "\ud800")
    with conv:
        assert answers.done.wait(5)
        conv.ask("ok?", timeout=5)
    assert "error" in answers[0]["content"]["result"]
    errors = [e for e in conv.errors if isinstance(e, bb.ToolError)]
    assert errors
    assert errors[0].tool_name == "broken"


def test_ask_with_unsendable_text_is_a_usage_error_and_loses_nothing(hostile_ws: Start) -> None:
    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        peer.send_json(text("Hello, I am the greeting."))
        echo_until_terminate(peer)

    server = hostile_ws(script)
    with conversation(server) as conv:
        with pytest.raises(bb.UsageError, match="cannot be sent"):
            conv.ask("\ud800", timeout=5)
        with pytest.raises(bb.UsageError):
            conv.send("half \udfff")
        # The greeting that arrived before the refused ask() is still the pending turn.
        assert conv.wait_for_reply(timeout=5).text == "Hello, I am the greeting."
        assert conv.ask("fine", timeout=5).text == "echo fine"


def test_a_builtin_without_a_signature_works_as_a_tool(hostile_ws: Start) -> None:
    answers = Answers(expected=2)

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        peer.send_json(tool_request("t-1", "dict", {"a": 1}))
        answers.read(peer)
        peer.send_json(tool_request("t-2", "max", {"a": 1}))
        answers.read(peer)
        echo_until_terminate(peer)

    server = hostile_ws(script)
    conv = conversation(server)
    conv.tool("dict", dict)
    conv.tool(max)
    with conv:
        assert answers.done.wait(5)
        assert conv.ask("after", timeout=5).text == "echo after"
    assert answers[0]["content"]["result"] == {"a": 1}
    assert "error" in answers[1]["content"]["result"]  # max(a=1) raises: an error answer


def test_a_tool_needs_a_name(hostile_ws: Start) -> None:
    import functools

    server = hostile_ws(lambda peer: peer.hang())
    conv = conversation(server)
    with pytest.raises(bb.UsageError, match="name"):
        conv.tool(functools.partial(max, 1))


# --- item 6: memory bounded by bytes ---------------------------------------------------------


def test_history_is_bounded_by_bytes_and_rss_with_it(hostile_ws: Start) -> None:
    frames, size, budget = 40, 2 * 1024 * 1024, 8 * 1024 * 1024
    done = threading.Event()

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        for i in range(frames):
            peer.send_json(text(f"{i:03d}" + "x" * size))
        peer.send_json(text("the end"))
        echo_until_terminate(peer)

    server = hostile_ws(script)
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    with conversation(server, max_history_bytes=budget) as conv:
        conv.on("text", lambda m: done.set() if m.text == "the end" else None)
        assert done.wait(20)
        gc.collect()
        growth = process.memory_info().rss - before
        history = conv.history
        turn_texts = conv.wait_for_reply(timeout=5).texts
    # Measured: ~18 MiB with the 8 MiB budget, ~73 MiB with none (every frame kept).
    assert growth < 45 * 1024 * 1024, f"RSS grew {growth / 2**20:.0f} MiB"
    assert len(history) <= budget // size + 2
    assert cast(bb.TextMessage, history[-1]).text == "the end"
    assert sum(len(t) for t in turn_texts) <= budget + size
    assert turn_texts[-1] == "the end"


def test_a_history_byte_budget_must_be_positive(hostile_ws: Start) -> None:
    server = hostile_ws(lambda peer: peer.hang())
    with pytest.raises(bb.UsageError, match="max_history_bytes"):
        conversation(server, max_history_bytes=0)


# --- item 7: odd conversationResult shapes ----------------------------------------------------


def test_an_odd_conversation_result_still_ends_terminate_at_once(hostile_ws: Start) -> None:
    odd = {"status": {"code": "done"}, "errorMessage": ["a", "list"], "extra": [1, 2]}

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        peer.recv_until_type("terminate")
        peer.send_json(server_frame("conversationResult", result=odd))
        peer.send_close(1000)
        peer.wait_client_close()

    server = hostile_ws(script)
    conv = conversation(server).connect(timeout=5)
    started = time.monotonic()
    result = conv.terminate(timeout=5)
    assert time.monotonic() - started < 2
    assert result is not None
    assert result.status is None
    assert result.error_message is None
    assert result.raw["result"] == odd
    assert result.result == odd


# --- item 9: a callback that blocks -----------------------------------------------------------


def test_close_does_not_wait_for_a_stuck_callback_and_names_it(
    hostile_ws: Start, caplog: pytest.LogCaptureFixture
) -> None:
    release, entered = threading.Event(), threading.Event()
    seen: List[str] = []

    def stuck_on_text(message: bb.TextMessage) -> None:
        seen.append(message.text)
        if message.text == "block":
            entered.set()
            release.wait(30)

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        peer.send_json(text("block"))
        peer.send_json(text("after the block"))
        peer.wait_client_close()

    server = hostile_ws(script)
    before = set(threading.enumerate())
    conv = conversation(server, close_timeout=5.0)  # the default
    conv.on("text", stuck_on_text)
    try:
        with caplog.at_level(logging.WARNING, logger="blackbox_sync"):
            started = time.monotonic()
            with conv:
                assert entered.wait(5)
            elapsed = time.monotonic() - started
        # terminate() gives the callback the cleanup grace, does not wait for a result the
        # stuck reader cannot read, and close() leaves the reader: well under close_timeout.
        assert elapsed < 1 + 1.5
        assert "stuck_on_text" in caplog.text
        started = time.monotonic()
        conv.close()  # a second close() does not wait for it again
        assert time.monotonic() - started < 1
    finally:
        release.set()
    for thread in set(threading.enumerate()) - before:
        thread.join(5)
    assert seen == ["block"]  # nothing more was delivered once close() gave up on the reader


# --- item 10: a callback that raises ----------------------------------------------------------


def test_a_raising_callback_is_kept_in_errors_and_reported(hostile_ws: Start) -> None:
    reported: List[bb.BlackBoxError] = []

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        echo_until_terminate(peer)

    def explode(message: bb.TextMessage) -> None:
        raise ValueError(f"boom with {TOKEN}")

    server = hostile_ws(script)
    with conversation(server) as conv:
        conv.on("text", explode)
        conv.on_error(reported.append)
        conv.ask("hi", timeout=5)
    errors = [e for e in conv.errors if isinstance(e, bb.CallbackError)]
    assert len(errors) == 1
    assert errors[0] is reported[0]
    assert "explode" in str(errors[0])
    assert TOKEN not in str(errors[0])


def run_child(code: str, timeout: float = 20) -> "subprocess.CompletedProcess[str]":
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


CHILD_PEER = """
    import threading, time
    from ws_peer import HostileServer, server_frame
    import blackbox_sync as bb

    def text(words):
        return server_frame("text", content={"source": "assistant", "text": words})
"""


@pytest.mark.parametrize("configured", [False, True], ids=["no-logging", "basicConfig"])
def test_without_on_error_a_raising_callback_prints_its_traceback_once(configured: bool) -> None:
    setup = "import logging; logging.basicConfig()" if configured else ""
    child = run_child(
        CHILD_PEER
        + f"""
    {setup}
    def script(peer):
        peer.open_conversation()
        peer.send_json(text("hello"))
        peer.wait_client_close()

    def explode_in_callback(message):
        raise ValueError("boom-marker")

    with HostileServer(script) as server:
        conv = bb.Conversation(url=server.ws_url(), allow_insecure=True, quiet_period=0.05,
                               close_timeout=0.5)
        conv.on("text", explode_in_callback)
        conv.connect(timeout=5)
        conv.wait_for_reply(timeout=5)
        conv.close()
        print(len([e for e in conv.errors if isinstance(e, bb.CallbackError)]))
    """
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "1"
    assert child.stderr.count("Traceback") == 1, child.stderr
    assert "explode_in_callback" in child.stderr
    assert "ValueError: boom-marker" in child.stderr


# --- item 8: a tool that never returns --------------------------------------------------------


def test_a_stuck_tool_does_not_keep_the_interpreter_alive() -> None:
    child = run_child(
        CHILD_PEER
        + """
    import logging
    logging.basicConfig(level=logging.WARNING)
    forever = threading.Event()
    asked = threading.Event()

    def script(peer):
        peer.open_conversation()
        peer.send_json(server_frame("websocketToolRequest",
                       content={"id": "t-1", "toolName": "neverReturns", "args": {}}))
        peer.wait_client_close()

    with HostileServer(script) as server:
        conv = bb.Conversation(url=server.ws_url(), allow_insecure=True, quiet_period=0.05,
                               close_timeout=0.5, tool_timeout=None)

        @conv.tool
        def neverReturns():
            asked.set()
            forever.wait()

        conv.connect(timeout=5)
        assert asked.wait(5)
        conv.close()
        print("closed", flush=True)
    """
    )
    assert child.returncode == 0, child.stderr
    assert "closed" in child.stdout
    assert "neverReturns" in child.stderr
    assert "still running" in child.stderr


def test_close_names_a_stuck_tool_and_returns_in_bound(
    hostile_ws: Start, caplog: pytest.LogCaptureFixture
) -> None:
    release, asked = threading.Event(), threading.Event()

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        peer.send_json(tool_request("t-1", "slowLookup", {}))
        peer.wait_client_close()

    server = hostile_ws(script)
    conv = conversation(server, close_timeout=0.5, tool_timeout=None)

    @conv.tool
    def slowLookup() -> None:
        asked.set()
        release.wait(30)

    try:
        conv.connect(timeout=5)
        assert asked.wait(5)
        with caplog.at_level(logging.WARNING, logger="blackbox_sync"):
            started = time.monotonic()
            conv.close()
            assert time.monotonic() - started < 2 * conv.close_timeout + 2
        assert "slowLookup" in caplog.text
    finally:
        release.set()


# --- item 1: what the server sends is redacted ------------------------------------------------


def test_an_error_frame_echoing_the_token_is_masked_in_the_exception(hostile_ws: Start) -> None:
    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        peer.recv_until_type("incomingChatMessage")
        data = {"message": f"bad request for token {TOKEN}", "detail": {"echo": TOKEN}}
        peer.send_json(server_frame("error", data=data))
        peer.wait_client_close()

    server = hostile_ws(script)
    with conversation(server, close_timeout=0.3) as conv, pytest.raises(bb.ServerError) as caught:
        conv.ask("hi", timeout=5)
    assert TOKEN not in str(caught.value)
    assert "bad request" in str(caught.value)
    assert TOKEN not in json.dumps(caught.value.data)
    assert all(TOKEN not in str(e) for e in conv.errors)

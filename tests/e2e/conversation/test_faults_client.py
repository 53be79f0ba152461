"""The client under every fault the emulator can inject: typed errors, bounded waits, no hangs.

Each blocking call is checked to return within its own timeout plus a generous grace (a hang
detector, not a speed test): what matters is that it returns, and with which exception.
"""

import contextlib
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from testkit import Connect

import blackbox_sync as bb
from blackbox_sync.testing import CallTool, Emulator, Rule, ScriptedAgent
from blackbox_sync.testing.faults import (
    DOCUMENTED_ERRORS,
    HANDSHAKE,
    MALFORMATIONS,
    OPEN,
    Close,
    Delay,
    Drop,
    Duplicate,
    ErrorFrame,
    FailedOpen,
    Malform,
    On,
    Oversize,
    Refuse,
    Reorder,
    Stall,
    close_after_init,
    close_before_init,
)

# Added to every bound: loopback and a loaded 2-core CI machine never need this much.
GRACE = 5.0
CLOSE = 0.5  # close_timeout for these tests
TOKEN_ERRORS = {"Missing token", "Invalid token", "Web integration is not enabled"}
AUTH_ERRORS = TOKEN_ERRORS | {"Origin not allowed"}


@contextlib.contextmanager
def returns_within(seconds: float) -> Iterator[None]:
    """Fail if the block takes longer than ``seconds`` (it must not hang)."""
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    assert elapsed < seconds, f"took {elapsed:.2f} s, bound {seconds:.2f} s"


def conversation(emulator: Emulator, **options: Any) -> bb.Conversation:
    options.setdefault("close_timeout", CLOSE)
    options.setdefault("quiet_period", 0.25)
    return bb.Conversation(token=emulator.token, base_url=emulator.base_url, **options)


@pytest.fixture
def three_texts(emulator: Emulator) -> Emulator:
    emulator.default_agent = ScriptedAgent(default=["one", "two", "three"], echo=False)
    return emulator


class TestConnect:
    def test_refused_with_an_http_status(self, emulator: Emulator) -> None:
        emulator.arm_fault(Refuse(503))
        conv = conversation(emulator)
        with returns_within(5 + GRACE), pytest.raises(bb.ConnectionClosedError, match="HTTP 503"):
            conv.connect(timeout=5)
        assert conv.closed

    def test_a_refused_connect_returns_within_its_timeout(self, emulator: Emulator) -> None:
        emulator.arm_fault(Refuse(503))
        conv = conversation(emulator, close_timeout=4)
        with returns_within(0.5 + 2.0), pytest.raises(bb.ConnectionClosedError):
            conv.connect(timeout=0.5)

    def test_refused_by_a_cut_tcp_connection(self, emulator: Emulator) -> None:
        emulator.arm_fault(Refuse(None))
        conv = conversation(emulator)
        with returns_within(5 + GRACE), pytest.raises(bb.ConnectionClosedError):
            conv.connect(timeout=5)

    def test_a_stalled_handshake_times_out(self, emulator: Emulator) -> None:
        emulator.arm_fault(Stall(when=HANDSHAKE))
        conv = conversation(emulator)
        with returns_within(0.5 + 2 * CLOSE + GRACE), pytest.raises(bb.OperationTimeout):
            conv.connect(timeout=0.5)
        assert isinstance(bb.OperationTimeout("x"), TimeoutError)

    def test_a_slow_handshake_within_the_timeout_connects(self, emulator: Emulator) -> None:
        emulator.arm_fault(Delay(0.3, when=HANDSHAKE))
        emulator.arm_fault(Delay(0.3, when=OPEN))
        conv = conversation(emulator).connect(timeout=10)
        assert conv.phase is bb.Phase.READY
        conv.close()

    def test_no_connection_event_times_out(self, emulator: Emulator) -> None:
        emulator.arm_fault(Stall(when=OPEN))
        conv = conversation(emulator)
        with returns_within(0.5 + 2 * CLOSE + GRACE), pytest.raises(bb.OperationTimeout):
            conv.connect(timeout=0.5)
        assert conv.closed

    def test_a_stalled_open_with_the_default_close_timeout(self, emulator: Emulator) -> None:
        # The cleanup after the timeout is bounded on its own, not by close_timeout (5 s).
        emulator.arm_fault(Stall(when=OPEN))
        conv = bb.Conversation(token=emulator.token, base_url=emulator.base_url)
        assert conv.close_timeout == 5.0
        with returns_within(1 + 2.0), pytest.raises(bb.OperationTimeout):
            conv.connect(timeout=1)
        assert conv.closed

    def test_closed_before_initialize(self, emulator: Emulator) -> None:
        emulator.arm_fault(close_before_init(1011, "not now"))
        conv = conversation(emulator)
        with returns_within(5 + GRACE), pytest.raises(bb.ConnectionClosedError):
            conv.connect(timeout=5)

    @pytest.mark.parametrize("code", [1000, 1011, 4000])
    def test_closed_after_initialize_raises_connection_closed(
        self, emulator: Emulator, code: int
    ) -> None:
        emulator.arm_fault(close_after_init(code, "no agent for you"))
        conv = conversation(emulator)
        with returns_within(5 + GRACE), pytest.raises(bb.ConnectionClosedError) as info:
            conv.connect(timeout=5)
        assert info.value.code == code

    @pytest.mark.parametrize("message", DOCUMENTED_ERRORS)
    def test_each_documented_error_at_open_is_typed(self, emulator: Emulator, message: str) -> None:
        emulator.arm_fault(ErrorFrame(message, when=OPEN, close_code=1008))
        conv = conversation(emulator)
        expected = bb.AuthenticationError if message in AUTH_ERRORS else bb.ServerError
        with returns_within(5 + GRACE), pytest.raises(expected) as info:
            conv.connect(timeout=5)
        assert getattr(info.value, "message", None) == message  # both classes carry it
        assert conv.closed

    def test_failed_open_is_a_server_error(self, emulator: Emulator) -> None:
        emulator.arm_fault(FailedOpen("agent is disabled"))
        conv = conversation(emulator)
        with pytest.raises(bb.ServerError, match="agent is disabled"):
            conv.connect(timeout=5)
        assert conv.closed


class TestAsk:
    def test_a_stalled_turn_times_out_with_the_reply_so_far(
        self, connect: Connect, three_texts: Emulator
    ) -> None:
        three_texts.arm_fault(Stall(when=On("text", nth=2)))
        conv = connect(ping_interval=None, close_timeout=CLOSE, quiet_period=30)
        with returns_within(1 + GRACE), pytest.raises(bb.AskTimeout) as info:
            conv.ask("hi", timeout=1)
        assert info.value.reply is not None
        assert info.value.reply.texts == ["one", "two"]  # "two" went out, then nothing
        with returns_within(2 * CLOSE + GRACE):
            conv.close()

    def test_keepalive_detects_a_half_open_connection(
        self, connect: Connect, three_texts: Emulator
    ) -> None:
        three_texts.arm_fault(Stall(when=On("text")))
        conv = connect(ping_interval=0.1, ping_timeout=0.3, close_timeout=CLOSE)
        errors: List[bb.BlackBoxError] = []
        conv.on_error(errors.append)
        # The turn never completes on its own (quiet period 30 s): only keepalive can end it.
        with (
            returns_within(0.4 + GRACE),
            pytest.raises(bb.ConnectionClosedError, match="keepalive"),
        ):
            conv.ask("hi", timeout=30, quiet_period=30)
        with returns_within(2 * CLOSE + GRACE):
            conv.close()
        assert any("keepalive" in str(e) for e in errors)

    def test_a_dropped_connection_mid_turn(self, connect: Connect, three_texts: Emulator) -> None:
        three_texts.arm_fault(Drop(when=On("text", nth=2)))
        conv = connect(quiet_period=30)
        with returns_within(GRACE), pytest.raises(bb.ConnectionClosedError) as info:
            conv.ask("hi", timeout=30)
        assert info.value.code is None
        assert conv.close_code is None

    @pytest.mark.parametrize("code", [1000, 1001, 1007, 1011, 1013, 4000, 4401, 4999])
    def test_closed_mid_turn_with_each_code(
        self, connect: Connect, three_texts: Emulator, code: int
    ) -> None:
        three_texts.arm_fault(Close(code, "chosen reason", when=On("text", nth=2)))
        conv = connect(quiet_period=30)
        closes: List[Tuple[Optional[int], str]] = []
        conv.on_close(lambda c, r: closes.append((c, r)))
        with returns_within(GRACE), pytest.raises(bb.ConnectionClosedError) as info:
            conv.ask("hi", timeout=30)
        assert (info.value.code, info.value.reason) == (code, "chosen reason")
        assert conv.close_code == code
        conv.close()
        assert closes == [(code, "chosen reason")]

    @pytest.mark.parametrize("code", [1005, 1006, 1015])
    def test_codes_that_cannot_travel_end_as_a_lost_connection(
        self, connect: Connect, three_texts: Emulator, code: int
    ) -> None:
        three_texts.arm_fault(Close(code, when=On("text")))
        conv = connect(quiet_period=30)
        with returns_within(GRACE), pytest.raises(bb.ConnectionClosedError):
            conv.ask("hi", timeout=30)

    def test_a_slow_first_text_past_the_timeout(
        self, connect: Connect, three_texts: Emulator
    ) -> None:
        three_texts.arm_fault(Delay(3, when="text"))
        conv = connect(close_timeout=CLOSE)
        with returns_within(0.3 + GRACE), pytest.raises(bb.AskTimeout) as info:
            conv.ask("hi", timeout=0.3)
        assert info.value.reply is not None
        assert info.value.reply.texts == []

    def test_slow_chunks_within_the_quiet_period_make_one_reply(
        self, connect: Connect, three_texts: Emulator
    ) -> None:
        three_texts.arm_fault(Delay(0.05, when=On("text", nth=2), times=None))
        conv = connect(quiet_period=1.0)
        assert conv.ask("hi", timeout=10).texts == ["one", "two", "three"]

    def test_a_slow_tool_request_holds_the_turn_open(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        emulator.default_agent = ScriptedAgent(
            [Rule("order", ["One moment."], steps=[])], default="ok"
        )
        emulator.default_agent = ScriptedAgent(
            handler=lambda text, ctx: ["Checking.", CallTool("lookup"), "Found: {result}."]
        )
        emulator.arm_fault(Delay(0.1, when="websocketToolRequest"))
        conv = connect(connect=False, quiet_period=1.0)
        conv.tool("lookup", lambda: "it")
        conv.connect(timeout=5)
        assert conv.ask("where?", timeout=10).text == "Checking. Found: it."

    @pytest.mark.parametrize("message", DOCUMENTED_ERRORS)
    def test_each_documented_error_mid_turn_is_typed(
        self, connect: Connect, three_texts: Emulator, message: str
    ) -> None:
        conv = connect(quiet_period=30)
        three_texts.arm_fault(ErrorFrame(message, when="text"))
        expected = bb.AuthenticationError if message in AUTH_ERRORS else bb.ServerError
        with returns_within(GRACE), pytest.raises(expected, match=message):
            conv.ask("hi", timeout=30)

    @pytest.mark.parametrize("how", sorted(set(MALFORMATIONS) - {"invalid_utf8"}))
    def test_a_malformed_frame_is_reported_and_the_turn_goes_on(
        self, connect: Connect, three_texts: Emulator, how: str
    ) -> None:
        conv = connect()
        unknown: List[bb.UnknownMessage] = []
        conv.on(bb.UnknownMessage, unknown.append)
        three_texts.arm_fault(Malform(how, when="text"))
        reply = conv.ask("hi", timeout=10)
        assert reply.texts[-2:] == ["two", "three"]
        reported = [e for e in conv.errors if isinstance(e, bb.ProtocolError)]
        if how == "unknown_type":  # a type this version does not know is no error
            assert [m.type for m in unknown] == ["x-text"]
        else:
            assert len(reported) == 1, reported
            assert reported[0].payload is not None

    def test_invalid_utf8_closes_with_1007(self, connect: Connect, three_texts: Emulator) -> None:
        conv = connect(quiet_period=30)
        three_texts.arm_fault(Malform("invalid_utf8", when="text"))
        with returns_within(GRACE), pytest.raises(bb.ConnectionClosedError) as info:
            conv.ask("hi", timeout=30)
        assert info.value.code == 1007

    def test_an_oversized_frame_closes_with_1009(
        self, connect: Connect, three_texts: Emulator
    ) -> None:
        conv = connect(quiet_period=30, max_message_size=64 * 1024)
        three_texts.arm_fault(Oversize(1024 * 1024, when="text"))
        with returns_within(GRACE), pytest.raises(bb.ConnectionClosedError) as info:
            conv.ask("hi", timeout=30)
        assert info.value.code == 1009

    def test_duplicated_and_reordered_texts_arrive_as_sent(
        self, connect: Connect, three_texts: Emulator
    ) -> None:
        conv = connect()
        three_texts.arm_fault(Duplicate(when=On("text", nth=1)))
        three_texts.arm_fault(Reorder(when=On("text", nth=2)))
        # Texts carry no id, so the client cannot tell a repeat from a real one: it keeps both,
        # in arrival order, and the transcript shows what the service sent.
        assert conv.ask("hi", timeout=10).texts == ["one", "one", "three", "two"]

    def test_a_duplicated_tool_request_runs_once(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        emulator.default_agent = ScriptedAgent(
            handler=lambda text, ctx: [CallTool("count", id="t-1"), "done"]
        )
        emulator.arm_fault(Duplicate(3, when="websocketToolRequest"))
        conv = connect(connect=False)
        runs: List[int] = []

        def count() -> int:
            runs.append(1)
            return len(runs)

        conv.tool("count", count)
        conv.connect(timeout=5)
        assert conv.ask("go", timeout=10).text == "done"
        conv.close()
        responses = [f for f in emulator.frames if f.type == "websocketToolResponse"]
        assert (len(runs), len(responses)) == (1, 1)

    def test_wait_for_reply_honours_its_timeout(self, connect: Connect, emulator: Emulator) -> None:
        emulator.default_agent = ScriptedAgent(greeting="Hello!")
        emulator.arm_fault(Stall(when="event"))  # after the connection event: no greeting
        conv = connect(ping_interval=None, close_timeout=CLOSE)
        with returns_within(0.5 + GRACE), pytest.raises(bb.AskTimeout):
            conv.wait_for_reply(timeout=0.5)


class TestTerminateAndClose:
    def test_terminate_honours_its_timeout_when_the_server_stalls(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        emulator.arm_fault(Stall(when=On("terminate", "client")))
        conv = connect(close_timeout=CLOSE)
        with returns_within(0.5 + 2 * CLOSE + GRACE), pytest.raises(bb.OperationTimeout):
            conv.terminate(timeout=0.5)
        assert conv.closed

    def test_terminate_with_the_default_close_timeout(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        emulator.arm_fault(Stall(when=On("terminate", "client")))
        conv = connect()
        assert conv.close_timeout == 5.0
        with returns_within(1 + 2.0), pytest.raises(bb.OperationTimeout):
            conv.terminate(timeout=1)
        assert conv.closed

    def test_leaving_a_with_block_on_a_stalled_service(self, emulator: Emulator) -> None:
        # Leaving the block waits close_timeout for the result, then closes within the grace.
        emulator.arm_fault(Stall(when=On("terminate", "client")))
        conv = conversation(emulator, close_timeout=3.0)
        with conv:
            assert conv.phase is bb.Phase.READY
            start = time.monotonic()
        elapsed = time.monotonic() - start
        assert elapsed < 3.0 + 2.0, f"took {elapsed:.2f} s"
        assert conv.closed

    def test_terminate_when_the_server_drops_instead_of_answering(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        emulator.arm_fault(Drop(when=On("terminate", "client")))
        conv = connect()
        with returns_within(5 + GRACE):
            assert conv.terminate(timeout=5) is None  # closed without a result
        assert conv.closed

    def test_a_voice_call_ending_with_1006_is_a_normal_end(self, emulator: Emulator) -> None:
        emulator.default_agent = ScriptedAgent([Rule("bye", "Bye!", end_conversation=True)])
        conv = conversation(emulator, call_type="webCall", quiet_period=30)
        conv.connect(timeout=5)
        reply = conv.ask("bye", timeout=5)
        assert reply.reason is bb.TurnEnd.CONVERSATION_RESULT
        record = emulator.wait_for_conversation_end()
        assert record.close_code == 1006  # dropped, as live voice calls end
        conv.close()
        assert conv.result is not None
        assert not [e for e in conv.errors if isinstance(e, bb.ConnectionClosedError)]

    def test_close_returns_in_bounded_time_when_the_peer_ignores_it(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        emulator.arm_fault(Stall(when=On("incomingChatMessage", "client")))
        conv = connect(close_timeout=CLOSE, ping_interval=None)
        conv.send("hello?")
        emulator.wait_for_fault("Stall")
        with returns_within(2 * CLOSE + GRACE):
            conv.close()
        assert conv.closed

    def test_close_from_another_thread_ends_a_waiting_ask(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        emulator.arm_fault(Stall(when=On("incomingChatMessage", "client")))
        conv = connect(close_timeout=CLOSE, ping_interval=None)
        emulator_saw = threading.Event()

        def close_once_stalled() -> None:
            emulator.wait_for_fault("Stall")
            emulator_saw.set()
            conv.close()

        threading.Thread(target=close_once_stalled).start()
        with returns_within(2 * CLOSE + GRACE), pytest.raises(bb.ConnectionClosedError):
            conv.ask("hello?", timeout=30)
        assert emulator_saw.is_set()

    def test_close_is_safe_from_many_threads_at_once(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        emulator.arm_fault(Stall(when=On("incomingChatMessage", "client")))
        conv = connect(close_timeout=CLOSE, ping_interval=None)
        conv.send("hello?")
        emulator.wait_for_fault("Stall")
        threads = [threading.Thread(target=conv.close) for _ in range(8)]
        with returns_within(2 * CLOSE + GRACE):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(2 * CLOSE + GRACE)
        assert conv.closed


class TestToolsUnderFaults:
    def agent(self) -> ScriptedAgent:
        return ScriptedAgent(handler=lambda text, ctx: [CallTool("slow"), "after: {result}"])

    def test_a_drop_during_a_tool_call_leaves_no_thread_stuck(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        emulator.default_agent = self.agent()
        emulator.arm_fault(Drop(when="websocketToolRequest"))
        conv = connect(connect=False, close_timeout=CLOSE)
        running, release, finished = threading.Event(), threading.Event(), threading.Event()

        @conv.tool
        def slow() -> str:
            running.set()
            release.wait(10)
            finished.set()
            return "late"

        conv.connect(timeout=5)
        with returns_within(GRACE), pytest.raises(bb.ConnectionClosedError):
            conv.ask("go", timeout=30)
        assert running.wait(5)
        with returns_within(2 * CLOSE + GRACE):
            conv.close()  # the handler still runs: close() does not wait for it forever
        release.set()
        assert finished.wait(5)
        # The late result had nowhere to go; it was dropped without an exception in the pool
        # (pytest turns one into an error), and the pool thread ended: the autouse fixture checks.
        assert not [f for f in emulator.frames if f.type == "websocketToolResponse"]

    def test_callbacks_and_tools_see_a_consistent_final_state(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        emulator.default_agent = self.agent()
        emulator.arm_fault(Drop(when="websocketToolRequest"))
        conv = connect(connect=False, close_timeout=2.0)
        lost = threading.Event()
        seen: Dict[str, Any] = {}

        @conv.tool
        def slow() -> str:
            lost.wait(5)  # finishes after the connection is gone
            try:
                conv.send("from a tool after the close")
            except bb.BlackBoxError as exc:
                seen["send"] = exc
            return "late"

        @conv.on_error
        def on_error(error: bb.BlackBoxError) -> None:
            if isinstance(error, bb.ConnectionClosedError):
                lost.set()

        @conv.on_close
        def on_close(code: Optional[int], reason: str) -> None:
            seen["close"] = (code, reason, conv.closed, conv.phase, conv.close_code)
            seen["tool_done"] = "send" in seen

        conv.connect(timeout=5)
        with pytest.raises(bb.ConnectionClosedError):
            conv.ask("go", timeout=30)
        conv.close()
        assert seen["close"] == (None, "", True, bb.Phase.ENDED, None)
        assert isinstance(seen["send"], bb.ConnectionClosedError)
        assert seen["tool_done"]  # on_close ran after the running tool had returned

    def test_a_tool_timeout_still_answers_while_the_server_is_slow(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        emulator.default_agent = self.agent()
        conv = connect(connect=False, tool_timeout=0.2)
        release = threading.Event()
        conv.tool("slow", lambda: release.wait(5))
        conv.connect(timeout=5)
        reply = conv.ask("go", timeout=10)
        release.set()
        assert "timed out" in reply.text
        assert any(isinstance(e, bb.ToolError) for e in conv.errors)

    def test_close_from_a_tool_returns_promptly(self, connect: Connect, emulator: Emulator) -> None:
        # An "end call" tool: it closes the conversation it serves, with the default close_timeout.
        emulator.default_agent = ScriptedAgent(
            handler=lambda text, ctx: [CallTool("endCall"), "never said"]
        )
        conv = connect(connect=False)
        finished = threading.Event()
        took: List[float] = []

        @conv.tool
        def endCall() -> str:
            start = time.monotonic()
            conv.close()
            took.append(time.monotonic() - start)
            finished.set()
            return "ended"  # the result has nowhere to go: dropped, without an exception

        conv.connect(timeout=5)
        with returns_within(GRACE), pytest.raises(bb.ConnectionClosedError):
            conv.ask("bye", timeout=10)
        assert finished.wait(5)
        assert took[0] < 2.0, f"close() from the tool took {took[0]:.2f} s"
        with returns_within(2.0):
            conv.close()  # joins the reader and the pool, which the tool could not
        assert conv.closed
        assert conv.errors == []


def note(event: bb.Reconnected, events: List[bb.Reconnected], done: threading.Event) -> None:
    events.append(event)
    done.set()


class TestReconnect:
    FAST = bb.ReconnectPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05, jitter=0.5)

    def test_a_fault_drop_opens_a_new_conversation_and_says_so(
        self, connect: Connect, three_texts: Emulator
    ) -> None:
        conv = connect(reconnect=self.FAST, close_timeout=CLOSE)
        events: List[bb.Reconnected] = []
        done = threading.Event()
        conv.on("reconnected", lambda e: note(e, events, done))
        first = conv.record_id
        three_texts.arm_fault(Close(1011, when=On("text", nth=2)))
        with pytest.raises(bb.ConnectionClosedError):
            conv.ask("hi", timeout=10)  # the turn in flight fails: never silently resumed
        assert done.wait(5)
        assert conv.ask("again", timeout=10).texts == ["one", "two", "three"]
        (event,) = events
        assert event.previous_record_id == first
        assert event.record_id == conv.record_id != first
        assert [r.record_id for r in three_texts.conversations] == [first, conv.record_id]

    def test_refused_attempts_are_retried_until_one_succeeds(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        conv = connect(reconnect=self.FAST, close_timeout=CLOSE)
        done = threading.Event()
        events: List[bb.Reconnected] = []
        conv.on(bb.Reconnected, lambda e: note(e, events, done))
        emulator.arm_fault(Refuse(503, times=2))
        emulator.drop_connection()
        assert done.wait(10)
        assert [e.attempt for e in events] == [3]
        refused = [e for e in conv.errors if "HTTP 503" in str(e)]
        assert len(refused) == 2

    def test_giving_up_after_max_attempts(self, connect: Connect, emulator: Emulator) -> None:
        conv = connect(reconnect=self.FAST, close_timeout=CLOSE)
        gave_up = threading.Event()
        conv.on_error(lambda e: gave_up.set() if "gave up" in str(e) else None)
        emulator.arm_fault(Refuse(503, times=None))
        emulator.drop_connection()
        assert gave_up.wait(10)
        assert len(emulator.fault_firings) == self.FAST.max_attempts
        with pytest.raises(bb.ConnectionClosedError):
            conv.ask("anyone?", timeout=5)
        with returns_within(2 * CLOSE + GRACE):
            conv.close()

    def test_a_stalled_reconnect_attempt_counts_as_failed(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        conv = connect(reconnect=self.FAST, connect_timeout=0.3, close_timeout=CLOSE)
        done = threading.Event()
        conv.on(bb.Reconnected, lambda e: done.set())
        emulator.arm_fault(Stall(when=OPEN))
        emulator.drop_connection()
        assert done.wait(10)
        assert any(isinstance(e, bb.OperationTimeout) for e in conv.errors)

"""The public Conversation API end to end against the emulator, over real loopback sockets."""

import json
import threading
import time
from typing import Any, Dict, List, Tuple

import pytest
from testkit import Connect, phase_now

import blackbox_sync as bb
from blackbox_sync.testing import CallTool, Emulator, FrameRecord, Rule, ScriptedAgent
from blackbox_sync.testing.agents.scripted import RawFrame


def client_frames(emulator: Emulator, kind: str) -> List[FrameRecord]:
    return [f for f in emulator.conversations[-1].client_frames if f.get("type") == kind]


class TestAsk:
    def test_split_reply_with_fillers_and_partials(self, connect: Connect) -> None:
        agent = ScriptedAgent(
            [Rule("order", ["Got it.", "It ships tomorrow."], fillers=["um"], partials=["It sh"])]
        )
        conv = connect(agent)
        reply = conv.ask("Where is my order?", timeout=5)
        assert reply.text == "Got it. It ships tomorrow."
        assert reply.texts == ["Got it.", "It ships tomorrow."]
        assert reply.reason is bb.TurnEnd.QUIET
        assert reply.latency is not None
        assert reply.latency < reply.duration
        kinds = [
            (m.text, m.partial)
            for m in reply.messages
            if isinstance(m, bb.TextMessage) and m.from_assistant
        ]
        assert kinds == [
            ("um", False),
            ("It sh", True),
            ("Got it.", False),
            ("It ships tomorrow.", False),
        ]

    def test_turns_do_not_bleed_into_each_other(self, connect: Connect) -> None:
        conv = connect(ScriptedAgent(default="You said: {user}"))
        assert conv.ask("one", timeout=5).text == "You said: one"
        assert conv.ask("two", timeout=5).text == "You said: two"
        assert [m.text for m in conv.transcript if m.from_assistant] == [
            "You said: one",
            "You said: two",
        ]

    def test_talk_first_greeting(self, connect: Connect) -> None:
        conv = connect(ScriptedAgent(greeting=["Hello!", "How can I help?"], default="Sure."))
        greeting = conv.wait_for_reply(timeout=5)
        assert greeting.text == "Hello! How can I help?"
        assert conv.ask("hi", timeout=5).text == "Sure."

    def test_ask_sends_a_plain_string_with_null_channel(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        conv = connect()
        conv.ask("hi", timeout=5)
        (sent,) = client_frames(emulator, "incomingChatMessage")
        assert sent["content"] == "hi"
        assert "channelId" in sent
        assert sent["channelId"] is None

    def test_ask_timeout_keeps_the_partial_reply(self, connect: Connect) -> None:
        conv = connect(ScriptedAgent([Rule("slow", ["first"])]), quiet_period=30)
        with pytest.raises(bb.AskTimeout) as info:
            conv.ask("slow", timeout=0.5)
        assert isinstance(info.value, TimeoutError)
        assert info.value.reply is not None
        assert info.value.reply.text == "first"

    def test_concurrent_asks_are_served_one_at_a_time(self, connect: Connect) -> None:
        conv = connect(ScriptedAgent(default="You said: {user}"))
        replies: Dict[str, str] = {}

        def ask(text: str) -> None:
            replies[text] = conv.ask(text, timeout=10).text

        threads = [threading.Thread(target=ask, args=(f"q{i}",)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert replies == {f"q{i}": f"You said: q{i}" for i in range(3)}

    def test_agent_ending_the_conversation_completes_the_turn(self, connect: Connect) -> None:
        conv = connect(
            ScriptedAgent([Rule("bye", "Goodbye!", end_conversation=True)]), quiet_period=30
        )
        reply = conv.ask("bye", timeout=5)
        assert reply.reason is bb.TurnEnd.CONVERSATION_RESULT
        assert reply.ended
        assert reply.text == "Goodbye!"
        assert reply.result is not None
        assert conv.result is reply.result
        with pytest.raises(bb.ConnectionClosedError):
            conv.ask("still there?", timeout=5)

    def test_error_frame_raises_server_error(self, connect: Connect) -> None:
        agent = ScriptedAgent(
            [
                Rule(
                    "boom",
                    raw_frames=[{"type": "error", "data": {"message": "LLM provider failed"}}],
                )
            ]
        )
        conv = connect(agent, quiet_period=30)
        with pytest.raises(bb.ServerError, match="LLM provider failed") as info:
            conv.ask("boom", timeout=5)
        assert not isinstance(info.value, bb.AuthenticationError)
        assert conv.ask("next", timeout=5, quiet_period=0.1).text  # the socket is still open

    def test_dropped_socket_mid_ask_raises_promptly(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        # The emulator cuts TCP (no close frame) once it has read initialize and the question.
        emulator.drop_next_connection_after(2, direction="client")
        conv = connect(ScriptedAgent([Rule("drop", steps=[])]), quiet_period=30)
        errors: List[bb.BlackBoxError] = []
        conv.on_error(errors.append)
        with pytest.raises(bb.ConnectionClosedError) as info:
            conv.ask("drop", timeout=10)
        assert info.value.code is None
        assert conv.closed
        conv.close()  # after close() returns, every report has been made
        assert any(isinstance(e, bb.ConnectionClosedError) for e in errors)


class TestTools:
    def test_tool_result_reaches_the_agent(self, connect: Connect, emulator: Emulator) -> None:
        agent = ScriptedAgent(
            [
                Rule(
                    "order",
                    tools=[CallTool("checkOrderStatus", {"orderNumber": "ORD-1"})],
                    reply="It is {result[status]}.",
                )
            ]
        )
        conv = connect(agent, connect=False)

        @conv.tool("checkOrderStatus")
        def check(orderNumber: str) -> Dict[str, str]:
            return {"status": f"shipped:{orderNumber}"}

        conv.connect(timeout=5)
        reply = conv.ask("order?", timeout=5)
        assert reply.text == "It is shipped:ORD-1."
        assert [r.tool_name for r in reply.tool_requests] == ["checkOrderStatus"]
        (response,) = client_frames(emulator, "websocketToolResponse")
        assert response["content"]["result"] == {"status": "shipped:ORD-1"}
        assert response["channelId"] is None

    def test_tools_run_in_parallel(self, connect: Connect) -> None:
        # Five requests at once; each handler waits for all five to be running together, which
        # only works if the default pool runs them in parallel (issue 2: five slow tools must
        # take about as long as one).
        requests = [
            {
                "type": "websocketToolRequest",
                "channelId": None,
                "content": {"id": f"t{i}", "toolName": "slow", "args": {"n": i}},
            }
            for i in range(5)
        ]
        conv = connect(
            ScriptedAgent([Rule("go", ["done"], raw_frames=requests)]),
            connect=False,
        )
        together = threading.Barrier(5, timeout=5)

        @conv.tool
        def slow(n: int) -> int:
            together.wait()
            return n

        conv.connect(timeout=5)
        reply = conv.ask("go", timeout=10)
        assert len(reply.tool_requests) == 5
        assert not conv.errors

    def test_five_half_second_tools_overlap(self, connect: Connect) -> None:
        # Issue 2's own scenario, through the scripted agent's parallel tool requests: every
        # tool starts before any has finished its half second, so five take about as long as
        # one (the figure is printed; the barrier test above proves the same without sleeps).
        agent = ScriptedAgent(
            [Rule("go", ["done"], tools=[CallTool(f"t{i}") for i in range(5)],
                  parallel_tools=True)]
        )  # fmt: skip
        conv = connect(agent, connect=False)
        spans: List[Tuple[float, float]] = []

        def sleepy() -> Dict[str, float]:
            start = time.monotonic()
            time.sleep(0.5)
            spans.append((start, time.monotonic()))
            return {"slept": 0.5}

        for i in range(5):
            conv.tool(f"t{i}")(sleepy)
        conv.connect(timeout=5)
        started = time.monotonic()
        reply = conv.ask("go", timeout=10)
        print(f"five 0.5 s tools answered in {time.monotonic() - started:.3f} s")
        assert reply.text == "done"
        assert len(reply.tool_requests) == 5
        assert len(spans) == 5
        assert max(start for start, _ in spans) < min(end for _, end in spans)
        assert not conv.errors

    @pytest.mark.parametrize(
        ("tool", "args", "error_words"),
        [
            ("missing", {}, "no handler"),
            ("raises", {}, "ValueError: broken"),
            ("strict", {"unexpected": 1}, "do not fit"),
            ("strict", "not-an-object", "must be a JSON object"),
            ("unjsonable", {}, "not JSON"),
        ],
    )
    def test_failing_tools_answer_with_an_error_result(
        self, connect: Connect, emulator: Emulator, tool: str, args: Any, error_words: str
    ) -> None:
        request = {
            "type": "websocketToolRequest",
            "channelId": None,
            "content": {"id": "t1", "toolName": tool, "args": args},
        }
        conv = connect(ScriptedAgent([Rule("go", ["ok"], raw_frames=[request])]), connect=False)
        errors: List[bb.BlackBoxError] = []
        conv.on_error(errors.append)

        @conv.tool
        def raises() -> None:
            raise ValueError("broken")

        @conv.tool
        def strict(expected: int = 0) -> int:
            return expected

        @conv.tool
        def unjsonable() -> object:
            return object()

        conv.connect(timeout=5)
        conv.ask("go", timeout=5)
        (response,) = client_frames(emulator, "websocketToolResponse")
        assert response["content"]["id"] == "t1"
        assert error_words in response["content"]["result"]["error"]
        assert any(isinstance(e, bb.ToolError) and e.tool_name == tool for e in errors)

    def test_tool_timeout_answers_with_an_error_and_drops_the_late_result(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        agent = ScriptedAgent([Rule("go", tools=[CallTool("sleepy")], reply="result: {result}")])
        conv = connect(agent, connect=False, tool_timeout=0.2)
        release = threading.Event()

        @conv.tool
        def sleepy() -> str:
            release.wait(5)
            return "late"

        conv.connect(timeout=5)
        reply = conv.ask("go", timeout=5)
        release.set()
        assert "timed out" in reply.text
        conv.close()
        responses = client_frames(emulator, "websocketToolResponse")
        assert len(responses) == 1

    def test_a_flood_of_tool_requests_is_bounded(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        requests = [
            {
                "type": "websocketToolRequest",
                "channelId": None,
                "content": {"id": f"t{i}", "toolName": "wait", "args": {}},
            }
            for i in range(6)
        ]
        conv = connect(
            ScriptedAgent([Rule("go", ["ok"], raw_frames=requests)]),
            connect=False,
            max_pending_tools=2,
            tool_workers=2,
        )
        release = threading.Event()

        @conv.tool
        def wait() -> str:
            release.wait(5)
            return "done"

        conv.connect(timeout=5)
        conv.send("go")
        emulator.wait_for_frame("websocketToolResponse", count=4, timeout=5)  # refused at once
        release.set()
        emulator.wait_for_frame("websocketToolResponse", count=6, timeout=5)
        results = [f["content"]["result"] for f in client_frames(emulator, "websocketToolResponse")]
        assert len(results) == 6
        assert results.count("done") == 2
        assert all("in flight" in r["error"] for r in results if r != "done")

    def test_duplicate_tool_request_is_answered_once(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        request = {
            "type": "websocketToolRequest",
            "channelId": None,
            "content": {"id": "dup", "toolName": "f", "args": {}},
        }
        conv = connect(
            ScriptedAgent([Rule("go", ["ok"], raw_frames=[request, request])]), connect=False
        )
        calls: List[int] = []

        def tool() -> str:
            calls.append(1)
            return "x"

        conv.tool("f", tool)
        conv.connect(timeout=5)
        conv.ask("go", timeout=5)
        conv.close()
        assert len(client_frames(emulator, "websocketToolResponse")) == 1
        assert calls == [1]


class TestCallbacks:
    def test_by_wire_type_class_and_star(self, connect: Connect) -> None:
        conv = connect(connect=False)
        by_type: List[bb.Message] = []
        by_class: List[bb.Message] = []
        everything: List[bb.Message] = []
        conv.on("text", by_type.append)
        conv.on(bb.Event)(by_class.append)
        conv.on("*", everything.append)
        conv.connect(timeout=5)
        conv.ask("hi", timeout=5)
        assert by_type
        assert all(isinstance(m, bb.TextMessage) for m in by_type)
        assert [m.name for m in by_class if isinstance(m, bb.Event)][:1] == ["connection"]
        assert len(everything) >= len(by_type) + len(by_class)

    def test_a_raising_callback_never_kills_the_reader(self, connect: Connect) -> None:
        conv = connect(connect=False)
        errors: List[bb.BlackBoxError] = []

        @conv.on("text")
        def broken(message: bb.Message) -> None:
            raise RuntimeError("callback bug")

        conv.on_error(errors.append)
        conv.connect(timeout=5)
        assert conv.ask("one", timeout=5).text
        assert conv.ask("two", timeout=5).text
        assert any(isinstance(e, bb.CallbackError) and "callback bug" in str(e) for e in errors)

    def test_callbacks_may_send(self, connect: Connect, emulator: Emulator) -> None:
        conv = connect(ScriptedAgent([Rule("ping", "pong"), Rule("auto", "thanks")]), connect=False)

        @conv.on(bb.TextMessage)
        def reply_to_pong(message: bb.TextMessage) -> None:
            if message.text == "pong":
                conv.send("auto")

        conv.connect(timeout=5)
        conv.ask("ping", timeout=5)
        emulator.wait_for_frame("incomingChatMessage", count=2, timeout=5)
        assert [f["content"] for f in client_frames(emulator, "incomingChatMessage")] == [
            "ping",
            "auto",
        ]

    def test_blocking_calls_from_a_callback_raise_usage_error(self, connect: Connect) -> None:
        conv = connect(connect=False)
        seen: List[BaseException] = []

        @conv.on("text")
        def misuse(message: bb.Message) -> None:
            try:
                conv.ask("nested")
            except bb.UsageError as exc:
                seen.append(exc)

        conv.connect(timeout=5)
        conv.ask("hi", timeout=5)
        assert seen
        assert "callback" in str(seen[0])

    def test_close_from_a_callback_does_not_deadlock(self, connect: Connect) -> None:
        conv = connect(connect=False)
        conv.on("text", lambda message: conv.close())
        conv.connect(timeout=5)
        with pytest.raises((bb.ConnectionClosedError, bb.AskTimeout)):
            conv.ask("hi", timeout=5)
        conv.close()
        assert conv.closed

    def test_frame_and_close_hooks(self, connect: Connect) -> None:
        conv = connect(connect=False)
        sent: List[str] = []
        received: List[object] = []
        closes: List[object] = []
        conv.on_frame_sent(sent.append)
        conv.on_frame_received(received.append)
        conv.on_close(lambda code, reason: closes.append(code))
        conv.connect(timeout=5)
        conv.ask("hi", timeout=5)
        conv.terminate(timeout=5)
        assert [json.loads(t)["type"] for t in sent] == [
            "initialize",
            "incomingChatMessage",
            "terminate",
        ]
        assert json.loads(str(received[0]))["name"] == "connection"
        assert len(received) == len(
            [
                m
                for m in conv.history
                if not isinstance(m, (bb.Initialize, bb.IncomingChatMessage, bb.Terminate))
            ]
        )
        assert closes == [1000]


class TestFrames:
    def test_unknown_and_malformed_frames_are_survived_and_reported(self, connect: Connect) -> None:
        junk: List[RawFrame] = [
            "{not json",
            {"type": "brandNewThing", "x": 1},
            {"type": "text", "content": {"text": 5}},
            b"\x00\x01",
        ]
        conv = connect(
            ScriptedAgent([Rule("junk", ["still fine"], raw_frames=junk)]), connect=False
        )
        unknown: List[bb.Message] = []
        conv.on(bb.UnknownMessage, unknown.append)
        conv.connect(timeout=5)
        assert conv.ask("junk", timeout=5).text == "still fine"
        assert [m.type for m in unknown if isinstance(m, bb.UnknownMessage)] == ["brandNewThing"]
        protocol_errors = [e for e in conv.errors if isinstance(e, bb.ProtocolError)]
        assert len(protocol_errors) == 3
        assert {e.payload for e in protocol_errors} >= {"{not json", b"\x00\x01"}

    def test_a_large_reply_arrives_whole(self, connect: Connect) -> None:
        big = "x" * 300_000 + "é"
        conv = connect(ScriptedAgent([Rule("big", [big, "after"])]))
        assert conv.ask("big", timeout=10).texts == [big, "after"]

    def test_a_message_over_the_size_limit_closes_with_1009(self, connect: Connect) -> None:
        conv = connect(ScriptedAgent([Rule("big", ["x" * 5000])]), max_message_size=4096)
        with pytest.raises(bb.ConnectionClosedError, match="larger than 4096") as info:
            conv.ask("big", timeout=10)
        assert info.value.code == 1009

    def test_an_abnormal_close_code_is_reported(self, connect: Connect, emulator: Emulator) -> None:
        from blackbox_sync.testing import Close, On

        emulator.arm_fault(
            Close(4001, "policy", when=On("incomingChatMessage", direction="client"))
        )
        conv = connect()
        errors: List[bb.BlackBoxError] = []
        conv.on_error(errors.append)
        with pytest.raises(bb.ConnectionClosedError) as info:
            conv.ask("hi", timeout=5)
        conv.close()
        assert info.value.code == 4001
        assert [e.code for e in errors if isinstance(e, bb.ConnectionClosedError)] == [4001]


class TestLifecycle:
    def test_terminate_returns_the_conversation_result(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        conv = connect()
        assert conv.phase is bb.Phase.READY
        assert conv.record_id
        conv.ask("hi", timeout=5)
        result = conv.terminate(timeout=5)
        assert isinstance(result, bb.ConversationResult)
        assert result.status
        assert conv.closed
        assert phase_now(conv) is bb.Phase.ENDED
        assert client_frames(emulator, "terminate")

    def test_context_manager_terminates(self, emulator: Emulator) -> None:
        with bb.Conversation(
            token=emulator.token, base_url=emulator.base_url, quiet_period=0.1
        ) as conv:
            conv.ask("hi", timeout=5)
        assert conv.result is not None
        assert conv.closed

    def test_close_is_idempotent_and_then_sends_fail(self, connect: Connect) -> None:
        conv = connect()
        conv.close()
        conv.close()
        with pytest.raises(bb.ConnectionClosedError):
            conv.send("hi")
        with pytest.raises(bb.UsageError):
            conv.connect()

    def test_oversized_frames_are_refused_before_sending(
        self, connect: Connect, emulator: Emulator
    ) -> None:
        with pytest.raises(bb.UsageError, match="additional_data makes a"):
            bb.Conversation(
                token="t", base_url=emulator.base_url, additional_data={"blob": "x" * 70_000}
            )
        with pytest.raises(bb.UsageError, match="JSON"):
            bb.Conversation(
                token="t", base_url=emulator.base_url, additional_data={"when": object()}
            )
        conv = connect(max_frame_bytes=2000)
        with pytest.raises(bb.UsageError, match="max_frame_bytes=2000"):
            conv.ask("y" * 3000, timeout=5)
        assert conv.ask("short", timeout=5).text

    def test_wrong_token_raises_authentication_error(self, emulator: Emulator) -> None:
        conv = bb.Conversation(token="wrong-token", base_url=emulator.base_url)
        with pytest.raises(bb.AuthenticationError, match="Invalid token"):
            conv.connect(timeout=5)
        assert conv.closed

    def test_dev_endpoint_with_an_api_key(self, emulator: Emulator) -> None:
        with bb.Conversation(
            api_key=emulator.api_key, base_url=emulator.base_url, quiet_period=0.1
        ) as conv:
            assert conv.ask("hi", timeout=5).text
        init = emulator.conversations[-1].client_frames[0]
        assert "devRequest" in init
        assert init["devRequest"]["callType"] == "chat"

    def test_additional_data_reaches_initialize(self, connect: Connect, emulator: Emulator) -> None:
        connect(additional_data={"userId": "u-1"})
        init = emulator.conversations[-1].client_frames[0]
        assert init["request"] == {"callType": "chat", "additionalData": {"userId": "u-1"}}

    def test_connect_to_nothing_raises_connection_closed(self) -> None:
        conv = bb.Conversation(token="t", url="ws://127.0.0.1:9/api/v1/ws/webCall")
        with pytest.raises(bb.ConnectionClosedError, match="cannot connect"):
            conv.connect(timeout=2)

    def test_an_idle_conversation_has_one_thread(self, emulator_process: Tuple[str, str]) -> None:
        # The reader; the tool pool (8 workers by default) starts its threads on demand only.
        base_url, token = emulator_process
        baseline = threading.active_count()
        conv = bb.Conversation(token=token, base_url=base_url).connect(timeout=5)
        try:
            assert threading.active_count() == baseline + 1
        finally:
            conv.close()

    def test_threads_return_to_baseline_after_200_cycles(
        self, emulator_process: Tuple[str, str]
    ) -> None:
        base_url, token = emulator_process
        baseline = threading.active_count()
        for _ in range(200):
            conv = bb.Conversation(token=token, base_url=base_url, quiet_period=0)
            conv.connect(timeout=5)
            assert conv.ask("hi", timeout=5).text
            conv.close()
        assert threading.active_count() == baseline


def test_secrets_never_reach_logs_reprs_or_errors(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    texts: List[str] = []
    conv = bb.Conversation(token=emulator.token, base_url=emulator.base_url, quiet_period=0.1)
    texts += [repr(conv), str(conv), conv.url]
    with conv:
        texts.append(repr(conv))
        conv.ask("hi", timeout=5)
    bad = bb.Conversation(token="secret-wrong-token", base_url=emulator.base_url)
    with pytest.raises(bb.BlackBoxError) as info:
        bad.connect(timeout=5)
    texts += [str(info.value), repr(info.value), repr(bad)]
    dead = bb.Conversation(token="secret-dead-token", url="ws://127.0.0.1:9/api/v1/ws/webCall")
    with pytest.raises(bb.BlackBoxError) as info2:
        dead.connect(timeout=2)
    texts += [str(info2.value), repr(info2.value)]
    texts += [r.getMessage() for r in caplog.records]
    blob = json.dumps(texts)
    assert "incomingChatMessage" in blob, "frames should be logged at DEBUG"
    for secret in (emulator.token, "secret-wrong-token", "secret-dead-token"):
        assert secret not in blob

"""Scripted agents over real sockets: what a client sees for each kind of rule."""

from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from blackbox_sync.testing import (
    AgentContext,
    CallTool,
    CallTools,
    Emulator,
    End,
    Pause,
    Rule,
    Say,
    ScriptedAgent,
    SendRaw,
)
from blackbox_sync.testing.agents.scripted import RawFrame
from blackbox_sync.testing.ws.wire import WireClient


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


def talk(emu: Emulator, agent: Any, call_type: str = "chat") -> WireClient:
    """Open a conversation with ``agent``; the ``connection`` event is already read."""
    emu.default_agent = agent
    client = WireClient(emu.ws_url())
    client.initialize(call_type)
    assert client.recv()["name"] == "connection"
    return client


def texts(frames: List[Dict[str, Any]]) -> List[Tuple[str, str, Optional[str]]]:
    return [
        (f["content"]["source"], f["content"]["text"], f["content"].get("type"))
        for f in frames
        if f.get("type") == "text"
    ]


def turn(client: WireClient, message: str, count: int) -> List[Dict[str, Any]]:
    client.chat(message)
    return [client.recv() for _ in range(count)]


class TestReplies:
    def test_default_reply_echoes(self, emu: Emulator) -> None:
        with talk(emu, ScriptedAgent()) as client:
            assert texts(turn(client, "hello", 2)) == [
                ("user", "hello", None),
                ("assistant", "You said: hello", None),
            ]

    def test_split_reply_fillers_and_partials(self, emu: Emulator) -> None:
        agent = ScriptedAgent(
            [Rule("order", ["Got it.", "It ships tomorrow."], fillers=["um"], partials=["It sh"])]
        )
        with talk(emu, agent) as client:
            assert texts(turn(client, "Where is my ORDER?", 5)) == [
                ("user", "Where is my ORDER?", None),
                ("assistant", "um", None),
                ("assistant", "It sh", "potential"),
                ("assistant", "Got it.", None),
                ("assistant", "It ships tomorrow.", None),
            ]

    def test_first_matching_rule_wins_and_regex_groups_template(self, emu: Emulator) -> None:
        agent = ScriptedAgent(
            [
                Rule(
                    r"order (?P<number>ORD-\d+)",
                    "Looking up {match[number]} ({match[1]}).",
                    regex=True,
                ),
                Rule("order", "Which order?"),
            ]
        )
        with talk(emu, agent) as client:
            assert (
                texts(turn(client, "my order ord-42 please", 2))[1][1]
                == "Looking up ord-42 (ord-42)."
            )
            assert texts(turn(client, "my order", 2))[1][1] == "Which order?"

    def test_times_limits_a_rule_per_conversation(self, emu: Emulator) -> None:
        agent = ScriptedAgent([Rule("yes", "First yes.", times=1), Rule("yes", "Another yes.")])
        with talk(emu, agent) as client:
            assert texts(turn(client, "yes", 2))[1][1] == "First yes."
            assert texts(turn(client, "yes", 2))[1][1] == "Another yes."

    def test_talk_first_greeting_templated_from_additional_data(self, emu: Emulator) -> None:
        emu.default_agent = ScriptedAgent(greeting=["Hello {data[name]}!", "How can I help?"])
        with WireClient(emu.ws_url()) as client:
            client.initialize(additionalData={"name": "Ann"})
            frames = [client.recv() for _ in range(3)]
        assert frames[0]["name"] == "connection"
        assert texts(frames) == [
            ("assistant", "Hello Ann!", None),
            ("assistant", "How can I help?", None),
        ]

    def test_echo_can_be_turned_off(self, emu: Emulator) -> None:
        with talk(emu, ScriptedAgent(default="ok", echo=False)) as client:
            assert texts(turn(client, "hi", 1)) == [("assistant", "ok", None)]

    def test_silent_default(self, emu: Emulator) -> None:
        with talk(emu, ScriptedAgent(default=None)) as client:
            client.chat("hi")
            client.recv()  # the echo
            with pytest.raises(TimeoutError):
                client.recv(timeout=0.2)

    def test_broken_template_is_sent_as_written(self, emu: Emulator) -> None:
        with talk(emu, ScriptedAgent(default="{result[status]} and {literal}")) as client:
            assert texts(turn(client, "hi", 2))[1][1] == "{result[status]} and {literal}"

    def test_raw_frames_reach_the_client_verbatim(self, emu: Emulator) -> None:
        junk: List[RawFrame] = [
            '{"type": "mystery", "x": 1}',
            "not json {",
            {"type": "error", "data": {"message": "boom"}},
        ]
        with talk(emu, ScriptedAgent([Rule("junk", "still here", raw_frames=junk)])) as client:
            frames = turn(client, "junk", 5)
        assert frames[1] == {"type": "mystery", "x": 1}
        assert frames[2] == {"__text__": "not json {"}
        assert frames[3] == {"type": "error", "data": {"message": "boom"}}
        assert frames[4]["content"]["text"] == "still here"
        assert [f.type for f in emu.server_frames][2:5] == ["mystery", None, "error"]

    def test_delays_hold_frames_back(self, emu: Emulator) -> None:
        agent = ScriptedAgent([Rule("slow", ["one", "two"], delay=0.3, chunk_delay=0.2)])
        with talk(emu, agent) as client:
            assert [t for _, t, _ in texts(turn(client, "slow", 3))] == ["slow", "one", "two"]
        echo, one, two = [f.at for f in emu.server_frames if f.type == "text"]
        # Lower bounds only (a busy machine makes gaps longer, never shorter); the margin covers
        # the wall clock's resolution.
        assert (one - echo).total_seconds() >= 0.25
        assert (two - one).total_seconds() >= 0.15

    def test_messages_during_a_turn_queue_up(self, emu: Emulator) -> None:
        agent = ScriptedAgent([Rule("first", "reply one", delay=0.3)], default="reply to {user}")
        with talk(emu, agent) as client:
            client.chat("first")
            client.chat("second")
            frames = [client.recv() for _ in range(4)]
        assistant = [t for s, t, _ in texts(frames) if s == "assistant"]
        assert assistant == ["reply one", "reply to second"]


class TestTools:
    def test_tool_round_trip_with_templated_result(self, emu: Emulator) -> None:
        agent = ScriptedAgent(
            [
                Rule(
                    r"ORD-\d+",
                    [
                        "Your order is {result[status]}.",
                        "Arrives {results[checkOrderStatus][eta]}.",
                    ],
                    regex=True,
                    tools=[CallTool("checkOrderStatus", {"orderNumber": "{match[0]}"})],
                )
            ]
        )
        with talk(emu, agent) as client:
            client.chat("status of ORD-12345?")
            client.recv()  # echo
            request = client.recv()
            assert request["type"] == "websocketToolRequest"
            assert request["channelId"] is None
            assert request["content"] == {
                "id": "tool-1",
                "toolName": "checkOrderStatus",
                "args": {"orderNumber": "ORD-12345"},
            }
            client.tool_response("tool-1", {"status": "shipped", "eta": "Monday"})
            ack = client.recv()
            assert ack["type"] == "toolCallResult"
            assert ack["content"]["id"] == "tool-1"
            assert ack["content"]["result"] == {"status": "shipped", "eta": "Monday"}
            assert texts([client.recv(), client.recv()]) == [
                ("assistant", "Your order is shipped.", None),
                ("assistant", "Arrives Monday.", None),
            ]
        record = emu.wait_for_conversation_end()
        (call,) = record.tool_calls
        assert (call.id, call.tool_name, call.answered, call.timed_out) == (
            "tool-1",
            "checkOrderStatus",
            True,
            False,
        )
        assert call.result == {"status": "shipped", "eta": "Monday"}

    def test_parallel_tools_are_all_requested_before_any_answer(self, emu: Emulator) -> None:
        agent = ScriptedAgent(
            [
                Rule(
                    "go",
                    "{results[stock][left]} left, ships {results[eta][day]}.",
                    tools=[CallTool("stock"), CallTool("eta")],
                    parallel_tools=True,
                )
            ]
        )
        with talk(emu, agent) as client:
            client.chat("go")
            client.recv()  # echo
            first, second = client.recv(), client.recv()  # both out, nothing answered yet
            assert [f["content"]["toolName"] for f in (first, second)] == ["stock", "eta"]
            client.tool_response(second["content"]["id"], {"day": "Monday"})  # any order
            client.tool_response(first["content"]["id"], {"left": 3})
            frames = [client.recv() for _ in range(3)]
        assert [f["type"] for f in frames] == ["toolCallResult", "toolCallResult", "text"]
        assert frames[2]["content"]["text"] == "3 left, ships Monday."

    def test_parallel_tools_from_an_agent_file(self) -> None:
        agent = ScriptedAgent.from_dict(
            {"rules": [{"match": "go", "tools": [{"name": "a"}, {"name": "b"}],
                        "parallel_tools": True}]}
        )  # fmt: skip
        (step,) = agent.rules[0].script()
        assert isinstance(step, CallTools)
        assert [c.name for c in step.calls] == ["a", "b"]

    def test_tool_timeout_goes_on_with_an_error_result(self, emu: Emulator) -> None:
        agent = ScriptedAgent(
            [Rule("go", "Result: {result[error]}", tools=[CallTool("slow", timeout=0.2)])]
        )
        with talk(emu, agent) as client:
            frames = turn(client, "go", 4)
        assert [f["type"] for f in frames] == [
            "text",
            "websocketToolRequest",
            "toolCallResult",
            "text",
        ]
        assert frames[3]["content"]["text"] == "Result: Tool response timed out"
        record = emu.wait_for_conversation_end()
        assert record.tool_calls[0].timed_out

    def test_announced_tool_calls(self, emu: Emulator) -> None:
        agent = ScriptedAgent(
            [Rule("go", "done", tools=[CallTool("f", id="my-id")])], announce_tool_calls=True
        )
        with talk(emu, agent) as client:
            client.chat("go")
            client.recv()
            announce, request = client.recv(), client.recv()
            assert announce["type"] == "toolCall"
            assert announce["content"]["toolName"] == "f"
            assert request["content"]["id"] == "my-id"
            client.tool_response("my-id", None)
            assert [client.recv()["type"] for _ in range(2)] == ["toolCallResult", "text"]

    def test_terminate_while_the_agent_waits_for_a_tool(self, emu: Emulator) -> None:
        with talk(
            emu, ScriptedAgent([Rule("go", "never", tools=[CallTool("f", timeout=30)])])
        ) as client:
            client.chat("go")
            client.recv_type("websocketToolRequest")
            client.terminate()
            frames = client.recv_until_closed()
        assert [f["type"] for f in frames] == ["conversationResult", "event"]
        assert emu.wait_for_conversation_end().ended_by == "client_terminate"


class TestEnd:
    def test_agent_ends_the_conversation(self, emu: Emulator) -> None:
        with talk(emu, ScriptedAgent([Rule("bye", "Goodbye!", end_conversation=True)])) as client:
            client.chat("bye")
            frames = client.recv_until_closed()
            assert client.closed is not None
            assert client.closed.code == 1000
        assert [f["type"] for f in frames] == ["text", "text", "conversationResult", "event"]
        assert frames[2]["result"]["finishReason"] == "agent"
        record = emu.wait_for_conversation_end()
        assert (record.status, record.ended_by) == ("Completed", "agent")
        assert record.transcript == [("user", "bye"), ("assistant", "Goodbye!")]

    def test_agent_can_end_with_a_failure(self, emu: Emulator) -> None:
        rule = Rule("x", steps=[Say("Oops."), End(status="Failed", error_message="LLM down")])
        with talk(emu, ScriptedAgent([rule])) as client:
            client.chat("x")
            frames = client.recv_until_closed()
        assert frames[-2]["result"]["status"] == "Failed"
        assert frames[-2]["result"]["errorMessage"] == "LLM down"
        record = emu.wait_for_conversation_end()
        assert (record.status, record.error_message) == ("Failed", "LLM down")

    def test_web_call_sends_an_offer_and_ends_like_a_voice_call(self, emu: Emulator) -> None:
        with talk(
            emu, ScriptedAgent([Rule("bye", "Bye.", end_conversation=True)]), "webCall"
        ) as client:
            invite = client.recv()
            assert invite["type"] == "sdpInvite"
            assert "RTP/SAVP" in invite["data"]["invite"]
            client.send_message("sdpAnswer", data={"sdpAnswer": "v=0\r\n"})
            client.chat("bye")
            frames = client.recv_until_closed()
            assert client.closed is not None
            assert client.closed.code == 1006  # live voice calls end without a close frame
        assert [f["type"] for f in frames][-2:] == ["conversationResult", "event"]
        record = emu.wait_for_conversation_end()
        assert (record.call_type, record.status, record.close_code) == (
            "webCall",
            "Completed",
            1006,
        )
        assert "sdpAnswer" in [f.type for f in record.client_frames]


class TestCallbackAgent:
    def test_handler_answers_what_no_rule_matches(self, emu: Emulator) -> None:
        seen: List[Tuple[str, int, str]] = []

        def handler(text: str, context: AgentContext) -> Any:
            seen.append((text, context.turn, context.call_type))
            context.state["count"] = context.state.get("count", 0) + 1
            return ["Handled {user}.", Say("partial", partial=True), "Count {state[count]}."]

        agent = ScriptedAgent([Rule("rule", "From a rule.")], handler=handler)
        with talk(emu, agent) as client:
            assert texts(turn(client, "rule", 2))[1][1] == "From a rule."
            assert [t for _, t, _ in texts(turn(client, "free text", 4))] == [
                "free text",
                "Handled free text.",
                "partial",
                "Count 1.",
            ]
        assert seen == [("free text", 2, "chat")]

    def test_generator_handler_receives_tool_results(self, emu: Emulator) -> None:
        def handler(text: str, context: AgentContext) -> Any:
            yield "Checking."
            result = yield CallTool("lookup", {"q": text})
            yield Pause(0.01)
            yield f"Found {result['hits']} hits."
            yield SendRaw({"type": "custom"})
            yield End()

        with talk(emu, ScriptedAgent(handler=handler)) as client:
            client.chat("cats")
            client.recv()  # echo
            assert client.recv()["content"]["text"] == "Checking."
            request = client.recv()
            client.tool_response(request["content"]["id"], {"hits": 3})
            frames = client.recv_until_closed()
        assert [f["type"] for f in frames] == [
            "toolCallResult",
            "text",
            "custom",
            "conversationResult",
            "event",
        ]
        assert frames[1]["content"]["text"] == "Found 3 hits."

    def test_a_handler_that_raises_is_reported_and_the_conversation_goes_on(
        self, emu: Emulator
    ) -> None:
        def handler(text: str, context: AgentContext) -> Any:
            if text == "boom":
                raise ValueError("handler bug")
            return "fine"

        with talk(emu, ScriptedAgent(handler=handler)) as client:
            frames = turn(client, "boom", 2)
            assert frames[1]["data"]["message"] == "Internal agent error"
            assert texts(turn(client, "again", 2))[1][1] == "fine"
        record = emu.wait_for_conversation_end()
        assert record.errors == ["agent raised ValueError: handler bug"]

    def test_agents_by_token(self, emu: Emulator) -> None:
        emu.set_agent("sales", ScriptedAgent(default="sales here"))
        emu.add_token("sales-token", "sales", integration_id="wi-sales")
        with WireClient(emu.ws_url("sales-token")) as client:
            client.initialize()
            client.recv()
            client.chat("hi")
            client.recv()
            assert client.recv()["content"]["text"] == "sales here"
        record = emu.wait_for_conversation_end()
        assert (record.agent_id, record.integration_id) == ("sales", "wi-sales")
        assert record.token == "sales-token"
        assert "sales-token" not in repr(record)

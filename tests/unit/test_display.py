"""HTML rendering for notebooks: every kind of frame, replies, results, transcripts, escaping."""

import ast
import html.parser
import json
from typing import Any, Callable, Dict, List, Tuple

import pytest
from testkit import ROOT, Connect

import blackbox_sync as bb
from blackbox_sync.display import (
    MAX_JSON_CHARS,
    conversation_html,
    message_html,
    register,
    reply_html,
    result_html,
    transcript_html,
)
from blackbox_sync.protocol.codec import LooseStr
from blackbox_sync.protocol.messages import decode
from blackbox_sync.testing import CallTool, Rule, ScriptedAgent

EVIL = '<script>alert("x")</script>&'


class _Checker(html.parser.HTMLParser):
    """Collects tags and text, and fails on tags that must never appear."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: List[str] = []
        self.text: List[str] = []
        self.open: List[str] = []

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Any]]) -> None:
        assert tag not in ("script", "iframe", "img", "style"), f"<{tag}> in the output"
        assert all(not name.startswith("on") for name, _ in attrs), "event handler attribute"
        self.tags.append(tag)
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open, f"</{tag}> closes nothing"
        assert self.open[-1] == tag, f"</{tag}> closes <{self.open[-1]}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(markup: str) -> _Checker:
    """Parse ``markup``: balanced tags, nothing executable; returns the collected text."""
    checker = _Checker()
    checker.feed(markup)
    checker.close()
    assert not checker.open, f"unclosed tags: {checker.open}"
    return checker


def text_of(markup: str) -> str:
    return "".join(parse(markup).text)


def frame(kind: str, **fields: Any) -> bb.Message:
    return decode(json.dumps({"type": kind, "timestamp": "2025-06-09T10:00:04Z", **fields}))


class TestMessages:
    def test_assistant_text(self) -> None:
        markup = message_html(frame("text", content={"source": "assistant", "text": "Hello!"}))
        assert "agent" in text_of(markup)
        assert "Hello!" in text_of(markup)
        assert "10:00:04" in text_of(markup)

    def test_partial_and_filler_are_marked(self) -> None:
        partial = frame("text", content={"source": "assistant", "text": "Let", "type": "potential"})
        assert "(partial)" in text_of(message_html(partial))
        filler = frame("text", content={"source": "assistant", "text": "um"})
        assert "(filler)" in text_of(message_html(filler))

    @pytest.mark.parametrize(
        ("message", "expected"),
        [
            (
                frame(
                    "websocketToolRequest", content={"id": "t1", "toolName": "check", "args": {}}
                ),
                ["tool request", "check", "t1"],
            ),
            (frame("toolCall", content={"toolName": "check", "args": {"a": 1}}), ["tool call"]),
            (frame("toolCallResult", content={"toolName": "check", "result": 5}), ["→", "5"]),
            (frame("event", name="connection", data={"recordId": "r-1"}), ["connection", "r-1"]),
            (frame("conversationResult", result={"status": "Completed"}), ["Completed"]),
            (frame("error", data={"message": "Invalid token"}), ["error", "Invalid token"]),
            (frame("sdpInvite", data={"invite": "v=0\r\no=- 1 2 IN IP4 0.0.0.0"}), ["2 lines"]),
            (frame("mystery", content={"x": 1}), ["unknown", "mystery"]),
            (bb.IncomingChatMessage("hi there"), ["you", "hi there"]),
            (bb.ToolResponse(id="t1", result={"ok": True}), ["tool answer", "t1", "true"]),
            (bb.Initialize(bb.InitRequest("chat")), ["initialize", "chat"]),
            (bb.Terminate(), ["terminate"]),
            (bb.SdpAnswer(sdp="v=0"), ["SDP answer"]),
        ],
    )
    def test_every_kind_of_frame(self, message: bb.Message, expected: List[str]) -> None:
        text = text_of(message_html(message))
        for piece in expected:
            assert piece in text

    def test_raw_frame_is_available_collapsed(self) -> None:
        markup = message_html(frame("event", name="opened", data={"k": "v"}))
        checker = parse(markup)
        assert "details" in checker.tags
        assert '"type": "event"' in "".join(checker.text)


class TestEscaping:
    @pytest.mark.parametrize(
        "render",
        [
            lambda: message_html(frame("text", content={"source": EVIL, "text": EVIL})),
            lambda: message_html(
                frame("websocketToolRequest", content={"id": EVIL, "toolName": EVIL, "args": EVIL})
            ),
            lambda: message_html(frame("event", name=EVIL, data={EVIL: EVIL})),
            lambda: message_html(frame("error", data={"message": EVIL})),
            lambda: message_html(frame(EVIL, content=EVIL)),
            lambda: message_html(bb.IncomingChatMessage(EVIL)),
            lambda: result_html(
                decode_result({"status": EVIL, "errorMessage": EVIL, "summary": EVIL})
            ),
            lambda: transcript_html([frame("text", content={"source": "user", "text": EVIL})]),
        ],
    )
    def test_nothing_from_the_wire_becomes_markup(self, render: Callable[[], str]) -> None:
        markup = render()
        assert "<script" not in markup
        assert "&lt;script&gt;" in markup
        assert EVIL in text_of(markup)  # escaped, so it reads back as the original text

    def test_quotes_cannot_break_out_of_attributes(self) -> None:
        markup = message_html(frame("text", content={"source": '" onmouseover="x', "text": "t"}))
        parse(markup)  # fails on any on* attribute
        assert "&quot;" in markup

    def test_long_payloads_are_cut(self) -> None:
        big = {"blob": "x" * (MAX_JSON_CHARS * 2)}
        markup = message_html(frame("event", name="opened", data=big))
        assert len(markup) < MAX_JSON_CHARS * 2
        assert "…" in markup


def decode_result(result: Dict[str, Any]) -> bb.ConversationResult:
    message = frame("conversationResult", result=result)
    assert isinstance(message, bb.ConversationResult)
    return message


class TestResult:
    def test_status_error_summary_and_payload(self) -> None:
        result = decode_result(
            {"status": "Failed", "errorMessage": "agent crashed", "summary": "short"}
        )
        text = text_of(result_html(result))
        for piece in ("Failed", "agent crashed", "short", "payload", '"errorMessage"'):
            assert piece in text

    def test_an_empty_result(self) -> None:
        result = bb.ConversationResult()
        assert "(none)" in text_of(result_html(result))


def make_reply(**overrides: Any) -> bb.Reply:
    messages = [
        frame("text", content={"source": "user", "text": "where is ORD-1?"}),
        frame("text", content={"source": "assistant", "text": "um"}),
        frame("websocketToolRequest", content={"id": "t1", "toolName": "check", "args": {}}),
        frame("text", content={"source": "assistant", "text": "It shipped."}),
    ]
    fields: Dict[str, Any] = {
        "text": "It shipped.",
        "texts": ["It shipped."],
        "messages": messages,
        "tool_requests": [messages[2]],
        "reason": bb.TurnEnd.QUIET,
        "latency": 0.123,
        "duration": 1.5,
    }
    fields.update(overrides)
    return bb.Reply(**fields)


class TestReply:
    def test_text_reason_timing_tools_and_frames(self) -> None:
        text = text_of(reply_html(make_reply()))
        for piece in ("It shipped.", "quiet", "123 ms", "1.50 s", "tools: check", "4 frames"):
            assert piece in text
        assert "(filler)" in text  # in the frame table, not in the reply text

    def test_no_text(self) -> None:
        reply = make_reply(text="", texts=[], messages=[], tool_requests=[], latency=None)
        text = text_of(reply_html(reply))
        assert "(no text)" in text
        assert "first text" not in text

    def test_a_turn_that_ended_the_conversation_shows_the_result(self) -> None:
        reply = make_reply(
            reason=bb.TurnEnd.CONVERSATION_RESULT, result=decode_result({"status": "Completed"})
        )
        assert "Conversation result" in text_of(reply_html(reply))

    def test_each_chunk_of_a_split_reply_is_its_own_line(self) -> None:
        reply = make_reply(text="One. Two.", texts=["One.", "Two."])
        markup = reply_html(reply)
        assert markup.count('<div style="margin:2px 0">') == 2


class TestTranscript:
    def test_echoed_user_messages_are_not_shown_twice(self) -> None:
        history = [
            bb.IncomingChatMessage("hello"),
            frame("text", content={"source": "user", "text": "hello"}),
            frame("text", content={"source": "assistant", "text": "Hi!"}),
        ]
        text = text_of(transcript_html(history))
        assert text.count("hello") == 1
        assert "agent" in text

    def test_sent_messages_stand_in_when_there_is_no_echo(self) -> None:
        text = text_of(transcript_html([bb.IncomingChatMessage("hello")]))
        assert "user" in text
        assert "hello" in text

    def test_tool_requests_show_this_clients_answer(self) -> None:
        history = [
            frame("websocketToolRequest", content={"id": "t9", "toolName": "check", "args": {}}),
            bb.ToolResponse(id="t9", result={"status": "shipped"}),
            frame("event", name="connection", data={}),
            frame("event", name="closed", data={}),
        ]
        text = text_of(transcript_html(history))
        assert "check" in text
        assert '"status": "shipped"' in text
        assert "connection" not in text  # lifecycle noise is left out
        assert "closed" in text

    def test_empty(self) -> None:
        assert "(empty transcript)" in text_of(transcript_html([]))

    def test_custom_fillers(self) -> None:
        history = [frame("text", content={"source": "assistant", "text": "Hmm"})]
        assert "(filler)" not in text_of(transcript_html(history))
        assert "(filler)" in text_of(transcript_html(history, fillers=["hmm"]))


def test_a_real_conversation_renders(connect: Connect) -> None:
    """Frames as the library really records them, from a conversation with the emulator."""
    agent = ScriptedAgent(
        [
            Rule(
                "order",
                fillers=["um"],
                tools=[CallTool("checkOrderStatus", {"orderNumber": "ORD-7"})],
                reply=["Order ORD-7 is {result[status]}."],
                end_conversation=True,
            )
        ]
    )
    conv = connect(agent)
    conv.tool("checkOrderStatus", lambda orderNumber: {"status": "shipped <b>now</b>"})
    reply = conv.ask("my order", timeout=5)
    assert reply.ended
    reply_text = text_of(reply_html(reply))
    assert "Order ORD-7 is shipped <b>now</b>." in reply_text  # escaped: shown, not applied
    transcript = text_of(transcript_html(conv.history))
    assert "my order" in transcript
    assert "checkOrderStatus" in transcript
    assert "shipped <b>now</b>" in transcript
    assert conv.result is not None
    assert "Completed" in text_of(result_html(conv.result))
    whole = text_of(conversation_html(conv))
    assert "Conversation" in whole
    assert "my order" in whole
    assert "token=***" in whole  # the URL with its token masked


class TestRegistration:
    """The protocol classes know nothing of HTML; display.register hands IPython the renderers."""

    def test_ipython_renders_each_kind_through_the_registered_functions(self) -> None:
        formatters = pytest.importorskip("IPython.core.formatters")
        shown = formatters.DisplayFormatter()
        assert register(shown.formatters["text/html"])
        result = bb.ConversationResult(status=LooseStr("Completed"))
        reply = make_reply()
        transcript = bb.Transcript([bb.TextMessage(source=LooseStr("user"), text=EVIL)])
        text = bb.TextMessage(source=LooseStr("assistant"), text=EVIL)
        for value, rendered in [
            (text, message_html(text)),
            (result, result_html(result)),
            (reply, reply_html(reply)),
            (transcript, transcript_html(transcript)),
        ]:
            data, _ = shown.format(value)
            assert data["text/html"] == rendered

    def test_outside_a_running_shell_nothing_is_registered(self) -> None:
        assert register() is False

    def test_the_protocol_layer_does_not_import_presentation(self) -> None:
        for path in (ROOT / "blackbox_sync" / "protocol").glob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = [
                node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            ]
            names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            assert not [n for n in names if "display" in n or "IPython" in n], path.name
        for cls in (bb.Message, bb.ConversationResult, bb.Reply, bb.Transcript):
            assert all("_repr_html_" not in vars(k) for k in cls.__mro__), cls

"""Layer 1: frames decode into typed messages and encode the way the live service expects."""

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import blackbox_sync as bb
from blackbox_sync.display import message_html, result_html, transcript_html
from blackbox_sync.protocol.codec import LooseStr
from blackbox_sync.protocol.messages import decode, decode_object, encode, to_wire

UTC = timezone.utc


def frame(**fields: object) -> str:
    return json.dumps(fields)


class TestDecode:
    def test_text_from_the_assistant(self) -> None:
        msg = decode(
            frame(
                type="text",
                timestamp="2025-01-20T10:00:05Z",
                content={"source": "assistant", "text": "Hi!"},
            )
        )
        assert isinstance(msg, bb.TextMessage)
        assert (msg.source, msg.text, msg.partial, msg.from_assistant) == (
            "assistant",
            "Hi!",
            False,
            True,
        )
        assert msg.timestamp == datetime(2025, 1, 20, 10, 0, 5, tzinfo=UTC)

    def test_potential_text_is_partial(self) -> None:
        msg = decode(
            frame(type="text", content={"source": "assistant", "text": "Hel", "type": "potential"})
        )
        assert isinstance(msg, bb.TextMessage)
        assert msg.partial

    def test_tool_request_fields_are_snake_case(self) -> None:
        msg = decode(
            frame(
                type="websocketToolRequest",
                channelId=None,
                content={
                    "id": "t1",
                    "toolName": "checkOrderStatus",
                    "args": {"orderNumber": "ORD-1"},
                },
            )
        )
        assert msg == bb.ToolRequest(
            id="t1", tool_name="checkOrderStatus", args={"orderNumber": "ORD-1"}
        )

    @pytest.mark.parametrize("key", ["invite", "sdpOffer"])
    def test_sdp_invite_reads_both_documented_keys(self, key: str) -> None:
        msg = decode(frame(type="sdpInvite", data={key: "v=0\r\n"}))
        assert isinstance(msg, bb.SdpInvite)
        assert msg.sdp == "v=0\r\n"

    @pytest.mark.parametrize(
        ("data", "expected"), [({"recordId": "r-1"}, "r-1"), ({"jobId": 42}, "42"), ({}, None)]
    )
    def test_connection_event_id(self, data: Dict[str, Any], expected: object) -> None:
        msg = decode(frame(type="event", name="connection", data=data))
        assert isinstance(msg, bb.Event)
        assert msg.record_id == expected

    @pytest.mark.parametrize(
        "payload",
        [
            {"result": {"status": "Completed", "errorMessage": None}},
            {"content": {"status": "Completed", "summary": "all good"}},
        ],
    )
    def test_conversation_result_shapes(self, payload: Dict[str, Any]) -> None:
        msg = decode(frame(type="conversationResult", **payload))
        assert isinstance(msg, bb.ConversationResult)
        assert msg.status == "Completed"
        assert msg.result == next(iter(payload.values()))

    def test_conversation_result_never_fails_on_odd_types(self) -> None:
        msg = decode(frame(type="conversationResult", result={"status": 3, "errorMessage": 7}))
        assert isinstance(msg, bb.ConversationResult)
        assert (msg.status, msg.error_message) == ("3", "7")

    def test_error_frame(self) -> None:
        msg = decode(frame(type="error", data={"message": "Invalid token"}))
        assert isinstance(msg, bb.ErrorMessage)
        assert msg.message == "Invalid token"

    def test_unknown_type_keeps_the_raw_dict(self) -> None:
        msg = decode(frame(type="brandNew", x=[1, 2]))
        assert isinstance(msg, bb.UnknownMessage)
        assert msg.type == "brandNew"
        assert msg.raw == {"type": "brandNew", "x": [1, 2]}

    def test_unknown_fields_are_tolerated_and_kept(self) -> None:
        msg = decode(
            frame(type="text", extra=1, content={"source": "user", "text": "a", "lang": "en"})
        )
        assert isinstance(msg, bb.TextMessage)
        assert msg.raw["extra"] == 1
        assert msg.raw["content"]["lang"] == "en"

    def test_bad_envelope_does_not_drop_the_frame(self) -> None:
        msg = decode(
            frame(
                type="text",
                timestamp="yesterday",
                channelId=5,
                content={"source": "user", "text": "a"},
            )
        )
        assert msg.timestamp is None
        assert msg.channel_id is None

    @pytest.mark.parametrize(
        ("payload", "words"),
        [
            (b'{"type":"text"}', "binary"),
            ("not json", "not JSON"),
            ("[1,2]", "list"),
            ('{"content":{}}', "type"),
            ('{"type":5}', "type"),
            ('{"type":"text","content":{"source":"assistant","text":5}}', "text"),
            ('{"type":"websocketToolRequest","content":{"toolName":"x"}}', "websocketToolRequest"),
            ('{"type":"text","content":"hello"}', "text"),
        ],
    )
    def test_malformed_frames_raise_protocol_error_with_payload(
        self, payload: object, words: str
    ) -> None:
        with pytest.raises(bb.ProtocolError, match=words) as info:
            decode(payload)  # type: ignore[arg-type]
        assert info.value.payload == payload


class TestEncode:
    def test_every_client_frame_has_timestamp_and_null_channel(self) -> None:
        for message in [
            bb.Initialize(bb.InitRequest()),
            bb.IncomingChatMessage("hi"),
            bb.ToolResponse(id="t1", result=None),
            bb.SdpAnswer(sdp="v=0"),
            bb.Terminate(),
        ]:
            wire = json.loads(encode(message))
            assert wire["type"] == message.TYPE
            assert "channelId" in wire
            assert wire["channelId"] is None
            assert wire["timestamp"].endswith("Z")

    def test_shapes_match_the_protocol(self) -> None:
        assert to_wire(
            bb.IncomingChatMessage("hi", timestamp=datetime(2025, 1, 20, 10, tzinfo=UTC))
        ) == {
            "type": "incomingChatMessage",
            "timestamp": "2025-01-20T10:00:00.000Z",
            "channelId": None,
            "content": "hi",
        }
        assert to_wire(bb.ToolResponse(id="t1", result={"ok": True}))["content"] == {
            "id": "t1",
            "result": {"ok": True},
        }
        assert to_wire(bb.SdpAnswer(sdp="v=0"))["data"] == {"sdpAnswer": "v=0"}
        init = to_wire(bb.Initialize(bb.InitRequest("chat", {"userId": "u-1"})))
        assert init["request"] == {"callType": "chat", "additionalData": {"userId": "u-1"}}

    def test_a_null_tool_result_is_still_sent(self) -> None:
        assert to_wire(bb.ToolResponse(id="t1", result=None))["content"] == {
            "id": "t1",
            "result": None,
        }

    def test_timestamps_are_utc(self) -> None:
        local = datetime(2025, 1, 20, 13, 0, tzinfo=timezone(timedelta(hours=3)))
        assert to_wire(bb.Terminate(timestamp=local))["timestamp"] == "2025-01-20T10:00:00.000Z"

    def test_unknown_message_cannot_be_sent(self) -> None:
        with pytest.raises(TypeError):
            encode(bb.UnknownMessage(type="x"))


# --- property tests ------------------------------------------------------------------------------

texts = st.text(max_size=40)
json_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | texts
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(texts, json_values, max_size=4)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

messages = st.one_of(
    st.builds(bb.IncomingChatMessage, texts, timestamp=moments),
    st.builds(bb.ToolResponse, id=texts, result=json_values, timestamp=moments),
    st.builds(bb.SdpAnswer, sdp=texts, timestamp=moments),
    st.builds(bb.Terminate, timestamp=moments),
    st.builds(
        bb.Initialize,
        st.builds(
            bb.InitRequest,
            st.sampled_from(["chat", "webCall", "onPhone"]),
            st.none() | json_objects,
            st.none() | texts,
        ),
        timestamp=moments,
    ),
    st.builds(
        bb.TextMessage,
        source=st.sampled_from(["assistant", "user"]),
        text=texts,
        kind=st.none() | st.just("potential"),
        timestamp=moments,
    ),
    st.builds(bb.ToolRequest, id=texts, tool_name=texts, args=json_objects, timestamp=moments),
    st.builds(
        bb.Event,
        name=st.sampled_from(["connection", "opened", "closed", "failedOpen"]),
        data=json_objects,
        timestamp=moments,
    ),
    st.builds(bb.SdpInvite, sdp=texts, timestamp=moments),
    st.builds(bb.ErrorMessage, message=texts, timestamp=moments),
)


@given(messages)
def test_encode_then_decode_gives_the_same_message(message: bb.Message) -> None:
    decoded = decode(encode(message))
    if isinstance(message, bb.ErrorMessage):
        assert cast(bb.ErrorMessage, decoded).message == message.message
    else:
        assert decoded == message


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=50), json_values.map(json.dumps)))
def test_junk_frames_never_escape_as_anything_but_protocol_error(payload: object) -> None:
    try:
        message = decode(payload)  # type: ignore[arg-type]
    except bb.ProtocolError as exc:
        kept = exc.payload
    else:
        assert isinstance(message, bb.Message)
        return
    assert kept == payload


@settings(max_examples=300)
@given(
    st.sampled_from(
        [
            "text",
            "event",
            "websocketToolRequest",
            "sdpInvite",
            "conversationResult",
            "error",
            "toolCall",
            "toolCallResult",
        ]
    ),
    json_objects,
    json_values,
    json_values,
)
def test_known_types_with_junk_payloads(
    kind: str, extra: Dict[str, Any], content: object, data: object
) -> None:
    obj = {**extra, "type": kind, "content": content, "data": data}
    try:
        message = decode_object(obj)
    except bb.ProtocolError:
        return
    assert message.raw == obj


def test_notebook_rendering_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    for html in [
        message_html(bb.TextMessage(source=LooseStr("assistant"), text=evil)),
        result_html(bb.ConversationResult(status=LooseStr(evil))),
        transcript_html(bb.Transcript([bb.TextMessage(source=LooseStr("user"), text=evil)])),
    ]:
        assert "&lt;script&gt;" in html
        assert evil not in html


@pytest.mark.parametrize(
    "result",
    [
        {"status": {"code": "done"}, "errorMessage": ["a", "list"]},
        {"status": [1, 2], "errorMessage": {"nested": {"x": 1}}},
    ],
)
def test_a_conversation_result_of_odd_shape_comes_through_raw(result: Dict[str, Any]) -> None:
    message = decode(json.dumps({"type": "conversationResult", "result": result}))
    assert isinstance(message, bb.ConversationResult)
    assert (message.status, message.error_message) == (None, None)
    assert message.raw["result"] == result
    assert message.result == result


def test_ascii_only_encoding_carries_a_lone_surrogate() -> None:
    message = bb.ToolResponse(id="id-\ud800", result={"ok": "\U0001f600"})
    text = encode(message, ascii_only=True)
    text.encode("ascii")
    assert json.loads(text)["content"]["id"] == "id-\ud800"
    assert json.loads(text)["content"]["result"] == {"ok": "\U0001f600"}

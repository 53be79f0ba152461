"""The emulator refuses what the live service refuses, with the documented texts and close codes.

Every test talks to a real emulator over loopback with a frame-level websocket-client.
"""

import base64
import json
import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterator

import pytest

from blackbox_sync.testing import Emulator, EmulatorOptions, ScriptedAgent
from blackbox_sync.testing.ws.wire import WireClient


@pytest.fixture
def emu() -> Iterator[Emulator]:
    options = EmulatorOptions(max_message_size=1024, init_timeout=0.3)
    with Emulator(ScriptedAgent(default="ok"), options=options) as emulator:
        yield emulator


def refusal(client: WireClient) -> str:
    """The error text of the frame the server sends before closing with 1008."""
    frames = client.recv_until_closed()
    assert [f["type"] for f in frames] == ["error"]
    assert client.closed is not None
    assert client.closed.code == 1008
    message: str = frames[0]["data"]["message"]
    return message


def started(emu: Emulator, **options: Any) -> WireClient:
    client = WireClient(emu.ws_url(), **options)
    client.initialize()
    assert client.recv_type("event")["name"] == "connection"
    return client


def base_ws(emu: Emulator) -> str:
    return "ws" + emu.base_url[len("http") :]


class TestHandshake:
    def test_missing_token(self, emu: Emulator) -> None:
        with WireClient(base_ws(emu) + "/api/v1/ws/webCall") as client:
            assert refusal(client) == "Missing token"

    def test_empty_token_is_missing(self, emu: Emulator) -> None:
        with WireClient(base_ws(emu) + "/api/v1/ws/webCall?token=") as client:
            assert refusal(client) == "Missing token"

    def test_unknown_token(self, emu: Emulator) -> None:
        with WireClient(emu.ws_url("no-such-token")) as client:
            assert refusal(client) == "Invalid token"

    def test_expired_token(self, emu: Emulator) -> None:
        emu.add_token("old", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
        with WireClient(emu.ws_url("old")) as client:
            assert refusal(client) == "Invalid token"

    def test_removed_token(self, emu: Emulator) -> None:
        emu.add_token("gone")
        assert emu.remove_token("gone")
        assert not emu.remove_token("gone")
        with WireClient(emu.ws_url("gone")) as client:
            assert refusal(client) == "Invalid token"

    def test_disabled_integration(self, emu: Emulator) -> None:
        emu.add_token("off", enabled=False)
        with WireClient(emu.ws_url("off")) as client:
            assert refusal(client) == "Web integration is not enabled"

    def test_disabling_a_whole_integration(self, emu: Emulator) -> None:
        emu.add_token("t1", integration_id="wi-1")
        emu.add_token("t2", integration_id="wi-1")
        assert emu.update_integration("wi-1", enabled=False) == 2
        with WireClient(emu.ws_url("t2")) as client:
            assert refusal(client) == "Web integration is not enabled"

    @pytest.mark.parametrize(
        ("origin", "allowed"),
        [
            ("https://shop.example.com", True),
            ("https://SHOP.example.com/", True),
            ("https://eu.cdn.example.org", True),
            ("https://example.org", False),  # a wildcard covers subdomains, not the root
            ("http://shop.example.com", False),
            ("https://evil.com", False),
            (None, False),  # strict: no Origin header at all
        ],
    )
    def test_origin_check(self, emu: Emulator, origin: str, allowed: bool) -> None:
        emu.add_token("web", origins=["https://shop.example.com", "https://*.example.org"])
        with WireClient(emu.ws_url("web"), origin=origin) as client:
            if allowed:
                client.initialize()
                assert client.recv()["name"] == "connection"
            else:
                assert refusal(client) == "Origin not allowed"

    def test_no_origin_check_without_origins(self, emu: Emulator) -> None:
        with started(emu, origin="https://anything.test"):
            pass

    def test_dev_endpoint_needs_a_valid_api_key(self, emu: Emulator) -> None:
        with WireClient(base_ws(emu) + "/api/v1/ws/dev") as client:
            assert refusal(client) == "Missing token"
        with WireClient(emu.ws_url("wrong-key", dev=True)) as client:
            assert refusal(client) == "Invalid token"
        with WireClient(emu.ws_url(emu.token, dev=True)) as client:  # a token is not a key
            assert refusal(client) == "Invalid token"

    def test_plain_http_get_on_the_socket_path_is_a_bad_request(self, emu: Emulator) -> None:
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(emu.base_url + "/api/v1/ws/webCall?token=x", timeout=5)
        assert info.value.code == 400
        info.value.close()

    def test_refused_connections_leave_no_conversation(self, emu: Emulator) -> None:
        with WireClient(emu.ws_url("bad")) as client:
            refusal(client)
        assert emu.conversations == []


class TestInitialize:
    def test_first_frame_must_be_initialize(self, emu: Emulator) -> None:
        with WireClient(emu.ws_url()) as client:
            client.chat("hello?")
            assert refusal(client) == "Init message not received"
        (frame,) = emu.frames
        assert frame["type"] == "incomingChatMessage"
        assert frame.record_id is None

    def test_non_json_first_frame(self, emu: Emulator) -> None:
        with WireClient(emu.ws_url()) as client:
            client.send("not json")
            assert refusal(client) == "Init message not received"

    def test_silence_after_connect(self, emu: Emulator) -> None:
        with WireClient(emu.ws_url()) as client:
            assert refusal(client) == "Init message not received"  # after init_timeout (0.3 s)

    def test_second_initialize(self, emu: Emulator) -> None:
        with started(emu) as client:
            client.initialize()
            assert refusal(client) == "Multiple init messages received"
        record = emu.wait_for_conversation_end()
        assert (record.status, record.ended_by, record.close_code) == (
            "Failed",
            "protocol_error",
            1008,
        )

    def test_connection_event_carries_the_record_id(self, emu: Emulator) -> None:
        with WireClient(emu.ws_url()) as client:
            client.initialize(additionalData={"userId": "u-1"})
            event = client.recv()
        assert event["type"] == "event"
        assert event["name"] == "connection"
        assert event["channelId"] is None
        (record,) = emu.conversations
        assert event["data"] == {"recordId": record.record_id}
        assert record.additional_data == {"userId": "u-1"}

    def test_opened_event_and_job_id_when_configured(self, emu: Emulator) -> None:
        emu.options.send_opened_event = True
        emu.options.connection_id_keys = ("recordId", "jobId")
        with WireClient(emu.ws_url()) as client:
            client.initialize()
            connection, opened = client.recv(), client.recv()
        assert connection["data"]["jobId"] == connection["data"]["recordId"]
        assert opened["name"] == "opened"

    @pytest.mark.parametrize(
        "frame",
        [
            {"type": "initialize", "channelId": None},  # no request
            {"type": "initialize", "channelId": None, "request": {"callType": "video"}},
            {"type": "initialize", "channelId": None, "request": {"callType": 5}},
            {"type": "initialize", "channelId": None, "request": "chat"},
            {"type": "initialize", "channelId": 1, "request": {"callType": "chat"}},
        ],
    )
    def test_malformed_initialize_closes_1007(self, emu: Emulator, frame: Dict[str, Any]) -> None:
        with WireClient(emu.ws_url()) as client:
            client.send(frame)
            assert client.recv_until_closed() == []
            assert client.closed is not None
            assert client.closed.code == 1007

    def test_dev_endpoint_takes_dev_request(self, emu: Emulator) -> None:
        emu.set_agent("agent-7", ScriptedAgent(default="dev agent here"))
        with WireClient(emu.ws_url(dev=True)) as client:
            client.send_message(
                "initialize", devRequest={"agentId": "agent-7", "additionalData": {"a": 1}}
            )
            assert client.recv()["name"] == "connection"
            client.chat("hi")
            client.recv_type("text")  # the echo
            assert client.recv()["content"]["text"] == "dev agent here"
        record = emu.wait_for_conversation_end()
        assert (record.dev, record.agent_id, record.token) == (True, "agent-7", None)
        assert record.additional_data == {"a": 1}

    def test_dev_request_of_the_wrong_shape_closes_1007(self, emu: Emulator) -> None:
        with WireClient(emu.ws_url(dev=True)) as client:
            client.send_message("initialize", devRequest={"callType": ["chat"]})
            assert client.recv_until_closed() == []
            assert client.closed is not None
            assert client.closed.code == 1007

    def test_dev_endpoint_drops_an_initialize_with_request(self, emu: Emulator) -> None:
        with WireClient(emu.ws_url(dev=True)) as client:
            client.initialize()
            assert client.recv_until_closed() == []
            assert client.closed is not None
            assert client.closed.code == 1006


class TestPayloads:
    def test_chat_content_object_closes_1007(self, emu: Emulator) -> None:
        with started(emu) as client:
            client.send_message("incomingChatMessage", content={"text": "hi"})
            assert client.recv_until_closed() == []
            assert client.closed is not None
            assert client.closed.code == 1007
        record = emu.wait_for_conversation_end()
        assert (record.status, record.ended_by, record.close_code) == (
            "Failed",
            "protocol_error",
            1007,
        )

    def test_chat_without_channel_id_is_fine(self, emu: Emulator) -> None:
        with started(emu) as client:
            client.send({"type": "incomingChatMessage", "content": "hi"})
            assert client.recv()["content"] == {"source": "user", "text": "hi"}

    def test_tool_response_without_channel_id_closes_1007(self, emu: Emulator) -> None:
        with started(emu) as client:
            client.send({"type": "websocketToolResponse", "content": {"id": "t1", "result": 1}})
            assert client.recv_until_closed() == []
            assert client.closed is not None
            assert client.closed.code == 1007

    @pytest.mark.parametrize(
        "frame",
        [
            {"type": "websocketToolResponse", "channelId": None, "content": {"result": 1}},
            {"type": "websocketToolResponse", "channelId": None, "content": {"id": "t1"}},
            {"type": "websocketToolResponse", "channelId": None, "content": "t1"},
            {"type": "sdpAnswer", "data": {"sdpAnswer": "v=0"}},  # no channelId
            {"type": "sdpAnswer", "channelId": None, "data": {}},
            {"type": "incomingChatMessage", "channelId": 5, "content": "hi"},
        ],
    )
    def test_other_misshapen_frames_close_1007(self, emu: Emulator, frame: Dict[str, Any]) -> None:
        with started(emu) as client:
            client.send(frame)
            assert client.recv_until_closed() == []
            assert client.closed is not None
            assert client.closed.code == 1007

    def test_too_large_message(self, emu: Emulator) -> None:
        with started(emu) as client:
            client.chat("x" * 1024)  # the frame is larger than the 1 KiB limit
            assert [f["type"] for f in client.recv_until_closed()] == ["error"]
            assert client.received[-1]["data"]["message"] == "Too large message"
            assert client.closed is not None
            assert client.closed.code == 1009

    def test_limit_counts_utf8_bytes(self, emu: Emulator) -> None:
        with started(emu) as client:
            client.chat("é" * 500)  # 500 characters, over 1000 bytes
            assert client.recv()["data"]["message"] == "Too large message"

    def test_a_frame_at_the_limit_passes(self, emu: Emulator) -> None:
        with started(emu) as client:
            frame = json.dumps({"type": "incomingChatMessage", "channelId": None, "content": ""})
            client.send(frame[:-2] + "x" * (1024 - len(frame)) + '"}')
            assert client.recv()["content"]["source"] == "user"

    @pytest.mark.parametrize(
        "payload", ["not json", "[1, 2]", '{"content": "no type"}', b"\x00\x01"]
    )
    def test_unreadable_frames_get_an_error_and_the_socket_stays(
        self, emu: Emulator, payload: Any
    ) -> None:
        with started(emu) as client:
            client.send(payload)
            error = client.recv()
            assert error["type"] == "error"
            assert error["data"]["message"] == "Invalid message format"
            client.chat("still there?")
            assert client.recv()["content"]["text"] == "still there?"

    @pytest.mark.parametrize("kind", ["mystery", "text"])
    def test_unknown_types_get_an_error_and_the_socket_stays(
        self, emu: Emulator, kind: str
    ) -> None:
        with started(emu) as client:
            client.send_message(kind, content="?")
            assert client.recv()["data"]["message"] == f"Unknown message type: {kind}"
            client.chat("still there?")
            assert client.recv()["content"]["text"] == "still there?"

    def test_tool_response_for_an_unknown_id_is_noted(self, emu: Emulator) -> None:
        with started(emu) as client:
            client.tool_response("never-asked", {"ok": True})
            client.chat("hi")
            client.recv_type("text")
        record = emu.wait_for_conversation_end()
        assert record.errors == ["websocketToolResponse for unknown id 'never-asked'"]


class TestEnding:
    def test_terminate(self, emu: Emulator) -> None:
        with started(emu) as client:
            client.chat("hi")
            client.recv_type("text")
            client.terminate()
            frames = client.recv_until_closed()
            assert client.closed is not None
            assert client.closed.code == 1000
        assert [f["type"] for f in frames][-2:] == ["conversationResult", "event"]
        result, closed = frames[-2:]
        assert result["result"]["status"] == "Completed"
        assert result["result"]["transcription"][0] == {"speaker": "user", "text": "hi"}
        assert closed["name"] == "closed"
        assert set(closed["data"]) >= {"startConnectionTimeISO", "endConnectionTimeISO"}
        record = emu.wait_for_conversation_end()
        assert (record.status, record.ended_by, record.close_code) == (
            "Completed",
            "client_terminate",
            1000,
        )

    def test_client_disconnect(self, emu: Emulator) -> None:
        with started(emu):
            pass  # closes with 1000 without terminate
        record = emu.wait_for_conversation_end()
        assert (record.status, record.ended_by, record.close_code) == (
            "Completed",
            "client_disconnect",
            1000,
        )

    def test_frames_after_terminate_are_not_answered(self, emu: Emulator) -> None:
        with started(emu) as client:
            client.terminate()
            client.chat("too late")  # recorded if it beats the close frame, answered never
            frames = client.recv_until_closed()
        assert [f["type"] for f in frames] == ["conversationResult", "event"]
        assert emu.wait_for_conversation_end().transcript == []


class RawClient:
    """A client on a bare socket, so it can break the framing rules websocket-client keeps."""

    def __init__(self, emu: Emulator) -> None:
        host, port = emu.base_url.split("//")[1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /api/v1/ws/webCall?token={emu.token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        assert chunk, "the emulator hung up without a close frame"
        return chunk

    def send_text(self, data: Dict[str, Any], masked: bool) -> None:
        payload = json.dumps(data).encode()
        assert len(payload) < 126
        key = os.urandom(4) if masked else b""
        body = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if masked else payload
        self.sock.sendall(bytes([0x81, (0x80 if masked else 0) | len(payload)]) + key + body)

    def _need(self, size: int) -> None:
        while len(self.buffer) < size:
            self.buffer += self._recv()

    def frame(self) -> "tuple[int, bytes]":
        """The next server frame (unmasked, under 64 KiB): opcode and payload."""
        self._need(2)
        size, start = self.buffer[1] & 0x7F, 2
        if size == 126:
            self._need(4)
            size, start = int.from_bytes(self.buffer[2:4], "big"), 4
        self._need(start + size)
        opcode, payload = self.buffer[0] & 0x0F, self.buffer[start : start + size]
        self.buffer = self.buffer[start + size :]
        return opcode, payload

    def close_code(self) -> int:
        """Skip text frames up to the close frame; its code."""
        while True:
            opcode, payload = self.frame()
            if opcode == 8:
                return int.from_bytes(payload[:2], "big")

    def close(self) -> None:
        self.sock.close()


INIT = {"type": "initialize", "timestamp": "2026-01-01T00:00:00Z", "channelId": None}


class TestMasking:
    """RFC 6455 §5.1: a server closes the connection (1002) on an unmasked client frame."""

    def test_an_unmasked_first_frame_is_closed_with_1002(self, emu: Emulator) -> None:
        client = RawClient(emu)
        try:
            client.send_text({**INIT, "request": {"callType": "chat"}}, masked=False)
            assert client.close_code() == 1002
        finally:
            client.close()
        assert emu.conversations == []  # the initialize never counted

    def test_an_unmasked_frame_mid_conversation_is_closed_with_1002(self, emu: Emulator) -> None:
        client = RawClient(emu)
        try:
            client.send_text({**INIT, "request": {"callType": "chat"}}, masked=True)
            assert b'"connection"' in client.frame()[1]
            message = {**INIT, "type": "incomingChatMessage", "content": "hi"}
            client.send_text(message, masked=False)
            assert client.close_code() == 1002
        finally:
            client.close()
        record = emu.wait_for_conversation_end(timeout=5)
        assert record.ended_by == "protocol_error"
        assert "hi" not in [text for _, text in record.transcript]  # never delivered

"""The WebSocket transport against a peer that drips, redirects, fragments and echoes secrets.

Each test's peer is a raw-socket server of its own (ws_peer.py). Bounds are the operation's
timeout plus a generous margin: they catch a wait that is not bounded at all, not a slow machine.
"""

import errno
import json
import logging
import queue
import socket
import struct
import threading
import time
from typing import Any, Callable, List, Type, TypeVar

import pytest
from ws_peer import (
    OP_CLOSE,
    OP_CONT,
    OP_TEXT,
    HostileServer,
    PeerConnection,
    Script,
    client_has_sent,
    frame,
    server_frame,
)

import blackbox_sync as bb
from blackbox_sync.urls import is_loopback, redirect_target

TOKEN = "hostile-secret-token-0123456789"
# What a bound may exceed the operation's own timeout by: the close after it (at most about a
# second) and a loaded machine.
MARGIN = 2.0
E = TypeVar("E", bound=BaseException)

Start = Callable[[Script], HostileServer]


def conversation(server: HostileServer, **options: Any) -> bb.Conversation:
    options.setdefault("quiet_period", 0.05)
    return bb.Conversation(TOKEN, url=server.ws_url(query=""), allow_insecure=True, **options)


def connect_fails(conv: bb.Conversation, timeout: float, error: Type[E]) -> E:
    """``conv.connect(timeout)`` raises ``error`` within the bound; the exception."""
    started = time.monotonic()
    with pytest.raises(error) as caught:
        conv.connect(timeout=timeout)
    elapsed = time.monotonic() - started
    assert elapsed < timeout + MARGIN, f"connect(timeout={timeout}) took {elapsed:.2f} s"
    assert conv.closed
    return caught.value


@pytest.fixture
def off_host_connects(monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """A tripwire: every TCP connect to a non-loopback address fails at once, and is recorded.

    A redirect test names an outside host; a bug must never reach it.
    """
    attempts: List[Any] = []
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        if not is_loopback(str(host)):
            attempts.append(address)
            raise OSError(errno.ENETUNREACH, "test tripwire: only loopback is allowed")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


# --- item 3: connect(timeout=T) bounds the whole opening -------------------------------------


def test_a_dripped_101_handshake_times_out_within_the_connect_timeout(hostile_ws: Start) -> None:
    def script(peer: PeerConnection) -> None:
        peer.read_request()
        peer.drip(peer.accept_response(), 0.2)  # ~130 bytes: 26 s if every byte reset the clock

    server = hostile_ws(script)
    error = connect_fails(conversation(server), 1.0, bb.OperationTimeout)
    assert isinstance(error, TimeoutError)
    assert TOKEN not in str(error)


def test_a_dripped_tls_handshake_is_bounded_too(hostile_ws: Start) -> None:
    def script(peer: PeerConnection) -> None:
        # A TLS record header that promises 16 KiB of ServerHello, then a byte every 0.2 s.
        peer.send_raw(b"\x16\x03\x03\x40\x00")
        peer.drip(b"\x02" * 16384, 0.2)

    server = hostile_ws(script)
    conv = bb.Conversation(TOKEN, url=server.ws_url(query="").replace("ws://", "wss://"))
    connect_fails(conv, 1.0, bb.OperationTimeout)


def test_a_dripped_403_body_is_bounded_too(hostile_ws: Start) -> None:
    body = b"Forbidden: " + b"x" * 400

    def script(peer: PeerConnection) -> None:
        peer.read_request()
        peer.send_raw(f"HTTP/1.1 403 Forbidden\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        peer.drip(body, 0.2)

    server = hostile_ws(script)
    connect_fails(conversation(server), 1.0, bb.OperationTimeout)


def test_a_refusal_that_echoes_the_token_names_the_status_and_masks_it(hostile_ws: Start) -> None:
    body = f"Invalid token {TOKEN} (GET /api/v1/ws/webCall?token={TOKEN})".encode()

    def script(peer: PeerConnection) -> None:
        peer.read_request()
        head = f"HTTP/1.1 403 Forbidden {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n"
        peer.send_raw(head.encode() + body)

    server = hostile_ws(script)
    error = connect_fails(conversation(server), 2.0, bb.HandshakeRefused)
    assert isinstance(error, bb.HandshakeRefused)
    assert error.status == 403
    assert "HTTP 403 Forbidden" in str(error)
    assert "Invalid token ***" in str(error)
    assert TOKEN not in str(error)


def test_an_upgrade_without_the_connection_event_is_bounded_by_the_same_timeout(
    hostile_ws: Start,
) -> None:
    initialized = threading.Event()

    def script(peer: PeerConnection) -> None:
        # Most of the timeout goes to a slow upgrade: the wait for the event gets only the rest.
        peer.read_request()
        peer.drip(peer.accept_response(), 0.002)
        peer.recv_until_type("initialize")
        initialized.set()
        peer.hang()

    server = hostile_ws(script)
    connect_fails(conversation(server), 1.0, bb.OperationTimeout)
    assert initialized.is_set()


def test_a_reconnect_attempt_against_a_dripping_peer_is_bounded(hostile_ws: Start) -> None:
    connect_timeout = 1.0
    gave_up = threading.Event()
    dropped_at: List[float] = []

    def script(peer: PeerConnection) -> None:
        if len(server.connections) == 1:
            peer.open_conversation()
            peer.recv_until_type("incomingChatMessage")
            dropped_at.append(time.monotonic())
            return  # the socket is cut: the conversation is lost
        peer.read_request()
        peer.drip(peer.accept_response(), 0.2)

    server = hostile_ws(script)
    policy = bb.ReconnectPolicy(max_attempts=1, initial_delay=0.01, jitter=0)
    conv = conversation(server, reconnect=policy, connect_timeout=connect_timeout)
    conv.on_error(lambda e: gave_up.set() if "gave up" in str(e) else None)
    try:
        conv.connect(timeout=2)
        conv.send("hi")
        assert gave_up.wait(connect_timeout + MARGIN + 2), "the reconnect attempt never ended"
        elapsed = time.monotonic() - dropped_at[0]
        assert elapsed < connect_timeout + MARGIN, f"the attempt took {elapsed:.2f} s"
        assert any(isinstance(e, bb.OperationTimeout) for e in conv.errors), conv.errors
        assert len(server.connections) == 2
    finally:
        conv.close()


# --- item 4: handshake redirects -------------------------------------------------------------


def redirect(location: str) -> bytes:
    return f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()


def test_a_redirect_to_another_host_is_refused_before_anything_is_sent_there(
    hostile_ws: Start, off_host_connects: List[Any]
) -> None:
    def script(peer: PeerConnection) -> None:
        peer.read_request()
        peer.send_raw(redirect(f"ws://10.255.255.1:9/api/v1/ws/webCall?token={TOKEN}"))

    server = hostile_ws(script)
    conv = conversation(server, origin="https://shop.example", headers={"X-Custom": "c"})
    error = connect_fails(conv, 2.0, bb.RedirectRefused)
    assert isinstance(error, bb.ConnectionClosedError)
    assert "ws://10.255.255.1:9/api/v1/ws/webCall?token=***" in str(error)
    assert error.location == "ws://10.255.255.1:9/api/v1/ws/webCall?token=***"
    assert TOKEN not in str(error)
    assert off_host_connects == []  # the token, Origin and X-Custom went nowhere else
    assert len(server.connections) == 1


def test_a_redirect_to_the_same_host_is_followed_with_its_headers(hostile_ws: Start) -> None:
    requests: List[PeerConnection] = []

    def script(peer: PeerConnection) -> None:
        requests.append(peer)
        if len(requests) == 1:
            peer.read_request()
            peer.send_raw(redirect(f"/api/v1/ws/webCall?token={TOKEN}&hop=2"))
            return
        peer.open_conversation("rec-after-redirect")
        peer.wait_client_close()

    server = hostile_ws(script)
    conv = conversation(server, origin="https://shop.example", headers={"X-Custom": "c"})
    try:
        conv.connect(timeout=2)
        assert conv.record_id == "rec-after-redirect"
    finally:
        conv.close()
    second = requests[1]
    assert "hop=2" in second.request_line
    assert (second.headers["origin"], second.headers["x-custom"]) == ("https://shop.example", "c")


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("ws://evil.example/x", "another host"),
        ("wss://127.0.0.2/x", "another host"),
        ("ws://127.0.0.1:1/x", "a weaker scheme"),
        ("ftp://127.0.0.1/x", "not a WebSocket URL"),
        ("ws://[::1/x", "not a WebSocket URL"),
    ],
)
def test_redirect_targets_that_are_not_followed(location: str, why: str) -> None:
    with pytest.raises(bb.RedirectRefused, match=why):
        redirect_target(f"wss://127.0.0.1:8443/ws?token={TOKEN}", location, TOKEN)


def test_a_redirect_to_a_stronger_scheme_on_the_same_host_is_allowed() -> None:
    target = redirect_target("ws://127.0.0.1:80/ws", "https://127.0.0.1:443/ws?token=t")
    assert target == "wss://127.0.0.1:443/ws?token=t"


# --- item 5: fragmented messages ---------------------------------------------------------------


def fragments(payload: bytes, size: int) -> bytes:
    """``payload`` as one text message in fragments of ``size`` bytes."""
    parts = [payload[i : i + size] for i in range(0, len(payload), size)]
    last = len(parts) - 1
    return b"".join(
        frame(OP_TEXT if i == 0 else OP_CONT, part, fin=i == last) for i, part in enumerate(parts)
    )


def test_an_8_mib_message_in_32_byte_fragments_is_reassembled_in_linear_time(
    hostile_ws: Start,
) -> None:
    text = "é" * (4 * 1024 * 1024 - 64)  # two bytes each: a little under 8 MiB of UTF-8
    payload = json.dumps(
        server_frame("text", content={"source": "assistant", "text": text}), ensure_ascii=False
    ).encode()
    wire = fragments(payload, 32)
    received: List[Any] = []
    done = threading.Event()

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        peer.recv_until_type("incomingChatMessage")
        peer.send_raw(wire)
        peer.wait_client_close()

    server = hostile_ws(script)
    conv = conversation(server)

    @conv.on("text")
    def on_text(message: bb.TextMessage) -> None:
        received.append((message.text, time.thread_time()))
        done.set()

    try:
        conv.connect(timeout=2)
        started = time.monotonic()
        conv.send("go")
        assert done.wait(5 + MARGIN), "the fragmented message never arrived"
        elapsed = time.monotonic() - started
    finally:
        conv.close()
    got, reader_cpu = received[0]
    assert got == text
    assert len(payload) <= 8 * 1024 * 1024
    assert len(payload) // 32 > 250_000
    assert elapsed < 5, f"reassembly took {elapsed:.2f} s (reader CPU {reader_cpu:.2f} s)"
    print(f"\n8 MiB in 32-byte fragments: {elapsed:.2f} s wall, reader CPU {reader_cpu:.2f} s")


def test_an_oversized_fragmented_message_is_refused_as_it_crosses_the_limit(
    hostile_ws: Start,
) -> None:
    limit = 64 * 1024
    sent = [0]
    client_code: queue.Queue[Any] = queue.Queue()
    closed = threading.Event()

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        chunk = b"x" * 1024
        opcode = OP_TEXT
        # Stream until the client answers (its close frame), never more than 4x the limit, at a
        # pace that gives a loaded client 64 fragments' time (over a second) to answer.
        while not client_has_sent(peer, 0.02) and sent[0] < 4 * limit:
            peer.send_frame(opcode, chunk, fin=False)
            sent[0] += len(chunk)
            opcode = OP_CONT
        client_code.put(peer.wait_client_close())

    server = hostile_ws(script)
    conv = conversation(server, max_message_size=limit)
    conv.on_close(lambda code, reason: closed.set())
    try:
        conv.connect(timeout=2)
        assert closed.wait(5), "the oversized message was never refused"
    finally:
        conv.close()
    assert conv.close_code == 1009
    refusals = [e for e in conv.errors if isinstance(e, bb.ConnectionClosedError)]
    assert refusals, conv.errors
    assert refusals[0].code == 1009
    assert client_code.get(timeout=5) == 1009
    assert sent[0] < 2 * limit, f"the peer got to send {sent[0]} bytes"


@pytest.mark.parametrize(
    "wire",
    [
        frame(OP_CONT, b'{"type":"x"}'),  # a continuation with no message begun
        frame(OP_TEXT, b'{"type":', fin=False) + frame(OP_TEXT, b'"x"}'),  # a new message inside
    ],
    ids=["orphan-continuation", "new-message-inside-a-fragmented-one"],
)
def test_fragments_out_of_order_are_a_protocol_error(hostile_ws: Start, wire: bytes) -> None:
    client_code: queue.Queue[Any] = queue.Queue()

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        peer.send_raw(wire)
        client_code.put(peer.wait_client_close())

    closed = threading.Event()
    server = hostile_ws(script)
    conv = conversation(server)
    conv.on_close(lambda code, reason: closed.set())
    try:
        conv.connect(timeout=2)
        assert closed.wait(5)
    finally:
        conv.close()
    assert conv.close_code == 1002
    assert client_code.get(timeout=5) == 1002


# --- item 1: a close reason that echoes the token ----------------------------------------------


def test_a_close_reason_echoing_the_token_never_shows_it(
    hostile_ws: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="blackbox_sync")

    def script(peer: PeerConnection) -> None:
        peer.open_conversation()
        peer.recv_until_type("incomingChatMessage")
        peer.send_raw(frame(OP_CLOSE, struct.pack("!H", 4001) + f"bad {TOKEN}".encode()))
        peer.wait_client_close()

    server = hostile_ws(script)
    conv = conversation(server)
    try:
        conv.connect(timeout=2)
        with pytest.raises(bb.ConnectionClosedError) as caught:
            conv.ask("hi", timeout=2)
    finally:
        conv.close()
    error = caught.value
    assert (error.code, error.reason) == (4001, "bad ***")
    assert TOKEN not in str(error)
    assert conv.close_reason == "bad ***"
    assert all(TOKEN not in str(e) for e in conv.errors)
    assert "bad ***" in caplog.text
    assert TOKEN not in caplog.text

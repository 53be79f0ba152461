"""A hand-framed WebSocket server for the latency benchmarks, run in a separate process.

It speaks just enough of the protocol to answer the way the service does, with no library in
the way, so the client is what a benchmark measures and every client loop meets the same server:

* ``initialize`` -> ``event connection``;
* ``incomingChatMessage`` -> the echo of the user's text, then one assistant ``text``;
* in ``tool`` mode, after ``initialize`` it sends ``count`` tool requests one at a time, timing
  each from its write to the arrival of the answer, and reports the timings to the parent.
"""

import base64
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import socket
import time
from typing import Any, Dict, List, Optional, Tuple

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
STAMP = "2025-06-09T10:00:00.000Z"


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked server frame."""
    size = len(payload)
    if size < 126:
        header = bytes([0x80 | opcode, size])
    elif size < 65536:
        header = bytes([0x80 | opcode, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 127]) + size.to_bytes(8, "big")
    return header + payload


def server_frame(body: Dict[str, Any]) -> bytes:
    """A JSON server frame with the envelope the service sends."""
    return frame(json.dumps({"timestamp": STAMP, "channelId": None, **body}).encode())


CONNECTION = server_frame({"type": "event", "name": "connection", "data": {"recordId": "bench"}})
REPLY = server_frame(
    {"type": "text", "content": {"source": "assistant", "text": "Your order ships tomorrow."}}
)


class Peer:
    """One accepted client: buffered reads of its masked frames."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise ConnectionError("client went away")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def handshake(self) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = self.conn.recv(4096)
            if not chunk:
                raise ConnectionError("no handshake")
            request += chunk
        head, _, self.buffer = request.partition(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )

    def read_frame(self) -> Tuple[int, bytes]:
        """The next client frame's opcode and unmasked payload (pings are answered here)."""
        while True:
            first, second = self._read(2)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(self._read(2), "big")
            elif size == 127:
                size = int.from_bytes(self._read(8), "big")
            mask = self._read(4) if second & 0x80 else b"\0\0\0\0"
            data = self._read(size)
            key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
            payload = (int.from_bytes(data, "big") ^ key).to_bytes(size, "big") if size else b""
            opcode = first & 0x0F
            if opcode == 0x9:
                self.conn.sendall(frame(payload, 0xA))
                continue
            return opcode, payload


def _serve_chat(peer: Peer) -> None:
    while True:
        opcode, payload = peer.read_frame()
        if opcode == 0x8:
            peer.conn.sendall(frame(payload[:2] or b"\x03\xe8", 0x8))
            return
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "initialize":
            peer.conn.sendall(CONNECTION)
        elif kind == "incomingChatMessage":
            echo = server_frame(
                {"type": "text", "content": {"source": "user", "text": message["content"]}}
            )
            peer.conn.sendall(echo + REPLY)
        elif kind == "terminate":
            peer.conn.sendall(server_frame({"type": "conversationResult", "result": {}}))


def _serve_tools(peer: Peer, count: int, report: "multiprocessing.connection.Connection") -> None:
    opcode, payload = peer.read_frame()  # initialize
    peer.conn.sendall(CONNECTION)
    timings: List[float] = []
    for i in range(count):
        request = server_frame(
            {
                "type": "websocketToolRequest",
                "content": {"id": f"t{i}", "toolName": "checkOrderStatus", "args": {"n": i}},
            }
        )
        start = time.perf_counter()
        peer.conn.sendall(request)
        while True:
            opcode, payload = peer.read_frame()
            if opcode == 0x1 and b"websocketToolResponse" in payload:
                break
        timings.append(time.perf_counter() - start)
    report.send(timings)
    try:
        while True:  # until the client closes
            opcode, payload = peer.read_frame()
            if opcode == 0x8:
                peer.conn.sendall(frame(payload[:2] or b"\x03\xe8", 0x8))
                return
    except ConnectionError:
        return


def serve(
    listener: socket.socket,
    mode: str,
    connections: int,
    count: int = 0,
    report: "Optional[multiprocessing.connection.Connection]" = None,
) -> None:
    """Serve ``connections`` clients one after another in ``mode`` ``"chat"`` or ``"tool"``."""
    for _ in range(connections):
        conn, _ = listener.accept()
        with conn:
            peer = Peer(conn)
            try:
                peer.handshake()
                if mode == "tool":
                    assert report is not None
                    _serve_tools(peer, count, report)
                else:
                    _serve_chat(peer)
            except (ConnectionError, OSError):
                pass


class Server:
    """The server process: ``with Server("chat", connections=4) as url: ...``."""

    def __init__(self, mode: str, connections: int, count: int = 0) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/api/v1/ws/webCall"
        self.receiver, sender = multiprocessing.Pipe(duplex=False)
        self.process = multiprocessing.Process(
            target=serve, args=(self.listener, mode, connections, count, sender), daemon=True
        )

    def __enter__(self) -> "Server":
        self.process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()
        self.listener.close()

    def timings(self, timeout: float = 120) -> List[float]:
        """The round trips the server timed (tool mode), in seconds."""
        if not self.receiver.poll(timeout):
            raise TimeoutError("the server sent no timings")
        timings: List[float] = self.receiver.recv()
        return timings


def percentiles(values: List[float]) -> Dict[str, float]:
    """p50, p90 and p99 of ``values`` (seconds) in milliseconds."""
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99)}

"""A hostile WebSocket server with framing of its own, on a raw loopback socket.

The emulator is ours and polite; this peer is neither. It speaks RFC 6455 by hand, so a test can
make it do what no server library allows: drip the handshake a byte at a time, redirect, send
unmasked or fragmented frames of any shape, echo secrets back, stop reading, or never answer.

A test gives :class:`HostileServer` a *script*: a function that gets one :class:`PeerConnection`
per accepted client and does whatever the test needs with it. ``server.stop()`` (or leaving the
``with`` block) ends every script: waits inside a script go through :meth:`PeerConnection.pause`
and the socket calls fail once the peer stops, so no thread outlives the test.
"""

import base64
import hashlib
import json
import select
import socket
import struct
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

Script = Callable[["PeerConnection"], None]


class PeerStopped(Exception):
    """The server is stopping: the script should end (raised from the peer's own waits)."""


class PeerConnection:
    """One accepted client socket, and the raw moves a script can make on it."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self.sock = sock
        self._stopping = stopping
        self._buffer = b""
        self.request_line = ""
        self.headers: Dict[str, str] = {}
        self.received: List[Tuple[int, bytes]] = []
        """Every frame the client sent, unmasked: (opcode, payload)."""
        self.masked: List[bool] = []

    # --- the HTTP upgrade ------------------------------------------------------------------------

    def read_request(self) -> str:
        """Read the client's HTTP request head; returns the request target (path and query)."""
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                self.headers[name.strip().lower()] = value.strip()
        return self.request_line.split(" ")[1] if " " in self.request_line else ""

    def accept_response(self, extra: str = "") -> bytes:
        """The bytes of a valid 101 answer to the request read by :meth:`read_request`."""
        key = self.headers.get("sec-websocket-key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
        return (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
        ).encode()

    def accept(self) -> None:
        """Read the request and complete the upgrade at once."""
        self.read_request()
        self.send_raw(self.accept_response())

    def open_conversation(self, record_id: str = "rec-hostile") -> Dict[str, Any]:
        """Upgrade, read the client's ``initialize`` and answer with the ``connection`` event."""
        self.accept()
        init = self.recv_json()
        self.send_json(event("connection", {"recordId": record_id}))
        return init

    # --- frames ----------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def drip(self, data: bytes, interval: float) -> None:
        """Send ``data`` one byte at a time, ``interval`` seconds apart (until the peer stops)."""
        for i in range(len(data)):
            self.send_raw(data[i : i + 1])
            self.pause(interval)

    def send_frame(
        self,
        opcode: int,
        payload: Union[bytes, str],
        *,
        fin: bool = True,
        mask: bool = False,
        rsv: int = 0,
    ) -> None:
        self.send_raw(frame(opcode, payload, fin=fin, mask=mask, rsv=rsv))

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode("utf-8", "surrogatepass"))

    def send_json(self, value: Any) -> None:
        self.send_text(json.dumps(value))

    def send_close(self, code: Optional[int] = 1000, reason: str = "") -> None:
        body = b"" if code is None else struct.pack("!H", code) + reason.encode("utf-8")
        self.send_frame(OP_CLOSE, body)

    def recv_frame(self) -> Tuple[int, bytes]:
        """The next whole frame from the client, unmasked; pings are answered on the way."""
        while True:
            first, second = self._read_exact(2)
            opcode, masked, length = first & 0x0F, bool(second & 0x80), second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read_exact(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read_exact(8))
            key = self._read_exact(4) if masked else b""
            payload = self._read_exact(length)
            if masked:
                payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            self.received.append((opcode, payload))
            self.masked.append(masked)
            if opcode == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            return opcode, payload

    def recv_json(self) -> Dict[str, Any]:
        """The next text frame from the client, decoded (control frames other than close are
        skipped; a close raises :class:`PeerStopped`, since the client has gone)."""
        while True:
            opcode, payload = self.recv_frame()
            if opcode == OP_CLOSE:
                raise PeerStopped("the client closed")
            if opcode == OP_TEXT:
                decoded: Dict[str, Any] = json.loads(payload)
                return decoded

    def recv_until_type(self, wire_type: str) -> Dict[str, Any]:
        """Read client frames until one of ``wire_type`` arrives."""
        while True:
            message = self.recv_json()
            if message.get("type") == wire_type:
                return message

    def wait_client_close(self) -> Optional[int]:
        """Read until the client's close frame (answered) or EOF; its code, if it sent one."""
        try:
            while True:
                opcode, payload = self.recv_frame()
                if opcode == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    self.send_frame(OP_CLOSE, payload[:2])
                    return code
        except (OSError, PeerStopped):
            return None

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` (the peer's own pacing), or raise :class:`PeerStopped` on stop."""
        if self._stopping.wait(seconds):
            raise PeerStopped("the server is stopping")

    def hang(self) -> None:
        """Never answer again (until the server stops)."""
        self._stopping.wait()
        raise PeerStopped("the server is stopping")

    # --- reading ---------------------------------------------------------------------------------

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise PeerStopped("the client closed the socket")
        self._buffer += chunk

    def _read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            self._fill()
        head, self._buffer = self._buffer.split(marker, 1)
        return head


class HostileServer:
    """A loopback TCP server that runs ``script`` for every client, each in its own thread."""

    def __init__(self, script: Script, host: str = "127.0.0.1") -> None:
        self._script = script
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(16)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self.connections: List[PeerConnection] = []
        self.errors: List[BaseException] = []
        """Exceptions a script raised other than the peer's own stop (a broken test peer)."""
        self.accepted = threading.Event()
        self._threads: List[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="hostile-accept")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, path: str = "/api/v1/ws/webCall", query: str = "token=hostile") -> str:
        return f"ws://{self.host}:{self.port}{path}" + (f"?{query}" if query else "")

    def start(self) -> "HostileServer":
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """End every script and join every thread this server started."""
        self._stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for connection in list(self.connections):
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)
        for connection in self.connections:
            connection.sock.close()

    def __enter__(self) -> "HostileServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            connection = PeerConnection(sock, self._stopping)
            self.connections.append(connection)
            thread = threading.Thread(
                target=self._run, args=(connection,), name="hostile-peer", daemon=True
            )
            self._threads.append(thread)
            thread.start()
            self.accepted.set()

    def _run(self, connection: PeerConnection) -> None:
        try:
            self._script(connection)
        except (PeerStopped, OSError):
            pass
        except BaseException as exc:  # a bug in the test's own script: make it visible
            self.errors.append(exc)
        finally:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def frame(
    opcode: int, payload: Union[bytes, str], *, fin: bool = True, mask: bool = False, rsv: int = 0
) -> bytes:
    """One WebSocket frame, as a server (unmasked) or a client (``mask=True``) would send it."""
    data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    length = len(data)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + data
    key = b"\x01\x02\x03\x04"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def event(name: str, data: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A server ``event`` frame."""
    return {"type": "event", "timestamp": _NOW, "channelId": None, "name": name, "data": data or {}}


def server_frame(wire_type: str, **fields: Any) -> Dict[str, Any]:
    """Any server frame: ``server_frame("text", content={...})``."""
    return {"type": wire_type, "timestamp": _NOW, "channelId": None, **fields}


_NOW = "2026-12-03T10:00:00Z"


def client_has_sent(peer: PeerConnection, timeout: float) -> bool:
    """True if the client has sent something the peer has not read yet (waits up to
    ``timeout``): lets a peer that streams stop as soon as the client answers."""
    return bool(peer._buffer) or bool(select.select([peer.sock], [], [], timeout)[0])

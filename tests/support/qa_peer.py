"""A hostile BlackBox peer on a raw loopback socket: it echoes credentials back in server text.

One port serves both sides, like the service: a plain HTTP request mints a token (and the peer
remembers the API key it came with); an HTTP upgrade becomes a WebSocket whose frames the peer
writes byte by byte. What it does on the socket is chosen by the ``mode`` in the initialize
frame's ``additionalData``:

* ``error``: an ``error`` frame ``Invalid token <token> (GET ...?token=<token>)``, then a close
  whose reason names the token;
* ``close``: only the close, its reason naming the token;
* ``talk``: a normal chat whose reply, ``conversationResult`` and close all quote the token.

Imported by the hostile test modules as ``qa_peer`` (pytest puts this folder on the path).
"""

import base64
import hashlib
import json
import socket
import struct
import threading
import uuid
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MINTED = "minted-" + "9f3c" * 6
"""The token the peer mints: long and unguessable, like a real one."""


class Peer:
    """Serve until :meth:`close`; ``base_url`` points a client at it."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.api_key = ""
        """The bearer credential of the last REST request (echoed in later server text)."""
        self.upgrades = 0
        self._lock = threading.Lock()
        self._sockets: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="qa-peer", daemon=True)
        self._accepting.start()

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening, cut every connection, join every thread."""
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._server.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._accepting.join(5)
        for thread in threads:
            thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self._sockets.append(sock)
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            head, body = _read_request(sock)
            request_line, headers = _parse_head(head)
            if headers.get("upgrade", "").lower() == "websocket":
                with self._lock:
                    self.upgrades += 1
                self._websocket(sock, request_line, headers)
            else:
                self._rest(sock, request_line, headers, body)
        except OSError:
            pass
        finally:
            sock.close()

    # --- REST: mint and revoke --------------------------------------------------------------

    def _rest(
        self, sock: socket.socket, request_line: str, headers: Dict[str, str], body: bytes
    ) -> None:
        auth = headers.get("authorization", "")
        self.api_key = auth.split(" ", 1)[1] if " " in auth else auth
        method = request_line.split(" ", 1)[0]
        if method == "POST":
            name = json.loads(body or b"{}").get("name", "qa")
            answer = {
                "tokenId": uuid.uuid4().hex,
                "token": MINTED,
                "name": name,
                "createdAt": "2026-01-01T00:00:00Z",
                "expiresAt": None,
            }
            _http(sock, 201, json.dumps(answer).encode())
        else:
            _http(sock, 204, b"")

    # --- WebSocket -----------------------------------------------------------------------------

    def _websocket(self, sock: socket.socket, request_line: str, headers: Dict[str, str]) -> None:
        key = headers["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        target = request_line.split(" ")[1]
        query = parse_qs(urlsplit(target).query)
        token = (query.get("token") or query.get("authorization") or [""])[0]
        init = json.loads(read_frame(sock)[1])
        data = (init.get("request") or init.get("devRequest") or {}).get("additionalData") or {}
        mode = data.get("mode", "error")
        leak = f"{token} key {self.api_key}".strip()
        if mode == "error":
            message = f"Invalid token {leak} (GET {target})"
            send_json(sock, "error", data={"message": message})
            send_close(sock, 1008, f"bad token {token}")
        elif mode == "close":
            send_close(sock, 4001, f"token {token} revoked")
        else:
            self._talk(sock, token, leak)
        _drain(sock)

    def _talk(self, sock: socket.socket, token: str, leak: str) -> None:
        send_json(sock, "event", name="connection", data={"recordId": "rec-1"})
        while True:
            opcode, payload = read_frame(sock)
            if opcode == 8:
                return
            frame = json.loads(payload)
            if frame["type"] == "incomingChatMessage":
                send_json(sock, "text", content={"source": "assistant", "text": f"hi {leak}"})
            elif frame["type"] == "terminate":
                result = {"status": "failed", "errorMessage": f"token {leak} expired"}
                send_json(sock, "conversationResult", result=result)
                send_close(sock, 1000, f"bye {token}")
                return


def _read_request(sock: socket.socket) -> Tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("peer went away")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(_parse_head(head)[1].get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head, body


def _parse_head(head: bytes) -> Tuple[str, Dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _http(sock: socket.socket, status: int, body: bytes) -> None:
    sock.sendall(
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("peer went away")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> Tuple[int, bytes]:
    """One client frame: its opcode and unmasked payload."""
    first, second = _recv_exact(sock, 2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", _recv_exact(sock, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", _recv_exact(sock, 8))[0]
    mask = _recv_exact(sock, 4) if second & 0x80 else b"\0\0\0\0"
    payload = _recv_exact(sock, length)
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def frame(opcode: int, payload: bytes, mask: Optional[bytes] = None) -> bytes:
    """One final frame; masked when ``mask`` (4 bytes) is given, as a client must send."""
    size = len(payload)
    bit = 0x80 if mask is not None else 0
    if size < 126:
        head = bytes([0x80 | opcode, bit | size])
    elif size < 1 << 16:
        head = bytes([0x80 | opcode, bit | 126]) + struct.pack("!H", size)
    else:
        head = bytes([0x80 | opcode, bit | 127]) + struct.pack("!Q", size)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def send_json(sock: socket.socket, type_: str, **fields: Any) -> None:
    """An unmasked server text frame with the envelope around ``fields``."""
    body = {"type": type_, "timestamp": "2026-01-01T00:00:00Z", "channelId": None, **fields}
    sock.sendall(frame(1, json.dumps(body).encode()))


def send_close(sock: socket.socket, code: int, reason: str) -> None:
    """A server close frame (the reason is cut to the 123 bytes a close frame allows)."""
    sock.sendall(frame(8, struct.pack("!H", code) + reason.encode()[:123]))


def _drain(sock: socket.socket) -> None:
    """Read until the client hangs up, so it sees every frame before the TCP close."""
    sock.settimeout(5)
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass

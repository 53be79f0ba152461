"""A bare, blocking WebSocket client that speaks frames, not conversations.

For checking a BlackBox server (the emulator, or the live service in contract tests) frame by
frame: it sends exactly what it is given and reports exactly what arrives, close codes included.
Built on websocket-client, with no threads of its own.
"""

import json
from typing import Any, Callable, Dict, List, Optional, Union

import websocket

from blackbox_sync.protocol.codec import format_timestamp, utcnow

CLOSE_ABNORMAL = 1006
_OPCODE_TEXT = websocket.ABNF.OPCODE_TEXT
_OPCODE_BINARY = websocket.ABNF.OPCODE_BINARY
_OPCODE_CLOSE = websocket.ABNF.OPCODE_CLOSE


class WireClosed(Exception):
    """The server closed the socket (``code`` 1006 when the TCP connection just dropped)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class WireClient:
    """One WebSocket connection. ``origin=None`` sends no ``Origin`` header at all.

    :meth:`recv` returns each frame's JSON (``{"__text__": ...}`` when it is not JSON), and raises
    :class:`WireClosed` once the socket is closed; every received frame is kept in ``received``.
    """

    def __init__(self, url: str, *, origin: Optional[str] = None, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.received: List[Any] = []
        self.closed: Optional[WireClosed] = None
        self._ws = websocket.create_connection(
            url, timeout=timeout, origin=origin, suppress_origin=origin is None
        )

    def __enter__(self) -> "WireClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket (politely when it is still open)."""
        try:
            self._ws.close(timeout=1)
        except (OSError, websocket.WebSocketException):
            pass
        # close() skips the socket's own close when the server closed first: do it here.
        shutdown: Callable[[], None] = self._ws.shutdown  # untyped in websocket-client
        shutdown()

    # --- sending -----------------------------------------------------------------------------

    def send(self, frame: Union[Dict[str, Any], str, bytes]) -> None:
        """Send a dict as JSON, text as is, bytes as a binary frame."""
        if isinstance(frame, bytes):
            self._ws.send_binary(frame)
        else:
            self._ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def send_message(self, kind: str, **fields: Any) -> None:
        """Send a well-formed client frame: ``type``, a UTC ``timestamp``, ``channelId: null``."""
        frame = {"type": kind, "timestamp": format_timestamp(utcnow()), "channelId": None}
        frame.update(fields)
        self.send(frame)

    def initialize(self, call_type: str = "chat", **request: Any) -> None:
        """Send ``initialize`` with ``request: {callType, ...}``."""
        self.send_message("initialize", request={"callType": call_type, **request})

    def chat(self, text: str) -> None:
        """Send an ``incomingChatMessage``."""
        self.send_message("incomingChatMessage", content=text)

    def tool_response(self, call_id: str, result: Any) -> None:
        """Answer a ``websocketToolRequest``."""
        self.send_message("websocketToolResponse", content={"id": call_id, "result": result})

    def terminate(self) -> None:
        """Send ``terminate``."""
        self.send_message("terminate")

    # --- receiving ---------------------------------------------------------------------------

    def recv(self, timeout: Optional[float] = None) -> Any:
        """The next frame; :class:`WireClosed` once closed, ``TimeoutError`` after ``timeout``."""
        if self.closed is not None:
            raise self.closed
        self._ws.settimeout(self.timeout if timeout is None else timeout)
        try:
            opcode, payload = self._ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            raise TimeoutError("no frame in time") from None
        except (OSError, websocket.WebSocketConnectionClosedException):
            self.closed = WireClosed(CLOSE_ABNORMAL)
            raise self.closed from None
        if opcode == _OPCODE_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.closed = WireClosed(code, payload[2:].decode("utf-8", "replace"))
            raise self.closed
        if opcode not in (_OPCODE_TEXT, _OPCODE_BINARY):  # ping/pong: not frames of the protocol
            return self.recv(timeout)
        frame = _decode(payload)
        self.received.append(frame)
        return frame

    def recv_type(self, kind: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Skip frames until one of type ``kind`` arrives and return it."""
        while True:
            frame = self.recv(timeout)
            if isinstance(frame, dict) and frame.get("type") == kind:
                return frame

    def recv_until_closed(self, timeout: Optional[float] = None) -> List[Any]:
        """Every frame until the socket closes; the close is in :attr:`closed`."""
        frames: List[Any] = []
        while True:
            try:
                frames.append(self.recv(timeout))
            except WireClosed:
                return frames


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload.decode("utf-8"))
    except ValueError:
        return {"__text__": payload.decode("utf-8", "replace")}

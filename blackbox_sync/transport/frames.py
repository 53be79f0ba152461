"""Our own WebSocket framing (RFC 6455 §5): reading the server's frames, checking each header
before its payload is read, putting fragmented messages together, and the close frame's body.

Pure bytes in, frames out: no socket here (the reader is handed a ``read(n)`` callable), and no
websocket-client either, so its frame reader's costs (several small reads and objects per frame,
quadratic reassembly) are not ours.
"""

import struct
from typing import Callable, List, Optional, Tuple, Union

from blackbox_sync.errors import BlackBoxError

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
"""Reported locally for a close frame without a code; never sent (RFC 6455 §7.4.1)."""
CLOSE_ABNORMAL = 1006
"""Reported locally for a connection lost without a close frame; never sent (RFC 6455 §7.4.1)."""
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

OPCODE_CONT = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
KNOWN_OPCODES = frozenset(
    {OPCODE_CONT, OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG}
)
_FIRST_CONTROL = 0x8
# Close codes that are reported locally and must not be sent (RFC 6455 §7.4.1).
_LOCAL_ONLY_CODES = frozenset({CLOSE_NO_STATUS, CLOSE_ABNORMAL, 1015})
# Close codes a peer may send (RFC 6455 §7.4), besides the 3000-4999 of applications.
_VALID_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)
# A close reason may take 123 bytes (RFC 6455 §5.5).
_CLOSE_REASON_BYTES = 123
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
# Socket reads: at least this much at a time, and at most this much for one large frame.
READ_SIZE = 64 * 1024
_MAX_READ = 1024 * 1024

Payload = Union[bytes, bytearray]
Frame = Tuple[bool, int, Payload]
"""One frame as read: (fin, opcode, payload), the payload unmasked."""


class FrameError(BlackBoxError):
    """A reason of the reader's own to end the connection (a bad frame, an oversized message,
    a dead peer).

    ``code`` is reported locally; ``wire_code`` (default: the same) goes in the close frame.
    """

    def __init__(self, code: int, reason: str, wire_code: Optional[int] = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.wire_code = code if wire_code is None else wire_code


class FrameReader:
    """Reads the server's frames from the socket's bytes (RFC 6455 §5.2).

    One large read serves a burst of frames; a frame is parsed once all of it is buffered (about
    5 µs a frame less than websocket-client's reader: 1.4 s for a message in a quarter of a
    million small fragments). A read that raises (a timeout) leaves the buffer as it was, so the
    next call resumes the same frame. ``check(first_byte, opcode, size)`` may refuse a frame
    from its header, before its payload is read.
    """

    __slots__ = ("_buffer", "_check", "_position", "_read")

    def __init__(
        self, read: Callable[[int], bytes], check: Callable[[int, int, int], None]
    ) -> None:
        self._read = read
        self._check = check
        self._buffer = bytearray()
        self._position = 0

    def next_frame(self) -> Frame:
        """The next frame: (fin, opcode, payload), the payload unmasked."""
        if self._position >= READ_SIZE:  # drop what was parsed, now and then (amortised)
            del self._buffer[: self._position]
            self._position = 0
        buffer, start = self._buffer, self._position
        self._fill(start + 2)
        first, second = buffer[start], buffer[start + 1]
        size = second & 0x7F
        head = start + 2
        if size == 126:
            self._fill(head + 2)
            size = _U16.unpack_from(buffer, head)[0]
            head += 2
        elif size == 127:
            self._fill(head + 8)
            size = _U64.unpack_from(buffer, head)[0]
            head += 8
        opcode = first & 0x0F
        self._check(first, opcode, size)
        masked = second & 0x80
        body = head + 4 if masked else head
        end = body + size
        self._fill(end)
        payload: Payload = buffer[body:end]
        if masked:  # servers must not mask (§5.1); tolerated, as websocket-client does
            payload = unmask(bytes(buffer[head:body]), payload)
        self._position = end
        return bool(first & 0x80), opcode, payload

    def _fill(self, end: int) -> None:
        """Read until the buffer holds ``end`` bytes."""
        buffer = self._buffer
        while len(buffer) < end:
            buffer += self._read(min(max(READ_SIZE, end - len(buffer)), _MAX_READ))


def unmask(key: bytes, data: Payload) -> bytes:
    """``data`` XOR-ed with the 4-byte masking ``key`` (RFC 6455 §5.3), in linear time."""
    size = len(data)
    if not size:
        return b""
    stream = (key * (size // 4 + 1))[:size]
    value = int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")
    return value.to_bytes(size, "big")


class Fragments:
    """The fragmented message being put together: its chunks and their running total, so
    reassembly is linear in the message's size (websocket-client's own joins the bytes so far
    at every fragment, quadratic: an 8 MiB message in 32-byte fragments took over a minute)."""

    __slots__ = ("_chunks", "opcode", "size")

    def __init__(self) -> None:
        self.opcode: Optional[int] = None
        """The first fragment's opcode while a message is open, else ``None``."""
        self._chunks: List[Payload] = []
        self.size = 0

    def begin(self, opcode: int) -> None:
        """Open a fragmented message that frames of ``opcode`` start."""
        self.opcode = opcode

    def add(self, data: Payload) -> None:
        """Add one fragment's payload."""
        self._chunks.append(data)
        self.size += len(data)

    def take(self) -> Tuple[int, Payload]:
        """The whole message (opcode, payload); the reassembly starts empty again."""
        opcode = self.opcode
        assert opcode is not None
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self.opcode, self._chunks, self.size = None, [], 0
        return opcode, data


def check_header(first: int, opcode: int, size: int, pending: int, max_message_size: int) -> None:
    """Refuse a frame from its header, before its payload is read (RFC 6455 §5.2, §5.5).

    ``pending`` is the size of the fragmented message so far: a continuation counts with the
    fragments before it, so a message is refused at the fragment that takes it over the limit.
    """
    if first & 0x70:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set in a frame (no extension)")
    if opcode not in KNOWN_OPCODES:
        raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown frame opcode {opcode:#x}")
    if opcode >= _FIRST_CONTROL:
        if not first & 0x80 or size > 125:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "a control frame fragmented or over 125 bytes")
    elif size + (pending if opcode == OPCODE_CONT else 0) > max_message_size:
        raise too_big(max_message_size)


def too_big(max_message_size: int) -> FrameError:
    """The error for a message over ``max_message_size`` bytes."""
    return FrameError(CLOSE_TOO_BIG, f"message larger than {max_message_size} bytes")


def parse_close(data: Payload) -> Tuple[Optional[int], bytes]:
    """A close frame's code (``None`` when it has none) and raw reason; FrameError when bad."""
    if len(data) == 1:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "a close frame of one byte")
    if not data:
        return None, b""
    code = int(_U16.unpack_from(data)[0])
    if not (code in _VALID_CLOSE_CODES or 3000 <= code < 5000):
        raise FrameError(CLOSE_PROTOCOL_ERROR, f"close code {code} is not allowed on the wire")
    return code, bytes(data[2:])


def close_reply_code(code: Optional[int]) -> int:
    """The code to echo to a peer's close frame of ``code`` (a local-only code is not sent)."""
    return code if code and code not in _LOCAL_ONLY_CODES else CLOSE_NORMAL


def close_body(code: int, reason: str = "") -> bytes:
    """A close frame's payload: ``code`` and ``reason`` cut to what the frame may carry."""
    text = reason.encode("utf-8")[:_CLOSE_REASON_BYTES].decode("utf-8", "ignore")
    return _U16.pack(code) + text.encode("utf-8")

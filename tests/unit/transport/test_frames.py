"""Our own framing, from bytes: header checks before the payload, fragments, close frames."""

import struct
from typing import List

import pytest

from blackbox_sync.transport import frames
from blackbox_sync.transport.frames import Fragments, FrameError, FrameReader


def _frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = b"") -> bytes:
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, size | (0x80 if mask else 0))
    else:
        head = struct.pack("!BBH", first, 126 | (0x80 if mask else 0), size)
    body = frames.unmask(mask, payload) if mask else payload
    return head + mask + body


def _reader(data: bytes, checked: "List[tuple[int, int, int]]") -> FrameReader:
    chunks = [data[i : i + 3] for i in range(0, len(data), 3)]  # a peer that drips

    def read(size: int) -> bytes:
        return chunks.pop(0)

    return FrameReader(read, lambda first, opcode, size: checked.append((first, opcode, size)))


def test_frames_are_read_whole_from_dripped_bytes_and_unmasked() -> None:
    checked: List[tuple[int, int, int]] = []
    data = _frame(frames.OPCODE_TEXT, b"hello") + _frame(
        frames.OPCODE_BINARY, b"x" * 300, mask=b"\x01\x02\x03\x04"
    )
    reader = _reader(data, checked)
    assert reader.next_frame() == (True, frames.OPCODE_TEXT, bytearray(b"hello"))
    fin, opcode, payload = reader.next_frame()
    assert (fin, opcode, bytes(payload)) == (True, frames.OPCODE_BINARY, b"x" * 300)
    assert [size for _, _, size in checked] == [5, 300]


def test_a_header_is_refused_before_its_payload() -> None:
    with pytest.raises(FrameError, match="reserved bits") as info:
        frames.check_header(0xC1, frames.OPCODE_TEXT, 1, 0, 10)
    assert info.value.code == frames.CLOSE_PROTOCOL_ERROR
    with pytest.raises(FrameError, match="opcode 0x3"):
        frames.check_header(0x83, 0x3, 1, 0, 10)
    with pytest.raises(FrameError, match="control frame"):
        frames.check_header(0x09, frames.OPCODE_PING, 1, 0, 10)
    with pytest.raises(FrameError, match="larger than 10") as too_big:
        frames.check_header(0x00, frames.OPCODE_CONT, 4, 7, 10)  # counts with what came before
    assert too_big.value.code == frames.CLOSE_TOO_BIG
    frames.check_header(0x81, frames.OPCODE_TEXT, 10, 7, 10)  # a new message starts from zero


def test_fragments_are_joined_once() -> None:
    fragments = Fragments()
    fragments.begin(frames.OPCODE_TEXT)
    for part in (b"ab", bytearray(b"cd"), b"e"):
        fragments.add(part)
    assert fragments.size == 5
    assert fragments.take() == (frames.OPCODE_TEXT, b"abcde")
    assert (fragments.opcode, fragments.size) == (None, 0)


def test_close_frames() -> None:
    assert frames.parse_close(b"") == (None, b"")
    assert frames.parse_close(struct.pack("!H", 4001) + b"bye") == (4001, b"bye")
    with pytest.raises(FrameError, match="one byte"):
        frames.parse_close(b"\x03")
    with pytest.raises(FrameError, match="1006 is not allowed"):
        frames.parse_close(struct.pack("!H", 1006))
    assert frames.close_reply_code(None) == frames.CLOSE_NORMAL
    assert frames.close_reply_code(4001) == 4001
    body = frames.close_body(1000, "é" * 100)  # cut at 123 bytes, never inside a character
    assert len(body) == 2 + 122
    body[2:].decode("utf-8")


def test_unmask_is_its_own_inverse() -> None:
    key = b"\xaa\x0f\x33\x01"
    data = bytes(range(256)) * 3
    assert frames.unmask(key, frames.unmask(key, data)) == data
    assert frames.unmask(key, b"") == b""

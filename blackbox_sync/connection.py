"""The thread-backed I/O shell (layer 3): one websocket-client socket and one reader thread.

The reader thread is the only one that reads the socket. It hands every complete text or binary
message to ``on_message``, answers pings, sends keepalive pings of its own when the line is quiet,
and wakes in time for the deadlines ``on_tick`` asks for (tool timeouts), so a conversation needs
no other thread. Any thread may send; a lock keeps frames whole. ``on_close`` runs exactly once,
on the reader thread, however the socket ends.
"""

import logging
import socket
import ssl
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Union

import websocket

from .errors import ConnectionClosedError, OperationTimeout
from .redact import redact_text, redact_url

log = logging.getLogger("blackbox_sync.connection")

CLOSE_NORMAL = 1000
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

OnMessage = Callable[[Union[str, bytes]], None]
OnClose = Callable[[Optional[int], str, Optional[BaseException]], None]
OnTick = Callable[[], Optional[float]]


class Connection:
    """One WebSocket connection with a reader thread. Not reusable: one conversation, one socket."""

    def __init__(
        self,
        url: str,
        *,
        on_message: OnMessage,
        on_close: OnClose,
        on_tick: Optional[OnTick] = None,
        headers: Optional[Dict[str, str]] = None,
        origin: Optional[str] = None,
        sslopt: Optional[Dict[str, Any]] = None,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: float = 10.0,
        max_message_size: int = 8 * 1024 * 1024,
        secrets: "tuple[str, ...]" = (),
        name: str = "blackbox-reader",
    ) -> None:
        self._url = url
        self.display_url = redact_url(url)
        self._on_message = on_message
        self._on_close = on_close
        self._on_tick = on_tick
        self._headers = dict(headers or {})
        self._origin = origin
        self._sslopt = sslopt
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_message_size = max_message_size
        self._secrets = secrets
        self._name = name
        # UTF-8 is checked by bytes.decode on the reader thread: websocket-client's own check is
        # pure Python and costs several times the rest of the frame's handling.
        self._ws = websocket.WebSocket(
            sslopt=sslopt, enable_multithread=True, skip_utf8_validation=True
        )
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._reader: Optional[threading.Thread] = None
        self._close_sent = False
        self._close_deadline: Optional[float] = None
        self._wake_at = 0.0
        self._timeout_set_at = 0.0
        self._finished = threading.Event()
        self._last_received = time.monotonic()
        self._ping_sent_at: Optional[float] = None
        self.close_code: Optional[int] = None
        self.close_reason = ""

    def __repr__(self) -> str:
        return f"<Connection {self.display_url} {'closed' if self.closed else 'open'}>"

    # --- lifecycle -------------------------------------------------------------------------------

    def open(self, timeout: float) -> None:
        """Do the WebSocket handshake (blocking) and start the reader thread."""
        kwargs: Dict[str, Any] = {"timeout": timeout, "header": self._headers or None}
        if self._origin:
            kwargs["origin"] = self._origin
        try:
            self._ws.connect(self._url, **kwargs)
        except websocket.WebSocketBadStatusException as exc:
            self._ws.shutdown()
            raise ConnectionClosedError(
                f"WebSocket handshake with {self.display_url} refused: HTTP {exc.status_code}"
            ) from None
        except (socket.timeout, websocket.WebSocketTimeoutException):
            self._ws.shutdown()
            raise OperationTimeout(
                f"WebSocket handshake with {self.display_url} timed out after {timeout:g} s"
            ) from None
        except (OSError, websocket.WebSocketException) as exc:
            self._ws.shutdown()
            raise ConnectionClosedError(
                f"cannot connect to {self.display_url}: {self._clean(exc)}"
            ) from None
        buffer = getattr(self._ws, "frame_buffer", None)
        if buffer is not None and hasattr(buffer, "recv"):
            buffer.recv = _ReadAhead(self._ws._recv)
        if buffer is not None and hasattr(buffer, "recv_length"):
            buffer.recv_length = self._checked_length(buffer)
        log.debug("connected to %s", self.display_url)
        self._last_received = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, name=self._name, daemon=True)
        self._reader.start()

    @property
    def closed(self) -> bool:
        """True once the reader thread has finished."""
        return self._finished.is_set()

    @staticmethod
    def running_reader() -> "Optional[Connection]":
        """The connection whose reader thread is the calling thread, if any (callback detection)."""
        connection: Optional[Connection] = getattr(_reader_local, "connection", None)
        return connection

    @property
    def on_reader_thread(self) -> bool:
        """True when called from this connection's reader thread (a callback)."""
        return threading.current_thread() is self._reader

    def send_text(self, text: str) -> None:
        """Send one text frame; raises :class:`ConnectionClosedError` if the socket is gone."""
        with self._send_lock:
            if self._close_sent or self._finished.is_set():
                raise ConnectionClosedError(
                    "cannot send: the connection is closed", self.close_code, self.close_reason
                )
            try:
                self._ws.send(text)
            except (OSError, websocket.WebSocketException) as exc:
                raise ConnectionClosedError(f"send failed: {self._clean(exc)}") from None

    def close(
        self,
        code: int = CLOSE_NORMAL,
        reason: str = "",
        timeout: float = 5.0,
        join_timeout: float = 1.0,
    ) -> None:
        """Close with a handshake. Waits up to ``timeout`` for the peer's close frame, then cuts
        the socket, then up to ``join_timeout`` for the reader's ``on_close`` work to finish.

        From the reader thread (a callback) it starts the handshake and returns at once; the
        reader finishes it.
        """
        self._send_close(code, reason, timeout)
        if self._reader is None:
            self._finish(code, reason, None)
            return
        if self.on_reader_thread:
            return
        if not self._finished.wait(timeout):
            # The peer never answered our close frame: cut the socket so the reader wakes up.
            self._shutdown_socket()
            self._finished.wait(1.0)
        self._reader.join(join_timeout)

    def abort(self) -> None:
        """Cut the TCP connection without a close handshake."""
        self._shutdown_socket()

    def wait_closed(self, timeout: Optional[float]) -> bool:
        """Wait until the reader has finished; True if it did within ``timeout``."""
        if self._reader is None:  # the handshake failed: there is no reader to wait for
            return self._finished.is_set()
        return self._finished.wait(timeout)

    # --- reader thread ---------------------------------------------------------------------------

    def _read_loop(self) -> None:
        _reader_local.connection = self
        code: Optional[int] = None
        reason = ""
        error: Optional[BaseException] = None
        try:
            code, reason = self._read_until_closed()
        except _Fatal as exc:
            self._send_close(exc.code, exc.reason, 0.0)
            code, reason = exc.code, exc.reason
            error = ConnectionClosedError(exc.reason, exc.code)
        except (OSError, websocket.WebSocketException, struct.error, ssl.SSLError) as exc:
            if self._close_sent:
                code = self.close_code if self.close_code is not None else CLOSE_NORMAL
            else:
                error = ConnectionClosedError(
                    f"connection lost: {self._clean(exc)}", CLOSE_ABNORMAL
                )
                code = None
        except BaseException as exc:  # an unexpected bug must still end in on_close, never a hang
            log.exception("reader thread failed")
            error = exc
        finally:
            self._shutdown_socket()
            self._finish(code, reason, error)

    def _read_until_closed(self) -> "tuple[Optional[int], str]":
        # The hot path: per frame, one clock read and no syscall besides the read itself. Timers
        # (keepalive, tool timeouts, the close handshake) are checked against one cached wake
        # time, and the socket's timeout is refreshed at most every _RETIME seconds.
        ws = self._ws
        text, binary, cont, ping, close = _OPCODES
        now = time.monotonic()
        while True:
            if now >= self._wake_at:
                if (
                    self._close_sent
                    and self._close_deadline is not None
                    and now >= self._close_deadline
                ):
                    return self.close_code, "no close frame from the peer"
                self._tick(now)
                self._wake_at = self._next_wake(now)
                self._set_timeout(now)
            elif now - self._timeout_set_at > _RETIME:
                self._set_timeout(now)
            try:
                frame = ws.recv_frame()
            except websocket.WebSocketTimeoutException:
                now = time.monotonic()
                continue
            now = time.monotonic()
            self._last_received = now
            self._ping_sent_at = None
            opcode = frame.opcode
            if opcode == text and frame.fin and not ws.cont_frame.recving_frames:
                if len(frame.data) > self.max_message_size:
                    raise _Fatal(
                        CLOSE_TOO_BIG, f"message larger than {self.max_message_size} bytes"
                    )
                try:
                    self._on_message(frame.data.decode("utf-8"))
                except UnicodeDecodeError:
                    raise _Fatal(CLOSE_INVALID_DATA, "text frame is not valid UTF-8") from None
            elif opcode in (text, binary, cont):
                self._take_data_frame(frame)
            elif opcode == ping:
                with self._send_lock:
                    if not self._close_sent:
                        ws.pong(frame.data)
            elif opcode == close:
                return self._take_close_frame(frame.data)

    def _checked_length(self, buffer: Any) -> Callable[[], None]:
        # Refuse an oversized frame from its header, before its payload is read into memory.
        read_length = buffer.recv_length

        def recv_length() -> None:
            read_length()
            if buffer.length is not None and buffer.length > self.max_message_size:
                raise _Fatal(CLOSE_TOO_BIG, f"message larger than {self.max_message_size} bytes")

        return recv_length

    def reschedule(self) -> None:
        """Ask the reader to re-read its timers (``on_tick``) before its next read."""
        self._wake_at = 0.0

    def _set_timeout(self, now: float) -> None:
        wait = self._wake_at - now
        self._ws.settimeout(None if wait == _NEVER else max(wait, 0.0))
        self._timeout_set_at = now

    def _take_data_frame(self, frame: Any) -> None:
        cont = self._ws.cont_frame
        cont.validate(frame)
        cont.add(frame)
        if cont.cont_data is not None and len(cont.cont_data[1]) > self.max_message_size:
            raise _Fatal(CLOSE_TOO_BIG, f"message larger than {self.max_message_size} bytes")
        if not cont.is_fire(frame):
            return
        opcode, whole = cont.extract(frame)
        data: Union[str, bytes] = whole.data
        if opcode == websocket.ABNF.OPCODE_TEXT and isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise _Fatal(CLOSE_INVALID_DATA, "text frame is not valid UTF-8") from None
        self._on_message(data)

    def _take_close_frame(self, data: bytes) -> "tuple[Optional[int], str]":
        code: Optional[int] = None
        reason = ""
        if len(data) >= 2:
            code = struct.unpack("!H", data[:2])[0]
            reason = data[2:].decode("utf-8", "replace")
        with self._send_lock:
            if not self._close_sent:
                self._close_sent = True
                try:
                    self._ws.send_close(
                        code if code and code not in (1005, 1006, 1015) else CLOSE_NORMAL
                    )
                except (OSError, websocket.WebSocketException):
                    pass
        log.debug("server closed the connection: code=%s reason=%r", code, reason)
        return code if code is not None else 1005, reason

    def _next_wake(self, now: float) -> float:
        wakes: List[float] = [_NEVER]
        if self._close_deadline is not None:
            wakes.append(self._close_deadline)
        if self.ping_interval is not None:
            if self._ping_sent_at is None:
                wakes.append(self._last_received + self.ping_interval)
            else:
                wakes.append(self._ping_sent_at + self.ping_timeout)
        if self._on_tick is not None and not self._close_sent:
            deadline = self._on_tick()
            if deadline is not None:
                wakes.append(deadline)
        return min(wakes)

    def _tick(self, now: float) -> None:
        if self.ping_interval is None or self._close_sent:
            return
        if self._ping_sent_at is not None and now - self._ping_sent_at >= self.ping_timeout:
            raise _Fatal(
                CLOSE_ABNORMAL, f"no answer to keepalive ping within {self.ping_timeout:g} s"
            )
        if self._ping_sent_at is None and now - self._last_received >= self.ping_interval:
            with self._send_lock:
                if not self._close_sent:
                    self._ws.ping(b"keepalive")
            self._ping_sent_at = now

    # --- helpers ---------------------------------------------------------------------------------

    def _send_close(self, code: int, reason: str, timeout: float) -> None:
        with self._send_lock:
            if self._close_sent or self._finished.is_set():
                return
            self._close_sent = True
            self.close_code, self.close_reason = code, reason
            self._close_deadline = time.monotonic() + timeout
            self._wake_at = 0.0
            try:
                self._ws.send_close(code, reason.encode("utf-8"))
            except (OSError, websocket.WebSocketException):
                self._shutdown_socket()

    def _shutdown_socket(self) -> None:
        sock = self._ws.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _finish(self, code: Optional[int], reason: str, error: Optional[BaseException]) -> None:
        with self._state_lock:
            if self._finished.is_set():
                return
            self.close_code = code if code is not None else self.close_code
            self.close_reason = reason or self.close_reason
            self._ws.shutdown()
            self._finished.set()
        log.debug("connection to %s finished: code=%s reason=%r", self.display_url, code, reason)
        try:
            self._on_close(code, reason, error)
        except Exception:
            log.exception("on_close handler failed")

    def _clean(self, exc: BaseException) -> str:
        return redact_text(str(exc) or type(exc).__name__, *self._secrets)


class _ReadAhead:
    """Serves websocket-client's small reads (header, length, payload) from one large read.

    Without it every frame costs three system calls; with it, one per burst of frames.
    """

    __slots__ = ("_chunk", "_offset", "_read")

    def __init__(self, read: Callable[[int], bytes], chunk: int = 65536) -> None:
        self._read = lambda: read(chunk)
        self._chunk = b""
        self._offset = 0

    def __call__(self, size: int) -> bytes:
        if self._offset >= len(self._chunk):
            self._chunk = self._read()
            self._offset = 0
        start = self._offset
        self._offset = start + size
        return self._chunk[start : start + size]


_NEVER = float("inf")
_reader_local = threading.local()
# How stale the socket's read timeout may get while frames keep arriving, in seconds.
_RETIME = 0.05
_OPCODES = (
    websocket.ABNF.OPCODE_TEXT,
    websocket.ABNF.OPCODE_BINARY,
    websocket.ABNF.OPCODE_CONT,
    websocket.ABNF.OPCODE_PING,
    websocket.ABNF.OPCODE_CLOSE,
)


class _Fatal(Exception):
    """A reason of the reader's own to end the connection (oversized message, dead peer)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

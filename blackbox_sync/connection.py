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
        self._ws = websocket.WebSocket(
            sslopt=sslopt, enable_multithread=True, skip_utf8_validation=False
        )
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._reader: Optional[threading.Thread] = None
        self._close_sent = False
        self._close_deadline: Optional[float] = None
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
        log.debug("connected to %s", self.display_url)
        self._last_received = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, name=self._name, daemon=True)
        self._reader.start()

    @property
    def closed(self) -> bool:
        """True once the reader thread has finished."""
        return self._finished.is_set()

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
        return self._finished.wait(timeout)

    # --- reader thread ---------------------------------------------------------------------------

    def _read_loop(self) -> None:
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
        ws = self._ws
        while True:
            wait = self._next_wait()
            if wait is not None and wait <= 0:
                if self._close_sent:
                    return self.close_code, self.close_reason
                self._tick()
                continue
            ws.settimeout(wait)
            try:
                frame = ws.recv_frame()
            except websocket.WebSocketTimeoutException:
                if self._close_sent:
                    return self.close_code, "no close frame from the peer"
                self._tick()
                continue
            if frame is None:
                raise websocket.WebSocketConnectionClosedException("socket closed")
            self._last_received = time.monotonic()
            self._ping_sent_at = None
            opcode = frame.opcode
            if opcode in (
                websocket.ABNF.OPCODE_TEXT,
                websocket.ABNF.OPCODE_BINARY,
                websocket.ABNF.OPCODE_CONT,
            ):
                self._take_data_frame(frame)
            elif opcode == websocket.ABNF.OPCODE_PING:
                with self._send_lock:
                    if not self._close_sent:
                        ws.pong(frame.data)
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                return self._take_close_frame(frame.data)

    def _take_data_frame(self, frame: Any) -> None:
        cont = self._ws.cont_frame
        cont.validate(frame)
        cont.add(frame)
        if cont.cont_data is not None and len(cont.cont_data[1]) > self.max_message_size:
            raise _Fatal(CLOSE_TOO_BIG, f"message larger than {self.max_message_size} bytes")
        if not cont.is_fire(frame):
            return
        try:
            opcode, whole = cont.extract(frame)
        except websocket.WebSocketPayloadException:
            raise _Fatal(CLOSE_INVALID_DATA, "text frame is not valid UTF-8") from None
        data: Union[str, bytes] = whole.data
        if opcode == websocket.ABNF.OPCODE_TEXT and isinstance(data, bytes):
            data = data.decode("utf-8")
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

    def _next_wait(self) -> Optional[float]:
        now = time.monotonic()
        waits: List[float] = []
        if self._close_deadline is not None:
            waits.append(self._close_deadline - now)
        if self.ping_interval is not None:
            if self._ping_sent_at is None:
                waits.append(self._last_received + self.ping_interval - now)
            else:
                waits.append(self._ping_sent_at + self.ping_timeout - now)
        if self._on_tick is not None and not self._close_sent:
            deadline = self._on_tick()
            if deadline is not None:
                waits.append(deadline - now)
        return min(waits) if waits else None

    def _tick(self) -> None:
        now = time.monotonic()
        if self.ping_interval is None:
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


class _Fatal(Exception):
    """A reason of the reader's own to end the connection (oversized message, dead peer)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

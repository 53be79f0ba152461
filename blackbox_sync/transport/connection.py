"""The thread-backed I/O shell (layer 3): one WebSocket socket and one reader thread.

The reader thread is the only one that reads the socket. It hands every complete text or binary
message to ``on_message``, answers pings, sends keepalive pings of its own when the line is quiet,
and wakes in time for the deadlines ``on_tick`` asks for (tool timeouts), so a conversation needs
no other thread. Any thread may send; a lock keeps frames whole. ``on_close`` runs exactly once,
on the reader thread, however the socket ends.

Sends have a bound of their own (``send_timeout``), independent of the read timeout the reader
keeps changing: a peer that stops reading fills the TCP send buffer, and a send must not wait for
it for ever. A send that runs out of time may have written part of a frame, after which nothing
else can go on that socket, so the connection is then broken (:class:`CloseState` ``BROKEN``):
cut, and reported as lost.

The pieces: :mod:`~blackbox_sync.transport.wsclient` (websocket-client: the opening handshake
and its redirects, the raw socket, the frame writer), :mod:`~blackbox_sync.transport.frames`
(reading and checking the server's frames, fragments, close frames),
:mod:`~blackbox_sync.transport.sender` (bounded writes) and
:mod:`~blackbox_sync.transport.closing` (the close handshake's state).
"""

import logging
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Union

from blackbox_sync.errors import ConnectionClosedError
from blackbox_sync.redact import redact_text, redact_url
from blackbox_sync.transport.closing import CloseHandshake, CloseState
from blackbox_sync.transport.frames import (
    CLOSE_ABNORMAL,
    CLOSE_INTERNAL_ERROR,
    CLOSE_INVALID_DATA,
    CLOSE_NO_STATUS,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_CONT,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    Fragments,
    FrameError,
    FrameReader,
    Payload,
    check_header,
    close_body,
    close_reply_code,
    parse_close,
    too_big,
)
from blackbox_sync.transport.sender import SendTimeout
from blackbox_sync.transport.wsclient import ReadTimeout, WsClient

__all__ = [
    "CLOSE_ABNORMAL",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_INVALID_DATA",
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TOO_BIG",
    "CloseState",
    "Connection",
    "OnClose",
    "OnMessage",
    "OnTick",
]

log = logging.getLogger("blackbox_sync.connection")

OnMessage = Callable[[Union[str, bytes]], None]
OnClose = Callable[[Optional[int], str, Optional[BaseException]], None]
OnTick = Callable[[], Optional[float]]

# The least time a send gets, whatever the caller has left of its own timeout.
_SEND_FLOOR = 0.25
# How long a close waits for the send lock before it cuts the socket under a stuck send.
_CLOSE_LOCK_WAIT = 0.25
# How stale the socket's read timeout may get while frames keep arriving, in seconds.
_RETIME = 0.05
_NEVER = float("inf")
_reader_local = threading.local()


class Connection:
    """One WebSocket connection with a reader thread. Not reusable: one conversation, one socket.

    Its timing and size bounds have no defaults here: the conversation's options
    (:class:`~blackbox_sync.Timeouts`, :class:`~blackbox_sync.Limits`) are their one source.
    """

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
        ping_interval: Optional[float],
        ping_timeout: float,
        max_message_size: int,
        send_timeout: float,
        secrets: "tuple[str, ...]" = (),
        name: str = "blackbox-reader",
    ) -> None:
        self._url = url
        self._secrets = secrets
        self.display_url = self._redact(redact_url(url))
        self._on_message = on_message
        self._on_close = on_close
        self._on_tick = on_tick
        self._headers = dict(headers or {})
        self._origin = origin
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_message_size = max_message_size
        self.send_timeout = send_timeout
        self._name = name
        self._socket = WsClient(sslopt=sslopt, redact=self._redact, display_url=self.display_url)
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._reader: Optional[threading.Thread] = None
        self._handshake = CloseHandshake()
        self._wake_at = 0.0
        self._timeout_set_at = 0.0
        self._finished = threading.Event()
        self._last_received = time.monotonic()
        self._ping_sent_at: Optional[float] = None
        self._fragments = Fragments()
        self._frames = FrameReader(self._socket.recv, self._check_header)
        self.close_code: Optional[int] = None
        self.close_reason = ""

    def __repr__(self) -> str:
        return f"<Connection {self.display_url} {self.close_state}>"

    # --- lifecycle -------------------------------------------------------------------------------

    def open(self, timeout: float) -> None:
        """Do the WebSocket handshake (blocking) and start the reader thread.

        The whole opening (TCP, TLS, the HTTP upgrade, any redirects followed) gets ``timeout``
        seconds in all, however slowly the server answers; a redirect to another host or a
        weaker scheme raises :class:`RedirectRefused` before anything is sent there.
        """
        self._socket.open(
            self._url, timeout, headers=self._headers, origin=self._origin, secrets=self._secrets
        )
        log.debug("connected to %s", self.display_url)
        self._last_received = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, name=self._name, daemon=True)
        self._reader.start()

    @property
    def close_state(self) -> CloseState:
        """Where the close handshake is (``open`` until a close frame went out or a send broke
        the socket; ``closed`` once the reader has finished)."""
        return self._handshake.state

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

    def send_text(self, text: str, timeout: Optional[float] = None) -> None:
        """Send one text frame, giving it ``timeout`` seconds (capped at ``send_timeout``, and
        never less than a quarter of a second).

        Raises :class:`ConnectionClosedError` if the socket is gone, or if the frame could not be
        written in time; the connection is then broken (see the module's docstring).
        """
        # A caller nearly out of time still gets a moment: breaking a healthy connection because
        # its buffer was briefly full, or another send briefly held the lock, would cost more.
        bound = min(
            self.send_timeout, max(_SEND_FLOOR, self.send_timeout if timeout is None else timeout)
        )
        deadline = time.monotonic() + max(0.0, bound)
        if not self._send_lock.acquire(timeout=max(0.0, bound)):
            # Another send holds the socket for longer than this one may wait: the peer is not
            # reading. Waiting on would only stack more callers behind it.
            why = self._break(f"send timed out after {bound:g} s behind another send")
            raise ConnectionClosedError(f"send timed out: {why}", CLOSE_ABNORMAL)
        try:
            if not self._handshake.open:
                raise ConnectionClosedError(
                    "cannot send: the connection is closed", self.close_code, self.close_reason
                )
            self._send_locked(text, OPCODE_TEXT, deadline, bound)
        finally:
            self._send_lock.release()

    def _send_locked(
        self, payload: Union[str, bytes], opcode: int, deadline: float, bound: float
    ) -> None:
        """Write one frame (the send lock held) by ``deadline``; ``bound`` is for the message."""
        try:
            self._socket.write_frame(payload, opcode, deadline)
        except SendTimeout:
            why = self._break(f"a frame could not be written within {bound:g} s (peer not reading)")
            raise ConnectionClosedError(f"send timed out: {why}", CLOSE_ABNORMAL) from None
        except OSError as exc:
            broken = self._handshake.broken_reason
            if broken:  # cut under us by close() or another send's timeout
                raise ConnectionClosedError(f"send failed: {broken}", CLOSE_ABNORMAL) from None
            raise ConnectionClosedError(f"send failed: {self._socket.clean(exc)}") from None

    def _break(self, reason: str) -> str:
        """Cut the socket under a send that cannot finish (the reader then reports it lost);
        why the connection broke."""
        if self._handshake.move(CloseState.BROKEN, reason=reason):
            log.warning("connection to %s broken: %s", self.display_url, reason)
        self._socket.cut()
        return self._handshake.broken_reason or reason

    def close(
        self,
        code: int = CLOSE_NORMAL,
        reason: str = "",
        timeout: float = 5.0,
        join_timeout: float = 1.0,
    ) -> None:
        """Close with a handshake. Waits up to ``timeout`` for the peer's close frame (sending
        ours included), then cuts the socket, then up to ``join_timeout`` for the reader's
        ``on_close`` work to finish: it returns within ``timeout + join_timeout``.

        From the reader thread (a callback) it starts the handshake and returns at once; the
        reader finishes it.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        self._send_close(code, reason, deadline)
        if self._reader is None:
            self._finish(code, reason, None)
            return
        if self.on_reader_thread:
            return
        if not self._finished.wait(max(0.0, deadline - time.monotonic())):
            # The peer never answered our close frame: cut the socket so the reader wakes up.
            self._socket.cut()
        self._reader.join(max(0.0, join_timeout))

    def abort(self) -> None:
        """Cut the TCP connection without a close handshake."""
        self._socket.cut()

    def wait_closed(self, timeout: Optional[float]) -> bool:
        """Wait until the reader has finished; True if it did within ``timeout``."""
        if self._reader is None:  # the handshake failed: there is no reader to wait for
            return self._finished.is_set()
        return self._finished.wait(timeout)

    def reschedule(self) -> None:
        """Ask the reader to re-read its timers (``on_tick``) before its next read."""
        self._wake_at = 0.0

    # --- reader thread ---------------------------------------------------------------------------

    def _read_loop(self) -> None:
        _reader_local.connection = self
        code: Optional[int] = None
        reason = ""
        error: Optional[BaseException] = None
        try:
            code, reason = self._read_until_closed()
        except FrameError as exc:
            self._send_close(exc.wire_code, exc.reason, time.monotonic())
            code, reason = exc.code, exc.reason
            error = ConnectionClosedError(exc.reason, exc.code)
        except (
            OSError,  # ssl.SSLError and the adapter's SocketGone included
            struct.error,
            ConnectionClosedError,  # a pong or keepalive ping that could not be written
        ) as exc:
            state = self._handshake.state
            if state is CloseState.BROKEN:
                error = ConnectionClosedError(
                    f"connection lost: {self._handshake.broken_reason}", CLOSE_ABNORMAL
                )
                code = None
            elif state is CloseState.CLOSE_SENT:
                code = self.close_code if self.close_code is not None else CLOSE_NORMAL
            else:
                error = ConnectionClosedError(
                    f"connection lost: {self._socket.clean(exc)}", CLOSE_ABNORMAL
                )
                code = None
        except BaseException as exc:  # an unexpected bug must still end in on_close, never a hang
            log.exception("reader thread failed")
            error = exc
        finally:
            self._socket.cut()
            self._finish(code, reason, error)

    def _read_until_closed(self) -> "tuple[Optional[int], str]":
        # The hot path: per frame, one clock read and no syscall besides the read itself. Timers
        # (keepalive, tool timeouts, the close handshake) are checked against one cached wake
        # time, and the socket's timeout is refreshed at most every _RETIME seconds.
        fragments = self._fragments
        next_frame = self._frames.next_frame
        handshake = self._handshake
        now = time.monotonic()
        while True:
            if now >= self._wake_at:
                if handshake.deadline is not None and now >= handshake.deadline:
                    return self.close_code, "no close frame from the peer"
                self._tick(now)
                self._wake_at = self._next_wake(now)
                self._set_timeout(now)
            elif now - self._timeout_set_at > _RETIME:
                self._set_timeout(now)
            try:
                fin, opcode, data = next_frame()
            except ReadTimeout:
                now = time.monotonic()
                continue
            now = time.monotonic()
            self._last_received = now
            self._ping_sent_at = None
            if opcode == OPCODE_TEXT and fin and fragments.opcode is None:
                self._deliver(OPCODE_TEXT, data)  # its size was checked from its header
            elif opcode in (OPCODE_TEXT, OPCODE_BINARY, OPCODE_CONT):
                self._take_data_frame(fin, opcode, data)
            elif opcode == OPCODE_PING:
                self._send_control(bytes(data), OPCODE_PONG)
            elif opcode == OPCODE_CLOSE:
                return self._take_close_frame(data)

    def _check_header(self, first: int, opcode: int, size: int) -> None:
        check_header(first, opcode, size, self._fragments.size, self.max_message_size)

    def _set_timeout(self, now: float) -> None:
        wait = self._wake_at - now
        self._socket.settimeout(None if wait == _NEVER else max(wait, 0.0))
        self._timeout_set_at = now

    def _take_data_frame(self, fin: bool, opcode: int, data: Payload) -> None:
        """A binary frame or a fragment: delivered once its message is whole (RFC 6455 §5.4)."""
        fragments = self._fragments
        if opcode == OPCODE_CONT:
            if fragments.opcode is None:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation frame with no message begun")
        elif fragments.opcode is not None:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "a new message began inside a fragmented one")
        else:
            fragments.begin(opcode)
        fragments.add(data)
        if fragments.size > self.max_message_size:
            raise too_big(self.max_message_size)
        if fin:
            whole_opcode, whole = fragments.take()
            self._deliver(whole_opcode, whole)

    def _deliver(self, opcode: int, data: Payload) -> None:
        if opcode != OPCODE_TEXT:
            self._on_message(bytes(data))
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(CLOSE_INVALID_DATA, "text frame is not valid UTF-8") from None
        self._on_message(text)

    def _take_close_frame(self, data: Payload) -> "tuple[Optional[int], str]":
        code, raw_reason = parse_close(data)
        # The server's words may echo the token: masked here, before it is stored, logged or
        # put in an exception.
        reason = self._redact(raw_reason.decode("utf-8", "replace"))
        try:
            self._send_control(close_body(close_reply_code(code)), OPCODE_CLOSE)
        except ConnectionClosedError:
            pass  # the peer closed and does not read: its close frame is all that matters
        log.debug("server closed the connection: code=%s reason=%r", code, reason)
        return code if code is not None else CLOSE_NO_STATUS, reason

    def _next_wake(self, now: float) -> float:
        wakes: List[float] = [_NEVER]
        if self._handshake.deadline is not None:
            wakes.append(self._handshake.deadline)
        if self.ping_interval is not None:
            if self._ping_sent_at is None:
                wakes.append(self._last_received + self.ping_interval)
            else:
                wakes.append(self._ping_sent_at + self.ping_timeout)
        if self._on_tick is not None and self._handshake.open:
            deadline = self._on_tick()
            if deadline is not None:
                wakes.append(deadline)
        return min(wakes)

    def _tick(self, now: float) -> None:
        if self.ping_interval is None or not self._handshake.open:
            return
        if self._ping_sent_at is not None and now - self._ping_sent_at >= self.ping_timeout:
            # Reported as 1006 (abnormal) here; on the wire a peer that may still be reading
            # gets 1011, since 1006 is reserved for local use and must never be sent.
            raise FrameError(
                CLOSE_ABNORMAL,
                f"no answer to keepalive ping within {self.ping_timeout:g} s",
                wire_code=CLOSE_INTERNAL_ERROR,
            )
        if self._ping_sent_at is None and now - self._last_received >= self.ping_interval:
            self._send_control(b"keepalive", OPCODE_PING)
            self._ping_sent_at = now

    # --- helpers ---------------------------------------------------------------------------------

    def _send_control(self, payload: bytes, opcode: int) -> None:
        """Send a ping, pong or reply close frame (reader thread), unless a close went out."""
        bound = self.send_timeout
        with self._send_lock:
            if not self._handshake.open:
                return
            if opcode == OPCODE_CLOSE and not self._handshake.move(CloseState.CLOSE_SENT):
                return
            self._send_locked(payload, opcode, time.monotonic() + bound, bound)

    def _send_close(self, code: int, reason: str, deadline: float) -> None:
        """Send our close frame, giving up (and cutting the socket) at ``deadline``."""
        # A send stuck on a peer that stopped reading holds the lock: wait for it only briefly,
        # since no close frame can follow a half-written frame anyway.
        wait = min(max(0.0, deadline - time.monotonic()), _CLOSE_LOCK_WAIT)
        if not self._send_lock.acquire(timeout=wait):
            if self._begin_close(code, reason, deadline):
                self._break("closed while a send was stuck")
            return
        try:
            if not self._begin_close(code, reason, deadline):
                return
            bound = min(self.send_timeout, max(0.0, deadline - time.monotonic()))
            try:
                self._send_locked(
                    close_body(code, reason), OPCODE_CLOSE, time.monotonic() + bound, bound
                )
            except ConnectionClosedError:
                self._socket.cut()
        finally:
            self._send_lock.release()

    def _begin_close(self, code: int, reason: str, deadline: float) -> bool:
        """Record our close (its code, reason and deadline) and move to ``CLOSE_SENT``; True
        when our close frame is to go out now (False: one went out, or the socket is gone)."""
        with self._state_lock:
            if self._handshake.state in (CloseState.CLOSE_SENT, CloseState.CLOSED):
                return False
            self.close_code, self.close_reason = code, reason
            self._handshake.deadline = deadline
            self._wake_at = 0.0
            return self._handshake.move(CloseState.CLOSE_SENT)

    def _finish(self, code: Optional[int], reason: str, error: Optional[BaseException]) -> None:
        with self._state_lock:
            if not self._handshake.move(CloseState.CLOSED):
                return
            self.close_code = code if code is not None else self.close_code
            self.close_reason = reason or self.close_reason
            self._socket.shutdown()
            self._finished.set()
        log.debug("connection to %s finished: code=%s reason=%r", self.display_url, code, reason)
        try:
            self._on_close(code, reason, error)
        except Exception:
            log.exception("on_close handler failed")

    def _redact(self, text: str) -> str:
        """``text`` from the server or the network with every secret masked."""
        return redact_text(text, *self._secrets)

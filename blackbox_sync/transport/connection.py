"""The thread-backed I/O shell (layer 3): one websocket-client socket and one reader thread.

The reader thread is the only one that reads the socket. It hands every complete text or binary
message to ``on_message``, answers pings, sends keepalive pings of its own when the line is quiet,
and wakes in time for the deadlines ``on_tick`` asks for (tool timeouts), so a conversation needs
no other thread. Any thread may send; a lock keeps frames whole. ``on_close`` runs exactly once,
on the reader thread, however the socket ends.

Sends have a bound of their own (``send_timeout``), independent of the read timeout the reader
keeps changing: a peer that stops reading fills the TCP send buffer, and a send must not wait for
it for ever. A send that runs out of time may have written part of a frame, after which nothing
else can go on that socket, so the connection is then broken: cut, and reported as lost.

websocket-client does the opening handshake and writes frames; the reader parses the server's
frames itself (:class:`_FrameReader`), in one buffer, checking each header before its payload is
read, and puts fragmented messages together in linear time (:class:`_Fragments`). The opening
has one deadline for all of it (:class:`_Watchdog`), and handshake redirects are judged by
:func:`~blackbox_sync.urls.redirect_target`, not followed blindly.
"""

import errno
import logging
import select
import socket
import ssl
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Union

import websocket

from blackbox_sync.errors import ConnectionClosedError, HandshakeRefused, OperationTimeout
from blackbox_sync.redact import redact_text, redact_url
from blackbox_sync.urls import redirect_target

log = logging.getLogger("blackbox_sync.connection")

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_ABNORMAL = 1006
"""Reported locally for a connection lost without a close frame; never sent (RFC 6455 §7.4.1)."""
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

OnMessage = Callable[[Union[str, bytes]], None]
OnClose = Callable[[Optional[int], str, Optional[BaseException]], None]
OnTick = Callable[[], Optional[float]]
_Payload = Union[bytes, bytearray]


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
        send_timeout: float = 10.0,
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
        self._sslopt = sslopt
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_message_size = max_message_size
        self.send_timeout = send_timeout
        self._name = name
        # UTF-8 is checked by bytes.decode on the reader thread (websocket-client's own check is
        # pure Python, and its frame reader is not used for reading anyway).
        self._ws = websocket.WebSocket(
            sslopt=sslopt, enable_multithread=True, skip_utf8_validation=True
        )
        # Frames are written by _BoundedSender, not websocket-client's send(), which waits for
        # room for as long as the socket's timeout says, and that timeout is the reader's.
        self._sender = _BoundedSender()
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
        self._fragments = _Fragments()
        self._broken: Optional[str] = None
        """Why the socket was cut under a send (set once, never cleared)."""
        self.close_code: Optional[int] = None
        self.close_reason = ""

    def __repr__(self) -> str:
        return f"<Connection {self.display_url} {'closed' if self.closed else 'open'}>"

    # --- lifecycle -------------------------------------------------------------------------------

    def open(self, timeout: float) -> None:
        """Do the WebSocket handshake (blocking) and start the reader thread.

        The whole opening (TCP, TLS, the HTTP upgrade, any redirects followed) gets ``timeout``
        seconds in all, however slowly the server answers; a redirect to another host or a
        weaker scheme raises :class:`RedirectRefused` before anything is sent there.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        url = self._url
        for _ in range(_MAX_REDIRECTS + 1):
            location = self._handshake(url, deadline, timeout)
            if location is None:
                break
            url = redirect_target(url, location, *self._secrets)
            log.debug("handshake redirected to %s", self._redact(redact_url(url)))
        else:
            raise ConnectionClosedError(
                f"WebSocket handshake with {self.display_url}: more than {_MAX_REDIRECTS} redirects"
            )
        self._frames = _FrameReader(self._ws._recv, self._check_header)
        log.debug("connected to %s", self.display_url)
        self._last_received = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, name=self._name, daemon=True)
        self._reader.start()

    def _handshake(self, url: str, deadline: float, timeout: float) -> Optional[str]:
        """One opening handshake with ``url``, done by ``deadline``; the ``Location`` it was
        redirected to, or ``None`` once the socket is open."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out(timeout)
        kwargs: Dict[str, Any] = {
            "timeout": remaining,
            "header": self._headers or None,
            "redirect_limit": 0,  # redirects are judged by redirect_target, not followed blindly
        }
        if self._origin:
            kwargs["origin"] = self._origin
        self._ws.handshake_response = None
        failure: Optional[BaseException] = None
        # websocket-client reads the answer a byte at a time and its read timeout starts again
        # at every byte, so a server dripping it would never time out: the watchdog cuts the
        # socket at the deadline instead. (TCP connect and TLS are bounded by the timeout.)
        watchdog = _Watchdog(remaining, self._shutdown_socket)
        try:
            self._ws.connect(url, **kwargs)
        except (OSError, websocket.WebSocketException) as exc:
            failure = exc
        finally:
            fired = watchdog.stop()
        if failure is None and not fired:
            return None
        self._ws.shutdown()
        if failure is None or fired or isinstance(failure, _TIMEOUTS):
            raise self._timed_out(timeout)  # out of time, or connected only as it ran out
        response = self._ws.handshake_response
        if response is not None and response.status in _REDIRECT_STATUSES:
            location = response.headers.get("location")
            if location:
                return str(location)
            raise ConnectionClosedError(
                f"WebSocket handshake with {self.display_url} redirected (HTTP "
                f"{response.status}) without a Location"
            )
        if isinstance(failure, websocket.WebSocketBadStatusException):
            raise HandshakeRefused(
                f"WebSocket handshake with {self.display_url} refused: {self._refusal(failure)}",
                int(failure.status_code),
            )
        raise ConnectionClosedError(f"cannot connect to {self.display_url}: {self._clean(failure)}")

    def _timed_out(self, timeout: float) -> OperationTimeout:
        return OperationTimeout(
            f"WebSocket handshake with {self.display_url} timed out after {timeout:g} s"
        )

    def _refusal(self, exc: "websocket.WebSocketBadStatusException") -> str:
        """The server's refusal (status line and the start of its body), secrets masked."""
        text = f"HTTP {exc.status_code}"
        if exc.status_message:
            text += f" {exc.status_message}"
        body = exc.resp_body
        if body:
            raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            # Redact the whole body before cutting it: a secret across the cut would leak.
            body_text = " ".join(self._redact(raw).split())
            if len(body_text) > _REFUSAL_CHARS:
                body_text = body_text[:_REFUSAL_CHARS] + "…"
            text += f": {body_text}"
        return self._redact(text)

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
            self._break(f"send timed out after {bound:g} s behind another send")
            raise ConnectionClosedError(f"send timed out: {self._broken}", CLOSE_ABNORMAL)
        try:
            if self._close_sent or self._finished.is_set() or self._broken:
                raise ConnectionClosedError(
                    "cannot send: the connection is closed", self.close_code, self.close_reason
                )
            self._send_locked(text, websocket.ABNF.OPCODE_TEXT, deadline, bound)
        finally:
            self._send_lock.release()

    def _send_locked(
        self, payload: Union[str, bytes], opcode: int, deadline: float, bound: float
    ) -> None:
        """Write one frame (the send lock held) by ``deadline``; ``bound`` is for the message."""
        sock = self._ws.sock
        if sock is None:
            raise ConnectionClosedError("cannot send: the connection is closed", self.close_code)
        try:
            self._sender.send(sock, websocket.ABNF.create_frame(payload, opcode).format(), deadline)
        except _SendTimeout:
            self._break(f"a frame could not be written within {bound:g} s (peer not reading)")
            raise ConnectionClosedError(f"send timed out: {self._broken}", CLOSE_ABNORMAL) from None
        except (OSError, websocket.WebSocketException) as exc:
            if self._broken:  # cut under us by close() or another send's timeout
                raise ConnectionClosedError(
                    f"send failed: {self._broken}", CLOSE_ABNORMAL
                ) from None
            raise ConnectionClosedError(f"send failed: {self._clean(exc)}") from None

    def _break(self, reason: str) -> None:
        """Cut the socket under a send that cannot finish; the reader then reports it lost."""
        if self._broken is None:
            self._broken = reason
            log.warning("connection to %s broken: %s", self.display_url, reason)
        self._shutdown_socket()

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
            self._shutdown_socket()
        self._reader.join(max(0.0, join_timeout))

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
            self._send_close(exc.wire_code, exc.reason, time.monotonic())
            code, reason = exc.code, exc.reason
            error = ConnectionClosedError(exc.reason, exc.code)
        except (
            OSError,
            websocket.WebSocketException,
            struct.error,
            ssl.SSLError,
            ConnectionClosedError,  # a pong or keepalive ping that could not be written
        ) as exc:
            if self._broken:
                error = ConnectionClosedError(f"connection lost: {self._broken}", CLOSE_ABNORMAL)
                code = None
            elif self._close_sent:
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
        text, binary, cont, ping, close = _OPCODES
        fragments = self._fragments
        next_frame = self._frames.next_frame
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
                fin, opcode, data = next_frame()
            except websocket.WebSocketTimeoutException:
                now = time.monotonic()
                continue
            now = time.monotonic()
            self._last_received = now
            self._ping_sent_at = None
            if opcode == text and fin and fragments.opcode is None:
                self._deliver(text, data)  # its size was checked from its header
            elif opcode in (text, binary, cont):
                self._take_data_frame(fin, opcode, data)
            elif opcode == ping:
                self._send_control(bytes(data), websocket.ABNF.OPCODE_PONG)
            elif opcode == close:
                return self._take_close_frame(data)

    def _check_header(self, first: int, opcode: int, size: int) -> None:
        """Refuse a frame from its header, before its payload is read (RFC 6455 §5.2, §5.5).

        A continuation counts with the fragments before it, so a fragmented message is refused
        at the fragment that would take it over ``max_message_size``.
        """
        if first & 0x70:
            raise _Fatal(CLOSE_PROTOCOL_ERROR, "reserved bits set in a frame (no extension)")
        if opcode not in _KNOWN_OPCODES:
            raise _Fatal(CLOSE_PROTOCOL_ERROR, f"unknown frame opcode {opcode:#x}")
        if opcode >= _FIRST_CONTROL:
            if not first & 0x80 or size > 125:
                raise _Fatal(CLOSE_PROTOCOL_ERROR, "a control frame fragmented or over 125 bytes")
        elif size + (self._fragments.size if opcode == _CONT else 0) > self.max_message_size:
            raise self._too_big()

    def reschedule(self) -> None:
        """Ask the reader to re-read its timers (``on_tick``) before its next read."""
        self._wake_at = 0.0

    def _set_timeout(self, now: float) -> None:
        wait = self._wake_at - now
        self._ws.settimeout(None if wait == _NEVER else max(wait, 0.0))
        self._timeout_set_at = now

    def _take_data_frame(self, fin: bool, opcode: int, data: _Payload) -> None:
        """A binary frame or a fragment: delivered once its message is whole (RFC 6455 §5.4)."""
        fragments = self._fragments
        if opcode == _CONT:
            if fragments.opcode is None:
                raise _Fatal(CLOSE_PROTOCOL_ERROR, "continuation frame with no message begun")
        elif fragments.opcode is not None:
            raise _Fatal(CLOSE_PROTOCOL_ERROR, "a new message began inside a fragmented one")
        else:
            fragments.begin(opcode)
        fragments.add(data)
        if fragments.size > self.max_message_size:
            raise self._too_big()
        if fin:
            whole_opcode, whole = fragments.take()
            self._deliver(whole_opcode, whole)

    def _deliver(self, opcode: int, data: _Payload) -> None:
        if opcode != websocket.ABNF.OPCODE_TEXT:
            self._on_message(bytes(data))
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _Fatal(CLOSE_INVALID_DATA, "text frame is not valid UTF-8") from None
        self._on_message(text)

    def _too_big(self) -> "_Fatal":
        return _Fatal(CLOSE_TOO_BIG, f"message larger than {self.max_message_size} bytes")

    def _take_close_frame(self, data: _Payload) -> "tuple[Optional[int], str]":
        code: Optional[int] = None
        reason = ""
        if len(data) == 1:
            raise _Fatal(CLOSE_PROTOCOL_ERROR, "a close frame of one byte")
        if len(data) >= 2:
            code = struct.unpack("!H", data[:2])[0]
            if not (code in _VALID_CLOSE_CODES or 3000 <= code < 5000):
                raise _Fatal(CLOSE_PROTOCOL_ERROR, f"close code {code} is not allowed on the wire")
            # The server's words may echo the token: masked here, before it is stored,
            # logged or put in an exception.
            reason = self._redact(data[2:].decode("utf-8", "replace"))
        reply = code if code and code not in _LOCAL_ONLY_CODES else CLOSE_NORMAL
        try:
            self._send_control(struct.pack("!H", reply), websocket.ABNF.OPCODE_CLOSE)
        except ConnectionClosedError:
            pass  # the peer closed and does not read: its close frame is all that matters
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
            # Reported as 1006 (abnormal) here; on the wire a peer that may still be reading
            # gets 1011, since 1006 is reserved for local use and must never be sent.
            raise _Fatal(
                CLOSE_ABNORMAL,
                f"no answer to keepalive ping within {self.ping_timeout:g} s",
                wire_code=CLOSE_INTERNAL_ERROR,
            )
        if self._ping_sent_at is None and now - self._last_received >= self.ping_interval:
            self._send_control(b"keepalive", websocket.ABNF.OPCODE_PING)
            self._ping_sent_at = now

    # --- helpers ---------------------------------------------------------------------------------

    def _send_control(self, payload: bytes, opcode: int) -> None:
        """Send a ping, pong or reply close frame (reader thread), unless a close went out."""
        bound = self.send_timeout
        with self._send_lock:
            if self._close_sent or self._broken:
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._close_sent = True
            self._send_locked(payload, opcode, time.monotonic() + bound, bound)

    def _send_close(self, code: int, reason: str, deadline: float) -> None:
        """Send our close frame, giving up (and cutting the socket) at ``deadline``."""
        # A send stuck on a peer that stopped reading holds the lock: wait for it only briefly,
        # since no close frame can follow a half-written frame anyway.
        wait = min(max(0.0, deadline - time.monotonic()), _CLOSE_LOCK_WAIT)
        if not self._send_lock.acquire(timeout=wait):
            with self._state_lock:
                if self._close_sent or self._finished.is_set():
                    return
                self._close_sent = True
                self.close_code, self.close_reason = code, reason
            self._break("closed while a send was stuck")
            return
        try:
            if self._close_sent or self._finished.is_set():
                return
            self._close_sent = True
            self.close_code, self.close_reason = code, reason
            self._close_deadline = deadline
            self._wake_at = 0.0
            if self._broken:
                return
            bound = min(self.send_timeout, max(0.0, deadline - time.monotonic()))
            try:
                # A close reason may take 123 bytes (RFC 6455 §5.5).
                text = reason.encode("utf-8")[:123].decode("utf-8", "ignore")
                body = struct.pack("!H", code) + text.encode("utf-8")
                self._send_locked(
                    body, websocket.ABNF.OPCODE_CLOSE, time.monotonic() + bound, bound
                )
            except ConnectionClosedError:
                self._shutdown_socket()
        finally:
            self._send_lock.release()

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
        return self._redact(str(exc) or type(exc).__name__)

    def _redact(self, text: str) -> str:
        """``text`` from the server or the network with every secret masked."""
        return redact_text(text, *self._secrets)


class _Watchdog:
    """Calls ``cut`` once ``seconds`` have passed, unless :meth:`stop` came first.

    Its timer thread never outlives :meth:`stop`, which joins it.
    """

    def __init__(self, seconds: float, cut: Callable[[], None]) -> None:
        self._cut = cut
        self._lock = threading.Lock()
        self._stopped = False
        self._fired = False
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.name = "blackbox-connect-deadline"
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._fired = True
        self._cut()

    def stop(self) -> bool:
        """Cancel the timer (joined); True if it had already fired."""
        with self._lock:
            self._stopped = True
        self._timer.cancel()
        self._timer.join()
        return self._fired


class _FrameReader:
    """Reads the server's frames from the socket's bytes (RFC 6455 §5.2), in place of
    websocket-client's frame reader, which makes several small reads and objects per frame
    (about 5 µs each: 1.4 s for a message in a quarter of a million small fragments).

    One large read serves a burst of frames; a frame is parsed once all of it is buffered.
    A read that times out leaves the buffer as it was, so the next call resumes the same
    frame. ``check(first_byte, opcode, size)`` may refuse a frame from its header, before its
    payload is read.
    """

    __slots__ = ("_buffer", "_check", "_position", "_read")

    def __init__(
        self, read: Callable[[int], bytes], check: Callable[[int, int, int], None]
    ) -> None:
        self._read = read
        self._check = check
        self._buffer = bytearray()
        self._position = 0

    def next_frame(self) -> "tuple[bool, int, _Payload]":
        """The next frame: (fin, opcode, payload), the payload unmasked."""
        if self._position >= _READ_SIZE:  # drop what was parsed, now and then (amortised)
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
        payload: _Payload = buffer[body:end]
        if masked:  # servers must not mask (§5.1); tolerated, as websocket-client does
            payload = websocket.ABNF.mask(bytes(buffer[head:body]), bytes(payload))
        self._position = end
        return bool(first & 0x80), opcode, payload

    def _fill(self, end: int) -> None:
        """Read until the buffer holds ``end`` bytes."""
        buffer = self._buffer
        while len(buffer) < end:
            buffer += self._read(min(max(_READ_SIZE, end - len(buffer)), _MAX_READ))


class _Fragments:
    """The fragmented message being put together: its chunks and their running total, so
    reassembly is linear in the message's size (websocket-client's own joins the bytes so far
    at every fragment, quadratic: an 8 MiB message in 32-byte fragments took over a minute)."""

    __slots__ = ("_chunks", "opcode", "size")

    def __init__(self) -> None:
        self.opcode: Optional[int] = None
        """The first fragment's opcode while a message is open, else ``None``."""
        self._chunks: List[_Payload] = []
        self.size = 0

    def begin(self, opcode: int) -> None:
        self.opcode = opcode

    def add(self, data: _Payload) -> None:
        self._chunks.append(data)
        self.size += len(data)

    def take(self) -> "tuple[int, _Payload]":
        """The whole message (opcode, payload); the reassembly starts empty again."""
        opcode = self.opcode
        assert opcode is not None
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self.opcode, self._chunks, self.size = None, [], 0
        return opcode, data


class _SendTimeout(Exception):
    """A frame could not be written before its deadline."""


class _BoundedSender:
    """Writes whole frames against a deadline (used under the send lock only).

    The socket's own timeout belongs to the reader, which changes it all the time (and sets
    ``None`` when it has nothing to wake for), so it cannot bound a send. This waits for room
    with ``poll`` and writes only what fits without blocking: ``MSG_DONTWAIT`` for plain
    sockets; TLS takes no flags, so it writes one record's worth after ``poll`` said there is
    room.
    """

    def __init__(self) -> None:
        self._poller: Any = None
        self._fd = -1

    def send(self, sock: socket.socket, data: bytes, deadline: float) -> None:
        """Write all of ``data`` to ``sock`` by ``deadline``, or raise :class:`_SendTimeout`."""
        view = memoryview(data)
        tls = isinstance(sock, ssl.SSLSocket)
        flags = 0 if tls else _DONTWAIT
        chunk = len(view) if flags else _TLS_CHUNK
        sent = 0
        while True:
            # Room first: with a timeout on the socket, Python itself would wait for room for
            # as long as the reader's timeout says, which is not this frame's bound.
            if not self._wait_writable(sock, deadline):
                raise _SendTimeout()
            part = view[sent : sent + chunk]
            try:
                sent += sock.send(part, flags) if flags else sock.send(part)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                pass
            if sent >= len(view):
                return
            if time.monotonic() >= deadline:
                raise _SendTimeout()

    def _wait_writable(self, sock: socket.socket, deadline: float) -> bool:
        remaining = max(0.0, deadline - time.monotonic())
        fd = sock.fileno()
        if fd < 0:  # closed under us (the peer dropped, or close() cut it): a send error
            raise OSError(errno.EBADF, "the socket is closed")
        if not hasattr(select, "poll"):  # Windows
            return bool(select.select([], [sock], [], remaining)[1])
        if self._poller is None or fd != self._fd:
            self._poller, self._fd = select.poll(), fd
            self._poller.register(fd, select.POLLOUT)
        # An error or hang-up counts as ready: the next send raises it.
        return bool(self._poller.poll(remaining * 1000 + 1))


# A plain socket write that never blocks, whatever the socket's timeout mode (not on Windows).
_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)
# One TLS record: after poll() reported room, a write this size does not wait in practice.
_TLS_CHUNK = 16 * 1024
# The least time a send gets, whatever the caller has left of its own timeout.
_SEND_FLOOR = 0.25
# How long a close waits for the send lock before it cuts the socket under a stuck send.
_CLOSE_LOCK_WAIT = 0.25
# Close codes that are reported locally and must not be sent (RFC 6455 §7.4.1).
_LOCAL_ONLY_CODES = frozenset({1005, 1006, 1015})
_NEVER = float("inf")
_reader_local = threading.local()
_TIMEOUTS = (socket.timeout, websocket.WebSocketTimeoutException)
# Redirects followed in one opening (websocket-client's own default), and the statuses that are.
_MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# How much of a refusal's body goes into the error (after redaction).
_REFUSAL_CHARS = 200
# How stale the socket's read timeout may get while frames keep arriving, in seconds.
_RETIME = 0.05
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
# Socket reads: at least this much at a time, and at most this much for one large frame.
_READ_SIZE = 64 * 1024
_MAX_READ = 1024 * 1024
_CONT = websocket.ABNF.OPCODE_CONT
_FIRST_CONTROL = 0x8
_KNOWN_OPCODES = frozenset(websocket.ABNF.OPCODES)
# Close codes a peer may send (RFC 6455 §7.4), besides the 3000-4999 of applications.
_VALID_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)
_OPCODES = (
    websocket.ABNF.OPCODE_TEXT,
    websocket.ABNF.OPCODE_BINARY,
    websocket.ABNF.OPCODE_CONT,
    websocket.ABNF.OPCODE_PING,
    websocket.ABNF.OPCODE_CLOSE,
)


class _Fatal(Exception):
    """A reason of the reader's own to end the connection (oversized message, dead peer).

    ``code`` is reported locally; ``wire_code`` (default: the same) goes in the close frame.
    """

    def __init__(self, code: int, reason: str, wire_code: Optional[int] = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.wire_code = code if wire_code is None else wire_code

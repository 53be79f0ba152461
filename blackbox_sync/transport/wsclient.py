"""The one module that touches websocket-client: the opening handshake (with its redirects and
one deadline for all of it), the raw socket's bytes and timeout, and writing frames.

Everything websocket-client raises is turned into ours here: :class:`ReadTimeout` for a read
that ran out of time, :class:`SocketGone` (an ``OSError``) for a socket that failed or closed,
and typed :mod:`blackbox_sync.errors` for an opening that did not succeed. Reading the frames
is :mod:`blackbox_sync.transport.frames`'s job, not websocket-client's.
"""

import http
import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, Optional, Union

import websocket

from blackbox_sync.errors import (
    BlackBoxError,
    ConnectionClosedError,
    HandshakeRefused,
    OperationTimeout,
)
from blackbox_sync.redact import redact_url
from blackbox_sync.transport.sender import BoundedSender
from blackbox_sync.urls import redirect_target

log = logging.getLogger("blackbox_sync.connection")

_TIMEOUTS = (socket.timeout, websocket.WebSocketTimeoutException)
# Redirects followed in one opening (websocket-client's own default), and the statuses that are.
MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# How much of a refusal's body goes into the error (after redaction).
_REFUSAL_CHARS = 200


class ReadTimeout(BlackBoxError):
    """A socket read ran out of its timeout; nothing was lost (read again)."""


class SocketGone(BlackBoxError, OSError):
    """The socket failed or the peer closed it under a read or a write."""


class WsClient:
    """websocket-client's socket, seen through the few operations the connection needs.

    ``redact`` masks secrets in text from the server or the network; ``display_url`` is the
    URL as errors may show it.
    """

    def __init__(
        self,
        *,
        sslopt: Optional[Dict[str, Any]],
        redact: Callable[[str], str],
        display_url: str,
    ) -> None:
        # UTF-8 is checked by bytes.decode on the reader thread (websocket-client's own check is
        # pure Python, and its frame reader is not used for reading anyway).
        self._ws = websocket.WebSocket(
            sslopt=sslopt, enable_multithread=True, skip_utf8_validation=True
        )
        self._redact = redact
        self._display_url = display_url
        # Frames are written by BoundedSender, not websocket-client's send(), which waits for
        # room for as long as the socket's timeout says, and that timeout is the reader's.
        self._sender = BoundedSender()

    # --- opening ---------------------------------------------------------------------------------

    def open(
        self,
        url: str,
        timeout: float,
        *,
        headers: Dict[str, str],
        origin: Optional[str],
        secrets: "tuple[str, ...]",
    ) -> None:
        """Do the opening handshake with ``url`` within ``timeout`` seconds in all (TCP, TLS,
        the HTTP upgrade, any redirects followed); a redirect to another host or a weaker
        scheme raises :class:`~blackbox_sync.errors.RedirectRefused` before anything is sent
        there."""
        deadline = time.monotonic() + max(0.0, timeout)
        for _ in range(MAX_REDIRECTS + 1):
            location = self._handshake(url, deadline, timeout, headers, origin)
            if location is None:
                return
            url = redirect_target(url, location, *secrets)
            log.debug("handshake redirected to %s", self._redact(redact_url(url)))
        raise ConnectionClosedError(
            f"WebSocket handshake with {self._display_url}: more than {MAX_REDIRECTS} redirects"
        )

    def _handshake(
        self,
        url: str,
        deadline: float,
        timeout: float,
        headers: Dict[str, str],
        origin: Optional[str],
    ) -> Optional[str]:
        """One opening handshake with ``url``, done by ``deadline``; the ``Location`` it was
        redirected to, or ``None`` once the socket is open."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out(timeout)
        kwargs: Dict[str, Any] = {
            "timeout": remaining,
            "header": headers or None,
            "redirect_limit": 0,  # redirects are judged by redirect_target, not followed blindly
        }
        if origin:
            kwargs["origin"] = origin
        self._ws.handshake_response = None
        failure: Optional[BaseException] = None
        # websocket-client reads the answer a byte at a time and its read timeout starts again
        # at every byte, so a server dripping it would never time out: the watchdog cuts the
        # socket at the deadline instead. (TCP connect and TLS are bounded by the timeout.)
        watchdog = Watchdog(remaining, self.cut)
        try:
            self._ws.connect(url, **kwargs)
        except (OSError, websocket.WebSocketException) as exc:
            failure = exc
        finally:
            fired = watchdog.stop()
        response = self._ws.handshake_response
        # Before 1.9.2, websocket-client counts a redirect it was told not to follow as open.
        redirected = response is not None and response.status in _REDIRECT_STATUSES
        if failure is None and not fired and not redirected:
            return None
        self._ws.shutdown()
        if fired or isinstance(failure, _TIMEOUTS):
            raise self._timed_out(timeout)  # out of time, or connected only as it ran out
        if failure is None or redirected:
            assert response is not None  # no failure and not out of time: redirected
            location = response.headers.get("location")
            if location:
                return str(location)
            raise ConnectionClosedError(
                f"WebSocket handshake with {self._display_url} redirected (HTTP "
                f"{response.status}) without a Location"
            )
        if isinstance(failure, websocket.WebSocketBadStatusException):
            raise HandshakeRefused(
                f"WebSocket handshake with {self._display_url} refused: {self._refusal(failure)}",
                int(failure.status_code),
            )
        raise ConnectionClosedError(f"cannot connect to {self._display_url}: {self.clean(failure)}")

    def _timed_out(self, timeout: float) -> OperationTimeout:
        return OperationTimeout(
            f"WebSocket handshake with {self._display_url} timed out after {timeout:g} s"
        )

    def _refusal(self, exc: "websocket.WebSocketBadStatusException") -> str:
        """The server's refusal (status line and the start of its body), secrets masked."""
        text = f"HTTP {exc.status_code}"
        # The server's reason phrase (websocket-client 1.9.2 and later keep it), else the
        # standard one.
        message = getattr(exc, "status_message", None) or _reason_phrase(int(exc.status_code))
        if message:
            text += f" {message}"
        body = exc.resp_body
        if body:
            raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            # Redact the whole body before cutting it: a secret across the cut would leak.
            body_text = " ".join(self._redact(raw).split())
            if len(body_text) > _REFUSAL_CHARS:
                body_text = body_text[:_REFUSAL_CHARS] + "…"
            text += f": {body_text}"
        return self._redact(text)

    def clean(self, exc: BaseException) -> str:
        """``exc`` as text for an error message, secrets masked."""
        return self._redact(str(exc) or type(exc).__name__)

    # --- the open socket -------------------------------------------------------------------------

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes from the socket; :class:`ReadTimeout` when its timeout ran out,
        :class:`SocketGone` when it failed or the peer closed it."""
        try:
            return bytes(self._ws._recv(size))
        except websocket.WebSocketTimeoutException:
            raise ReadTimeout() from None
        except websocket.WebSocketException as exc:
            raise SocketGone(self.clean(exc)) from None

    def settimeout(self, seconds: Optional[float]) -> None:
        """The socket's read timeout (``None``: wait for ever)."""
        self._ws.settimeout(seconds)

    def write_frame(self, payload: Union[str, bytes], opcode: int, deadline: float) -> None:
        """Write one unfragmented, masked frame by ``deadline``.

        Raises :class:`~blackbox_sync.transport.sender.SendTimeout` when it did not fit in
        time (part of it may have gone out), :class:`SocketGone` when there is no socket.
        """
        sock = self._ws.sock
        if sock is None:
            raise SocketGone("the socket is closed")
        try:
            data = websocket.ABNF.create_frame(payload, opcode).format()
        except websocket.WebSocketException as exc:
            raise SocketGone(self.clean(exc)) from None
        self._sender.send(sock, data, deadline)

    def cut(self) -> None:
        """Shut the TCP connection down both ways (wakes a blocked read), without closing it."""
        sock = self._ws.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def shutdown(self) -> None:
        """Close the socket for good."""
        self._ws.shutdown()


class Watchdog:
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


def _reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""

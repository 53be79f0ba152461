"""Writing whole frames to a socket against a deadline of their own.

The socket's own timeout belongs to the reader thread, which changes it all the time (and sets
``None`` when it has nothing to wake for), so it cannot bound a send: a peer that stops reading
fills the TCP send buffer, and a send must not wait for it for ever.
"""

import errno
import select
import socket
import ssl
import time
from typing import Optional

from blackbox_sync.errors import BlackBoxError

# A plain socket write that never blocks, whatever the socket's timeout mode (not on Windows).
_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)
# One TLS record: after poll() reported room, a write this size does not wait in practice.
_TLS_CHUNK = 16 * 1024


class SendTimeout(BlackBoxError):
    """A frame could not be written before its deadline (part of it may have gone out)."""


class BoundedSender:
    """Writes whole frames against a deadline (used under the connection's send lock only).

    It waits for room with ``poll`` and writes only what fits without blocking: ``MSG_DONTWAIT``
    for plain sockets; TLS takes no flags, so it writes one record's worth after ``poll`` said
    there is room.
    """

    def __init__(self) -> None:
        self._poller: Optional[select.poll] = None
        self._fd = -1

    def send(self, sock: socket.socket, data: bytes, deadline: float) -> None:
        """Write all of ``data`` to ``sock`` by ``deadline``, or raise :class:`SendTimeout`."""
        view = memoryview(data)
        tls = isinstance(sock, ssl.SSLSocket)
        flags = 0 if tls else _DONTWAIT
        chunk = len(view) if flags else _TLS_CHUNK
        sent = 0
        while True:
            # Room first: with a timeout on the socket, Python itself would wait for room for
            # as long as the reader's timeout says, which is not this frame's bound.
            if not self._wait_writable(sock, deadline):
                raise SendTimeout()
            part = view[sent : sent + chunk]
            try:
                sent += sock.send(part, flags) if flags else sock.send(part)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                pass
            if sent >= len(view):
                return
            if time.monotonic() >= deadline:
                raise SendTimeout()

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

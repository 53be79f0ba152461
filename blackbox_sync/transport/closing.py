"""The close handshake's state (RFC 6455 §7): one enum and the one method that moves it.

A connection is ``OPEN`` until it sends its close frame (``CLOSE_SENT``: only the peer's close
frame, or the close deadline, is awaited), or until a send that could not finish cut the socket
under it (``BROKEN``: nothing more can be written, and the loss is reported). It is ``CLOSED``
once its reader has finished, and stays so. Frames may be sent only while ``OPEN``.
"""

import enum
import threading
from typing import Dict, FrozenSet, Optional


class CloseState(enum.Enum):
    """Where a connection is in its close handshake."""

    OPEN = "open"
    CLOSE_SENT = "close_sent"
    BROKEN = "broken"
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value


_MOVES: Dict[CloseState, FrozenSet[CloseState]] = {
    CloseState.OPEN: frozenset({CloseState.CLOSE_SENT, CloseState.BROKEN, CloseState.CLOSED}),
    CloseState.CLOSE_SENT: frozenset({CloseState.BROKEN, CloseState.CLOSED}),
    CloseState.BROKEN: frozenset({CloseState.CLOSED}),
    CloseState.CLOSED: frozenset(),
}
"""The moves allowed from each state; any other is refused (a no-op)."""


class CloseHandshake:
    """A connection's :class:`CloseState`, moved by :meth:`move` from any thread.

    ``deadline`` is when the peer's close frame stops being awaited (set once our close frame
    went out, or was given up on); ``broken_reason`` says why the socket was cut under a send.
    """

    __slots__ = ("_lock", "broken_reason", "deadline", "state")

    def __init__(self) -> None:
        self.state = CloseState.OPEN
        self.deadline: Optional[float] = None
        self.broken_reason: Optional[str] = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<CloseHandshake {self.state}>"

    @property
    def open(self) -> bool:
        """True while frames may be sent."""
        return self.state is CloseState.OPEN

    def move(self, to: CloseState, *, reason: Optional[str] = None) -> bool:
        """Move to ``to`` if that is allowed from the current state; True if it moved.

        A refused move changes nothing, so two threads racing to close (or to break) the same
        connection do it once. ``reason`` is kept for a move to ``BROKEN``.
        """
        with self._lock:
            if to not in _MOVES[self.state]:
                return False
            self.state = to
            if to is CloseState.BROKEN:
                self.broken_reason = reason or "the connection broke"
            return True

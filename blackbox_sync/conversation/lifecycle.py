"""A ``Conversation`` object's life, as its caller drives it: one enum and the one method that
moves it.

``NEW`` until ``connect()``; ``CONNECTING`` while it opens; ``OPEN`` once the service is ready
(a reconnect keeps it ``OPEN``); ``CLOSING`` once ``close()`` (or a failed ``connect()``) began;
``CLOSED`` once ``close()`` returned. What the service said of the conversation itself is its
:class:`~blackbox_sync.Phase` (``connecting``, ``ready``, ``ended``), which the sans-IO state
keeps.
"""

import enum
from typing import Dict, FrozenSet


class Lifecycle(enum.Enum):
    """Where a ``Conversation`` object is in its life (``connect()`` once, ``close()`` once)."""

    NEW = "new"
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value


_MOVES: Dict[Lifecycle, FrozenSet[Lifecycle]] = {
    Lifecycle.NEW: frozenset({Lifecycle.CONNECTING, Lifecycle.CLOSING}),
    Lifecycle.CONNECTING: frozenset({Lifecycle.OPEN, Lifecycle.CLOSING}),
    Lifecycle.OPEN: frozenset({Lifecycle.CLOSING}),
    Lifecycle.CLOSING: frozenset({Lifecycle.CLOSED}),
    Lifecycle.CLOSED: frozenset(),
}
"""The moves allowed from each state; any other is refused."""


def move(current: Lifecycle, to: Lifecycle) -> "tuple[Lifecycle, bool]":
    """The state after asking to go from ``current`` to ``to``, and whether it moved.

    A refused move leaves ``current`` as it was (closing twice closes once; connecting a
    closed or connected conversation is for the caller to refuse).
    """
    if to in _MOVES[current]:
        return to, True
    return current, False


def is_closing(state: Lifecycle) -> bool:
    """True once ``close()`` began (the conversation takes no new work)."""
    return state in (Lifecycle.CLOSING, Lifecycle.CLOSED)

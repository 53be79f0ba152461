"""Faults the emulator injects into a connection: a minimal start, shaped for more to come.

A fault is armed on the emulator and handed to the next connection that opens; the connection
asks each of its faults, after every frame it sends or receives, whether to strike. Seeded,
probabilistic faults (delays, close codes, malformed frames) plug in through the same protocol.
"""

from typing import Protocol

import attrs

DIRECTIONS = ("server", "client", "any")


class ConnectionFault(Protocol):
    """Something that may break a connection after a frame."""

    def should_drop(self, sent: int, received: int) -> bool:
        """True to drop the TCP connection now; ``sent``/``received`` count frames so far."""


@attrs.define
class DropAfter:
    """Drop the TCP connection, with no close frame (the client sees 1006), after ``frames``.

    ``direction`` counts frames the emulator ``"server"`` sent (the default, so ``frames=3``
    drops the connection right after its third frame), ``"client"`` frames it received (dropped
    before acting on the last one), or ``"any"`` of both.
    """

    frames: int
    direction: str = attrs.field(default="server", validator=attrs.validators.in_(DIRECTIONS))

    def should_drop(self, sent: int, received: int) -> bool:
        """See :class:`ConnectionFault`."""
        count = {"server": sent, "client": received, "any": sent + received}[self.direction]
        return count >= self.frames

"""Faults the emulator injects into a connection: a minimal start, shaped for more to come.

A fault is armed on the emulator (``Emulator.arm_fault``). From then on, after every frame a
connection sends or receives, the emulator asks each armed fault whether to strike, giving it the
frames that connection has sent and received since the fault was armed; the first strike spends
the fault. Seeded, probabilistic faults (delays, close codes, malformed frames) can plug in
through the same protocol.
"""

from typing import Protocol

import attrs

DIRECTIONS = ("server", "client", "any")


class ConnectionFault(Protocol):
    """Something that may break a connection after a frame."""

    def should_drop(self, sent: int, received: int) -> bool:
        """True to drop the TCP connection now; ``sent``/``received`` count its frames since the
        fault was armed."""


@attrs.define
class DropAfter:
    """Drop the TCP connection, with no close frame (the client sees 1006), after ``frames``.

    ``direction`` counts frames the emulator sent (``"server"``, the default: ``frames=3`` drops
    the connection right after the third one), frames it received (``"client"``: dropped before
    acting on the last one), or ``"any"`` of both.
    """

    frames: int
    direction: str = attrs.field(default="server", validator=attrs.validators.in_(DIRECTIONS))

    def should_drop(self, sent: int, received: int) -> bool:
        """See :class:`ConnectionFault`."""
        count = {"server": sent, "client": received, "any": sent + received}[self.direction]
        return count >= self.frames

"""The emulator's fault catalogue: what can go wrong on a connection, and when.

Arm a fault on a running (or not yet started) emulator with ``emu.arm_fault(fault)``; it stays
armed until it has fired ``times`` times (``None``: for ever) or is disarmed. Every firing is
recorded (:attr:`Emulator.fault_firings`, a list of :class:`FaultFiring`). Chance and random
delays come from one RNG seeded by ``Emulator(seed=...)``, so a sequential run repeats exactly.

When a fault strikes is its ``when``:

* :data:`HANDSHAKE` -- a TCP connection asked for the WebSocket upgrade, not answered yet;
* :data:`OPEN` -- the upgrade is done and the token accepted, before the first frame is read;
* :class:`On` -- a frame: the ``nth`` (and, while ``times`` allows, every later) frame of
  ``type`` that the emulator is about to send (``direction="server"``) or has just received
  (``"client"``), counted per connection from the moment the fault was armed.

What it does is its class. Faults that end a connection (:class:`Drop`, :class:`Close`,
:class:`Stall`) strike right after a matching server frame went out, or before a matching client
frame is acted on. Faults that change what is sent (:class:`Delay`, :class:`Malform`,
:class:`Oversize`, :class:`Duplicate`, :class:`Reorder`, :class:`Replace`, :class:`Inject`,
:class:`RawBytes`) work on the matching server frame itself.

Only this module's data classes live here (no aiohttp); the emulator applies them through
:mod:`.fault_engine`.
"""

import json
import math
from datetime import datetime
from typing import Any, Dict, Iterable, Optional, Protocol, Tuple, Union, runtime_checkable

import attrs

from blackbox_sync.protocol.codec import format_timestamp, utcnow

DIRECTIONS = ("server", "client", "any")
HANDSHAKE = "handshake"
"""``when``: before the HTTP upgrade is answered."""
OPEN = "open"
"""``when``: after the upgrade (token accepted), before the first client frame is read."""

DOCUMENTED_ERRORS: Tuple[str, ...] = (
    "Missing token",
    "Invalid token",
    "Web integration is not enabled",
    "Origin not allowed",
    "Init message not received",
    "Multiple init messages received",
    "Too large message",
)
"""Every ``error`` frame message the service documents (PROTOCOL.md §7)."""

MALFORMATIONS: Tuple[str, ...] = (
    "invalid_json",
    "not_object",
    "no_type",
    "wrong_type",
    "unknown_type",
    "missing_payload",
    "wrong_payload",
    "binary",
    "invalid_utf8",
    "deep_nesting",
    "nan",
)
"""What :class:`Malform` can do to a frame (``"random"`` picks one with the emulator's RNG)."""


@runtime_checkable
class ConnectionFault(Protocol):
    """The original fault protocol, still accepted by ``arm_fault``: asked after every frame."""

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


# --- when ------------------------------------------------------------------------------------


def _at_least_one(_: object, attribute: "attrs.Attribute[Any]", value: Optional[int]) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value}")


@attrs.frozen
class On:
    """A frame trigger: the ``nth`` frame of ``type`` (``None``: any type) in ``direction``."""

    type: Optional[str] = None
    direction: str = attrs.field(default="server", validator=attrs.validators.in_(DIRECTIONS))
    nth: int = attrs.field(default=1, validator=_at_least_one)

    def matches(self, direction: str, kind: Optional[str]) -> bool:
        """True when a frame going ``direction`` with ``type`` ``kind`` counts for this trigger."""
        return self.direction in (direction, "any") and self.type in (None, kind)


When = Union[str, On]


def _when(value: When) -> When:
    if isinstance(value, On) or value in (HANDSHAKE, OPEN):
        return value
    if isinstance(value, str):  # a bare frame type: its first server frame
        return On(value)
    raise TypeError(f"when must be HANDSHAKE, OPEN, a frame type or On(...), got {value!r}")


# --- random quantities -------------------------------------------------------------------------


class Random(Protocol):
    """The part of :class:`random.Random` a fault uses."""

    def random(self) -> float: ...

    def uniform(self, a: float, b: float) -> float: ...

    def lognormvariate(self, mu: float, sigma: float) -> float: ...

    def choice(self, seq: Any) -> Any: ...


@attrs.frozen
class Uniform:
    """Seconds drawn uniformly from ``[low, high]``."""

    low: float
    high: float

    def sample(self, rng: Random) -> float:
        """One draw."""
        return rng.uniform(self.low, self.high)


@attrs.frozen
class LogNormal:
    """Seconds drawn from a log-normal with this ``median`` and shape ``sigma``, at most ``cap``
    (network latency has a long tail; the cap keeps a test's worst case known)."""

    median: float
    sigma: float = 0.5
    cap: float = 10.0

    def sample(self, rng: Random) -> float:
        """One draw."""
        return min(self.cap, rng.lognormvariate(math.log(self.median), self.sigma))


Seconds = Union[float, Uniform, LogNormal]


def sample_seconds(value: Seconds, rng: Random) -> float:
    """A fixed number of seconds, or one draw of a distribution."""
    return float(value) if isinstance(value, (int, float)) else value.sample(rng)


# --- the catalogue -----------------------------------------------------------------------------


def _probability(_: object, attribute: "attrs.Attribute[Any]", value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1], got {value}")


@attrs.frozen
class Fault:
    """Base of the catalogue. ``times`` firings at most (``None``: unlimited), each eligible
    moment striking with ``probability`` (drawn from the emulator's seeded RNG)."""

    when: When = attrs.field(default=OPEN, converter=_when, kw_only=True)
    times: Optional[int] = attrs.field(default=1, kw_only=True, validator=_at_least_one)
    probability: float = attrs.field(default=1.0, kw_only=True, validator=_probability)

    ENDS_CONNECTION = False
    """True for faults after which the emulator says nothing more on the connection."""


@attrs.frozen
class Refuse(Fault):
    """Answer the upgrade request with HTTP ``status`` instead of a WebSocket; ``status=None``
    cuts the TCP connection without any answer. Only at :data:`HANDSHAKE`."""

    status: Optional[int] = 503
    when: When = attrs.field(default=HANDSHAKE, converter=_when, kw_only=True)
    ENDS_CONNECTION = True


@attrs.frozen
class Drop(Fault):
    """Cut the TCP connection with no close frame (the client sees 1006)."""

    ENDS_CONNECTION = True


@attrs.frozen
class Close(Fault):
    """Close the WebSocket with ``code`` and ``reason`` (1006 cannot be sent: it drops)."""

    code: int = 1000
    reason: str = ""
    ENDS_CONNECTION = True


@attrs.frozen
class Stall(Fault):
    """From ``when`` on, answer nothing: no frame, no pong, no close frame. The TCP connection
    stays up, as with a peer that vanished behind a middlebox (half-open). At
    :data:`HANDSHAKE`, the upgrade request itself is never answered."""

    ENDS_CONNECTION = True


@attrs.frozen
class Delay(Fault):
    """Wait ``seconds`` (a number, :class:`Uniform` or :class:`LogNormal`) before the matching
    frame is sent (or, for a client frame, acted on), or before answering the handshake.

    ``Delay(2, when="text")`` delays the first text; ``Delay(0.2, when=On("text", nth=2),
    times=None)`` every chunk after the first; ``Delay(1, when="websocketToolRequest")`` a tool
    request; ``Delay(1, when=HANDSHAKE)`` the upgrade."""

    seconds: Seconds = 1.0
    when: When = attrs.field(default=On("text"), converter=_when, kw_only=True)


@attrs.frozen
class Malform(Fault):
    """Send the matching frame broken in one of the :data:`MALFORMATIONS` ways (or
    ``"random"``)."""

    how: str = attrs.field(
        default="random", validator=attrs.validators.in_((*MALFORMATIONS, "random"))
    )
    when: When = attrs.field(default=On("text"), converter=_when, kw_only=True)


@attrs.frozen
class Oversize(Fault):
    """Pad the matching frame (its text, else an extra field) to ``size`` UTF-8 bytes."""

    size: int = 16 * 1024 * 1024
    when: When = attrs.field(default=On("text"), converter=_when, kw_only=True)


@attrs.frozen
class Duplicate(Fault):
    """Send the matching frame ``copies`` more times, right after it."""

    copies: int = 1
    when: When = attrs.field(default=On("text"), converter=_when, kw_only=True)


@attrs.frozen
class Reorder(Fault):
    """Hold the matching frame back and send it right after the next frame (whatever that is);
    a frame still held when the connection ends is never sent."""

    when: When = attrs.field(default=On("text"), converter=_when, kw_only=True)


@attrs.frozen
class Replace(Fault):
    """Send ``frame`` (a dict as JSON, text as is, bytes as a binary frame) instead."""

    frame: Any = None
    when: When = attrs.field(default=On("text"), converter=_when, kw_only=True)


def _frames(value: Iterable[Any]) -> Tuple[Any, ...]:
    return tuple(value)


@attrs.frozen
class Inject(Fault):
    """Send extra ``frames`` right after the matching frame (``before=True``: right before it).

    At :data:`OPEN` or on a client frame they go out at that moment."""

    frames: Tuple[Any, ...] = attrs.field(default=(), converter=_frames)
    before: bool = attrs.field(default=False, kw_only=True)
    when: When = attrs.field(default=On("event"), converter=_when, kw_only=True)


@attrs.frozen
class RawBytes(Fault):
    """Write ``data`` to the TCP stream as it is (hand-made WebSocket frames, see
    :func:`ws_frame`) right after the matching frame, below aiohttp's framing."""

    data: bytes = b""
    when: When = attrs.field(default=On("event"), converter=_when, kw_only=True)


@attrs.frozen
class ErrorFrame(Fault):
    """Send an ``error`` frame with ``message`` (one of :data:`DOCUMENTED_ERRORS`, or any), then
    close with ``close_code`` when given (as the service does for the token errors: 1008)."""

    message: str = "Invalid token"
    close_code: Optional[int] = None
    when: When = attrs.field(default=On("event"), converter=_when, kw_only=True)


@attrs.frozen
class FailedOpen(Fault):
    """Send ``event failedOpen`` (``data.reason``) instead of the ``connection`` event, then close
    with ``close_code`` (``None``: leave the socket open)."""

    reason: str = "agent is not available"
    close_code: Optional[int] = 1000
    when: When = attrs.field(default=On("event"), converter=_when, kw_only=True)


@attrs.frozen
class FaultFiring:
    """One strike of an armed fault, as the emulator recorded it."""

    fault: Any
    """The fault object (its ``repr`` says exactly what was armed)."""
    kind: str
    """The fault's class name, e.g. ``"Drop"``."""
    connection_id: int
    record_id: Optional[str]
    frame_type: Optional[str]
    """The type of the frame it struck at (``None`` at the handshake or open)."""
    detail: str = ""
    at: datetime = attrs.field(factory=utcnow)


# --- helpers for hand-made frames ----------------------------------------------------------------


def ws_frame(
    payload: bytes,
    opcode: int = 0x1,
    *,
    fin: bool = True,
    rsv: int = 0,
    length: Optional[int] = None,
) -> bytes:
    """One unmasked server WebSocket frame, with any header bits (for wire-level junk).

    ``length`` overrides the declared payload length (a lie, when it differs)."""
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    if size < 126:
        header = bytes([first, size])
    elif size < 65536:
        header = bytes([first, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first, 127]) + size.to_bytes(8, "big")
    return header + payload


def frame_dict(kind: str, **fields: Any) -> Dict[str, Any]:
    """A server frame as the service shapes it: ``type``, ``timestamp``, ``channelId: null``."""
    return {"type": kind, "timestamp": format_timestamp(utcnow()), "channelId": None, **fields}


def error_frame(message: str) -> str:
    """An ``error`` frame's JSON text."""
    return json.dumps(frame_dict("error", data={"message": message}))


def close_before_init(code: int = 1011, reason: str = "", **options: Any) -> Close:
    """Close right after the upgrade, before ``initialize`` is read."""
    return Close(code=code, reason=reason, when=OPEN, **options)


def close_after_init(
    code: int = 1011, reason: str = "", *, before_connection: bool = True, **options: Any
) -> Close:
    """Close once ``initialize`` arrived: before the ``connection`` event (default) or after."""
    when = On("initialize", "client") if before_connection else On("event")
    return Close(code=code, reason=reason, when=when, **options)

"""What the emulator remembers: frames, conversations, tool calls and the tokens it accepts.

Plain attrs records. The emulator mutates them on its loop thread while holding its lock and hands
out copies (:meth:`ConversationRecord.snapshot`), so a test thread never sees a half-written
record. Secrets (tokens) are kept out of every ``repr``.
"""

import json
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

import attrs

from blackbox_sync.protocol.codec import utcnow

RUNNING = "Running"
COMPLETED = "Completed"
FAILED = "Failed"


@attrs.frozen(eq=False)
class FrameRecord(Mapping[str, Any]):
    """One WebSocket frame as it crossed the wire; reads like the decoded frame itself.

    ``frame["type"]``, ``frame.get("content")`` and ``frame == {...}`` work on the decoded JSON
    object (empty when the frame was not a JSON object), and the attributes say where it
    belongs. ``data`` is the decoded JSON value (``None`` when not JSON); ``text`` is the
    payload exactly as sent (``bytes`` for a binary frame).
    """

    direction: str
    """``"client"`` (received by the emulator) or ``"server"`` (sent by it)."""
    connection_id: int
    record_id: Optional[str]
    """The conversation the frame belongs to; ``None`` before a valid ``initialize``."""
    type: Optional[str]
    data: Any
    text: Any = attrs.field(repr=False)
    at: datetime = attrs.field(factory=utcnow)

    def _object(self) -> Dict[str, Any]:
        return self.data if isinstance(self.data, dict) else {}

    def __getitem__(self, key: str) -> Any:
        return self._object()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._object())

    def __len__(self) -> int:
        return len(self._object())


@attrs.define
class ToolCallRecord:
    """One ``websocketToolRequest`` the agent sent and what came back."""

    id: str
    tool_name: str
    args: Any
    result: Any = None
    answered: bool = False
    timed_out: bool = False


@attrs.define
class ConversationRecord:
    """One conversation (one WebSocket after a valid ``initialize``), as the emulator saw it.

    ``status`` is ``"Running"`` until the conversation ends, then ``"Completed"`` or ``"Failed"``.
    ``ended_by`` says who ended it: ``client_terminate``, ``agent``, ``client_disconnect``,
    ``protocol_error``, ``connection_dropped`` (a fault) or ``server_shutdown``. ``finished`` turns
    true once the socket is closed too and every field is final.
    """

    record_id: str
    token: Optional[str] = attrs.field(repr=False)
    agent_id: Optional[str]
    call_type: str
    additional_data: Dict[str, Any] = attrs.field(factory=dict)
    endpoint: Optional[str] = None
    dev: bool = False
    """True for a conversation opened on the dev endpoint (API key, ``devRequest``)."""
    integration_id: Optional[str] = None
    started_at: datetime = attrs.field(factory=utcnow)
    ended_at: Optional[datetime] = None
    status: str = RUNNING
    ended_by: Optional[str] = None
    error_message: Optional[str] = None
    close_code: Optional[int] = None
    finished: bool = False
    transcript: List[Tuple[str, str]] = attrs.field(factory=list)
    """``(speaker, text)`` pairs: ``"user"`` messages and final ``"assistant"`` texts."""
    tool_calls: List[ToolCallRecord] = attrs.field(factory=list)
    client_frames: List[FrameRecord] = attrs.field(factory=list, repr=False)
    server_frames: List[FrameRecord] = attrs.field(factory=list, repr=False)
    errors: List[str] = attrs.field(factory=list)
    """Problems inside the emulator during this conversation (for example an agent callback that
    raised); empty in a healthy run."""

    @property
    def duration(self) -> Optional[float]:
        """Seconds from start to end, once ended."""
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def snapshot(self) -> "ConversationRecord":
        """A copy whose lists the emulator will not touch again."""
        return attrs.evolve(
            self,
            additional_data=dict(self.additional_data),
            transcript=list(self.transcript),
            tool_calls=[attrs.evolve(t) for t in self.tool_calls],
            client_frames=list(self.client_frames),
            server_frames=list(self.server_frames),
            errors=list(self.errors),
        )


def _origins(value: Optional[Iterable[str]]) -> Optional[Tuple[str, ...]]:
    if isinstance(value, str):  # one origin given bare would otherwise become its characters
        return (value,)
    return None if value is None else tuple(value)


@attrs.define
class TokenGrant:
    """A web-integration token the production endpoint accepts, and what its integration allows.

    ``origins`` ``None`` means no origin check; otherwise the handshake's ``Origin`` header must
    match one entry (exact, or ``scheme://*.domain`` for any subdomain, PROTOCOL.md §1).
    """

    token: str = attrs.field(repr=False)
    agent_id: Optional[str] = None
    enabled: bool = True
    origins: Optional[Tuple[str, ...]] = attrs.field(default=None, converter=_origins)
    integration_id: Optional[str] = None
    expires_at: Optional[datetime] = None

    def expired(self, now: Optional[datetime] = None) -> bool:
        """True once ``expires_at`` has passed."""
        if self.expires_at is None:
            return False
        expires = self.expires_at
        if expires.tzinfo is None:  # a naive time is taken as UTC, like the wire's timestamps
            expires = expires.replace(tzinfo=timezone.utc)
        return (now or utcnow()) >= expires


def parse_frame(payload: Union[str, bytes]) -> Tuple[Any, Optional[str]]:
    """The JSON value of a frame (``None`` if not JSON) and its ``type`` (``None`` if unusable)."""
    if isinstance(payload, (bytes, bytearray)):
        return None, None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None, None
    kind = data.get("type") if isinstance(data, dict) else None
    return data, kind if isinstance(kind, str) else None

"""Typed frames of the BlackBox WebSocket protocol (PROTOCOL.md §2–4): layer 1, pure, no I/O.

:func:`decode` turns a frame into a :class:`Message` or raises :class:`~.errors.ProtocolError`
with the payload kept; :func:`encode` writes a message as the live service expects it (a UTC
``timestamp`` and ``"channelId": null`` on every frame).
"""

import json
from datetime import datetime
from typing import Any, Callable, ClassVar, Dict, Mapping, Optional, Tuple, Type, Union

import attrs

from blackbox_sync.errors import ProtocolError
from blackbox_sync.protocol.codec import (
    KEEP_NONE,
    LENIENT,
    LooseStr,
    converter,
    format_timestamp,
    parse_timestamp,
    utcnow,
)

Wire = Mapping[str, Union[str, Tuple[str, ...]]]

PARTIAL_TEXT_KIND = "potential"
"""``content.type`` of a streaming text that is not final yet (older docs)."""


@attrs.define
class Message:
    """Fields every frame has. ``raw`` is the decoded JSON object as it arrived."""

    TYPE: ClassVar[str] = ""
    LOCAL: ClassVar[bool] = False
    """True for events the library makes itself; they are never sent or decoded."""
    __wire__: ClassVar[Wire] = {}

    # The envelope is never a reason to drop a frame: a bad timestamp or channelId reads as None.
    timestamp: Optional[datetime] = attrs.field(
        default=None, kw_only=True, metadata={LENIENT: True}
    )
    channel_id: Optional[str] = attrs.field(
        default=None, kw_only=True, metadata={KEEP_NONE: True, LENIENT: True}
    )
    raw: Dict[str, Any] = attrs.field(factory=dict, kw_only=True, eq=False, repr=False)


# --- client → server -------------------------------------------------------------------------


@attrs.define
class InitRequest:
    """The ``request`` of ``initialize``: what kind of conversation to start."""

    call_type: str = "chat"
    additional_data: Optional[Dict[str, Any]] = None
    endpoint: Optional[str] = None


@attrs.define
class Initialize(Message):
    """The first client frame, sent once; ``dev_request`` replaces ``request`` on /ws/dev."""

    TYPE = "initialize"
    request: Optional[InitRequest] = None
    dev_request: Optional[Dict[str, Any]] = None


@attrs.define
class IncomingChatMessage(Message):
    """A user chat message; ``content`` must be a plain string (else the service closes 1007)."""

    TYPE = "incomingChatMessage"
    content: str


@attrs.define
class ToolResponse(Message):
    """The answer to a :class:`ToolRequest` (wire type ``websocketToolResponse``)."""

    TYPE = "websocketToolResponse"
    __wire__: ClassVar[Wire] = {"id": "content.id", "result": "content.result"}
    id: str
    result: Any


@attrs.define
class SdpAnswer(Message):
    """The client's WebRTC answer to an :class:`SdpInvite`."""

    TYPE = "sdpAnswer"
    __wire__: ClassVar[Wire] = {"sdp": "data.sdpAnswer"}
    sdp: str


@attrs.define
class Terminate(Message):
    """Asks the service to end the conversation; it answers with :class:`ConversationResult`."""

    TYPE = "terminate"


# --- server → client -------------------------------------------------------------------------


@attrs.define
class Event(Message):
    """A lifecycle event: ``connection``, ``opened``, ``closed``, ``failedOpen`` or a new name."""

    TYPE = "event"
    name: LooseStr
    data: Dict[str, Any] = attrs.field(factory=dict)

    @property
    def record_id(self) -> Optional[str]:
        """The conversation's id from ``data.recordId``, or ``data.jobId`` as some regions send."""
        value = self.data.get("recordId", self.data.get("jobId"))
        return None if value is None else str(value)


@attrs.define
class TextMessage(Message):
    """An utterance: the agent's (``source="assistant"``) or the echo of the user's own."""

    TYPE = "text"
    __wire__: ClassVar[Wire] = {
        "source": "content.source",
        "text": "content.text",
        "kind": "content.type",
    }
    source: LooseStr
    text: str
    kind: Optional[LooseStr] = None
    """``content.type`` as sent; ``"potential"`` marks a partial, streaming text."""

    @property
    def partial(self) -> bool:
        """True for a streaming text that a final one will replace."""
        return self.kind == PARTIAL_TEXT_KIND

    @property
    def from_assistant(self) -> bool:
        """True when the agent said it (not the echo of the user's message)."""
        return self.source == "assistant"


@attrs.define
class ToolRequest(Message):
    """The agent asks this client to run tool ``tool_name`` (wire type ``websocketToolRequest``).

    ``args`` is whatever the service sent; the tool runner checks that it is an object.
    """

    TYPE = "websocketToolRequest"
    __wire__: ClassVar[Wire] = {
        "id": "content.id",
        "tool_name": "content.toolName",
        "args": "content.args",
    }
    id: str
    tool_name: str
    args: Any = attrs.field(factory=dict)


@attrs.define
class ToolCall(Message):
    """Informational: the agent called a tool (any kind). Never executed by the client."""

    TYPE = "toolCall"
    __wire__: ClassVar[Wire] = {
        "id": ("content.id", "data.id"),
        "tool_name": ("content.toolName", "content.name", "data.toolName", "data.name"),
        "args": ("content.args", "content.arguments", "data.args", "data.arguments"),
    }
    id: Optional[LooseStr] = None
    tool_name: Optional[LooseStr] = None
    args: Any = None


@attrs.define
class ToolCallResult(Message):
    """The service's acknowledgement after a tool ran (shape undocumented; see ``raw``)."""

    TYPE = "toolCallResult"
    __wire__: ClassVar[Wire] = {
        "id": ("content.id", "data.id"),
        "tool_name": ("content.toolName", "content.name", "data.toolName", "data.name"),
        "result": ("content.result", "data.result"),
    }
    id: Optional[LooseStr] = None
    tool_name: Optional[LooseStr] = None
    result: Any = None


@attrs.define
class SdpInvite(Message):
    """The service's WebRTC offer for a ``webCall`` (``data.invite``, or ``data.sdpOffer``)."""

    TYPE = "sdpInvite"
    __wire__: ClassVar[Wire] = {"sdp": ("data.invite", "data.sdpOffer")}
    sdp: str


@attrs.define
class ConversationResult(Message):
    """The final summary. Its shape is undocumented, so every field is optional; see ``raw``.

    ``result`` is the payload object, whichever of ``result``, ``content`` or ``data`` held it.
    """

    TYPE = "conversationResult"
    __wire__: ClassVar[Wire] = {
        "status": ("result.status", "content.status", "data.status"),
        "error_message": ("result.errorMessage", "content.errorMessage", "data.errorMessage"),
        "summary": (
            "content.summary",
            "content.transcript.summary",
            "result.summary",
            "data.summary",
        ),
        "result": ("result", "content", "data"),
    }
    # A result must always come through: a field of an odd shape (an object where text was
    # expected) reads as None, and ``raw`` keeps it as sent.
    status: Optional[LooseStr] = attrs.field(default=None, metadata={LENIENT: True})
    error_message: Optional[LooseStr] = attrs.field(default=None, metadata={LENIENT: True})
    summary: Any = None
    result: Any = None


@attrs.define
class ErrorMessage(Message):
    """An ``error`` frame; ``message`` is ``data.message`` (see PROTOCOL.md §7)."""

    TYPE = "error"
    __wire__: ClassVar[Wire] = {"message": "data.message"}
    message: LooseStr = LooseStr("")

    @property
    def data(self) -> Dict[str, Any]:
        """The frame's whole ``data`` object."""
        data = self.raw.get("data")
        return data if isinstance(data, dict) else {}


@attrs.define
class Reconnected(Message):
    """A local event, never on the wire: the connection dropped and the reconnect policy opened
    a NEW conversation (``record_id``); nothing of the old one (``previous_record_id``) carries
    over. Subscribe with ``conv.on("reconnected", fn)`` or ``conv.on(Reconnected, fn)``."""

    TYPE = "reconnected"
    LOCAL = True
    attempt: int = 1
    previous_record_id: Optional[str] = None
    record_id: Optional[str] = None


@attrs.define
class UnknownMessage(Message):
    """A frame whose ``type`` this version does not know; delivered with its raw dict."""

    type: str = ""


CLIENT_MESSAGES: Tuple[Type[Message], ...] = (
    Initialize,
    IncomingChatMessage,
    ToolResponse,
    SdpAnswer,
    Terminate,
)
SERVER_MESSAGES: Tuple[Type[Message], ...] = (
    Event,
    TextMessage,
    ToolRequest,
    ToolCall,
    ToolCallResult,
    SdpInvite,
    ConversationResult,
    ErrorMessage,
)
MESSAGE_TYPES: Dict[str, Type[Message]] = {
    cls.TYPE: cls for cls in CLIENT_MESSAGES + SERVER_MESSAGES
}


def decode(payload: Union[str, bytes]) -> Message:
    """Parse one frame. Raises :class:`ProtocolError` (payload kept) for anything malformed."""
    if isinstance(payload, (bytes, bytearray)):
        raise ProtocolError("binary frame where JSON text was expected", bytes(payload))
    try:
        frame = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"frame is not JSON: {exc}", payload) from None
    return decode_object(frame, payload)


def decode_object(frame: Any, payload: Union[str, bytes, None] = None) -> Message:
    """Build a message from an already parsed JSON value (see :func:`decode`)."""
    if not isinstance(frame, dict):
        raise ProtocolError(f"frame is a JSON {type(frame).__name__}, not an object", payload)
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("frame has no string 'type'", payload)
    cls = MESSAGE_TYPES.get(kind)
    if cls is None:
        return UnknownMessage(
            type=kind, timestamp=parse_timestamp(frame.get("timestamp")), raw=frame
        )
    try:
        message = _structure_hook(cls)(frame, cls)
    except Exception as exc:
        raise ProtocolError(f"malformed {kind!r} frame: {_reason(exc)}", payload) from None
    message.raw = frame
    return message


_HOOKS: Dict[Type[Message], Callable[[Any, Any], Message]] = {}


def _structure_hook(cls: Type[Message]) -> Callable[[Any, Any], Message]:
    # Looked up once per class: cattrs' dispatch per frame is measurable on the reader's hot path.
    hook = _HOOKS.get(cls)
    if hook is None:
        hook = _HOOKS[cls] = converter.get_structure_hook(cls)
    return hook


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


def to_wire(message: Message) -> Dict[str, Any]:
    """The JSON object for ``message``, with its ``type``, a timestamp and ``channelId``."""
    if not message.TYPE or message.LOCAL:
        raise TypeError(f"{type(message).__name__} cannot be sent; send its raw dict instead")
    body: Dict[str, Any] = converter.unstructure(message)
    body["timestamp"] = format_timestamp(message.timestamp or utcnow())
    return {"type": message.TYPE, **body}


def encode(message: Message, *, ascii_only: bool = False) -> str:
    """The JSON text frame for ``message``. With ``ascii_only`` every non-ASCII character is
    written as a ``\\u`` escape, which also carries a lone surrogate (as the service may have
    sent one) that UTF-8 cannot."""
    return json.dumps(to_wire(message), ensure_ascii=ascii_only, separators=(",", ":"))

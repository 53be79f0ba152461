"""What a completed agent turn looks like to the caller of ``ask()``."""

import enum
from typing import List, Optional

import attrs

from blackbox_sync.protocol.messages import ConversationResult, Message, TextMessage, ToolRequest


class TurnEnd(str, enum.Enum):
    """Why a turn counted as complete. The value is what reports print."""

    QUIET = "quiet"
    """No new agent activity for the quiet period after the last final assistant text."""
    CONVERSATION_RESULT = "conversation_result"
    """The service sent ``conversationResult``: the conversation is over."""
    CLOSED_EVENT = "closed_event"
    """The service sent ``event closed``: the conversation is over."""
    ERROR = "error"
    """The service sent an ``error`` frame (``ask()`` raises :class:`~.errors.ServerError`)."""
    SOCKET_CLOSED = "socket_closed"
    """The socket closed without a result (``ask()`` raises ``ConnectionClosedError``)."""

    def __str__(self) -> str:
        return self.value


@attrs.define
class Reply:
    """One agent turn.

    ``text`` joins the final assistant texts, leaving fillers and partial texts out; ``messages``
    holds every frame of the turn in arrival order, fillers and partials included.
    """

    text: str
    texts: List[str]
    messages: List[Message]
    tool_requests: List[ToolRequest]
    reason: TurnEnd
    latency: Optional[float]
    """Seconds from sending the user's message to the agent's first text of any kind."""
    duration: float
    """Seconds from the start of the turn until it counted as complete."""
    result: Optional[ConversationResult] = None
    """Set when the conversation ended during this turn."""

    @property
    def ended(self) -> bool:
        """True when the conversation ended during this turn."""
        return self.reason in (TurnEnd.CONVERSATION_RESULT, TurnEnd.CLOSED_EVENT)

    def __str__(self) -> str:
        return self.text


class Transcript(List[TextMessage]):
    """The texts of a conversation, in order (``Conversation.transcript``)."""

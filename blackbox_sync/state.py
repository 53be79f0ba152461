"""The sans-IO conversation core (layer 2): frames and time in, phase and turns out.

Nothing here touches a socket, a thread or the wall clock: callers pass ``now`` (a monotonic
reading in seconds), so every rule is a deterministic function, tested with a fake clock.

The end-of-turn rule (PROTOCOL.md §5). No frame marks the end of an agent's reply, so a turn is
complete when one of these happens, checked in this order:

1. the conversation ended (``conversationResult``, ``event closed``), an ``error`` frame arrived,
   or the socket closed;
2. the turn has at least one final assistant text, no tool request is waiting for this client's
   answer, and nothing counted as activity happened for ``quiet_period`` seconds.

When the service echoes the user's message (a ``text`` frame with ``source: "user"``), agent
texts that arrived before the echo belong to the previous turn (a greeting still streaming in) and
are dropped from this reply. Without an echo nothing is dropped.

Activity is a final, non-filler assistant text, a tool request, the client's tool answer, and the
service's ``toolCall``/``toolCallResult``. Filler texts (``"um"``) and partial texts are kept in
the turn's messages but are neither reply text nor activity: a filler alone never completes a turn
and never holds one open.
"""

import collections
import enum
from typing import Any, Deque, Iterable, List, Optional, Set, Tuple, TypeVar

import attrs

from .convert import LooseStr
from .messages import (
    ConversationResult,
    ErrorMessage,
    Event,
    Message,
    TextMessage,
    ToolCall,
    ToolCallResult,
    ToolRequest,
)
from .reply import Reply, TurnEnd


class Phase(str, enum.Enum):
    """Where a conversation is in its life."""

    CONNECTING = "connecting"
    READY = "ready"
    ENDED = "ended"

    def __str__(self) -> str:
        return self.value


READY_EVENTS = frozenset({"connection", "opened"})

DEFAULT_MAX_HISTORY = 10_000
"""How many frames the history, and each turn, keep by default (the oldest are dropped)."""


def _normalise_fillers(fillers: Iterable[str]) -> Tuple[str, ...]:
    return tuple(sorted({f.strip().casefold() for f in fillers}))


@attrs.frozen
class TurnRule:
    """How ``ask()`` decides that the agent has finished its reply."""

    quiet_period: float = 1.5
    """Seconds of quiet after the last agent activity before a turn counts as complete."""
    fillers: Tuple[str, ...] = attrs.field(default=("um",), converter=_normalise_fillers)
    """Assistant texts that are only fillers, compared without case or surrounding space."""

    def __attrs_post_init__(self) -> None:
        if self.quiet_period < 0:
            raise ValueError("quiet_period must not be negative")

    def is_filler(self, text: str) -> bool:
        """True when ``text`` is one of the configured fillers."""
        return text.strip().casefold() in self.fillers


T = TypeVar("T")


def _bounded(limit: int) -> "collections.deque[Any]":
    return collections.deque(maxlen=limit)


@attrs.define
class Turn:
    """The agent activity since the last user message (or since the conversation opened).

    Its messages, texts and tool requests keep the last ``limit`` of each (see :meth:`add`), so
    a service that floods one turn cannot grow it without bound.
    """

    started_at: float
    messages: List[Message] = attrs.field(factory=list)
    texts: List[str] = attrs.field(factory=list)
    tool_requests: List[ToolRequest] = attrs.field(factory=list)
    pending_tools: Set[str] = attrs.field(factory=set)
    first_text_at: Optional[float] = None
    last_activity: Optional[float] = None
    user_text: Optional[str] = None
    """The user's message that opened this turn (``None`` for the opening turn)."""
    echo_seen: bool = False
    limit: int = DEFAULT_MAX_HISTORY

    def add(self, items: "List[T]", item: "T") -> None:
        """Append ``item`` to one of this turn's lists, dropping its oldest entry at the limit.

        Lists, not deques, so that a turn compares and slices like before; dropping one entry
        moves at most ``limit`` pointers, and only in a turn that big.
        """
        items.append(item)
        if len(items) > self.limit:
            del items[0]


@attrs.define
class ConversationState:
    """Everything known about one conversation, updated by :meth:`receive` and friends."""

    rule: TurnRule = attrs.field(factory=TurnRule)
    max_history: int = DEFAULT_MAX_HISTORY
    """How many frames :attr:`history` (and each turn) keeps; the oldest are dropped."""
    phase: Phase = Phase.CONNECTING
    history: Deque[Message] = attrs.field(
        default=attrs.Factory(lambda self: _bounded(self.max_history), takes_self=True)
    )
    """Every frame received and sent, in order (the last ``max_history`` of them)."""
    record_id: Optional[str] = None
    result: Optional[ConversationResult] = None
    error: Optional[ErrorMessage] = None
    """The latest ``error`` frame."""
    close_code: Optional[int] = None
    close_reason: str = ""
    socket_closed: bool = False
    answered_tools: Set[str] = attrs.field(factory=set)
    """Ids of the tool requests this client has answered."""
    closed_event: bool = False
    """True once ``event closed`` arrived."""
    turn: Turn = attrs.field(
        default=attrs.Factory(
            lambda self: Turn(started_at=0.0, limit=self.max_history), takes_self=True
        )
    )
    _end: Optional[TurnEnd] = None

    # --- inputs ----------------------------------------------------------------------------------

    def receive(self, message: Message, now: float) -> None:
        """Take in one decoded frame from the service."""
        self.history.append(message)
        turn = self.turn
        turn.add(turn.messages, message)
        if isinstance(message, Event):
            self._on_event(message, now)
        elif isinstance(message, TextMessage):
            self._mark_ready(now)
            if self._is_echo(message):
                self._drop_previous_turn_tail(message)
            elif message.from_assistant:
                if turn.first_text_at is None:
                    turn.first_text_at = now
                if not message.partial and not self.rule.is_filler(message.text):
                    turn.add(turn.texts, message.text)
                    turn.last_activity = now
        elif isinstance(message, ToolRequest):
            self._mark_ready(now)
            turn.add(turn.tool_requests, message)
            if message.id not in self.answered_tools:  # a repeated request is answered once
                turn.pending_tools.add(message.id)
            turn.last_activity = now
        elif isinstance(message, (ToolCall, ToolCallResult)):
            turn.last_activity = now
        elif isinstance(message, ConversationResult):
            self.result = message
            self._finish(TurnEnd.CONVERSATION_RESULT)
        elif isinstance(message, ErrorMessage):
            self.error = message
            if self._end is None:
                self._end = TurnEnd.ERROR

    def sent(self, message: Message) -> None:
        """Record a frame this client sent (it joins the history, not the agent's turn)."""
        self.history.append(message)

    def begin_turn(self, now: float, user_text: Optional[str] = None) -> None:
        """Start a new agent turn: called just before the user's message ``user_text`` goes out."""
        self.turn = Turn(started_at=now, user_text=user_text, limit=self.max_history)
        if self._end is TurnEnd.ERROR:
            self._end = None

    def tool_answered(self, request_id: str, now: float) -> None:
        """The client answered tool request ``request_id``."""
        self.answered_tools.add(request_id)
        if request_id in self.turn.pending_tools:
            self.turn.pending_tools.discard(request_id)
            self.turn.last_activity = now

    def closed(self, code: Optional[int], reason: str) -> None:
        """The socket is closed; ``code`` is ``None`` when it dropped without a close frame."""
        self.socket_closed = True
        self.close_code = code
        self.close_reason = reason
        self.phase = Phase.ENDED
        if self._end is None:
            self._end = TurnEnd.SOCKET_CLOSED

    # --- outputs ---------------------------------------------------------------------------------

    @property
    def ended_normally(self) -> bool:
        """True once the service said the conversation is over (result or ``closed`` event)."""
        return self.result is not None or self.closed_event

    def turn_end(self, now: float, quiet_period: Optional[float] = None) -> Optional[TurnEnd]:
        """Why the current turn is complete at ``now``, or ``None`` while it is not."""
        if self._end is not None:
            return self._end
        turn = self.turn
        if not turn.texts or turn.pending_tools or turn.last_activity is None:
            return None
        quiet = self.rule.quiet_period if quiet_period is None else quiet_period
        return TurnEnd.QUIET if now - turn.last_activity >= quiet else None

    def wake_at(self, quiet_period: Optional[float] = None) -> Optional[float]:
        """When the turn completes if nothing else arrives (``None``: only a frame can end it)."""
        turn = self.turn
        if self._end is not None:
            return turn.started_at
        if not turn.texts or turn.pending_tools or turn.last_activity is None:
            return None
        quiet = self.rule.quiet_period if quiet_period is None else quiet_period
        return turn.last_activity + quiet

    def reply(self, now: float, reason: TurnEnd) -> Reply:
        """The current turn as a :class:`Reply` (the turn itself is left as it is)."""
        turn = self.turn
        return Reply(
            text=" ".join(t.strip() for t in turn.texts if t.strip()),
            texts=list(turn.texts),
            messages=list(turn.messages),
            tool_requests=list(turn.tool_requests),
            reason=reason,
            latency=None if turn.first_text_at is None else turn.first_text_at - turn.started_at,
            duration=now - turn.started_at,
            result=self.result if reason is TurnEnd.CONVERSATION_RESULT else None,
        )

    # --- rules -----------------------------------------------------------------------------------

    def _on_event(self, event: Event, now: float) -> None:
        if event.name in READY_EVENTS:
            self.record_id = event.record_id or self.record_id
            self._mark_ready(now)
        elif event.name == "closed":
            self.closed_event = True
            self._finish(TurnEnd.CLOSED_EVENT)
        elif event.name == "failedOpen":
            self.phase = Phase.ENDED
            self._end = self._end or TurnEnd.ERROR
            if self.error is None:
                reason = event.data.get("reason") or event.data.get("message") or "failedOpen"
                self.error = ErrorMessage(
                    message=LooseStr(f"conversation failed to open: {reason}"),
                    raw={"data": event.data},
                )

    def _mark_ready(self, now: float) -> None:
        if self.phase is Phase.CONNECTING:
            self.phase = Phase.READY
            if self.turn.user_text is None:
                self.turn.started_at = now  # the opening turn (a greeting) is timed from here

    def _is_echo(self, message: TextMessage) -> bool:
        turn = self.turn
        return (
            message.source == "user"
            and not turn.echo_seen
            and turn.user_text is not None
            and message.text.strip() == turn.user_text.strip()
        )

    def _drop_previous_turn_tail(self, echo: TextMessage) -> None:
        # The service echoes the user's message before answering it. Agent texts that arrived
        # between our send and the echo finish the previous turn (a greeting still streaming in,
        # say), so they are not part of this reply. Pending tool requests still hold the turn.
        turn = self.turn
        turn.echo_seen = True
        if turn.texts or turn.first_text_at is not None:
            turn.messages = [m for m in turn.messages if isinstance(m, ToolRequest)] + [echo]
            turn.texts = []
            turn.first_text_at = None
            turn.last_activity = None if not turn.pending_tools else turn.last_activity

    def _finish(self, reason: TurnEnd) -> None:
        self.phase = Phase.ENDED
        if self._end is None:
            self._end = reason

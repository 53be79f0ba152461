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
import hashlib
from typing import Any, Deque, Dict, Hashable, Iterable, List, Optional, Set, Tuple

import attrs

from blackbox_sync.protocol.codec import LooseStr
from blackbox_sync.protocol.messages import (
    ConversationResult,
    ErrorMessage,
    Event,
    Message,
    TextMessage,
    ToolCall,
    ToolCallResult,
    ToolRequest,
)
from blackbox_sync.protocol.reply import Reply, TurnEnd
from blackbox_sync.settings import DEFAULT_FILLERS, DEFAULT_QUIET_PERIOD


class Phase(str, enum.Enum):
    """Where a conversation is in its life."""

    CONNECTING = "connecting"
    READY = "ready"
    ENDED = "ended"

    def __str__(self) -> str:
        return self.value


_PHASE_MOVES = {
    Phase.CONNECTING: frozenset({Phase.READY, Phase.ENDED}),
    Phase.READY: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
}
"""The moves :meth:`ConversationState.enter` allows (a conversation never opens again)."""

READY_EVENTS = frozenset({"connection", "opened"})

DEFAULT_MAX_HISTORY = 10_000
"""How many frames the history, and each turn, keep by default (the oldest are dropped)."""

DEFAULT_MAX_HISTORY_BYTES = 16 * 1024 * 1024
"""How many characters of frame text the history, and each turn, keep by default.

Frames are weighed by the length of their JSON text as it arrived (or went out): cheap, and
proportional to what decoding them costs (the decoded objects take a few times as much)."""

REMEMBERED_TOOL_IDS = 1024
"""How many answered tool request ids are remembered, to answer a repeated request once."""

# A tool request id longer than this is remembered by its digest: the service picks the ids, and
# a few megabytes of id must not be kept a thousand times over.
_LONG_ID = 256


def _normalise_fillers(fillers: Iterable[str]) -> Tuple[str, ...]:
    return tuple(sorted({f.strip().casefold() for f in fillers}))


@attrs.frozen
class TurnRule:
    """How ``ask()`` decides that the agent has finished its reply."""

    quiet_period: float = DEFAULT_QUIET_PERIOD
    """Seconds of quiet after the last agent activity before a turn counts as complete."""
    fillers: Tuple[str, ...] = attrs.field(default=DEFAULT_FILLERS, converter=_normalise_fillers)
    """Assistant texts that are only fillers, compared without case or surrounding space."""

    def __attrs_post_init__(self) -> None:
        if self.quiet_period < 0:
            raise ValueError("quiet_period must not be negative")

    def is_filler(self, text: str) -> bool:
        """True when ``text`` is one of the configured fillers."""
        return text.strip().casefold() in self.fillers


def counts_as_activity(message: Message, rule: TurnRule) -> bool:
    """True when ``message`` is turn activity under ``rule``: it holds a turn open, and its time
    is when the turn last moved (a final, non-filler assistant text, a tool request, or the
    service's ``toolCall``/``toolCallResult``).

    The client's own tool answer is activity too, but it is not a frame the service sent: see
    :meth:`ConversationState.tool_answered`.
    """
    if isinstance(message, TextMessage):
        return message.from_assistant and not message.partial and not rule.is_filler(message.text)
    return isinstance(message, (ToolRequest, ToolCall, ToolCallResult))


class RecentIds:
    """The last ``limit`` ids added, for "seen lately?" checks in constant memory."""

    def __init__(self, limit: int = REMEMBERED_TOOL_IDS) -> None:
        self._order: Deque[Hashable] = collections.deque()
        self._seen: Set[Hashable] = set()
        self.limit = limit

    def add(self, item: str) -> None:
        """Remember ``item``, forgetting the oldest one past the limit."""
        key = _id_key(item)
        if key in self._seen:
            return
        self._order.append(key)
        self._seen.add(key)
        if len(self._order) > self.limit:
            self._seen.discard(self._order.popleft())

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str) and _id_key(item) in self._seen

    def __len__(self) -> int:
        return len(self._order)


def _id_key(item: str) -> Hashable:
    if len(item) <= _LONG_ID:
        return item
    return hashlib.sha256(item.encode("utf-8", "surrogatepass")).digest()


class _Weights:
    """The sizes of a bounded sequence's entries, oldest first, and their total."""

    __slots__ = ("sizes", "total")

    def __init__(self) -> None:
        self.sizes: Deque[int] = collections.deque()
        self.total = 0

    def push(self, size: int) -> None:
        self.sizes.append(size)
        self.total += size

    def pop_oldest(self) -> None:
        self.total -= self.sizes.popleft()

    def over(self, count: int, limit: int, max_bytes: Optional[int]) -> bool:
        """True while the oldest entry must go: past ``limit`` entries or ``max_bytes`` (the
        newest entry is kept whatever its size)."""
        return count > limit or (max_bytes is not None and self.total > max_bytes and count > 1)


def _trim(items: Any, weights: _Weights, limit: int, max_bytes: Optional[int]) -> None:
    while weights.over(len(items), limit, max_bytes):
        if isinstance(items, collections.deque):
            items.popleft()
        else:
            del items[0]
        weights.pop_oldest()


@attrs.define
class Turn:
    """The agent activity since the last user message (or since the conversation opened).

    Its messages, texts and tool requests keep the last ``limit`` of each, and no more than
    ``max_bytes`` characters of frame text (see :meth:`add`), so a service that floods one turn
    cannot grow it without bound.
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
    max_bytes: Optional[int] = DEFAULT_MAX_HISTORY_BYTES
    _weights: Dict[str, _Weights] = attrs.field(factory=dict, eq=False, repr=False)

    def add(self, field: str, item: Any, size: int = 0) -> None:
        """Append ``item`` (weighing ``size`` characters) to this turn's list ``field``
        (``"messages"``, ``"texts"`` or ``"tool_requests"``), dropping its oldest entries past
        ``limit`` entries or ``max_bytes``.

        Lists, not deques, so that a turn compares and slices like before; dropping one entry
        moves at most ``limit`` pointers, and only in a turn that big.
        """
        items: List[Any] = getattr(self, field)
        weights = self._weights.get(field)
        if weights is None or len(weights.sizes) != len(items):
            # The list was replaced or filled directly: weigh what it holds as nothing.
            weights = self._weights[field] = _Weights()
            for _ in items:
                weights.push(0)
        items.append(item)
        weights.push(size)
        _trim(items, weights, self.limit, self.max_bytes)


@attrs.define
class ConversationState:
    """Everything known about one conversation, updated by :meth:`receive` and friends."""

    rule: TurnRule = attrs.field(factory=TurnRule)
    max_history: int = DEFAULT_MAX_HISTORY
    """How many frames :attr:`history` (and each turn) keeps; the oldest are dropped."""
    max_history_bytes: Optional[int] = DEFAULT_MAX_HISTORY_BYTES
    """How many characters of frame text :attr:`history` (and each turn) keeps; the oldest frames
    are dropped first, the newest is always kept. ``None``: no byte limit."""
    phase: Phase = Phase.CONNECTING
    history: Deque[Message] = attrs.field(factory=collections.deque)
    """Every frame received and sent, in order (the last ones, within both limits)."""
    record_id: Optional[str] = None
    result: Optional[ConversationResult] = None
    error: Optional[ErrorMessage] = None
    """The latest ``error`` frame."""
    close_code: Optional[int] = None
    close_reason: str = ""
    socket_closed: bool = False
    answered_tools: RecentIds = attrs.field(factory=RecentIds)
    """Ids of the tool requests this client answered lately (the last
    :data:`REMEMBERED_TOOL_IDS`)."""
    closed_event: bool = False
    """True once ``event closed`` arrived."""
    turn: Turn = attrs.field(
        default=attrs.Factory(lambda self: self._new_turn(0.0), takes_self=True)
    )
    _end: Optional[TurnEnd] = None
    _history_weights: _Weights = attrs.field(factory=_Weights, eq=False, repr=False)

    # --- inputs ----------------------------------------------------------------------------------

    def receive(self, message: Message, now: float, size: int = 0) -> None:
        """Take in one decoded frame from the service; ``size`` is the length of its text."""
        self._remember(message, size)
        turn = self.turn
        turn.add("messages", message, size)
        if isinstance(message, Event):
            self._on_event(message, now)
        elif isinstance(message, TextMessage):
            self._mark_ready(now)
            if self._is_echo(message):
                self._drop_previous_turn_tail(message)
            elif message.from_assistant:
                if turn.first_text_at is None:
                    turn.first_text_at = now
                if counts_as_activity(message, self.rule):
                    turn.add("texts", message.text, len(message.text))
        elif isinstance(message, ToolRequest):
            self._mark_ready(now)
            turn.add("tool_requests", message, size)
            if message.id not in self.answered_tools:  # a repeated request is answered once
                turn.pending_tools.add(message.id)
        elif isinstance(message, ConversationResult):
            self.result = message
            self._finish(TurnEnd.CONVERSATION_RESULT)
        elif isinstance(message, ErrorMessage):
            self.error = message
            if self._end is None:
                self._end = TurnEnd.ERROR
        if counts_as_activity(message, self.rule):
            turn.last_activity = now

    def sent(self, message: Message, size: int = 0) -> None:
        """Record a frame this client sent (it joins the history, not the agent's turn)."""
        self._remember(message, size)

    def begin_turn(self, now: float, user_text: Optional[str] = None) -> None:
        """Start a new agent turn: called just before the user's message ``user_text`` goes out."""
        self.turn = self._new_turn(now, user_text)
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
        self.enter(Phase.ENDED)
        if self._end is None:
            self._end = TurnEnd.SOCKET_CLOSED

    def enter(self, phase: Phase) -> bool:
        """Move :attr:`phase` to ``phase`` if allowed (``connecting`` → ``ready`` → ``ended``,
        or straight to ``ended``); True if it moved. The one place the phase changes."""
        if phase not in _PHASE_MOVES[self.phase]:
            return False
        self.phase = phase
        return True

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

    def _remember(self, message: Message, size: int) -> None:
        self.history.append(message)
        self._history_weights.push(size)
        _trim(self.history, self._history_weights, self.max_history, self.max_history_bytes)

    def _new_turn(self, now: float, user_text: Optional[str] = None) -> Turn:
        return Turn(
            started_at=now,
            user_text=user_text,
            limit=self.max_history,
            max_bytes=self.max_history_bytes,
        )

    def _on_event(self, event: Event, now: float) -> None:
        if event.name in READY_EVENTS:
            self.record_id = event.record_id or self.record_id
            self._mark_ready(now)
        elif event.name == "closed":
            self.closed_event = True
            self._finish(TurnEnd.CLOSED_EVENT)
        elif event.name == "failedOpen":
            self.enter(Phase.ENDED)
            self._end = self._end or TurnEnd.ERROR
            if self.error is None:
                reason = event.data.get("reason") or event.data.get("message") or "failedOpen"
                self.error = ErrorMessage(
                    message=LooseStr(f"conversation failed to open: {reason}"),
                    raw={"data": event.data},
                )

    def _mark_ready(self, now: float) -> None:
        if self.enter(Phase.READY) and self.turn.user_text is None:
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
        self.enter(Phase.ENDED)
        if self._end is None:
            self._end = reason

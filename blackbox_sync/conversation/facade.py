"""The public :class:`Conversation` (layer 4): a blocking, thread-safe handle on one conversation.

Threads: the caller's thread (``connect``/``ask``/``terminate``/``close``), one reader thread per
conversation (decodes frames, updates the state, runs callbacks in arrival order) and a small pool
of daemon threads for tool handlers, created on the first tool request. ``close()`` joins all of
them, except a callback or a tool that does not return: it names them in a WARNING and leaves
them behind (see docs/concepts/threads.md).
"""

import functools
import json
import logging
import ssl
import threading
import time
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Protocol,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from blackbox_sync.conversation.callbacks import (
    Callback,
    Callbacks,
    ErrorCallback,
    Key,
    callback_label,
)
from blackbox_sync.conversation.lifecycle import Lifecycle, is_closing
from blackbox_sync.conversation.lifecycle import move as move_lifecycle
from blackbox_sync.conversation.options import UNSET, Limits, Timeouts, Unset, resolve
from blackbox_sync.conversation.options import turn_rule as resolve_turn_rule
from blackbox_sync.conversation.reconnect import ReconnectPolicy
from blackbox_sync.conversation.tools import ToolRunner
from blackbox_sync.errors import (
    AskTimeout,
    BlackBoxError,
    ConnectionClosedError,
    OperationTimeout,
    ProtocolError,
    ServerError,
    UsageError,
    server_error_for,
)
from blackbox_sync.protocol.messages import (
    ConversationResult,
    ErrorMessage,
    IncomingChatMessage,
    Initialize,
    InitRequest,
    Message,
    Reconnected,
    Terminate,
    TextMessage,
    ToolRequest,
    ToolResponse,
    decode,
    encode,
)
from blackbox_sync.protocol.reply import Reply, Transcript, TurnEnd
from blackbox_sync.protocol.state import ConversationState, Phase, TurnRule
from blackbox_sync.redact import Secret, redact_json, redact_text
from blackbox_sync.transport.connection import Connection
from blackbox_sync.urls import check_transport_security, websocket_url

log = logging.getLogger("blackbox_sync.conversation")

F = TypeVar("F", bound=Callable[..., Any])

# Frames are logged at DEBUG, cut to this many characters (after redaction).
_LOG_FRAME_CHARS = 500
# At most this many handled errors are kept in `Conversation.errors` (the first ones: a flood of
# bad frames then costs nothing more, and the first error is usually the telling one).
_KEPT_ERRORS = 100
# After a blocking call's own timeout ran out, closing takes at most this long for the close
# handshake and as long again for the threads (and never more than close_timeout each): the peer
# has already failed to answer in time, so the handshake is a courtesy, not worth another wait.
_CLEANUP_GRACE = 0.5


class CallAttachment(Protocol):
    """What ``Conversation(voice=...)`` takes: a :class:`~blackbox_sync.voice.VoiceCall`, or
    anything that rides on a conversation the same way. Typed here, not imported: voice builds
    on the conversation, never the other way round."""

    def attach(self, conversation: "Conversation") -> "CallAttachment":
        """Follow ``conversation`` (its callbacks and history); returns itself."""


class Conversation:
    """One conversation with a BlackBox agent over WebSocket.

    Give a web integration ``token`` (production endpoint) or an ``api_key`` (dev endpoint,
    experimental). Use it as a context manager, or call :meth:`connect` and :meth:`close`.
    Every method is safe to call from any thread; ``ask()`` calls from several threads are served
    one at a time, in turn.

    Its settings come in groups, ``timeouts=bb.Timeouts(...)``, ``limits=bb.Limits(...)`` and
    ``turn_rule=bb.TurnRule(...)``, or as their fields in flat keywords (``connect_timeout=``,
    ``max_history=``, ``quiet_period=`` …); a flat keyword with its group is a
    :class:`UsageError`. They are fixed once the object is made.
    """

    def __init__(
        self,
        token: Optional[str] = None,
        *,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        url: Optional[str] = None,
        call_type: Optional[str] = None,
        additional_data: Optional[Dict[str, Any]] = None,
        endpoint: Optional[str] = None,
        agent_id: Optional[str] = None,
        dev_request: Optional[Dict[str, Any]] = None,
        origin: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
        quiet_period: Union[float, Unset] = UNSET,
        fillers: Union[Tuple[str, ...], Unset] = UNSET,
        tool_workers: Union[int, Unset] = UNSET,
        tool_timeout: Union[Optional[float], Unset] = UNSET,
        connect_timeout: Union[float, Unset] = UNSET,
        close_timeout: Union[float, Unset] = UNSET,
        send_timeout: Union[float, Unset] = UNSET,
        ping_interval: Union[Optional[float], Unset] = UNSET,
        ping_timeout: Union[float, Unset] = UNSET,
        max_message_size: Union[int, Unset] = UNSET,
        max_frame_bytes: Union[int, Unset] = UNSET,
        max_pending_tools: Union[int, Unset] = UNSET,
        max_history: Union[int, Unset] = UNSET,
        max_history_bytes: Union[Optional[int], Unset] = UNSET,
        timeouts: Optional[Timeouts] = None,
        limits: Optional[Limits] = None,
        turn_rule: Optional[TurnRule] = None,
        reconnect: Optional[ReconnectPolicy] = None,
        sslopt: Optional[Dict[str, Any]] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        allow_insecure: bool = False,
        voice: Optional[CallAttachment] = None,
    ) -> None:
        if not token and not api_key and url is None:
            raise UsageError("Conversation needs a web integration token or an API key")
        self._token = Secret(token or "")
        self._api_key = Secret(api_key or "")
        self._url = Secret(websocket_url(base_url=base_url, url=url, token=token, api_key=api_key))
        check_transport_security(self._url.reveal(), allow_insecure)
        self.call_type = call_type or ("webCall" if voice is not None else "chat")
        self.additional_data = dict(additional_data or {})
        self.endpoint = endpoint
        self.agent_id = agent_id
        self.dev_request = dict(dev_request) if dev_request is not None else None
        self.origin = origin
        self.headers = dict(headers or {})
        self.turn_rule = resolve_turn_rule(turn_rule, quiet_period, fillers)
        """How ``ask()`` decides the agent's turn is complete (read at each new turn state)."""
        self._timeouts = resolve(
            Timeouts,
            timeouts,
            "timeouts",
            {
                "connect_timeout": connect_timeout,
                "close_timeout": close_timeout,
                "send_timeout": send_timeout,
                "ping_interval": ping_interval,
                "ping_timeout": ping_timeout,
                "tool_timeout": tool_timeout,
            },
        )
        self._limits = resolve(
            Limits,
            limits,
            "limits",
            {
                "max_message_size": max_message_size,
                "max_frame_bytes": max_frame_bytes,
                "max_pending_tools": max_pending_tools,
                "max_history": max_history,
                "max_history_bytes": max_history_bytes,
                "tool_workers": tool_workers,
            },
        )
        self.reconnect = reconnect
        # websocket-client takes a ready SSLContext under the "context" key of its sslopt.
        self.sslopt = {**(sslopt or {}), "context": ssl_context} if ssl_context else sslopt
        try:
            self._check_frame_size(self._initialize_message(), "additional_data")
        except (TypeError, ValueError) as exc:
            raise UsageError(f"additional_data must be JSON data: {exc}") from None
        self.errors: List[BlackBoxError] = []
        """Failures handled on the library's threads (callbacks, tools, frames), oldest first."""

        self._cond = threading.Condition()
        self._ask_lock = threading.Lock()
        self._state = self._new_state()
        self._connection: Optional[Connection] = None
        self._connections: List[Connection] = []
        """Every connection opened, so close() can join all their threads."""
        self._life = Lifecycle.NEW
        """Where this object is in its life; moved only by :meth:`_move`, under ``_cond``."""
        self._reader_ident: Optional[int] = None
        """The thread that delivered the latest frame (the current connection's reader)."""
        self._abandoned = False
        """True once close() gave up on a reader stuck in a callback: it delivers nothing more."""
        self._callbacks = Callbacks(report=self._report, secrets=self._secrets())
        self._tools = ToolRunner(
            send=self._send_message,
            answered=self._tool_answered,
            report=self._report,
            workers=self._limits.tool_workers,
            timeout=self._timeouts.tool,
            max_pending=self._limits.max_pending_tools,
            secrets=self._secrets(),
        )
        self.voice = voice.attach(self) if voice is not None else None

    # --- options ---------------------------------------------------------------------------------

    @property
    def timeouts(self) -> Timeouts:
        """How long this conversation waits (given as ``timeouts=`` or as flat keywords)."""
        return self._timeouts

    @property
    def limits(self) -> Limits:
        """The bounds of this conversation (given as ``limits=`` or as flat keywords)."""
        return self._limits

    @property
    def connect_timeout(self) -> float:
        """``timeouts.connect``."""
        return self._timeouts.connect

    @property
    def close_timeout(self) -> float:
        """``timeouts.close``."""
        return self._timeouts.close

    @property
    def send_timeout(self) -> float:
        """``timeouts.send``."""
        return self._timeouts.send

    @property
    def ping_interval(self) -> Optional[float]:
        """``timeouts.ping_interval``."""
        return self._timeouts.ping_interval

    @property
    def ping_timeout(self) -> float:
        """``timeouts.ping_timeout``."""
        return self._timeouts.ping_timeout

    @property
    def max_message_size(self) -> int:
        """``limits.max_message_size``."""
        return self._limits.max_message_size

    @property
    def max_frame_bytes(self) -> int:
        """``limits.max_frame_bytes``."""
        return self._limits.max_frame_bytes

    @property
    def max_history(self) -> int:
        """``limits.max_history``."""
        return self._limits.max_history

    @property
    def max_history_bytes(self) -> Optional[int]:
        """``limits.max_history_bytes``."""
        return self._limits.max_history_bytes

    # --- information -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The WebSocket URL with credentials masked."""
        return redact_text(self._url.reveal(), self._token.reveal(), self._api_key.reveal())

    @property
    def phase(self) -> Phase:
        """``connecting``, ``ready`` or ``ended``."""
        with self._cond:
            return self._state.phase

    @property
    def record_id(self) -> Optional[str]:
        """The conversation id from the ``connection`` event, once it arrived."""
        with self._cond:
            return self._state.record_id

    @property
    def result(self) -> Optional[ConversationResult]:
        """The ``conversationResult``, once the service sent it."""
        with self._cond:
            return self._state.result

    @property
    def history(self) -> List[Message]:
        """Every frame received and sent so far, in order: the last ``max_history``, and no more
        than ``max_history_bytes`` characters of frame text (the oldest frames go first)."""
        with self._cond:
            return list(self._state.history)

    @property
    def transcript(self) -> Transcript:
        """The final texts the service sent (the agent's, and its echo of the user's), from the
        frames :attr:`history` still holds."""
        with self._cond:
            return Transcript(
                m for m in self._state.history if isinstance(m, TextMessage) and not m.partial
            )

    @property
    def close_code(self) -> Optional[int]:
        """The WebSocket close code once closed (``None`` if the connection dropped without one)."""
        with self._cond:
            return self._state.close_code

    @property
    def close_reason(self) -> str:
        """The close reason the service gave (secrets masked), or ``""``."""
        with self._cond:
            return self._state.close_reason

    @property
    def closed(self) -> bool:
        """True once the socket is closed (or was never opened and ``close()`` was called)."""
        with self._cond:
            never_opened = is_closing(self._life) and self._connection is None
            return self._state.socket_closed or never_opened

    def __repr__(self) -> str:
        return f"<Conversation {self.call_type} {self.phase} {self.url}>"

    # --- registration ----------------------------------------------------------------------------

    @overload
    def on(self, key: Key) -> Callable[[F], F]: ...

    @overload
    def on(self, key: Key, callback: F) -> F: ...

    def on(self, key: Key, callback: Optional[F] = None) -> Union[F, Callable[[F], F]]:
        """Call ``callback(message)`` on the reader thread for frames of wire type ``key``, of
        message class ``key``, or for every frame with ``"*"``. Usable as a decorator."""
        if callback is not None:
            self._callbacks.add(key, callback)
            return callback

        def decorate(fn: F) -> F:
            self._callbacks.add(key, fn)
            return fn

        return decorate

    def off(self, key: Key, callback: Callback) -> None:
        """Remove a callback added with :meth:`on`."""
        self._callbacks.remove(key, callback)

    def on_error(self, callback: ErrorCallback) -> ErrorCallback:
        """Call ``callback(error)`` for failures handled on the library's threads: a callback
        or tool that raised, a malformed frame, an ``error`` frame, a lost connection.

        Usable as a decorator."""
        self._callbacks.add_error(callback)
        return callback

    def on_close(self, callback: Callable[[Optional[int], str], Any]) -> Callable[..., Any]:
        """Call ``callback(code, reason)`` once, on the reader thread, when the socket has closed
        (``code`` is ``None`` when it dropped without a close frame). Decorator too."""
        self._callbacks.add_hook("close", callback)
        return callback

    def on_frame_sent(self, callback: Callable[[str], Any]) -> Callable[..., Any]:
        """Call ``callback(text)`` with every frame this client sent (for metrics)."""
        self._callbacks.add_hook("frame_sent", callback)
        return callback

    def on_frame_received(self, callback: Callable[[Union[str, bytes]], Any]) -> Callable[..., Any]:
        """Call ``callback(payload)`` on the reader thread with every frame as it arrived, before
        it is decoded (for metrics and wire logs)."""
        self._callbacks.add_hook("frame_received", callback)
        return callback

    @overload
    def tool(self, name: F) -> F: ...

    @overload
    def tool(self, name: Optional[str] = None) -> Callable[[F], F]: ...

    @overload
    def tool(self, name: str, handler: F) -> F: ...

    def tool(self, name: Any = None, handler: Optional[F] = None) -> Any:
        """Register a client-side tool; its arguments arrive as keyword arguments and its return
        value (JSON data or attrs objects) is the result. ``@conv.tool``, ``@conv.tool("name")``
        and ``conv.tool("name", fn)`` all work."""
        if callable(name):
            self._tools.register(_tool_name(name), name)
            return name
        if handler is not None:
            self._tools.register(name or _tool_name(handler), handler)
            return handler

        def decorate(fn: F) -> F:
            self._tools.register(name or _tool_name(fn), fn)
            return fn

        return decorate

    # --- lifecycle -------------------------------------------------------------------------------

    def connect(self, timeout: Optional[float] = None) -> "Conversation":
        """Open the socket, send ``initialize`` and wait for the ``connection`` event."""
        self._not_from_callback("connect")
        with self._cond:
            if not self._move(Lifecycle.CONNECTING):
                raise UsageError(
                    "connect() was already called; a new conversation needs a new object"
                )
            self._connection = self._new_connection(self._state)
        try:
            self._establish(self._connection, self._state, timeout)
        except BlackBoxError:
            # _establish closed the socket within the grace already; this only marks the
            # conversation closed and reaps a reader still busy finishing.
            self._close(0.0, self._cleanup_grace())
            raise
        self._move(Lifecycle.OPEN)
        return self

    def _new_connection(self, state: ConversationState) -> Connection:
        connection = Connection(
            self._url.reveal(),
            on_message=functools.partial(self._on_message, state),
            on_close=functools.partial(self._on_closed, state),
            on_tick=self._tools.expire,
            headers=self.headers,
            origin=self.origin,
            sslopt=self.sslopt,
            ping_interval=self._timeouts.ping_interval,
            ping_timeout=self._timeouts.ping_timeout,
            max_message_size=self._limits.max_message_size,
            send_timeout=self._timeouts.send,
            secrets=self._secrets(),
        )
        with self._cond:
            self._connections.append(connection)
        return connection

    def _establish(
        self, connection: Connection, state: ConversationState, timeout: Optional[float]
    ) -> None:
        """Open ``connection``, initialize, wait until ``state`` is ready; on failure close and
        raise the most telling error. The whole of it, opening included, gets ``timeout``."""
        timeout = self.connect_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        log.info("connecting to %s", self.url)
        try:
            connection.open(timeout)
            remaining = max(0.0, deadline - time.monotonic())
            self._send_on(connection, state, self._initialize_message(), remaining)
        except ConnectionClosedError:
            # An `error` frame may still sit unread before the close: let the reader get to it.
            connection.wait_closed(self._cleanup_grace())
            self._raise_if_failed(state)
            raise
        with self._cond:
            while state.phase is Phase.CONNECTING and not state.error and not self._closing:
                if not self._wait(deadline):
                    break
            ready = state.phase is Phase.READY and not self._closing
            dropped, code, reason = state.socket_closed, state.close_code, state.close_reason
        if not ready:
            grace = self._cleanup_grace()
            connection.close(timeout=grace, join_timeout=grace)
            self._raise_if_failed(state)
            if self._closing:
                raise ConnectionClosedError("the conversation was closed while connecting")
            if dropped:
                raise ConnectionClosedError(
                    "the service closed before the conversation was ready", code, reason
                )
            raise OperationTimeout(f"no 'connection' event within {timeout:g} s")
        log.info("conversation %s ready", state.record_id)

    def close(self) -> None:
        """Close the socket and stop the reader and tool threads. Idempotent; safe from any thread.

        Returns within about twice ``close_timeout`` (the close handshake, then the threads), even
        while another thread's send is stuck on a peer that stopped reading. From a callback it
        returns at once and the reader thread finishes the close; from a tool handler it returns
        once the socket is closed, without waiting for the pool it runs in. A callback that does
        not return within the cleanup grace (half a second) is named in a WARNING and left
        behind: close() then returns within about a second, and the reader thread (a daemon)
        delivers nothing more once the callback returns. A tool still running after
        ``close_timeout`` is named in a WARNING and left to its daemon thread.
        """
        self._close(self.close_timeout, self.close_timeout)

    def _close(self, handshake: float, join: float) -> None:
        """Close, waiting at most ``handshake`` for the peer's close frame and ``join`` for the
        threads."""
        if self._tools.on_tool_thread:
            # The reader's shutdown of the pool waits for this very handler: joining the reader
            # from here would hold both until the timeouts ran out.
            join = 0.0
        with self._cond:
            self._move(Lifecycle.CLOSING)
            current = self._connection
            connections = list(self._connections)
        try:
            if current is not None:
                self._close_connections(current, connections, handshake, join)
        finally:
            with self._cond:
                self._move(Lifecycle.CLOSED)

    def _close_connections(
        self, current: Connection, connections: List[Connection], handshake: float, join: float
    ) -> None:
        """Close ``current`` and every older connection, then the tool pool, in one budget."""
        if self._reader_stuck():
            # The reader cannot read the peer's close frame nor finish while a callback holds
            # it: waiting the full handshake and join for it would only make close() slow.
            handshake, join = min(handshake, self._cleanup_grace()), 0.0
        deadline = time.monotonic() + handshake + join
        current.close(timeout=handshake, join_timeout=join)
        for connection in connections:  # a reconnect may have left an older reader finishing
            if connection is not current:
                remaining = max(0.0, deadline - time.monotonic())
                connection.close(timeout=min(remaining, handshake), join_timeout=remaining)
        self._tools.shutdown(max(0.0, deadline - time.monotonic()))

    def _reader_stuck(self) -> bool:
        """True when the reader is in a user callback that does not return within the cleanup
        grace (then warned about once, and the reader abandoned)."""
        reader = self._reader_ident
        if reader is None or reader == threading.get_ident():
            return False
        if self._abandoned:
            return self._callbacks.running(reader) is not None
        callback = self._callbacks.wait_idle(reader, self._cleanup_grace())
        if callback is None:
            return False
        self._abandoned = True
        log.warning(
            "callback %s has not returned; close() does not wait for it: the reader thread "
            "stays until it returns, and delivers no further frames",
            callback_label(callback),
        )
        return True

    def terminate(self, timeout: float = 10.0) -> Optional[ConversationResult]:
        """End the conversation: send ``terminate``, wait for ``conversationResult``, close.

        Returns the result, or ``None`` when the service closed without one. Returns within
        ``timeout`` plus at most about a second of closing (see ``close_timeout``).
        """
        self._not_from_callback("terminate")
        deadline = time.monotonic() + timeout
        if self._lifecycle is Lifecycle.NEW:
            raise UsageError("terminate() before connect()")
        with self._cond:
            state = self._state
            done = state.phase is Phase.ENDED
        stuck = False
        if not done:
            try:
                self._send_message(Terminate(), timeout=max(0.0, deadline - time.monotonic()))
            except ConnectionClosedError:
                pass
            # A reader held by a callback cannot read the result: waiting for it is futile.
            stuck = self._reader_stuck()
            with self._cond:
                while not (stuck or state.ended_normally or state.socket_closed):
                    if not self._wait(deadline):
                        break
                done = state.ended_normally or state.socket_closed
        # What is left of the timeout goes to the close handshake, but never less than the grace:
        # the call returns within its timeout plus that grace (and as long again for threads).
        grace = self._cleanup_grace()
        handshake = min(self.close_timeout, max(grace, deadline - time.monotonic()))
        self._close(handshake, grace)
        if not done:
            why = "a callback holds the reader" if stuck else f"within {timeout:g} s"
            raise OperationTimeout(f"no conversationResult {why} after terminate")
        return self.result

    def __enter__(self) -> "Conversation":
        if self._lifecycle is Lifecycle.NEW:
            self.connect()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        # Against a stalled service this takes close_timeout (terminate's wait) plus the cleanup
        # grace; close() afterwards finds the socket closed and only reaps finished threads.
        try:
            if self.phase is not Phase.ENDED and not self.closed:
                self.terminate(timeout=self.close_timeout)
        except BlackBoxError as exc:
            log.warning("conversation did not end cleanly: %s", exc)
        finally:
            self.close()

    # --- talking ---------------------------------------------------------------------------------

    def send(self, message: Union[str, Message]) -> None:
        """Send a user chat message (a ``str``) or any client frame, without waiting."""
        frame = IncomingChatMessage(message) if isinstance(message, str) else message
        if isinstance(frame, IncomingChatMessage) and not isinstance(frame.content, str):
            raise TypeError("chat message content must be a str")
        self._require_live()
        self._send_message(frame)

    def ask(self, text: str, timeout: float = 30.0, quiet_period: Optional[float] = None) -> Reply:
        """Send ``text`` and block until the agent's reply is complete (see :class:`TurnRule`).

        Raises :class:`AskTimeout` (with the reply so far), :class:`ServerError` on an ``error``
        frame, :class:`ConnectionClosedError` if the socket closes without a result.
        """
        if not isinstance(text, str):
            raise TypeError("ask() takes the user's message as a str")
        return self._take_turn(text, timeout, quiet_period)

    def wait_for_reply(self, timeout: float = 30.0, quiet_period: Optional[float] = None) -> Reply:
        """Block until the agent's current turn is complete without sending anything, e.g. for a
        talk-first greeting. Frames that arrived since the last turn count."""
        return self._take_turn(None, timeout, quiet_period)

    # --- internals: turns ------------------------------------------------------------------------

    def _take_turn(self, text: Optional[str], timeout: float, quiet: Optional[float]) -> Reply:
        self._not_from_callback("ask")
        deadline = time.monotonic() + timeout
        if not self._ask_lock.acquire(timeout=max(0.0, timeout)):
            raise AskTimeout(f"another ask() on this conversation held it for {timeout:g} s")
        try:
            self._require_live()
            if text is not None:  # refused before the turn begins, so the frames so far stay
                self._check_frame_size(IncomingChatMessage(text), "ask()'s text")
            with self._cond:
                # A reconnect swaps in a new state: this turn belongs to the one it started on.
                state = self._state
                if text is not None:
                    state.begin_turn(time.monotonic(), text)
            if text is not None:
                remaining = max(0.0, deadline - time.monotonic())
                self._send_message(IncomingChatMessage(text), timeout=remaining)
            return self._await_turn(state, deadline, timeout, quiet)
        finally:
            self._ask_lock.release()

    def _await_turn(
        self, state: ConversationState, deadline: float, timeout: float, quiet: Optional[float]
    ) -> Reply:
        with self._cond:
            while True:
                now = time.monotonic()
                end = state.turn_end(now, quiet)
                if end is not None:
                    break
                if now >= deadline:
                    raise AskTimeout(
                        f"the agent's turn was not complete within {timeout:g} s",
                        state.reply(now, TurnEnd.QUIET),
                    )
                wake = state.wake_at(quiet)
                self._cond.wait(
                    max(0.0, min(deadline, wake if wake is not None else deadline) - now)
                )
            reply = state.reply(now, end)
            error = state.error
            state.begin_turn(now)
            code, reason = state.close_code, state.close_reason
        if end is TurnEnd.ERROR:
            raise self._server_error(error)
        if end is TurnEnd.SOCKET_CLOSED:
            raise ConnectionClosedError(
                "the connection closed during the agent's turn", code, reason
            )
        return reply

    # --- internals: frames -----------------------------------------------------------------------

    def _initialize_message(self) -> Initialize:
        if self._api_key and not self._token:
            body: Dict[str, Any] = {"callType": self.call_type}
            if self.additional_data:
                body["additionalData"] = self.additional_data
            if self.endpoint:
                body["endpoint"] = self.endpoint
            if self.agent_id:
                body["agentId"] = self.agent_id
            return Initialize(dev_request={**body, **(self.dev_request or {})})
        return Initialize(InitRequest(self.call_type, self.additional_data or None, self.endpoint))

    def _send_message(self, message: Message, timeout: Optional[float] = None) -> None:
        with self._cond:
            connection, state = self._connection, self._state
        if connection is None:
            raise UsageError("not connected: call connect() first")
        self._send_on(connection, state, message, timeout)

    def _send_on(
        self,
        connection: Connection,
        state: ConversationState,
        message: Message,
        timeout: Optional[float] = None,
    ) -> None:
        """Send ``message`` within ``timeout`` (at most ``send_timeout``) seconds."""
        text = self._check_frame_size(message, type(message).__name__)
        connection.send_text(text, timeout)
        self._log_frame("→", text)
        if self._callbacks.has_hook("frame_sent"):
            self._callbacks.fire("frame_sent", text)
        with self._cond:
            state.sent(message, len(text))

    def _check_frame_size(self, message: Message, what: str) -> str:
        """The frame's text, once it is known to be sendable: UTF-8 can carry it and it fits
        ``max_frame_bytes``; else :class:`UsageError`, before anything is lost."""
        text = encode(message)
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            if not isinstance(message, ToolResponse):
                raise UsageError(
                    f"{what} holds text that cannot be sent: {exc.reason} (character "
                    f"{text[exc.start]!r} in the frame, position {exc.start})"
                ) from None
            # A tool request id is echoed as the service sent it: escaped, a lone surrogate too.
            text = encode(message, ascii_only=True)
            size = len(text)
        # The service answers an oversized frame with "Too large message" and ends the
        # conversation; better to refuse it here, with the numbers.
        if size > self.max_frame_bytes:
            raise UsageError(
                f"{what} makes a {size}-byte frame, over max_frame_bytes={self.max_frame_bytes}"
            )
        return text

    def _on_message(self, state: ConversationState, payload: Union[str, bytes]) -> None:
        """The dispatch boundary: nothing a frame holds, nor any user callable, gets past it to
        end the reader thread; whatever goes wrong is reported as a typed error."""
        self._reader_ident = threading.get_ident()
        if self._abandoned:
            return
        try:
            self._take_frame(state, payload)
        except Exception as exc:
            text = self._redact(f"{type(exc).__name__}: {exc}")
            log.error("a frame could not be handled: %s", text, exc_info=exc)
            error = ProtocolError(f"a frame could not be handled: {text}", payload)
            error.__cause__ = exc
            self._report(error)

    def _take_frame(self, state: ConversationState, payload: Union[str, bytes]) -> None:
        now = time.monotonic()
        if self._callbacks.has_hook("frame_received"):
            self._callbacks.fire("frame_received", payload)
        try:
            message = decode(payload)
        except BlackBoxError as exc:
            log.warning("dropped a frame: %s", self._redact(str(exc)))
            self._report(exc)
            return
        if log.isEnabledFor(logging.DEBUG):
            self._log_frame("←", json.dumps(message.raw, ensure_ascii=False))
        with self._cond:
            state.receive(message, now, len(payload))
            self._cond.notify_all()
            connection = self._connection
        if isinstance(message, ToolRequest):
            self._tools.submit(message)
            if connection is not None:
                connection.reschedule()  # the reader must wake for the tool's timeout
        elif isinstance(message, ErrorMessage):
            error = self._server_error(message)
            log.warning("service error: %s", error.message)
            self._report(error)
        self._callbacks.dispatch(message)

    def _on_closed(
        self,
        state: ConversationState,
        code: Optional[int],
        reason: str,
        error: Optional[BaseException],
    ) -> None:
        with self._cond:
            was_ready = state.phase is Phase.READY
            state.closed(code, reason)
            normal = state.ended_normally or self._closing
            current = state is self._state
            self._cond.notify_all()
        if error is None and not normal and code not in (None, 1000, 1005):
            error = ConnectionClosedError("the service closed the connection", code, reason)
        if error is not None and not normal:
            log.warning("connection closed: %s", error)
            self._report(
                error if isinstance(error, BlackBoxError) else ConnectionClosedError(str(error))
            )
        if not current:
            return  # a reconnect attempt that failed: its caller reports it
        # Running tools get close_timeout to return, so on_close sees their last sends; close()
        # names the ones that never do.
        self._tools.stop(self.close_timeout)
        self._callbacks.fire("close", code, reason)
        if self.reconnect is not None and was_ready and not normal:
            self._reconnect(self.reconnect, state)

    def _reconnect(self, policy: ReconnectPolicy, lost: ConversationState) -> None:
        """Runs on the lost connection's reader thread, which ends when this returns."""
        for attempt in range(1, policy.max_attempts + 1):
            if self._wait_closing(policy.delay(attempt)):
                return
            log.info("reconnecting (attempt %d of %d)", attempt, policy.max_attempts)
            state = self._new_state()
            connection = self._new_connection(state)
            self._tools.restart()
            try:
                self._establish(connection, state, self.connect_timeout)
            except BlackBoxError as exc:
                if not isinstance(exc, ServerError):  # error frames were reported on arrival
                    self._report(exc)
                continue
            with self._cond:
                if self._closing:
                    break
                self._state, self._connection = state, connection
                self._cond.notify_all()
            event = Reconnected(
                attempt=attempt, previous_record_id=lost.record_id, record_id=state.record_id
            )
            log.warning(
                "connection lost; opened a new conversation %s (the old one is gone)",
                state.record_id,
            )
            self._callbacks.dispatch(event)
            return
        else:
            self._report(
                ConnectionClosedError(f"gave up reconnecting after {policy.max_attempts} attempts")
            )
        self._tools.shutdown(0.0)

    def _tool_answered(self, request_id: str) -> None:
        with self._cond:
            self._state.tool_answered(request_id, time.monotonic())
            self._cond.notify_all()

    def _report(self, error: BlackBoxError) -> None:
        with self._cond:
            if len(self.errors) < _KEPT_ERRORS:
                self.errors.append(error)
        self._callbacks.report(error)

    # --- internals: helpers ----------------------------------------------------------------------

    def _wait(self, deadline: float) -> bool:
        """Wait on the condition (held) until notified or ``deadline``; False once it passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self._cond.wait(remaining)
        return True

    @property
    def _closing(self) -> bool:
        """True once close() began (read under ``_cond``)."""
        return is_closing(self._life)

    @property
    def _lifecycle(self) -> Lifecycle:
        with self._cond:
            return self._life

    def _move(self, to: Lifecycle) -> bool:
        """Move this object's :class:`Lifecycle` to ``to`` if allowed; True if it moved. Every
        waiter is woken, since each waits for a state (ready, closing) as well as for frames."""
        with self._cond:
            self._life, moved = move_lifecycle(self._life, to)
            if moved:
                self._cond.notify_all()
            return moved

    def _wait_closing(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for close() to begin; True if it did."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closing, max(0.0, seconds))

    def _require_live(self) -> None:
        with self._cond:
            if self._connection is None:
                raise UsageError("not connected: call connect() first")
            if self._state.phase is Phase.ENDED or self._state.socket_closed or self._closing:
                raise ConnectionClosedError(
                    "the conversation is over", self._state.close_code, self._state.close_reason
                )

    def _raise_if_failed(self, state: ConversationState) -> None:
        with self._cond:
            error = state.error
        if error is not None:
            raise self._server_error(error)

    def _server_error(self, frame: Optional[ErrorMessage]) -> ServerError:
        """The exception for an ``error`` frame, with this conversation's secrets masked in its
        message and data (the class is chosen from the message as sent)."""
        message = str(frame.message) if frame is not None else "error"
        kind = type(server_error_for(message))
        data = redact_json(frame.data, *self._secrets()) if frame is not None else None
        return kind(self._redact(message), data)

    def _redact(self, text: str) -> str:
        return redact_text(text, *self._secrets())

    def _not_from_callback(self, what: str) -> None:
        reader = Connection.running_reader()
        if reader is not None and reader in self._connections:
            raise UsageError(
                f"{what}() cannot be called from a callback: it would wait for its own thread; "
                "use send() there, or hand the work to another thread"
            )

    def _cleanup_grace(self) -> float:
        return min(self.close_timeout, _CLEANUP_GRACE)

    def _new_state(self) -> ConversationState:
        return ConversationState(
            rule=self.turn_rule,
            max_history=self.max_history,
            max_history_bytes=self.max_history_bytes,
        )

    def _secrets(self) -> Tuple[str, ...]:
        return tuple(s for s in (self._token.reveal(), self._api_key.reveal()) if s)

    def _log_frame(self, direction: str, text: str) -> None:
        if log.isEnabledFor(logging.DEBUG):
            # Redact the whole frame before cutting it: a secret across the cut would otherwise
            # no longer match and leak its first half.
            text = redact_text(text, *self._secrets())
            if len(text) > _LOG_FRAME_CHARS:
                text = text[:_LOG_FRAME_CHARS] + "…"
            log.debug("%s %s", direction, text)


def _tool_name(handler: Callable[..., Any]) -> str:
    name = getattr(handler, "__name__", None)
    if not isinstance(name, str) or not name:
        raise UsageError(f"{handler!r} has no __name__: give the tool a name, conv.tool(name, fn)")
    return name

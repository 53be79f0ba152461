"""What the emulated service knows, in one typed object both of its halves use.

The :class:`~.emulator.Emulator` owns one :class:`ServiceState` (``emulator.service``). The
WebSocket sessions (:mod:`.ws.session`) file frames, transcripts and tool calls through it and
check credentials against it; the REST fake (:mod:`.rest`) seeds tokens and agents into it and
reads its conversations. Every access holds :attr:`ServiceState.lock`; :attr:`ServiceState.changed`
(a condition on it) is notified on every change. Loop code holds the lock only briefly, never
across an ``await``.
"""

import asyncio
import concurrent.futures
import enum
import logging
import random
import threading
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import attrs

from blackbox_sync.errors import UsageError
from blackbox_sync.protocol.codec import utcnow
from blackbox_sync.testing import auth
from blackbox_sync.testing.agents.scripted import Agent, ScriptedAgent
from blackbox_sync.testing.faults.engine import FaultEngine
from blackbox_sync.testing.options import EmulatorOptions
from blackbox_sync.testing.records import (
    ConversationRecord,
    FrameRecord,
    TokenGrant,
    ToolCallRecord,
)

log = logging.getLogger("blackbox_sync.testing")

EndCallback = Callable[[ConversationRecord], None]


class Unset(enum.Enum):
    """The type of :data:`UNSET`."""

    UNSET = 0


UNSET = Unset.UNSET
"""A keyword left out (where ``None`` is a value of its own)."""


@attrs.frozen
class InitInfo:
    """What a valid ``initialize`` asked for."""

    call_type: str
    additional_data: Dict[str, Any]
    endpoint: Optional[str]
    agent_id: Optional[str]


class ServiceState:
    """Agents, credentials, conversation records, frames and armed faults of one emulator.

    ``token`` and ``api_key`` are the defaults that every :meth:`clear` restores; ``seed`` makes
    the conversation ids and the faults' chances repeatable. While the server runs, ``loop``,
    ``base_url`` and ``executor`` (the thread that runs ``on_conversation_end`` callbacks) are
    set by the emulator.
    """

    def __init__(
        self,
        *,
        agent: Optional[Agent],
        agents: Optional[Mapping[str, Agent]],
        token: str,
        api_key: str,
        options: EmulatorOptions,
        seed: int,
    ) -> None:
        self.token = token
        self.api_key = api_key
        self.options = options
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.on_conversation_end: List[EndCallback] = []
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.base_url = ""
        self.executor: Optional[concurrent.futures.Executor] = None
        self._seed = seed
        self._initial_agent: Agent = agent if agent is not None else ScriptedAgent()
        self._initial_agents: Dict[str, Agent] = dict(agents or {})
        self.faults = FaultEngine(self.changed, seed)
        self.clear()

    def clear(self) -> None:
        """Forget every record, frame, token, key and fault; restore the default agents."""
        with self.changed:
            self.default_agent: Agent = self._initial_agent
            self.agents: Dict[str, Agent] = dict(self._initial_agents)
            self.api_keys: Set[str] = {self.api_key}
            self._tokens: Dict[str, TokenGrant] = {self.token: TokenGrant(self.token)}
            self.records: List[ConversationRecord] = []
            """Every conversation, oldest first (live objects: read them under the lock)."""
            self.frames: List[FrameRecord] = []
            """Every frame either way, oldest first (read under the lock)."""
            self.faults.release()  # a handshake stalled by the old engine lets go
            self.faults = FaultEngine(self.changed, self._seed)
            self._ids = random.Random(self._seed)
            self._connections = 0
            self.changed.notify_all()

    def running_loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop; :class:`~blackbox_sync.errors.UsageError` when stopped."""
        if self.loop is None:
            raise UsageError("the emulator is not running")
        return self.loop

    # --- configuration (any thread) ----------------------------------------------------------

    def options_snapshot(self) -> EmulatorOptions:
        """A copy of :attr:`options` (what a new connection uses)."""
        with self.lock:
            return attrs.evolve(self.options)

    def add_token(self, grant: TokenGrant) -> None:
        """Accept ``grant.token`` on the production endpoint."""
        with self.changed:
            self._tokens[grant.token] = grant
            self.changed.notify_all()

    def remove_token(self, token: str) -> bool:
        """Stop accepting ``token``; False when it was not known."""
        with self.changed:
            return self._tokens.pop(token, None) is not None

    def update_integration(
        self,
        integration_id: str,
        *,
        agent_id: Union[Optional[str], Unset] = UNSET,
        enabled: Union[bool, Unset] = UNSET,
        origins: Union[Optional[Sequence[str]], Unset] = UNSET,
    ) -> int:
        """Change every token of ``integration_id`` at once; returns how many there were."""
        changes: Dict[str, Any] = {}
        if agent_id is not UNSET:
            changes["agent_id"] = agent_id
        if enabled is not UNSET:
            changes["enabled"] = enabled
        if origins is not UNSET:
            changes["origins"] = origins
        with self.changed:
            hits = [t for t, g in self._tokens.items() if g.integration_id == integration_id]
            for token in hits:
                self._tokens[token] = attrs.evolve(self._tokens[token], **changes)
            return len(hits)

    @property
    def tokens(self) -> List[TokenGrant]:
        """The accepted tokens' grants (a list: a grant's repr leaves its secret out)."""
        with self.lock:
            return list(self._tokens.values())

    def set_agent(self, agent_id: str, agent: Agent) -> None:
        """Use ``agent`` for conversations with ``agent_id``."""
        with self.lock:
            self.agents[agent_id] = agent

    def has_agent(self, agent_id: str) -> bool:
        """True when ``agent_id`` has an agent of its own."""
        with self.lock:
            return agent_id in self.agents

    def agent_for(self, agent_id: Optional[str]) -> Agent:
        """The agent of ``agent_id``, else the default agent."""
        with self.lock:
            agent = self.agents.get(agent_id) if agent_id is not None else None
            return agent if agent is not None else self.default_agent

    def conversations(self) -> List[ConversationRecord]:
        """Snapshots of every conversation, oldest first."""
        with self.lock:
            return [r.snapshot() for r in self.records]

    # --- credentials ---------------------------------------------------------------------------

    def check_token(self, token: Optional[str], origin: Optional[str]) -> Optional[str]:
        """Why ``token`` (sent from ``origin``) is refused, or None when it is accepted."""
        with self.lock:
            return auth.check_web_token(self._tokens, token, origin)

    def check_api_key(self, key: Optional[str]) -> Optional[str]:
        """Why ``key`` is refused, or None when it is accepted."""
        with self.lock:
            return auth.check_api_key(self.api_keys, key)

    def api_key_valid(self, key: str) -> bool:
        """True when ``key`` is one of the accepted API keys."""
        with self.lock:
            return key in self.api_keys

    def grant(self, token: Optional[str]) -> Optional[TokenGrant]:
        """The grant of an accepted ``token``."""
        with self.lock:
            return self._tokens.get(token) if token else None

    # --- what the WebSocket sessions report (loop thread) --------------------------------------

    def accept_connection(self) -> int:
        """A new connection's id (1, 2, ...)."""
        with self.lock:
            self._connections += 1
            return self._connections

    def open_conversation(
        self, info: InitInfo, *, token: Optional[str], dev: bool
    ) -> Tuple[ConversationRecord, Agent]:
        """File a new conversation; returns its record and the agent that plays it."""
        grant = None if dev else self.grant(token)
        with self.changed:
            record = ConversationRecord(
                record_id=str(uuid.UUID(int=self._ids.getrandbits(128), version=4)),
                token=token,
                agent_id=info.agent_id,
                call_type=info.call_type,
                additional_data=info.additional_data,
                endpoint=info.endpoint,
                dev=dev,
                integration_id=grant.integration_id if grant is not None else None,
            )
            self.records.append(record)
            self.changed.notify_all()
        return record, self.agent_for(info.agent_id)

    def record_frame(
        self,
        connection_id: int,
        record: Optional[ConversationRecord],
        direction: str,
        payload: Union[str, bytes],
        data: Any,
        kind: Optional[str],
    ) -> None:
        """File a frame of connection ``connection_id`` (under ``record`` when there is one)."""
        frame = FrameRecord(
            direction=direction,
            connection_id=connection_id,
            record_id=record.record_id if record is not None else None,
            type=kind,
            data=data,
            text=payload,
        )
        with self.changed:
            self.frames.append(frame)
            if record is not None:
                (record.client_frames if direction == "client" else record.server_frames).append(
                    frame
                )
            self.changed.notify_all()

    def add_transcript(self, record: Optional[ConversationRecord], speaker: str, text: str) -> None:
        """Add a line to the transcript of ``record``."""
        with self.changed:
            if record is not None:
                record.transcript.append((speaker, text))
            self.changed.notify_all()

    def note_error(
        self, connection_id: int, record: Optional[ConversationRecord], text: str
    ) -> None:
        """Log ``text`` and file it among the errors of ``record``."""
        log.warning("emulator connection %d: %s", connection_id, text)
        with self.changed:
            if record is not None:
                record.errors.append(text)
            self.changed.notify_all()

    def tool_requested(
        self, record: Optional[ConversationRecord], call_id: str, name: str, args: Any
    ) -> ToolCallRecord:
        """File a tool call the agent made."""
        call = ToolCallRecord(call_id, name, args)
        with self.changed:
            if record is not None:
                record.tool_calls.append(call)
            self.changed.notify_all()
        return call

    def tool_finished(self, call: ToolCallRecord, result: Any, timed_out: bool) -> None:
        """File the answer to ``call`` (or that it timed out)."""
        with self.changed:
            call.result = result
            call.answered = not timed_out
            call.timed_out = timed_out
            self.changed.notify_all()

    def conversation_ended(
        self, record: ConversationRecord, status: str, ended_by: str, error_message: Optional[str]
    ) -> ConversationRecord:
        """Mark ``record`` as over; returns its final snapshot."""
        with self.changed:
            record.status = status
            record.ended_by = ended_by
            record.error_message = error_message
            record.ended_at = utcnow()
            self.changed.notify_all()
            return record.snapshot()

    def connection_closed(
        self, connection_id: int, record: Optional[ConversationRecord], close_code: Optional[int]
    ) -> None:
        """The socket of ``connection_id`` is closed: its record is final."""
        self.faults.connection_closed(connection_id)
        with self.changed:
            if record is not None:
                record.close_code = close_code
                record.finished = True
            self.changed.notify_all()

    async def run_end_callbacks(self, record: ConversationRecord) -> None:
        """Run every ``on_conversation_end`` callback in the callback thread, one at a time."""
        loop = asyncio.get_running_loop()
        for callback in list(self.on_conversation_end):
            try:
                await loop.run_in_executor(self.executor, callback, record)
            except Exception:
                log.exception("on_conversation_end callback %r failed", callback)

"""The BlackBox emulator: a real aiohttp server, REST and WebSocket on one port, in its own thread.

::

    with Emulator(agent=ScriptedAgent([Rule("order", "It shipped.")])) as emu:
        ws = websocket.create_connection(emu.ws_url())
        ...
        record = emu.wait_for_conversation_end(timeout=5)

Thread model
    One daemon thread runs an asyncio loop (:attr:`Emulator.loop`) with the aiohttp application;
    every socket, every :class:`~.ws.session.WsSession` and every REST handler runs there. All
    state shared with other threads (tokens, API keys, agents, records, frames, armed faults)
    lives on the emulator's :class:`~.service.ServiceState` (:attr:`Emulator.service`), which
    both the WebSocket sessions and the REST fake use, and is guarded by one re-entrant lock,
    :attr:`Emulator.lock`; :attr:`Emulator.changed`, a condition on that lock, is notified on
    every change, and the
    ``wait_for_*`` helpers wait on it. Loop code holds the lock only briefly, never across an
    ``await``. Methods that wait for the loop (``start``, ``stop``, ``reset``, ``drop_connection``)
    must not be called from the loop thread. ``on_conversation_end`` callbacks run in the loop's
    thread pool, so a slow one cannot stall the server, and they finish before the client is told
    that the conversation ended.

Secrets: tokens and API keys never reach a log line; URLs are logged through
:func:`~blackbox_sync.redact.redact_url`.
"""

import asyncio
import concurrent.futures
import logging
import secrets
import socket
import sys
import threading
from datetime import datetime
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Coroutine,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    TextIO,
    TypeVar,
    Union,
)

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from blackbox_sync.errors import BlackBoxError, UsageError
from blackbox_sync.redact import redact_url
from blackbox_sync.testing.agents.scripted import Agent, ScriptedAgent
from blackbox_sync.testing.faults.catalogue import ConnectionFault, DropAfter, Fault, FaultFiring
from blackbox_sync.testing.faults.engine import ArmedFault, FaultEngine
from blackbox_sync.testing.options import EmulatorOptions
from blackbox_sync.testing.records import FAILED, ConversationRecord, FrameRecord, TokenGrant
from blackbox_sync.testing.rest import api as rest_api
from blackbox_sync.testing.rest.control import RestState
from blackbox_sync.testing.service import UNSET, EndCallback, ServiceState, Unset
from blackbox_sync.testing.ws.session import CLOSE_GOING_AWAY, WsSession

if TYPE_CHECKING:
    from blackbox_sync.testing.voice.calls import EmulatorVoice

log = logging.getLogger("blackbox_sync.testing")

T = TypeVar("T")
WEB_CALL_PATH = "/api/v1/ws/webCall"
DEV_PATH = "/api/v1/ws/dev"


class Emulator:
    """A local, strict BlackBox service for tests and offline demos.

    ``agent`` answers every conversation whose token (or ``devRequest.agentId``) names no agent
    in ``agents``. ``token`` and ``api_key`` default to fresh random values; ``seed`` makes the
    conversation ids and the faults' chances and delays repeatable. See the module docstring
    for the thread model.
    """

    def __init__(
        self,
        agent: Optional[Agent] = None,
        *,
        agents: Optional[Mapping[str, Agent]] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: Optional[str] = None,
        api_key: Optional[str] = None,
        options: Optional[EmulatorOptions] = None,
        seed: int = 0,
        voice: Optional["EmulatorVoice"] = None,
    ) -> None:
        self.host = host
        self.voice = voice
        """Voice mode (:class:`~.voice.EmulatorVoice`): ``webCall`` conversations get real
        WebRTC media. ``None`` (the default): a fake offer and no media."""
        self.service = ServiceState(
            agent=agent,
            agents=agents,
            token=token or f"emu-token-{secrets.token_hex(12)}",
            api_key=api_key or f"emu-key-{secrets.token_hex(12)}",
            options=options or EmulatorOptions(),
            seed=seed,
        )
        """What the emulated service knows: the state the WebSocket sessions and the REST fake
        share (see :mod:`.service`)."""
        self.lock = self.service.lock
        self.changed = self.service.changed
        self.on_reset: List[Callable[[], None]] = []
        """Called after :meth:`reset` cleared the emulator's state (in the caller's thread)."""
        self.rest: RestState = rest_api.rest_state(self.service)
        """The REST fake's state: seed objects, inject faults, read the journal (see
        :mod:`.rest.api`)."""
        self.on_reset.append(self.rest.reset)
        self._requested_port = port
        self._port: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._startup_error: Optional[BaseException] = None
        self._sessions: Set[WsSession] = set()  # loop thread only

    @property
    def token(self) -> str:
        """The default web-integration token (valid after every :meth:`reset`)."""
        return self.service.token

    @property
    def api_key(self) -> str:
        """The default API key (valid after every :meth:`reset`)."""
        return self.service.api_key

    @property
    def options(self) -> EmulatorOptions:
        """What new connections use (time limits, sizes, quirks)."""
        return self.service.options

    @options.setter
    def options(self, options: EmulatorOptions) -> None:
        with self.lock:
            self.service.options = options

    @property
    def on_conversation_end(self) -> List[EndCallback]:
        """Called with a snapshot of each conversation as it ends, one at a time in the
        emulator's callback thread, before the client is told; must return promptly (the end of
        that conversation, and :meth:`stop`, wait for it). A callback that raises is logged."""
        return self.service.on_conversation_end

    @property
    def faults(self) -> FaultEngine:
        """Armed faults and their firings (see :mod:`.faults`); :meth:`arm_fault` arms."""
        return self.service.faults

    @property
    def default_agent(self) -> Agent:
        """The agent of conversations whose agent id names no agent in :attr:`agents`."""
        return self.service.default_agent

    @default_agent.setter
    def default_agent(self, agent: Agent) -> None:
        with self.lock:
            self.service.default_agent = agent

    @property
    def agents(self) -> Dict[str, Agent]:
        """Agents by agent id (the dict itself: change it under :attr:`lock`)."""
        return self.service.agents

    @agents.setter
    def agents(self, agents: Dict[str, Agent]) -> None:
        with self.lock:
            self.service.agents = agents

    @property
    def api_keys(self) -> Set[str]:
        """The accepted API keys (the set itself: change it under :attr:`lock`)."""
        return self.service.api_keys

    @api_keys.setter
    def api_keys(self, keys: Set[str]) -> None:
        with self.lock:
            self.service.api_keys = keys

    def __repr__(self) -> str:
        state = f"listening on {self.base_url}" if self.running else "stopped"
        return f"<Emulator {state}>"

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> "Emulator":
        """Bind the port, start the server thread and wait until it accepts connections."""
        if self._thread is not None:
            raise UsageError("the emulator is already running")
        try:
            sock = socket.create_server((self.host, self._requested_port))
        except OSError as exc:
            raise PortUnavailableError(self.host, self._requested_port, exc) from None
        self._port = sock.getsockname()[1]
        ready = threading.Event()
        self._startup_error = None
        self._thread = threading.Thread(
            target=self._serve_forever,
            args=(sock, ready),
            name=f"blackbox-emulator:{self._port}",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(timeout):
            self.stop(timeout)
            raise TimeoutError(f"the emulator did not start within {timeout} s")
        if self._startup_error is not None:
            error = self._startup_error
            self.stop(timeout)
            raise error
        log.info("BlackBox emulator listening on %s", self.base_url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop the server and join its thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        self._not_on_loop()
        if loop is not None and thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
            except Exception as exc:  # a timeout or a closed loop: stop the loop all the same
                log.warning("emulator shutdown incomplete: %r", exc)
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:  # the loop is already closed
                pass
        thread.join(timeout)
        if thread.is_alive():
            log.warning("the emulator thread did not stop within %s s", timeout)
        self._thread = self._loop = self._runner = None

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop (for code that must run on it, like REST handlers' helpers)."""
        if self._loop is None:
            raise UsageError("the emulator is not running")
        return self._loop

    @property
    def port(self) -> int:
        """The TCP port (known once started)."""
        if self._port is None:
            raise UsageError("the emulator is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port``: the REST base URL, from which clients derive WebSocket URLs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def ws_url(self, token: Optional[str] = None, *, dev: bool = False) -> str:
        """The WebSocket URL with a credential: ``token`` (or the default token), or on ``dev``
        the API key (``token`` then overrides the key). Contains a secret: don't log it."""
        base = "ws" + self.base_url[len("http") :]
        if dev:
            return f"{base}{DEV_PATH}?authorization={token or self.api_key}"
        return f"{base}{WEB_CALL_PATH}?token={token or self.token}"

    # --- configuration (any thread) -------------------------------------------------------------

    def add_token(
        self,
        token: str,
        agent_id: Optional[str] = None,
        *,
        enabled: bool = True,
        origins: Optional[Sequence[str]] = None,
        integration_id: Optional[str] = None,
        expires_at: Optional[datetime] = None,
    ) -> TokenGrant:
        """Accept ``token`` on the production endpoint, for ``agent_id``'s script.

        ``enabled=False`` answers ``Web integration is not enabled``; ``origins`` turns on the
        ``Origin`` check; after ``expires_at`` (a datetime) the token is ``Invalid token``.
        """
        grant = TokenGrant(
            token,
            agent_id=agent_id,
            enabled=enabled,
            origins=origins,
            integration_id=integration_id,
            expires_at=expires_at,
        )
        self.service.add_token(grant)
        return grant

    def remove_token(self, token: str) -> bool:
        """Stop accepting ``token``; False when it was not known."""
        return self.service.remove_token(token)

    def update_integration(
        self,
        integration_id: str,
        *,
        agent_id: Union[Optional[str], Unset] = UNSET,
        enabled: Union[bool, Unset] = UNSET,
        origins: Union[Optional[Sequence[str]], Unset] = UNSET,
    ) -> int:
        """Change every token of ``integration_id`` at once; returns how many there were."""
        return self.service.update_integration(
            integration_id, agent_id=agent_id, enabled=enabled, origins=origins
        )

    @property
    def tokens(self) -> List[TokenGrant]:
        """The accepted tokens' grants (a list, not a dict keyed by secrets, so that printing it
        reveals nothing: a grant's repr leaves its token out)."""
        return self.service.tokens

    def set_agent(self, agent_id: str, agent: Agent) -> None:
        """Use ``agent`` for conversations with ``agent_id``."""
        self.service.set_agent(agent_id, agent)

    def arm_fault(self, fault: Union[Fault, ConnectionFault]) -> ArmedFault:
        """Arm ``fault`` (see :mod:`.faults`): it counts each connection's frames from now on
        (connections open now and those opened later) and strikes as its ``when`` says, up to
        its ``times``. Returns a handle with ``fired`` and ``disarm()``."""
        return self.faults.arm(fault)

    def disarm_faults(self) -> None:
        """Disarm every armed fault."""
        self.faults.disarm()

    @property
    def fault_firings(self) -> List[FaultFiring]:
        """Every fault firing so far (what, when, which connection), oldest first."""
        return self.faults.firings

    def wait_for_fault(
        self, kind: Optional[str] = None, timeout: float = 5.0, count: int = 1
    ) -> FaultFiring:
        """Wait until a fault of class ``kind`` (any, by default) fired ``count`` times."""
        return self.faults.wait_for_firing(kind, timeout, count)

    def drop_next_connection_after(self, n_frames: int, direction: str = "server") -> None:
        """Drop a connection (no close frame: the client sees 1006) after ``n_frames`` more frames.

        Counts from now, on the open connection or, if none is open, the next one; ``direction``
        counts frames the emulator sent (``"server"``), received (``"client"``) or both
        (``"any"``). See :class:`~.faults.DropAfter` and :meth:`arm_fault`.
        """
        self.arm_fault(DropAfter(n_frames, direction))

    def drop_connection(self, record_id: Optional[str] = None, timeout: float = 5.0) -> int:
        """Drop the TCP connection of conversation ``record_id`` (or every open one) right now."""
        return self._on_loop(self._drop_sessions(record_id), timeout)

    def options_snapshot(self) -> EmulatorOptions:
        """A copy of :attr:`options` (what a new connection uses)."""
        return self.service.options_snapshot()

    def reset(self, timeout: float = 10.0) -> None:
        """End every open connection and forget all state, keeping the port and the defaults."""
        if self.running:
            self._on_loop(self._end_sessions("emulator_reset"), timeout)
        self.service.clear()
        for callback in list(self.on_reset):
            callback()

    # --- what happened (any thread) ------------------------------------------------------------

    @property
    def frames(self) -> List[FrameRecord]:
        """Every frame received from clients, oldest first (a snapshot)."""
        with self.lock:
            return [f for f in self.service.frames if f.direction == "client"]

    @property
    def server_frames(self) -> List[FrameRecord]:
        """Every frame sent to clients, oldest first (a snapshot)."""
        with self.lock:
            return [f for f in self.service.frames if f.direction == "server"]

    @property
    def conversations(self) -> List[ConversationRecord]:
        """Snapshots of every conversation, oldest first."""
        return self.service.conversations()

    def conversation(self, record_id: str) -> ConversationRecord:
        """A snapshot of one conversation; KeyError when unknown."""
        with self.lock:
            for record in self.service.records:
                if record.record_id == record_id:
                    return record.snapshot()
        raise KeyError(record_id)

    def wait_for_frame(
        self,
        type: Optional[str] = None,
        timeout: float = 5.0,
        *,
        direction: str = "client",
        record_id: Optional[str] = None,
        count: int = 1,
        where: Optional[Callable[[FrameRecord], bool]] = None,
    ) -> FrameRecord:
        """Wait until ``count`` matching frames were seen (counted from the first) and return the
        last of them. Raises :class:`TimeoutError`."""

        def matches(frame: FrameRecord) -> bool:
            return (
                frame.direction == direction
                and (type is None or frame.type == type)
                and (record_id is None or frame.record_id == record_id)
                and (where is None or where(frame))
            )

        def found() -> Optional[FrameRecord]:
            hits = [f for f in self.service.frames if matches(f)]
            return hits[count - 1] if len(hits) >= count else None

        with self.changed:
            frame = self.changed.wait_for(found, timeout)
        if frame is None:
            raise TimeoutError(
                f"no {direction} frame {type or '(any type)'} #{count} within {timeout} s"
            )
        return frame

    def wait_for_conversation_end(
        self, timeout: float = 5.0, record_id: Optional[str] = None
    ) -> ConversationRecord:
        """Wait until conversation ``record_id`` (default: the latest one, waiting for one to
        start if needed) is over and its socket closed; returns its final snapshot."""

        def finished() -> Optional[ConversationRecord]:
            records = [r for r in self.service.records if record_id in (None, r.record_id)]
            return records[-1] if records and records[-1].finished else None

        with self.changed:
            record = self.changed.wait_for(finished, timeout)
            if record is None:
                raise TimeoutError(f"no conversation ended within {timeout} s")
            return record.snapshot()

    # --- the server thread ----------------------------------------------------------------------

    def _serve_forever(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        # One worker, started now, so the emulator's thread count stays put while it runs.
        pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="blackbox-emulator-callbacks"
        )
        pool.submit(lambda: None).result()
        self.service.executor = pool
        self.service.loop = loop
        self.service.base_url = self.base_url
        try:
            loop.run_until_complete(self._start_app(sock))
        except BaseException as exc:  # reported to start() in the caller's thread
            self._startup_error = exc
            sock.close()
        finally:
            ready.set()
        try:
            if self._startup_error is None:
                loop.run_forever()
        finally:
            _close_loop(loop)
            pool.shutdown(wait=True)
            self.service.loop = self.service.executor = None

    async def _start_app(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_get(WEB_CALL_PATH, self._web_call)
        app.router.add_get(DEV_PATH, self._dev_call)
        rest_api.add_routes(app, self.rest)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log_class=_RedactingAccessLog,
            access_log=logging.getLogger("blackbox_sync.testing.access"),
        )
        await runner.setup()
        self._runner = runner
        await web.SockSite(runner, sock).start()

    async def _shutdown(self) -> None:
        self.faults.release()
        await self._end_sessions("server_shutdown")
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), timeout=5.0)

    async def _web_call(self, request: web.Request) -> web.StreamResponse:
        return await self._websocket(request, dev=False)

    async def _dev_call(self, request: web.Request) -> web.StreamResponse:
        return await self._websocket(request, dev=True)

    async def _websocket(self, request: web.Request, *, dev: bool) -> web.StreamResponse:
        if not web.WebSocketResponse().can_prepare(request).ok:
            raise web.HTTPBadRequest(text="this endpoint speaks WebSocket only")
        session = WsSession(
            self.service,
            request,
            dev=dev,
            host=self.host,
            voice=self.voice,
            on_open=self._sessions.add,
        )
        try:
            return await session.run()
        finally:
            self._sessions.discard(session)

    async def _end_sessions(self, ended_by: str, grace: float = 1.0) -> None:
        sessions = list(self._sessions)
        for session in sessions:
            session.end(ended_by, status=FAILED, send_result=False, close_code=CLOSE_GOING_AWAY)
        # A client that does not answer the close frame is cut off after a short grace.
        if not await _all_closed(sessions, grace):
            for session in sessions:
                session.drop()
            await _all_closed(sessions, grace)

    async def _drop_sessions(self, record_id: Optional[str]) -> int:
        hits = [
            s
            for s in self._sessions
            if record_id is None or (s.record is not None and s.record.record_id == record_id)
        ]
        for session in hits:
            session.end("connection_dropped", status=FAILED, send_result=False, drop=True)
        await _all_closed(hits, 5.0)
        return len(hits)

    def _on_loop(self, coro: "Coroutine[Any, Any, T]", timeout: float) -> T:
        self._not_on_loop()
        loop = self.loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def _not_on_loop(self) -> None:
        if self._thread is threading.current_thread():
            raise UsageError(
                "this Emulator method blocks on its own loop; call it from another thread"
            )


class _RedactingAccessLog(AbstractAccessLogger):
    """aiohttp's access log without the credentials that ride in query strings."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            "%s %s -> %s (%.3f s)",
            request.method,
            redact_url(str(request.rel_url)),
            response.status,
            time,
        )


async def _all_closed(sessions: Sequence[WsSession], timeout: float) -> bool:
    waits = [asyncio.ensure_future(s.closed.wait()) for s in sessions]
    if not waits:
        return True
    _, pending = await asyncio.wait(waits, timeout=timeout)
    for wait in pending:
        wait.cancel()
    return not pending


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left, join the default thread pool, close the loop: no thread survives."""
    try:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


class PortUnavailableError(BlackBoxError, OSError):
    """The emulator could not listen on its host and port (in use, not allowed, no such
    address); ``host``, ``port`` and the ``errno`` say which."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        why = cause.strerror or str(cause)
        super().__init__(cause.errno, f"cannot listen on {host}:{port}: {why}")
        self.host = host
        self.port = port

    def __str__(self) -> str:
        return str(self.args[1])


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    agent_file: Optional[str] = None,
    *,
    token: Optional[str] = None,
    api_key: Optional[str] = None,
    stop: Optional[threading.Event] = None,
    out: Optional[TextIO] = None,
) -> int:
    """Run an emulator until Ctrl-C (or until ``stop`` is set); for ``blackbox-sync emulator``.

    Prints the base URL, the web-integration token and the API key to ``out`` (stdout): they are
    the emulator's own throwaway credentials, shown so a client can connect. Returns 0.
    """
    out = out or sys.stdout
    agent = ScriptedAgent.from_file(agent_file) if agent_file else None
    stop = stop or threading.Event()
    with Emulator(agent, host=host, port=port, token=token, api_key=api_key) as emu:
        print(f"BlackBox emulator listening on {emu.base_url}", file=out)
        print(f"  web integration token: {emu.token}", file=out)
        print(f"  API key:               {emu.api_key}", file=out)
        print(f"  chat WebSocket:        {emu.ws_url('<token>')}", file=out)
        if agent_file:
            print(f"  agent:                 {agent_file}", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        try:
            # Waiting in slices keeps Ctrl-C responsive on Windows, where a bare wait() is not.
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            print("Stopping.", file=out, flush=True)
    return 0

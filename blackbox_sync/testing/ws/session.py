"""One WebSocket connection to the emulator: handshake checks, ``initialize``, turns, the end.

Everything here runs on the emulator's loop thread. A conversation has up to three tasks: the
reader (the aiohttp handler itself) checks and dispatches client frames; the agent worker plays
turns one after another, so the reader stays free to take tool responses and ``terminate``
mid-turn; and the ending task, started once by whoever ends the conversation first, so that
neither the reader nor the worker ever has to cancel itself.

Strictness, as the live service (PROTOCOL.md §2-§7) and, where it is undocumented, our choice:

=============================================================  ==================================
client does                                                    emulator answers
=============================================================  ==================================
no ``token`` (``authorization`` on /ws/dev)                    error ``Missing token``, close 1008
unknown or expired token / API key                             error ``Invalid token``, close 1008
token of a disabled integration                                error ``Web integration is not
                                                               enabled``, close 1008
``Origin`` missing or not in the integration's ``origins``     error ``Origin not allowed``, 1008
first frame not ``initialize``, or none in ``init_timeout``    error ``Init message not
                                                               received``, close 1008
a second ``initialize``                                        error ``Multiple init messages
                                                               received``, close 1008
frame over ``max_message_size`` UTF-8 bytes                    error ``Too large message``, 1009
known type whose payload does not deserialize: chat            close 1007, no error frame (the
``content`` not a string; ``websocketToolResponse`` or         live server's behaviour for the
``sdpAnswer`` without a ``channelId`` key; ``channelId`` not   first two; the rest follows the
a string/null; missing ``content.id``/``result``/``sdp``;      same deserialization rule)
``initialize`` without ``request`` or with an unknown
``callType``
not JSON, not an object, no string ``type``, binary frame      error ``Invalid message format``,
                                                               connection stays open (guess)
unknown ``type`` (or a server-only one)                        error ``Unknown message type:
                                                               <type>``, stays open (guess)
/ws/dev ``initialize`` without ``devRequest``                  TCP dropped, client sees 1006 (the
                                                               one live observation)
an unmasked frame (RFC 6455 §5.1: a server must close)        close 1002, no error frame
``terminate``                                                  ``conversationResult``, ``event
                                                               closed``, close 1000
=============================================================  ==================================

The agent ending the conversation looks the same as ``terminate``; a ``webCall`` ends with the
TCP connection dropped after those frames (1006), as live voice calls do.
"""

import asyncio
import functools
import json
import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Union

from aiohttp import WSMsgType, web

from blackbox_sync.errors import ProtocolError
from blackbox_sync.protocol.codec import LooseStr, format_timestamp
from blackbox_sync.protocol.messages import (
    PARTIAL_TEXT_KIND,
    ConversationResult,
    ErrorMessage,
    Event,
    Initialize,
    Message,
    SdpAnswer,
    SdpInvite,
    TextMessage,
    ToolCall,
    ToolCallResult,
    ToolRequest,
    ToolResponse,
    decode_object,
    encode,
)
from blackbox_sync.redact import redact_url
from blackbox_sync.testing.agents.scripted import (
    Agent,
    AgentContext,
    CallTool,
    CallTools,
    End,
    Pause,
    Say,
    SendRaw,
    Turn,
)
from blackbox_sync.testing.faults.engine import until_transport_closed
from blackbox_sync.testing.options import EmulatorOptions
from blackbox_sync.testing.records import COMPLETED, FAILED, ConversationRecord, parse_frame
from blackbox_sync.testing.service import InitInfo, ServiceState
from blackbox_sync.testing.voice.calls import EmulatorVoice

if TYPE_CHECKING:
    from blackbox_sync.testing.voice.session import VoiceSession

log = logging.getLogger("blackbox_sync.testing")

CALL_TYPES = frozenset({"chat", "webCall", "onPhone"})
INVALID_FORMAT = "Invalid message format"
INIT_MISSING = "Init message not received"
MULTIPLE_INIT = "Multiple init messages received"
TOO_LARGE = "Too large message"
TOOL_TIMED_OUT = "Tool response timed out"
AGENT_ERROR = "Internal agent error"

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
UNMASKED = "client frames must be masked"
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009

# A WebRTC offer shaped like the live one (SIP-style, RTP/SAVP, G.711, telephone-event). There is
# no media behind it: the emulator does voice signalling only.
FAKE_SDP_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 3900000000 3900000000 IN IP4 127.0.0.1",
        "s=blackbox-emulator",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/SAVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=sendrecv",
        "",
    ]
)


class _Reject(Exception):
    """An ``initialize`` that cannot start a conversation, and how to answer it."""

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


class WsSession:
    """The server side of one WebSocket; created by the emulator for each upgrade request.

    ``service`` is the emulator's state; ``host`` the address it listens on and ``voice`` its
    voice mode (``None``: a fake offer, no media); ``on_open`` is told once the upgrade is done.
    """

    def __init__(
        self,
        service: ServiceState,
        request: web.Request,
        *,
        dev: bool,
        host: str,
        voice: Optional[EmulatorVoice],
        on_open: Callable[["WsSession"], None],
    ) -> None:
        self.service = service
        self.request = request
        self.dev = dev
        self.host = host
        self.voice_mode = voice
        self._on_open = on_open
        self.options: EmulatorOptions = service.options_snapshot()
        self.connection_id = service.accept_connection()
        self.ws = web.WebSocketResponse(
            timeout=self.options.close_timeout,
            # Pings and the close handshake are answered by hand, so a Stall fault can not.
            autoping=False,
            autoclose=False,
            # aiohttp's own cap sits well above ours, so an oversized frame still reaches us
            # and gets the documented error frame instead of a bare close.
            max_msg_size=max(16 * self.options.max_message_size, 4 * 1024 * 1024),
        )
        self.record: Optional[ConversationRecord] = None
        self.agent: Optional[Agent] = None
        self.context: Optional[AgentContext] = None
        self.ending: Optional[asyncio.Future[None]] = None
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self.send_lock = asyncio.Lock()
        """Held while a frame is written, so that frames never interleave."""
        self._worker: Optional[asyncio.Task[None]] = None
        self._tools: Dict[str, asyncio.Future[Any]] = {}
        self._dropped = False
        self._close_code: Optional[int] = None
        self.voice: Optional[VoiceSession] = None
        """The WebRTC side of a ``webCall`` when the emulator's voice mode is on."""
        self.token: Optional[str] = None
        """The web-integration token the connection was accepted with (None on /ws/dev)."""
        self.closed = asyncio.Event()
        """Set once :meth:`run` is over: the socket is closed and the record final."""
        self.stalled = False
        """Set by a ``Stall`` fault: nothing is answered or sent any more."""

    # --- the connection's life ----------------------------------------------------------------

    async def run(self) -> web.StreamResponse:
        """Serve the connection until it closes; the aiohttp handler returns this."""
        refused = await self.service.faults.handshake(self)
        if refused is not None:
            self.service.connection_closed(self.connection_id, self.record, None)
            self.closed.set()
            return refused
        _watch_masking(self.request, self._unmasked)
        await self.ws.prepare(self.request)
        log.debug("connection %d opened: %s", self.connection_id, redact_url(str(self.request.url)))
        self._on_open(self)
        try:
            refusal = self._check_credentials()
            if refusal is not None:
                self.end("refused", error_frame=refusal, close_code=CLOSE_POLICY)
            else:
                await self.service.faults.opened(self)
            await self._read_loop()
        except Exception:  # an emulator bug: keep the server alive, say so loudly
            log.exception("emulator connection %d failed", self.connection_id)
            self.end("emulator_error", status=FAILED, close_code=1011)
        finally:
            self.end("client_disconnect", send_result=False)  # no-op when already ending
            assert self.ending is not None
            try:
                await asyncio.shield(self.ending)
            except asyncio.CancelledError:  # the server is going down: don't linger
                self.drop()
            code = CLOSE_ABNORMAL if self._dropped else self._close_code or self.ws.close_code
            self.service.connection_closed(self.connection_id, self.record, code)
            self.closed.set()
        return self.ws

    def end(
        self,
        ended_by: str,
        *,
        status: str = COMPLETED,
        error_message: Optional[str] = None,
        error_frame: Optional[str] = None,
        send_result: bool = True,
        close_code: int = CLOSE_NORMAL,
        close_reason: str = "",
        drop: bool = False,
    ) -> None:
        """End the connection (once; later calls are ignored). Loop thread only.

        ``error_frame`` sends an ``error`` frame first; ``send_result`` sends
        ``conversationResult`` and ``event closed`` (when a conversation exists); ``drop`` cuts
        the TCP connection at once, without a close frame.
        """
        if self.ending is not None:
            return
        if drop or self.stalled:
            self.drop()
        self.ending = asyncio.ensure_future(
            self._end(
                ended_by,
                status=status,
                error_message=error_message or error_frame,
                error_frame=error_frame,
                send_result=send_result,
                close_code=close_code,
                close_reason=close_reason,
            )
        )

    async def _end(
        self,
        ended_by: str,
        *,
        status: str,
        error_message: Optional[str],
        error_frame: Optional[str],
        send_result: bool,
        close_code: int,
        close_reason: str,
    ) -> None:
        await self._stop_worker()
        if self.voice is not None:  # voice mode: hang up the media first
            await self.voice.close()
        for waiter in self._tools.values():
            waiter.cancel()
        record = self.record
        if record is not None:
            snapshot = self.service.conversation_ended(record, status, ended_by, error_message)
            # Callbacks (the REST side's call results) run before the client hears the end,
            # so a client that reacts to conversationResult finds the results already there.
            await self.service.run_end_callbacks(snapshot)
        if error_frame is not None:
            await self.send(_error(error_frame))
        if record is not None and send_result:
            await self.send(_result_message(snapshot))
            await self.send(_closed_event(snapshot))
        voice = record is not None and record.call_type == "webCall"
        normal_end = ended_by in ("agent", "client_terminate")
        if voice and normal_end and self.options.voice_end_drops_connection:
            self.drop()  # live voice calls end with 1006
        if not self._dropped and not self.ws.closed:
            self._close_code = close_code
            try:
                await self.ws.close(code=close_code, message=close_reason.encode()[:123])
            except (ConnectionError, RuntimeError):  # the peer is already gone
                pass

    @property
    def dropped(self) -> bool:
        """True once the TCP connection was cut (see :meth:`drop`)."""
        return self._dropped

    def drop(self) -> None:
        """Cut the TCP connection without a close frame (the client sees 1006)."""
        if self._dropped:
            return
        self._dropped = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def _stop_worker(self) -> None:
        worker = self._worker
        if worker is None or worker is asyncio.current_task():
            return
        worker.cancel()
        try:
            await worker
        except asyncio.CancelledError:
            pass

    # --- reading ---------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            waiting_for_init = self.record is None and self.ending is None and not self.stalled
            try:
                msg = await self.ws.receive(
                    timeout=self.options.init_timeout if waiting_for_init else None
                )
            except asyncio.TimeoutError:
                self.end("protocol_error", error_frame=INIT_MISSING, close_code=CLOSE_POLICY)
                continue
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await self._on_frame(msg.data)
            elif msg.type is WSMsgType.PING:
                if not self.stalled:
                    await self.ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                continue
            elif msg.type is WSMsgType.CLOSE and self.stalled:
                await until_transport_closed(self)  # a stalled peer answers not even a close
                return
            else:  # CLOSE (the client's), CLOSING (ours), CLOSED or ERROR (connection lost)
                if msg.type is WSMsgType.CLOSE and not self.ws.closed:
                    await self.ws.close(drain=False)  # answer the client's close frame
                return

    async def _on_frame(self, payload: Union[str, bytes]) -> None:
        data, kind = parse_frame(payload)
        size = len(payload.encode("utf-8")) if isinstance(payload, str) else len(payload)
        too_large = size > self.options.max_message_size
        opened = False
        reject: Optional[_Reject] = None
        if self.record is None and self.ending is None and kind == "initialize" and not too_large:
            try:  # open the record first, so that the initialize frame is filed under it
                self._open(self._read_init(data))
                opened = True
            except _Reject as exc:
                reject = exc
        self.record_frame("client", payload, data, kind)
        if self.ending is not None or self.stalled:
            return  # frames after the end are recorded, not answered
        if await self.service.faults.client_frame(self, kind):
            return
        if too_large:
            self._protocol_error(TOO_LARGE, CLOSE_TOO_BIG)
        elif reject is not None and reject.close_code == CLOSE_ABNORMAL:
            self.end("protocol_error", status=FAILED, send_result=False, drop=True)
        elif reject is not None:
            self._protocol_error(None, reject.close_code, reject.reason)
        elif opened:
            await self._start_conversation()
        elif self.record is None:
            self._protocol_error(INIT_MISSING, CLOSE_POLICY)
        elif kind == "initialize":
            self._protocol_error(MULTIPLE_INIT, CLOSE_POLICY)
        elif kind is None:
            await self.send(_error(INVALID_FORMAT))
        else:
            await self._dispatch(kind, data, payload)

    async def _dispatch(self, kind: str, data: Dict[str, Any], payload: Union[str, bytes]) -> None:
        channel = data.get("channelId")
        if channel is not None and not isinstance(channel, str):
            self._protocol_error(
                None, CLOSE_INVALID_PAYLOAD, f"{kind}: channelId must be a string or null"
            )
            return
        if kind == "incomingChatMessage":
            if not isinstance(data.get("content"), str):
                self._protocol_error(
                    None, CLOSE_INVALID_PAYLOAD, "incomingChatMessage: content must be a string"
                )
                return
            await self.user_message(data["content"])
        elif kind in ("websocketToolResponse", "sdpAnswer"):
            if "channelId" not in data:
                self._protocol_error(None, CLOSE_INVALID_PAYLOAD, f"{kind}: channelId is required")
                return
            try:
                message = decode_object(data, payload)
            except ProtocolError as exc:
                self._protocol_error(None, CLOSE_INVALID_PAYLOAD, str(exc))
                return
            if isinstance(message, ToolResponse):
                self._tool_answered(message)
            elif isinstance(message, SdpAnswer) and self.voice is not None:
                self.voice.answered(message.sdp)
        elif kind == "terminate":
            self.end("client_terminate")
        else:
            await self.send(_error(f"Unknown message type: {kind}"))

    # --- starting --------------------------------------------------------------------------------

    def _check_credentials(self) -> Optional[str]:
        query = self.request.query
        if self.dev:
            return self.service.check_api_key(query.get("authorization"))
        token = query.get("token")
        refusal = self.service.check_token(token, self.request.headers.get("Origin"))
        if refusal is None:
            self.token = token
        return refusal

    def _read_init(self, data: Dict[str, Any]) -> InitInfo:
        channel = data.get("channelId")
        if channel is not None and not isinstance(channel, str):
            raise _Reject(CLOSE_INVALID_PAYLOAD, "initialize: channelId must be a string or null")
        try:
            message = decode_object(data)
        except ProtocolError as exc:
            raise _Reject(CLOSE_INVALID_PAYLOAD, str(exc)) from None
        assert isinstance(message, Initialize)
        if self.dev:
            body = message.dev_request
            if not isinstance(body, dict):  # the live dev endpoint dropped such a connection
                raise _Reject(CLOSE_ABNORMAL, "initialize on /ws/dev needs devRequest")
            call_type = body.get("callType", "chat")
            extra = body.get("additionalData")
            endpoint = body.get("endpoint")
            agent_id = body.get("agentId")
            if not isinstance(extra, (dict, type(None))) or not isinstance(
                agent_id, (str, type(None))
            ):
                raise _Reject(
                    CLOSE_INVALID_PAYLOAD, "devRequest: additionalData/agentId of the wrong type"
                )
        else:
            if message.request is None:
                raise _Reject(CLOSE_INVALID_PAYLOAD, "initialize: request is required")
            call_type = message.request.call_type
            extra = message.request.additional_data
            endpoint = message.request.endpoint
            grant = self.service.grant(self.token)
            agent_id = grant.agent_id if grant is not None else None
        if not isinstance(call_type, str) or call_type not in CALL_TYPES:
            raise _Reject(CLOSE_INVALID_PAYLOAD, f"initialize: unknown callType {call_type!r}")
        return InitInfo(
            call_type, dict(extra or {}), endpoint if isinstance(endpoint, str) else None, agent_id
        )

    def _open(self, info: InitInfo) -> None:
        self.record, self.agent = self.service.open_conversation(
            info, token=self.token, dev=self.dev
        )
        self.context = AgentContext(
            record_id=self.record.record_id,
            agent_id=info.agent_id,
            call_type=info.call_type,
            additional_data=info.additional_data,
        )

    async def _start_conversation(self) -> None:
        assert self.record is not None
        data = dict.fromkeys(self.options.connection_id_keys, self.record.record_id)
        await self.send(Event(name=LooseStr("connection"), data=data))
        if self.options.send_opened_event:
            await self.send(Event(name=LooseStr("opened"), data={}))
        if self.record.call_type == "webCall":
            if self.voice_mode is not None:  # voice mode: a real WebRTC call (voice.py)
                from blackbox_sync.testing.voice.session import VoiceSession

                self.voice = VoiceSession(self, self.voice_mode)
                await self.voice.offer()
            else:
                await self.send(SdpInvite(sdp=FAKE_SDP_OFFER))
        self._worker = asyncio.ensure_future(self._work())

    # --- the agent --------------------------------------------------------------------------------

    async def user_message(self, text: str) -> None:
        """The user said ``text``: transcribe it, echo it if the agent does, queue the turn."""
        assert self.agent is not None
        self._transcribe("user", text)
        if self.agent.echo:
            await self.send(TextMessage(source=LooseStr("user"), text=text))
        self._inbox.put_nowait(text)

    async def _work(self) -> None:
        agent, context = self.agent, self.context
        assert agent is not None
        assert context is not None
        await self._play(functools.partial(agent.greet, context))
        while True:
            text = await self._inbox.get()
            context.turn += 1
            await self._play(functools.partial(agent.respond, text, context))

    async def _play(self, make_turn: Callable[[], Turn]) -> None:
        """Run one turn; an agent that raises is reported and the conversation goes on."""
        try:
            turn = make_turn()
            answer: Any = None
            while self.ending is None:
                try:
                    step = turn.send(answer)
                except StopIteration:
                    return
                answer = None
                if isinstance(step, Say):
                    await self._say(step)
                elif isinstance(step, Pause):
                    await asyncio.sleep(step.seconds)
                elif isinstance(step, CallTool):
                    answer = await self._call_tool(step)
                elif isinstance(step, CallTools):
                    answer = list(await asyncio.gather(*map(self._call_tool, step.calls)))
                elif isinstance(step, SendRaw):
                    await self._send_raw(step.frame)
                elif isinstance(step, End):
                    self.end("agent", status=step.status, error_message=step.error_message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("emulated agent raised")
            self._note_error(f"agent raised {type(exc).__name__}: {exc}")
            await self.send(_error(AGENT_ERROR))

    async def _say(self, step: Say) -> None:
        if not step.partial:
            self._transcribe("assistant", step.text)
        await self.send(
            TextMessage(
                source=LooseStr("assistant"),
                text=step.text,
                kind=LooseStr(PARTIAL_TEXT_KIND) if step.partial else None,
            )
        )
        if self.voice is not None and not step.partial:  # voice mode: speak it, then go on
            await self.voice.speak(step.text)

    async def _call_tool(self, step: CallTool) -> Any:
        assert self.agent is not None
        assert step.id is not None
        if self.agent.announce_tool_calls:
            await self.send(
                ToolCall(id=LooseStr(step.id), tool_name=LooseStr(step.name), args=step.args)
            )
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._tools[step.id] = waiter
        call = self.service.tool_requested(self.record, step.id, step.name, step.args)
        await self.send(ToolRequest(id=step.id, tool_name=step.name, args=step.args))
        timeout = step.timeout if step.timeout is not None else self.agent.tool_timeout
        try:
            result, timed_out = await asyncio.wait_for(waiter, timeout), False
        except asyncio.TimeoutError:
            # The agent goes on with an error result rather than waiting forever (live: unknown).
            result, timed_out = {"error": TOOL_TIMED_OUT}, True
        finally:
            self._tools.pop(step.id, None)
        self.service.tool_finished(call, result, timed_out)
        await self.send(
            ToolCallResult(id=LooseStr(step.id), tool_name=LooseStr(step.name), result=result)
        )
        return result

    def _tool_answered(self, response: ToolResponse) -> None:
        waiter = self._tools.pop(response.id, None)
        if waiter is None or waiter.done():
            self._note_error(f"websocketToolResponse for unknown id {response.id!r}")
            return
        waiter.set_result(response.result)

    def _transcribe(self, speaker: str, text: str) -> None:
        assert self.context is not None
        self.context.transcript.append((speaker, text))
        self.service.add_transcript(self.record, speaker, text)

    def _note_error(self, text: str) -> None:
        self.service.note_error(self.connection_id, self.record, text)

    def record_frame(
        self, direction: str, payload: Union[str, bytes], data: Any, kind: Optional[str]
    ) -> None:
        """File a frame of this connection (``direction`` ``"client"`` or ``"server"``)."""
        self.service.record_frame(self.connection_id, self.record, direction, payload, data, kind)

    # --- sending --------------------------------------------------------------------------------

    async def send(self, message: Message) -> bool:
        """Send ``message`` (through the armed faults); False when the connection is gone."""
        payload = encode(message)
        data = json.loads(payload)
        # The emulator checks its own output with the client's decoder, so the two cannot drift.
        echoed = decode_object(data, payload)
        if type(echoed) is not type(message):
            raise AssertionError(f"emulator frame decodes as {type(echoed).__name__}: {payload}")
        return await self.send_payload(payload, data, message.TYPE)

    async def _send_raw(self, frame: Union[str, bytes, Dict[str, Any]]) -> bool:
        if isinstance(frame, dict):
            frame = json.dumps(frame, ensure_ascii=False)
        data, kind = parse_frame(frame)
        return await self.send_payload(frame, data, kind)

    async def send_payload(
        self, payload: Union[str, bytes], data: Any, kind: Optional[str]
    ) -> bool:
        """Send a frame as it is, through the armed faults; False when the connection is gone."""
        faults = self.service.faults
        async with self.send_lock:
            if self._dropped or self.ws.closed or self.stalled:
                return False
            # Armed faults may delay, change, add or hold back frames (fault_engine.py).
            plan = await faults.outgoing(self, payload, data, kind)
            for frame in plan.frames:
                if not await faults.write(self, frame):
                    return False
        if plan.then is not None:
            faults.end_after_send(self, plan.then)
        return True

    # --- faults and errors ----------------------------------------------------------------------

    def _unmasked(self) -> None:
        log.debug("connection %d sent an unmasked frame", self.connection_id)
        self._protocol_error(None, CLOSE_PROTOCOL, UNMASKED)

    def _protocol_error(self, message: Optional[str], close_code: int, reason: str = "") -> None:
        self.end(
            "protocol_error",
            status=FAILED,
            error_message=message or reason,
            error_frame=message,
            send_result=False,
            close_code=close_code,
            close_reason=reason,
        )


class _MaskWatch(asyncio.Protocol):
    """Stands between the transport and aiohttp's protocol, and stops at the first unmasked
    client frame.

    aiohttp reads the mask bit but accepts either value and has no hook for it, so this follows
    the frame boundaries in the raw bytes after the upgrade request: it reads each frame's header
    (2 to 14 bytes) and skips its payload by length. Everything before the unmasked frame
    reaches aiohttp; nothing from it on does, and ``on_unmasked`` runs once.
    """

    def __init__(self, protocol: asyncio.Protocol, on_unmasked: Callable[[], None]) -> None:
        self._protocol = protocol
        self._on_unmasked = on_unmasked
        self._head = bytearray()
        self._skip = 0
        self._tripped = False

    def data_received(self, data: bytes) -> None:
        if self._tripped:
            return
        cut = self._unmasked_at(data)
        if cut is None:
            self._protocol.data_received(data)
            return
        self._tripped = True
        if cut:
            self._protocol.data_received(data[:cut])
        self._on_unmasked()

    def eof_received(self) -> Optional[bool]:
        return self._protocol.eof_received()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()

    def _unmasked_at(self, data: bytes) -> Optional[int]:
        """Where in ``data`` the first unmasked frame starts (0 if its header began earlier)."""
        at, size = 0, len(data)
        while at < size:
            if self._skip:
                step = min(self._skip, size - at)
                self._skip -= step
                at += step
                continue
            self._head.append(data[at])
            at += 1
            head = self._head
            if len(head) == 2 and not head[1] & 0x80:
                return max(0, at - 2)
            if len(head) >= 2 and len(head) == _header_size(head):
                self._skip = _payload_size(head)
                head.clear()
        return None


def _header_size(head: bytearray) -> int:
    """Bytes in a masked frame's header: 2, the extended length, the 4-byte key."""
    length = head[1] & 0x7F
    return 2 + {126: 2, 127: 8}.get(length, 0) + 4


def _payload_size(head: bytearray) -> int:
    length = head[1] & 0x7F
    if length < 126:
        return length
    return int.from_bytes(head[2 : 4 if length == 126 else 10], "big")


def _watch_masking(request: web.Request, on_unmasked: Callable[[], None]) -> None:
    """Route the connection's bytes through a :class:`_MaskWatch` from now on (the upgrade
    request is read; whatever comes next is WebSocket frames)."""
    transport = request.transport
    if transport is not None:
        transport.set_protocol(_MaskWatch(request.protocol, on_unmasked))


def _error(message: str) -> ErrorMessage:
    return ErrorMessage(message=LooseStr(message))


def _result_message(record: ConversationRecord) -> ConversationResult:
    # The live shape is undocumented; probes read `result.status` and `result.errorMessage`, so
    # the emulator sends a top-level `result` shaped like a call result.
    result: Dict[str, Any] = {
        "status": record.status,
        "recordId": record.record_id,
        "callType": record.call_type,
        "finishReason": record.ended_by,
        "durationSeconds": record.duration,
        "transcription": [{"speaker": s, "text": t} for s, t in record.transcript],
    }
    if record.error_message:
        result["errorMessage"] = record.error_message
    return ConversationResult(result=result)


def _closed_event(record: ConversationRecord) -> Event:
    data: Dict[str, Any] = {
        "endpoint": record.endpoint or "",
        "startConnectionTimeISO": format_timestamp(record.started_at),
    }
    if record.ended_at is not None:
        data["endConnectionTimeISO"] = format_timestamp(record.ended_at)
    return Event(name=LooseStr("closed"), data=data)

""":class:`VoiceCall`: a WebRTC voice call on a ``webCall`` conversation, behind a blocking API.

Threads: aiortc runs on an asyncio loop in one background thread (``blackbox-voice``), started
when the ``sdpInvite`` arrives and stopped and joined when the conversation's socket closes
(``on_close``) or :meth:`VoiceCall.close` is called, whichever comes first. aiortc adds its own
short-lived threads (a decoder thread per call, the loop's default executor for encoding); the
loop thread joins them before it ends, so no thread outlives the conversation.

State shared between the caller's threads, the conversation's reader thread and the loop thread
sits behind one condition (``_cond``), notified on every change; the blocking methods wait on it.
"""

import asyncio
import collections
import logging
import math
import os
import threading
import time
import wave
from typing import Any, Callable, Deque, List, Optional, Sequence, Set, Union

from blackbox_sync.conversation.facade import Conversation
from blackbox_sync.errors import BlackBoxError, ConnectionClosedError
from blackbox_sync.protocol.messages import SdpAnswer, SdpInvite, TextMessage
from blackbox_sync.voice.audio import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    AudioSource,
    PathLike,
    WavSequence,
    as_source,
    level_dbfs,
    write_wav,
)
from blackbox_sync.voice.errors import VoiceError, VoiceTimeout
from blackbox_sync.voice.ice import LOOPBACK, is_loopback_url, restrict
from blackbox_sync.voice.media import FrameReader, PacedTrack, place, prefer_g711
from blackbox_sync.voice.sdp import candidates, inspect_offer, prepare_offer, shape_answer
from blackbox_sync.voice.state import CallEvent, CallState, next_state
from blackbox_sync.voice.turns import AgentTurn, TurnTracker

log = logging.getLogger("blackbox_sync.voice")

FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH
AudioInput = Union[AudioSource, WavSequence, PathLike, bytes, Sequence[PathLike], None]

# What the WebRTC connection's `connectionState` values mean for the call.
_MEDIA_EVENTS = {
    "connected": CallEvent.MEDIA_UP,
    "failed": CallEvent.MEDIA_FAILED,
    "closed": CallEvent.MEDIA_CLOSED,
}


class Playback:
    """One clip queued on the call; :meth:`wait` blocks until it has been sent in full."""

    def __init__(self, source: AudioSource, cond: threading.Condition) -> None:
        self.source = source
        self.started_at: Optional[float] = None
        """``time.monotonic()`` when its first frame went out."""
        self.finished_at: Optional[float] = None
        """``time.monotonic()`` when its last frame went out (or the call ended)."""
        self.complete = False
        """True when it played to its end (False when the call ended first)."""
        self._cond = cond

    @property
    def done(self) -> bool:
        """True once played out, or cut short by the end of the call."""
        with self._cond:
            return self.finished_at is not None

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until :attr:`done`; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.finished_at is not None, timeout)

    def __repr__(self) -> str:
        state = "done" if self.finished_at is not None else "queued"
        return f"<Playback {self.source!r} {state}>"


class VoiceCall:
    """A voice call on a ``webCall`` :class:`~blackbox_sync.Conversation`.

    ``audio`` is what the user says: a path or :class:`WavSource` (played once, from the start),
    a :class:`WavSequence` or a list of paths (one clip per user turn), any
    :class:`AudioSource`, or ``None`` for silence. More clips can be queued with :meth:`play`
    and :meth:`ask`. ``record`` saves everything the agent said to a WAV file;
    ``record_turns`` (a ``str.format`` pattern with ``{turn}``, e.g. ``"agent-{turn}.wav"``)
    saves each turn separately.

    Attach the call before or after ``connect()``: an ``sdpInvite`` that already arrived is
    answered from the conversation's history. ICE gathers on loopback only when the
    conversation's URL is a loopback address (the emulator), else on every interface
    (``ice_addresses`` overrides). A voice call does not survive a reconnect.
    """

    def __init__(
        self,
        conversation: Optional[Conversation] = None,
        *,
        audio: AudioInput = None,
        record: Optional[PathLike] = None,
        record_turns: Optional[str] = None,
        speech_threshold_db: float = -45.0,
        reply_silence: float = 1.0,
        reply_timeout: float = 20.0,
        answer_timeout: float = 10.0,
        stop_timeout: float = 5.0,
        ice_addresses: Optional[Sequence[str]] = None,
    ) -> None:
        self.record = os.fspath(record) if record is not None else None
        self.record_turns = record_turns
        self.speech_threshold_db = speech_threshold_db
        self.reply_silence = reply_silence
        self.reply_timeout = reply_timeout
        self.answer_timeout = answer_timeout
        self.stop_timeout = stop_timeout
        self.ice_addresses = tuple(ice_addresses) if ice_addresses is not None else None
        self.offer_sdp: Optional[str] = None
        """The service's offer, as received."""
        self.answer_sdp: Optional[str] = None
        """The answer the client sent."""

        self._cond = threading.Condition()
        self._state = CallState.IDLE
        self._error: Optional[BaseException] = None
        self._conversation: Optional[Conversation] = None
        self._tracker = TurnTracker(time.monotonic())
        self._agent_pcm = bytearray()
        self._sent_pcm = bytearray()
        self._queue: Deque[Playback] = collections.deque()
        self._playing: Optional[Playback] = None
        self._sequence: Optional[WavSequence] = None
        self._sequence_done = False
        self._connected_at: Optional[float] = None
        self._frames_in = 0
        self._frames_out = 0
        self._wav: Optional[wave.Wave_write] = None
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._pc: Any = None
        self._tasks: List[asyncio.Future[Any]] = []
        self._stopped = False
        self._finished = False
        self._stop_lock = threading.Lock()
        self._texts_seen: Set[int] = set()  # a text replayed from history may also arrive live

        if isinstance(audio, WavSequence):
            self._sequence = audio
        elif isinstance(audio, (list, tuple)):
            self._sequence = WavSequence(audio)
        else:
            if isinstance(audio, (AudioSource, bytes, str, os.PathLike)):
                self._queue.append(Playback(as_source(audio), self._cond))
            self._sequence_done = True  # nothing to drive: done once the queue is empty
        if conversation is not None:
            self.attach(conversation)

    # --- wiring ---------------------------------------------------------------------------------

    def attach(self, conversation: Conversation) -> "VoiceCall":
        """Answer ``conversation``'s ``sdpInvite`` and follow its transcript (once)."""
        with self._cond:
            if self._conversation is not None:
                raise ValueError("this VoiceCall is already attached to a conversation")
            self._conversation = conversation
        if conversation.call_type != "webCall":
            log.warning("voice call attached to a %r conversation", conversation.call_type)
        conversation.on(SdpInvite, self._on_invite)
        conversation.on(TextMessage, self._on_text)
        conversation.on_close(self._on_close)
        for message in conversation.history:  # the invite may have come before we attached
            if isinstance(message, SdpInvite):
                self._on_invite(message)
            elif isinstance(message, TextMessage):
                self._on_text(message)
        return self

    @property
    def conversation(self) -> Optional[Conversation]:
        """The conversation the call rides on."""
        return self._conversation

    # --- information ----------------------------------------------------------------------------

    @property
    def state(self) -> CallState:
        """Where the call is: :class:`~blackbox_sync.voice.CallState` ``IDLE`` (no offer yet),
        ``ANSWERING``, ``CONNECTED``, ``ENDED`` or ``FAILED``; a ``str``, so it also compares
        equal to ``"idle"``, ``"answering"``, ``"connected"``, ``"ended"`` or ``"failed"``."""
        with self._cond:
            return self._state

    @property
    def error(self) -> Optional[BaseException]:
        """Why the call failed, if it did."""
        with self._cond:
            return self._error

    @property
    def turns(self) -> List[AgentTurn]:
        """Snapshots of the agent's turns so far, each with its audio."""
        with self._cond:
            return [self._snapshot(turn) for turn in self._tracker.turns]

    @property
    def agent_audio(self) -> bytes:
        """Everything received from the agent: 8 kHz 16-bit mono PCM, in real time."""
        with self._cond:
            return bytes(self._agent_pcm)

    @property
    def sent_audio(self) -> bytes:
        """Everything the client sent, silence included, as 8 kHz 16-bit mono PCM."""
        with self._cond:
            return bytes(self._sent_pcm)

    @property
    def frames(self) -> "tuple[int, int]":
        """(sent, received) 20 ms frames."""
        with self._cond:
            return self._frames_out, self._frames_in

    def __repr__(self) -> str:
        return f"<VoiceCall {self.state}, {len(self._tracker.turns)} turns>"

    # --- blocking API ---------------------------------------------------------------------------

    def wait_connected(self, timeout: float = 10.0) -> "VoiceCall":
        """Block until media flows (ICE and DTLS done). Raises :class:`VoiceError` if the call
        failed or ended first, :class:`VoiceTimeout` after ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._connected_at is not None or self._state.over, timeout
            ):
                raise VoiceTimeout(f"the voice call did not connect within {timeout:g} s")
            if self._connected_at is None:
                raise self._failure("the voice call ended before it connected")
        return self

    def play(
        self,
        audio: Union[AudioSource, PathLike, bytes],
        *,
        wait: bool = False,
        timeout: Optional[float] = None,
    ) -> Playback:
        """Queue a clip after whatever is queued; with ``wait``, block until it was sent.

        Each clip opens a new turn (see :attr:`turns`).
        """
        playback = Playback(as_source(audio), self._cond)
        with self._cond:
            if self._state.over:
                raise self._failure("the voice call is over")
            self._queue.append(playback)
        if wait and not playback.wait(timeout):
            raise VoiceTimeout(f"the clip was not played within {timeout:g} s")
        return playback

    def wait_for_reply(
        self, timeout: Optional[float] = None, *, silence: Optional[float] = None
    ) -> AgentTurn:
        """Block until the agent answered the current turn: it spoke after the user's clip
        ended, then stayed quiet for ``silence`` seconds (default ``reply_silence``).

        Returns the turn (latency, texts, audio). Raises :class:`VoiceTimeout` after
        ``timeout`` (default ``reply_timeout``) and :class:`VoiceError` if the call ends first.
        """
        timeout = self.reply_timeout if timeout is None else timeout
        silence = self.reply_silence if silence is None else silence
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                if self._tracker.reply_done(now, silence):
                    return self._snapshot(self._tracker.current)
                if self._state.over:
                    # A call the agent hangs up right after its answer ends that answer too.
                    if self._tracker.reply_done(math.inf, 0.0):
                        return self._snapshot(self._tracker.current)
                    raise self._failure("the voice call ended before the agent answered")
                if now >= deadline:
                    raise VoiceTimeout(f"the agent did not answer within {timeout:g} s")
                self._cond.wait(min(deadline - now, silence / 4))

    def ask(
        self,
        audio: Union[AudioSource, PathLike, bytes],
        timeout: Optional[float] = None,
        *,
        silence: Optional[float] = None,
    ) -> AgentTurn:
        """Play ``audio`` as the user's turn and wait for the agent's answer (see
        :meth:`wait_for_reply`); ``timeout`` covers both. Its ``latency`` is the time from the
        end of the clip to the agent's first audio."""
        timeout = self.reply_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self.wait_connected(timeout)
        playback = self.play(audio)
        if not playback.wait(max(0.0, deadline - time.monotonic())):
            raise VoiceTimeout(f"the clip was not played within {timeout:g} s")
        if not playback.complete:
            raise self._failure("the voice call ended while the clip played")
        return self.wait_for_reply(max(0.0, deadline - time.monotonic()), silence=silence)

    def wait_done(self, timeout: float = 60.0) -> List[AgentTurn]:
        """Block until the ``audio`` given at construction has been played (for a
        :class:`WavSequence`: every clip, and the agent's answer to the last) and the queue is
        empty; returns the turns. Also returns when the call ends."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (
                self._state.over
                or (self._sequence_done and not self._queue and self._playing is None)
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise VoiceTimeout(f"the call's audio was not done within {timeout:g} s")
                self._cond.wait(remaining)
        return self.turns

    def wait_ended(self, timeout: float = 30.0) -> None:
        """Block until the call is over: its conversation's socket closed (the live service
        closes it when a voice call ends) or :meth:`close` was called, and the voice thread
        has stopped."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._finished, timeout):
                raise VoiceTimeout(f"the voice call did not end within {timeout:g} s")

    def save(self, path: PathLike) -> None:
        """Write the agent's audio so far to a WAV file."""
        write_wav(path, self.agent_audio)

    def close(self, timeout: Optional[float] = None) -> None:
        """Hang up the media and join the voice thread. Idempotent; the conversation's close
        does it too. Does not end the conversation (``conv.terminate()`` does)."""
        self._stop(self.stop_timeout if timeout is None else timeout)

    def __enter__(self) -> "VoiceCall":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # --- conversation callbacks (reader thread; must not block) ---------------------------------

    def _on_invite(self, message: SdpInvite) -> None:
        # The stop lock keeps a concurrent close() from missing the thread started here.
        with self._stop_lock:
            with self._cond:
                if self._stopped or not self._move(CallEvent.INVITED):
                    if message.sdp != self.offer_sdp:
                        log.warning("ignored a second sdpInvite: renegotiation is not supported")
                    return
                self.offer_sdp = message.sdp
                self._cond.notify_all()
            loop = self._start_loop()
            asyncio.run_coroutine_threadsafe(self._answer(message.sdp), loop)

    def _on_text(self, message: TextMessage) -> None:
        if message.partial:
            return
        closed: Optional[AgentTurn] = None
        with self._cond:
            if id(message) in self._texts_seen:  # the history keeps it alive: ids stay unique
                return
            self._texts_seen.add(id(message))
            if message.source == "assistant":
                self._tracker.agent_text(message.text)
            elif message.source == "user":
                sample = len(self._agent_pcm) // SAMPLE_WIDTH
                closing = self._tracker.current
                self._tracker.user_text(time.monotonic(), message.text, sample)
                if closing is not self._tracker.current:
                    closed = closing
            self._cond.notify_all()
        if closed is not None:
            self._write_turn(closed)

    def _on_close(self, code: Optional[int], reason: str) -> None:
        self._stop(self.stop_timeout)

    # --- the voice thread -----------------------------------------------------------------------

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_forever()
            finally:
                _close_loop(loop)

        thread = threading.Thread(target=run, name="blackbox-voice", daemon=True)
        with self._cond:
            self._loop, self._thread = loop, thread
        thread.start()
        return loop

    def _stop(self, timeout: float) -> None:
        with self._stop_lock:
            with self._cond:
                first = not self._stopped
                self._stopped = True
                loop, thread = self._loop, self._thread
            if not first:
                if thread is not None and thread is not threading.current_thread():
                    thread.join(timeout)
                return
            if loop is not None and thread is not None and thread.is_alive():
                deadline = time.monotonic() + timeout
                try:
                    asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
                except Exception as exc:  # a timeout, or the loop already gone
                    log.warning("voice call shutdown incomplete: %r", exc)
                loop.call_soon_threadsafe(loop.stop)
                thread.join(max(0.1, deadline - time.monotonic()))
                if thread.is_alive():
                    log.warning("the voice thread did not stop within %g s", timeout)
            self._finish_recording()
            with self._cond:
                self._finished = True
                self._move(CallEvent.STOPPED)
                self._cond.notify_all()

    async def _answer(self, offer: str) -> None:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        conversation = self._conversation
        assert conversation is not None
        addresses = self.ice_addresses
        if addresses is None and is_loopback_url(conversation.url):
            addresses = LOOPBACK
        restrict(addresses)  # this task's context only
        try:
            info = inspect_offer(offer)
            if "PCMU" not in info.codecs and "PCMA" not in info.codecs:
                raise VoiceError(f"the offer has no G.711 codec (it offers {info.codecs})")
            pc = RTCPeerConnection()
            self._pc = pc
            pc.on("connectionstatechange", lambda: self._connection_state(pc.connectionState))
            pc.on("track", self._on_track)
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=prepare_offer(offer), type="offer")
            )
            pc.addTrack(PacedTrack(self._pull))
            prefer_g711(pc)
            # aiortc gathers every candidate before setLocalDescription returns: the answer
            # is complete, as a service without trickle ICE needs (PROTOCOL.md §6).
            await asyncio.wait_for(
                pc.setLocalDescription(await pc.createAnswer()), self.answer_timeout
            )
            answer = shape_answer(pc.localDescription.sdp, info)
            if not candidates(answer):
                raise VoiceError("ICE gathered no candidate")
        except Exception as exc:
            self._fail(exc if isinstance(exc, VoiceError) else VoiceError(f"bad offer: {exc}"))
            return
        with self._cond:
            self.answer_sdp = answer
        try:
            conversation.send(SdpAnswer(sdp=answer))
        except (ConnectionClosedError, BlackBoxError) as exc:
            self._fail(VoiceError(f"could not send the answer: {exc}"))
            return
        with self._cond:
            self._tracker.answer_sent(time.monotonic())
            self._cond.notify_all()
        log.info("voice call answered (%s)", ", ".join(info.codecs))

    def _connection_state(self, state: str) -> None:
        with self._cond:
            event = _MEDIA_EVENTS.get(state)
            if event is not None and self._move(event):
                if self._state is CallState.CONNECTED:
                    self._connected_at = time.monotonic()
                    if self._sequence is not None:
                        self._tasks.append(asyncio.ensure_future(self._drive(self._sequence)))
                elif self._state is CallState.FAILED:
                    self._error = VoiceError("the WebRTC connection failed (ICE or DTLS)")
            self._cond.notify_all()
        log.debug("voice connection %s", state)

    def _on_track(self, track: Any) -> None:
        if track.kind == "audio":
            self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        reader = FrameReader()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            offset, pcm = reader.feed(frame)
            if not pcm:
                continue
            speech = level_dbfs(pcm) > self.speech_threshold_db
            with self._cond:
                place(self._agent_pcm, offset, pcm)
                self._frames_in += 1
                self._tracker.agent_audio(time.monotonic(), speech)
                self._cond.notify_all()
            self._write_recording(pcm)

    def _pull(self) -> bytes:
        """The next 20 ms to send (called by the outgoing track on the loop thread)."""
        out = b""
        closed: List[AgentTurn] = []
        with self._cond:
            while len(out) < FRAME_BYTES:
                if self._playing is None:
                    if not self._queue:
                        break
                    self._playing = self._queue.popleft()
                    self._playing.started_at = now = time.monotonic()
                    last = self._tracker.current
                    self._tracker.user_started(now, len(self._agent_pcm) // SAMPLE_WIDTH)
                    closed.append(last)
                chunk = self._playing.source.read((FRAME_BYTES - len(out)) // SAMPLE_WIDTH)
                if chunk is None:
                    self._playing.finished_at = now = time.monotonic()
                    self._playing.complete = True
                    self._tracker.user_finished(now)
                    self._playing = None
                    continue
                if not chunk:
                    break
                out += chunk
            frame = out.ljust(FRAME_BYTES, b"\0")
            self._sent_pcm.extend(frame)
            self._frames_out += 1
            self._cond.notify_all()
        for turn in closed:
            self._write_turn(turn)
        return frame

    async def _drive(self, sequence: WavSequence) -> None:
        """Play a :class:`WavSequence`: each clip once the agent has answered the last."""
        for index, clip in enumerate(sequence):
            if index > 0 or not sequence.talk_first:
                await self._until_reply_done()
            playback = Playback(clip, self._cond)
            with self._cond:
                self._queue.append(playback)
            await self._until(playback_done(playback), None)
        await self._until_reply_done()
        with self._cond:
            self._sequence_done = True
            self._cond.notify_all()

    async def _until_reply_done(self) -> None:
        done = await self._until(
            lambda: self._tracker.reply_done(time.monotonic(), self.reply_silence),
            self.reply_timeout,
        )
        if not done:
            log.info("no answer from the agent within %g s: going on", self.reply_timeout)

    async def _until(self, check: Callable[[], bool], timeout: Optional[float]) -> bool:
        # Checked on each 20 ms frame tick: frames flow both ways for the whole call.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                if check():
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(FRAME_SAMPLES / SAMPLE_RATE)

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._pc is not None:
            await self._pc.close()
        with self._cond:
            now = time.monotonic()
            if self._playing is not None:
                self._playing.finished_at = now
            for playback in self._queue:
                playback.finished_at = now
            self._queue.clear()
            self._playing = None
            self._move(CallEvent.STOPPED)
            self._cond.notify_all()

    def _fail(self, error: BaseException) -> None:
        log.warning("voice call failed: %s", error)
        with self._cond:
            self._error = error
            self._move(CallEvent.BROKE)
            self._cond.notify_all()

    def _move(self, event: CallEvent) -> bool:
        """Apply ``event`` to the state (the caller holds ``_cond`` and notifies); True when the
        state changed. The one place the state moves; the rule is :func:`.state.next_state`."""
        state = next_state(self._state, event)
        changed = state is not self._state
        self._state = state
        return changed

    def _failure(self, what: str) -> VoiceError:
        error = self._error
        if isinstance(error, VoiceError):
            return error
        return VoiceError(f"{what}: {error}" if error else what)

    # --- recordings -----------------------------------------------------------------------------

    def _write_recording(self, pcm: bytes) -> None:
        if self.record is None:
            return
        if self._wav is None:
            wav = wave.open(self.record, "wb")  # noqa: SIM115 - written frame by frame, closed in _stop
            wav.setnchannels(1)
            wav.setsampwidth(SAMPLE_WIDTH)
            wav.setframerate(SAMPLE_RATE)
            self._wav = wav
        self._wav.writeframes(pcm)

    def _finish_recording(self) -> None:
        with self._cond:
            self._tracker.finish(time.monotonic(), len(self._agent_pcm) // SAMPLE_WIDTH)
            last = self._tracker.current
            pcm = bytes(self._agent_pcm)
            self._cond.notify_all()
        if self._wav is not None:
            self._wav.close()
            self._wav = None
        elif self.record is not None:
            write_wav(self.record, pcm)  # the agent never spoke: an empty but valid file
        self._write_turn(last)

    def _write_turn(self, turn: AgentTurn) -> None:
        if self.record_turns is None:
            return
        with self._cond:
            snapshot = self._snapshot(turn)
        write_wav(self.record_turns.format(turn=snapshot.index), snapshot.audio)

    def _snapshot(self, turn: AgentTurn) -> AgentTurn:
        end = turn.end_sample if turn.end_sample is not None else len(self._agent_pcm) // 2
        copy = AgentTurn(
            index=turn.index,
            opened_at=turn.opened_at,
            reference_at=turn.reference_at,
            first_audio_at=turn.first_audio_at,
            last_audio_at=turn.last_audio_at,
            spoke_over_user=turn.spoke_over_user,
            closed_at=turn.closed_at,
            start_sample=turn.start_sample,
            end_sample=turn.end_sample,
            texts=list(turn.texts),
            user_texts=list(turn.user_texts),
        )
        copy.audio = bytes(self._agent_pcm[turn.start_sample * SAMPLE_WIDTH : end * SAMPLE_WIDTH])
        return copy


def playback_done(playback: Playback) -> Callable[[], bool]:
    """A check that ``playback`` has finished (for :meth:`VoiceCall._until`)."""
    return lambda: playback.finished_at is not None


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left, join the default executor (aiortc encodes there), close the loop."""
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

"""The emulator's side of one voice call: an aiortc peer on the emulator's loop (see calls.py).

Created by :class:`~blackbox_sync.testing.ws.session.WsSession` for a ``webCall`` when the
emulator has ``voice`` set; every method runs on the emulator's loop thread. aiortc encodes in
the loop's default executor, so while calls run the emulator has a few more threads; the
emulator joins them when it stops.
"""

import asyncio
import collections
import logging
from typing import Any, Deque, List, Optional, Protocol, Tuple

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from blackbox_sync.protocol.messages import Message, SdpInvite
from blackbox_sync.testing.agents.scripted import AgentContext
from blackbox_sync.testing.records import ConversationRecord
from blackbox_sync.testing.voice.calls import EmulatorVoice, Spoken, Utterance
from blackbox_sync.voice import ice as _ice
from blackbox_sync.voice import sdp
from blackbox_sync.voice.audio import SAMPLE_RATE, SAMPLE_WIDTH, level_dbfs
from blackbox_sync.voice.media import FRAME_BYTES, FrameReader, PacedTrack, place, prefer_g711


class VoiceHost(Protocol):
    """What a voice call needs of its connection: a
    :class:`~blackbox_sync.testing.ws.session.WsSession` (a protocol, so that this module does
    not import the session back)."""

    @property
    def record(self) -> Optional[ConversationRecord]: ...

    @property
    def context(self) -> Optional[AgentContext]: ...

    @property
    def host(self) -> str: ...

    @property
    def ending(self) -> "Optional[asyncio.Future[None]]": ...

    async def send(self, message: Message) -> bool: ...

    async def user_message(self, text: str) -> None: ...


log = logging.getLogger("blackbox_sync.testing")

NATIVE_PROFILE = "UDP/TLS/RTP/SAVPF"


class VoiceSession:
    """One WebRTC call between the emulator and a client, tied to its connection
    (a :class:`VoiceHost`)."""

    def __init__(self, session: VoiceHost, config: EmulatorVoice) -> None:
        assert session.record is not None
        self.session = session
        self.config = config
        self.call = config.open_call(session.record.record_id)
        self.pc = RTCPeerConnection()
        self.connected = asyncio.Event()
        self._mids: List[str] = []
        self._queue: Deque[Tuple[bytes, asyncio.Future[None], Spoken]] = collections.deque()
        self._playing: Optional[Tuple[memoryview, asyncio.Future[None], Spoken]] = None
        self._offset = 0
        self._tasks: List[asyncio.Future[Any]] = []
        self._greeted = False
        self._closed = False
        # utterance detection on the client's audio
        self._speech_start: Optional[int] = None
        self._last_speech: Optional[int] = None

    # --- signalling ---------------------------------------------------------------------------

    async def offer(self) -> None:
        """Gather, then send the complete offer as ``sdpInvite`` (``data.invite``, as live)."""
        _ice.restrict(self.config.addresses_for(self.session.host))
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("track", self._on_track)
        self.pc.addTransceiver(PacedTrack(self._pull), direction="sendrecv")
        prefer_g711(self.pc)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        native = self.pc.localDescription.sdp
        self._mids = [t.mid for t in self.pc.getTransceivers() if t.mid is not None]
        if self.config.profile == NATIVE_PROFILE:
            offer = native
        else:
            offer = sdp.pjmedia_style(native, profile=self.config.profile)
        with self.config.changed:
            self.call.offer = offer
            self.config.changed.notify_all()
        await self.session.send(SdpInvite(sdp=offer))

    def answered(self, answer: str) -> None:
        """The client's ``sdpAnswer`` arrived (reader task): apply it without blocking it."""
        with self.config.changed:
            if self.call.answer is not None:
                self._note("a second sdpAnswer was ignored")
                return
            self.call.answer = answer
            self.config.changed.notify_all()
        self._tasks.append(asyncio.ensure_future(self._apply(answer)))

    async def _apply(self, answer: str) -> None:
        try:
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=sdp.restore_mids(answer, self._mids), type="answer")
            )
        except Exception as exc:  # a broken answer: the call has no media, say why
            self._note(f"sdpAnswer rejected: {exc}")

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        log.debug("emulator voice call %s: %s", self.call.record_id, state)
        if state == "connected":
            self.connected.set()
            with self.config.changed:
                self.call.connected = True
                self.config.changed.notify_all()
        elif state == "failed":
            self._note("the WebRTC connection failed")

    # --- the agent speaks ------------------------------------------------------------------------

    async def speak(self, text: str) -> None:
        """Say ``text`` (after the media is up) and return once it has been sent in full."""
        if self._closed:
            return
        context = self.session.context
        if not self._greeted and self.config.greeting is not None and context is not None:
            pcm = self.config.greeting if context.turn == 0 else self.config.speak(text)
        else:
            pcm = self.config.speak(text)
        self._greeted = True
        # asyncio.wait, not wait_for: on Python < 3.12 wait_for can swallow the cancellation
        # that ends the conversation when the event fires at the same moment, and this turn
        # would then wait for audio that nobody plays.
        waiter = asyncio.ensure_future(self.connected.wait())
        try:
            await asyncio.wait({waiter}, timeout=self.config.connect_timeout)
        finally:
            waiter.cancel()
        if self._closed:
            return
        if not self.connected.is_set():
            self._note(f"no media within {self.config.connect_timeout} s: {text!r} not spoken")
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((pcm, done, Spoken(text=text, start=-1, end=-1)))
        await done

    def _pull(self) -> bytes:
        out = bytearray()
        while len(out) < FRAME_BYTES:
            if self._playing is None:
                if not self._queue:
                    break
                pcm, done, spoken = self._queue.popleft()
                spoken.start = self._sent_samples() + len(out) // SAMPLE_WIDTH
                self._playing = (memoryview(pcm), done, spoken)
            view, done, spoken = self._playing
            take = view[: FRAME_BYTES - len(out)]
            out += take
            view = view[len(take) :]
            if len(view):
                self._playing = (view, done, spoken)
            else:
                spoken.end = self._sent_samples() + len(out) // SAMPLE_WIDTH
                with self.config.changed:
                    self.call.spoken.append(spoken)
                    self.config.changed.notify_all()
                if not done.done():
                    done.set_result(None)
                self._playing = None
        frame = bytes(out.ljust(FRAME_BYTES, b"\0"))
        with self.config.changed:
            self.call.sent.extend(frame)
        return frame

    def _sent_samples(self) -> int:
        with self.config.changed:
            return len(self.call.sent) // SAMPLE_WIDTH

    # --- the client speaks -----------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._tasks.append(asyncio.ensure_future(self._listen(track)))

    async def _listen(self, track: MediaStreamTrack) -> None:
        reader = FrameReader()
        end_gap = int(self.config.end_silence * SAMPLE_RATE)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            offset, pcm = reader.feed(frame)
            if not pcm:
                continue
            with self.config.changed:
                at = place(self.call.received, offset, pcm)
                self.config.changed.notify_all()
            end = at + len(pcm) // SAMPLE_WIDTH
            if level_dbfs(pcm) > self.config.speech_threshold_db:
                if self._speech_start is None:
                    self._speech_start = at
                self._last_speech = end
            elif (
                self._speech_start is not None
                and self._last_speech is not None
                and end - self._last_speech >= end_gap
            ):
                await self._utterance(self._speech_start, self._last_speech)
                self._speech_start = self._last_speech = None

    async def _utterance(self, start: int, end: int) -> None:
        with self.config.changed:
            pcm = bytes(self.call.received[start * SAMPLE_WIDTH : end * SAMPLE_WIDTH])
        text = self.config.text_for(pcm)
        with self.config.changed:
            self.call.utterances.append(Utterance(start=start, end=end, text=text))
            self.config.changed.notify_all()
        if self.session.ending is None:
            await self.session.user_message(text)

    # --- the end ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Hang up: stop the tasks and the peer connection, mark the call ended."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        try:
            await self.pc.close()
        except Exception as exc:  # an aiortc error on the way out: the call is over anyway
            self._note(f"closing the peer connection failed: {exc!r}")
        for _, done, _ in self._queue:
            if not done.done():
                done.cancel()
        if self._playing is not None and not self._playing[1].done():
            self._playing[1].cancel()
        with self.config.changed:
            self.call.ended = True
            self.config.changed.notify_all()

    def _note(self, text: str) -> None:
        log.warning("emulator voice call %s: %s", self.call.record_id, text)
        with self.config.changed:
            self.call.errors.append(text)
            self.config.changed.notify_all()

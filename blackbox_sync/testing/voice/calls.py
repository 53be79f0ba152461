"""The emulator's voice mode: real WebRTC calls for ``webCall`` conversations (extra ``voice``).

::

    voice = EmulatorVoice(greeting=sweep(400, 1600, 1.5))
    with Emulator(ScriptedAgent(greeting="Hello!"), voice=voice) as emu:
        ...                              # a client's VoiceCall hears the sweep, then echoes
        call = voice.wait_for_call(timeout=10)
        call.received                    # what the client sent, 8 kHz 16-bit mono PCM

Without ``voice`` the emulator keeps answering ``webCall`` with a fake offer and no media.

With it, each ``webCall`` gets an aiortc peer on the emulator's loop that offers the way the
live service does (:func:`~blackbox_sync.voice.sdp.pjmedia_style`: ``RTP/SAVP``, PCMU/PCMA
plus ``telephone-event``, DTLS-SRTP, every ICE candidate in the offer, no mid or BUNDLE), waits
for the ``sdpAnswer``, speaks each of the agent's texts (the greeting clip for the first one,
``speak(text)`` for the rest), records the client's audio, and cuts it into utterances by
level: each utterance becomes a user transcript ``text`` frame and a message to the scripted
agent, as the live service's speech recognition would.

What aiortc cannot do: answer or offer plain ``RTP/SAVP`` media without DTLS (SDES keys), or
send ``telephone-event``; the profile is only a label to it, so the emulator rewrites it.
"""

import importlib.util
import ipaddress
import threading
from typing import Callable, List, Optional, Sequence, Union

import attrs

from blackbox_sync.voice.audio import (
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    PathLike,
    load_audio,
    speech_like,
)

Transcriber = Callable[[bytes], str]
"""Turns one user utterance (8 kHz 16-bit mono PCM) into its transcript text."""


@attrs.define
class Utterance:
    """One stretch of user speech the emulator heard (samples of ``VoiceCallRecord.received``)."""

    start: int
    end: int
    text: str


@attrs.define
class Spoken:
    """One agent text the emulator spoke, in samples of :attr:`VoiceCallRecord.sent`."""

    text: str
    start: int
    end: int


@attrs.define
class VoiceCallRecord:
    """One voice call as the emulator saw it (a snapshot: copies, safe to keep)."""

    record_id: str
    offer: str = ""
    """The SDP offer sent in ``sdpInvite``."""
    answer: Optional[str] = None
    """The client's SDP answer."""
    connected: bool = False
    """True once ICE and DTLS completed."""
    ended: bool = False
    received: bytes = b""
    """The client's audio, 8 kHz 16-bit mono PCM, placed on its RTP clock."""
    sent: bytes = b""
    """Everything the emulator sent, silence included."""
    spoken: List[Spoken] = attrs.field(factory=list)
    utterances: List[Utterance] = attrs.field(factory=list)
    errors: List[str] = attrs.field(factory=list)

    @property
    def received_seconds(self) -> float:
        """Length of :attr:`received` in seconds."""
        return len(self.received) / (SAMPLE_RATE * SAMPLE_WIDTH)


@attrs.define(eq=False)
class _LiveCall:
    """A call while it runs: growing buffers, changed on the emulator's loop under the lock."""

    record_id: str
    offer: str = ""
    answer: Optional[str] = None
    connected: bool = False
    ended: bool = False
    received: bytearray = attrs.field(factory=bytearray)
    sent: bytearray = attrs.field(factory=bytearray)
    spoken: List[Spoken] = attrs.field(factory=list)
    utterances: List[Utterance] = attrs.field(factory=list)
    errors: List[str] = attrs.field(factory=list)

    def snapshot(self) -> VoiceCallRecord:
        return VoiceCallRecord(
            record_id=self.record_id,
            offer=self.offer,
            answer=self.answer,
            connected=self.connected,
            ended=self.ended,
            received=bytes(self.received),
            sent=bytes(self.sent),
            spoken=[attrs.evolve(s) for s in self.spoken],
            utterances=[attrs.evolve(u) for u in self.utterances],
            errors=list(self.errors),
        )


def _audio(value: Union[bytes, PathLike, None]) -> Optional[bytes]:
    if value is None or isinstance(value, bytes):
        return value
    return load_audio(value)


class EmulatorVoice:
    """Voice mode settings for :class:`~blackbox_sync.testing.Emulator` (``voice=``), and the
    calls it held.

    ``greeting``: audio (8 kHz PCM bytes or a file) spoken for the agent's first text of the
    greeting turn; ``speak(text)`` makes the audio for every other text (default: a
    deterministic tone pattern, :func:`~blackbox_sync.voice.speech_like`; use
    :func:`~blackbox_sync.voice.espeak` for real speech). ``transcribe`` gives each user
    utterance its text: a function of the PCM, a list used in order, or ``None`` for
    ``"(user audio N.N s)"``. An utterance ends after ``end_silence`` seconds below
    ``speech_threshold_db``. ``profile`` is the offer's m-line profile; ``"UDP/TLS/RTP/SAVPF"``
    sends aiortc's own offer unchanged (with mid and BUNDLE). ``ice_addresses`` defaults to
    loopback when the emulator listens on loopback.
    """

    def __init__(
        self,
        *,
        greeting: Union[bytes, PathLike, None] = None,
        speak: Callable[[str], bytes] = speech_like,
        transcribe: Union[Transcriber, Sequence[str], None] = None,
        profile: str = "RTP/SAVP",
        end_silence: float = 0.6,
        speech_threshold_db: float = -45.0,
        connect_timeout: float = 10.0,
        ice_addresses: Optional[Sequence[str]] = None,
    ) -> None:
        if importlib.util.find_spec("aiortc") is None:  # fail here, not inside a connection
            raise ImportError(
                "the emulator's voice mode needs aiortc: pip install 'blackbox-sync[voice]'"
            )
        self.greeting = _audio(greeting)
        self.speak = speak
        self.transcribe = transcribe
        self.profile = profile
        self.end_silence = end_silence
        self.speech_threshold_db = speech_threshold_db
        self.connect_timeout = connect_timeout
        self.ice_addresses = tuple(ice_addresses) if ice_addresses is not None else None
        self.changed = threading.Condition()
        """Notified whenever a call changes; :meth:`wait_for_call` waits on it."""
        self._calls: List[_LiveCall] = []
        self._texts_used = 0

    @property
    def calls(self) -> List[VoiceCallRecord]:
        """Snapshots of every voice call so far, oldest first."""
        with self.changed:
            return [call.snapshot() for call in self._calls]

    def wait_for_call(
        self, timeout: float = 10.0, *, record_id: Optional[str] = None, ended: bool = True
    ) -> VoiceCallRecord:
        """The latest call (or ``record_id``'s) once it has ended (or, with ``ended=False``,
        once it connected). Raises :class:`TimeoutError`."""

        def ready() -> Optional[_LiveCall]:
            hits = [c for c in self._calls if record_id in (None, c.record_id)]
            if hits and (hits[-1].ended if ended else hits[-1].connected or hits[-1].ended):
                return hits[-1]
            return None

        with self.changed:
            call = self.changed.wait_for(ready, timeout)
            if call is None:
                state = "ended" if ended else "connected"
                raise TimeoutError(f"no voice call {state} within {timeout} s")
            return call.snapshot()

    def clear(self) -> None:
        """Forget the calls held so far."""
        with self.changed:
            self._calls.clear()

    # --- used by the voice session on the emulator's loop ---------------------------------------

    def open_call(self, record_id: str) -> _LiveCall:
        """File the call of conversation ``record_id`` (for :attr:`calls`)."""
        call = _LiveCall(record_id=record_id)
        with self.changed:
            self._calls.append(call)
            self.changed.notify_all()
        return call

    def text_for(self, pcm: bytes) -> str:
        """What the user said in ``pcm``, as :attr:`transcribe` tells (a placeholder if not)."""
        transcribe = self.transcribe
        if callable(transcribe):
            return transcribe(pcm)
        if transcribe is not None:
            with self.changed:
                index, self._texts_used = self._texts_used, self._texts_used + 1
            if index < len(transcribe):
                return transcribe[index]
        return f"(user audio {len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH):.1f} s)"

    def addresses_for(self, host: str) -> Optional[Sequence[str]]:
        """The ICE host addresses for an emulator on ``host`` (None: aiortc's own choice)."""
        if self.ice_addresses is not None:
            return self.ice_addresses
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return ("127.0.0.1",) if host == "localhost" else None
        return (str(address),) if address.is_loopback else None

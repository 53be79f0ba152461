"""The aiortc side of a call: the outgoing track and the PCM of incoming frames.

Runs on an asyncio loop (the client's voice thread, or the emulator's loop). Both directions use
20 ms frames of 8 kHz 16-bit mono PCM; aiortc's G.711 codecs do the rest.
"""

import asyncio
import fractions
import time
from typing import Callable, List, Optional, Tuple

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender

from blackbox_sync.voice.audio import FRAME_SAMPLES, SAMPLE_RATE, SAMPLE_WIDTH

FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
G711 = ("PCMU", "PCMA")


class PacedTrack(MediaStreamTrack):
    """An audio track that asks ``pull()`` for 20 ms of PCM at each frame's due time.

    aiortc's sender reads as fast as ``recv`` returns, so the track keeps real time itself;
    when the loop falls behind it catches up without sleeping rather than drifting.
    """

    kind = "audio"

    def __init__(self, pull: Callable[[], bytes]) -> None:
        super().__init__()
        self._pull = pull
        self._start: Optional[float] = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            from aiortc.mediastreams import MediaStreamError

            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += FRAME_SAMPLES
            delay = self._start + self._pts / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        pcm = self._pull()
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0"))
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        return frame


class FrameReader:
    """Turns received frames into 8 kHz mono PCM placed on the RTP clock.

    :meth:`feed` returns ``(offset, pcm)``: where the frame starts in samples since the first
    frame. A sender that pauses (silence suppression) leaves a gap in the RTP timestamps, which
    the caller fills with silence so that recordings keep real time.
    """

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self._first: Optional[int] = None

    def feed(self, frame: av.AudioFrame) -> Tuple[Optional[int], bytes]:
        chunks: List[bytes] = []
        for out in self._resampler.resample(frame):
            chunks.append(bytes(out.planes[0])[: out.samples * SAMPLE_WIDTH])
        offset: Optional[int] = None
        if frame.pts is not None and frame.time_base is not None:
            position = round(frame.pts * frame.time_base * SAMPLE_RATE)
            if self._first is None:
                self._first = position
            offset = position - self._first
        return offset, b"".join(chunks)


def prefer_g711(pc: RTCPeerConnection) -> None:
    """Offer or accept G.711 only (PCMU, then PCMA), as the live service does."""
    capabilities = RTCRtpSender.getCapabilities("audio")
    codecs = [c for c in capabilities.codecs if c.mimeType.split("/")[-1] in G711]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            transceiver.setCodecPreferences(codecs)


def place(recording: bytearray, offset: Optional[int], pcm: bytes, max_gap: float = 10.0) -> int:
    """Append ``pcm`` to ``recording`` at sample ``offset``, padding a gap with silence (up to
    ``max_gap`` seconds; a larger jump is a new RTP clock, not a pause). Returns the sample at
    which the PCM landed."""
    here = len(recording) // SAMPLE_WIDTH
    if offset is not None and 0 < offset - here <= max_gap * SAMPLE_RATE:
        recording.extend(bytes((offset - here) * SAMPLE_WIDTH))
        here = offset
    recording.extend(pcm)
    return here

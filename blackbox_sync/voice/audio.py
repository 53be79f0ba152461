"""Audio for voice calls: the sources the client plays, WAV files, and small synthesizers.

Everything here is 16-bit little-endian mono PCM at 8000 Hz, the rate of G.711, the only codec
the live service offers (PROTOCOL.md §6): converting once on load loses nothing the call could
carry. Pure Python; decoding compressed or unusual files needs PyAV (installed with aiortc).
"""

import abc
import array
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave
import zlib
from typing import Iterator, List, Optional, Sequence, Union

SAMPLE_RATE = 8000
"""Samples per second of every PCM buffer in this package."""
SAMPLE_WIDTH = 2
"""Bytes per sample (signed 16-bit, little-endian, mono)."""
FRAME_SAMPLES = 160
"""Samples in one 20 ms frame, the packet size of G.711 calls."""

PathLike = Union[str, "os.PathLike[str]"]


class AudioSource(abc.ABC):
    """Audio the client sends, pulled 20 ms at a time on the voice thread.

    Subclass it for your own source (a TTS stream, a microphone queue). :meth:`read` runs on
    the voice call's event loop, so it must return at once: hand it data prepared elsewhere.
    """

    name: str = "audio"

    @abc.abstractmethod
    def read(self, samples: int) -> Optional[bytes]:
        """Up to ``samples`` samples of 8 kHz 16-bit mono PCM (``2 * samples`` bytes).

        Return fewer bytes (even ``b""``) when nothing more is ready yet: the call pads the
        frame with silence. Return ``None`` once the source is exhausted.
        """


class PcmSource(AudioSource):
    """A buffer of 8 kHz 16-bit mono PCM, played once."""

    def __init__(self, pcm: bytes, name: str = "pcm") -> None:
        if len(pcm) % SAMPLE_WIDTH:
            raise ValueError("PCM data must hold whole 16-bit samples")
        self.pcm = bytes(pcm)
        self.name = name
        self._offset = 0

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return duration(self.pcm)

    def read(self, samples: int) -> Optional[bytes]:
        if self._offset >= len(self.pcm):
            return None
        chunk = self.pcm[self._offset : self._offset + samples * SAMPLE_WIDTH]
        self._offset += len(chunk)
        return chunk

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.duration:.2f} s>"


class WavSource(PcmSource):
    """An audio file (WAV; other formats through PyAV), loaded and converted at construction,
    so a missing or broken file fails in your thread, not in the call."""

    def __init__(self, path: PathLike) -> None:
        super().__init__(load_audio(path), name=os.fspath(path))
        self.path = os.fspath(path)


class Silence(AudioSource):
    """Silence, for ``seconds`` (or forever when ``None``)."""

    def __init__(self, seconds: Optional[float] = None) -> None:
        self.name = "silence"
        self._left = None if seconds is None else round(seconds * SAMPLE_RATE)

    def read(self, samples: int) -> Optional[bytes]:
        if self._left is None:
            return bytes(samples * SAMPLE_WIDTH)
        if self._left <= 0:
            return None
        take = min(samples, self._left)
        self._left -= take
        return bytes(take * SAMPLE_WIDTH)


class WavSequence:
    """One clip per user turn: the first after the agent's greeting, each next one after the
    agent's reply to the previous (see :class:`~blackbox_sync.voice.VoiceCall`).

    ``talk_first=True`` plays the first clip at once instead of waiting for a greeting.
    """

    def __init__(
        self, clips: Sequence[Union[PathLike, AudioSource, bytes]], *, talk_first: bool = False
    ) -> None:
        self.clips: List[AudioSource] = [as_source(clip) for clip in clips]
        self.talk_first = talk_first

    def __iter__(self) -> Iterator[AudioSource]:
        return iter(self.clips)

    def __len__(self) -> int:
        return len(self.clips)

    def __repr__(self) -> str:
        return f"<WavSequence of {len(self.clips)} clips>"


def as_source(audio: Union[PathLike, AudioSource, bytes]) -> AudioSource:
    """An :class:`AudioSource` for a path, raw 8 kHz PCM bytes, or a source (returned as is)."""
    if isinstance(audio, AudioSource):
        return audio
    if isinstance(audio, (bytes, bytearray)):
        return PcmSource(bytes(audio))
    return WavSource(audio)


# --- PCM helpers ------------------------------------------------------------------------------


def samples_of(pcm: bytes) -> "array.array[int]":
    """The PCM's samples as an ``array('h')`` (host byte order fixed to little-endian data)."""
    values = array.array("h")
    values.frombytes(pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH])
    if sys.byteorder == "big":
        values.byteswap()
    return values


def pcm_of(values: "array.array[int]") -> bytes:
    """Little-endian PCM bytes of an ``array('h')``."""
    if sys.byteorder == "big":
        values = array.array("h", values)
        values.byteswap()
    return values.tobytes()


def duration(pcm: bytes) -> float:
    """Seconds of 8 kHz 16-bit mono PCM."""
    return len(pcm) / (SAMPLE_WIDTH * SAMPLE_RATE)


def level_dbfs(pcm: bytes) -> float:
    """RMS level in dB relative to full scale (``-inf`` for digital silence)."""
    values = samples_of(pcm)
    if not values:
        return -math.inf
    power = sum(v * v for v in values) / len(values)
    return -math.inf if power <= 0 else 10 * math.log10(power / (32768.0 * 32768.0))


def _clip16(value: float) -> int:
    return max(-32768, min(32767, round(value)))


def tone(frequency: float, seconds: float, *, amplitude: float = 0.5) -> bytes:
    """A sine tone (``amplitude`` of full scale) with 5 ms fades, so it starts without a click."""
    return sweep(frequency, frequency, seconds, amplitude=amplitude)


def sweep(start_hz: float, end_hz: float, seconds: float, *, amplitude: float = 0.5) -> bytes:
    """A linear frequency sweep (chirp): its autocorrelation has one sharp peak, which makes
    it easy to find again in a recording that went through G.711 and a network."""
    count = round(seconds * SAMPLE_RATE)
    fade = max(1, int(0.005 * SAMPLE_RATE))
    rate = (end_hz - start_hz) / max(seconds, 1e-9)
    values = array.array("h", bytes(count * SAMPLE_WIDTH))
    for i in range(count):
        t = i / SAMPLE_RATE
        gain = amplitude * min(1.0, i / fade, (count - 1 - i) / fade)
        phase = 2 * math.pi * (start_hz * t + rate * t * t / 2)
        values[i] = _clip16(32767 * gain * math.sin(phase))
    return pcm_of(values)


def speech_like(text: str, *, seconds_per_char: float = 0.05, amplitude: float = 0.4) -> bytes:
    """A stand-in for TTS: one short tone per word, pitched from the word, 0.3–4 s in all.

    Deterministic, so a test can regenerate what the emulator "said" and look for it.
    """
    words = text.split() or [text or "..."]
    total = min(4.0, max(0.3, seconds_per_char * len(text)))
    words = words[: max(1, int(total / 0.1))]  # at least 0.1 s a word keeps the cap
    weights = [len(word) + 1 for word in words]
    parts = []
    for word, weight in zip(words, weights):
        pitch = 300 + zlib.crc32(word.encode("utf-8")) % 900
        length = total * weight / sum(weights)
        parts.append(sweep(pitch, pitch * 1.25, max(0.04, length - 0.03), amplitude=amplitude))
        parts.append(bytes(int(0.03 * SAMPLE_RATE) * SAMPLE_WIDTH))
    return b"".join(parts)


def espeak(text: str, *, voice: str = "en", speed: int = 160) -> bytes:
    """Speak ``text`` with espeak-ng (Debian: ``apt-get install espeak-ng``), as 8 kHz PCM.

    Raises :class:`FileNotFoundError` when espeak-ng is not installed.
    """
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="blackbox-voice-") as folder:
        path = os.path.join(folder, "speech.wav")
        subprocess.run(
            [exe, "-v", voice, "-s", str(speed), "-w", path, text],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
        )
        return load_audio(path)


# --- files --------------------------------------------------------------------------------------


def write_wav(path: PathLike, pcm: bytes, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit mono PCM as a WAV file."""
    with wave.open(os.fspath(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(sample_rate)
        out.writeframes(pcm)


def load_audio(path: PathLike) -> bytes:
    """An audio file as 8 kHz 16-bit mono PCM.

    PCM WAV files (8/16/32-bit, any channel count) are converted in pure Python; other rates and
    formats (float WAV, FLAC, MP3...) are decoded and resampled with PyAV.
    """
    path = os.fspath(path)
    try:
        with wave.open(path, "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError):
        return _decode_with_av(path)
    if rate != SAMPLE_RATE or width not in (1, 2, 4):
        return _decode_with_av(path)
    return _to_mono16(data, width, channels)


def _to_mono16(data: bytes, width: int, channels: int) -> bytes:
    if width == 1:  # unsigned 8-bit
        values = array.array("h", ((b - 128) << 8 for b in data))
    elif width == 2:
        values = samples_of(data)
    else:
        wide = array.array("i")
        wide.frombytes(data[: len(data) - len(data) % 4])
        if sys.byteorder == "big":
            wide.byteswap()
        values = array.array("h", (v >> 16 for v in wide))
    if channels > 1:
        values = array.array(
            "h",
            (
                sum(values[i : i + channels]) // channels
                for i in range(0, len(values) - channels + 1, channels)
            ),
        )
    return pcm_of(values)


def _decode_with_av(path: str) -> bytes:
    try:
        import av
    except ImportError:  # pragma: no cover - av comes with aiortc
        raise ValueError(
            f"{path}: not an 8 kHz PCM WAV; converting it needs PyAV (pip install av)"
        ) from None
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: List[bytes] = []
    try:
        with av.open(path) as container:
            stream = next(s for s in container.streams if s.type == "audio")
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(bytes(out.planes[0])[: out.samples * SAMPLE_WIDTH])
        for out in resampler.resample(None):
            chunks.append(bytes(out.planes[0])[: out.samples * SAMPLE_WIDTH])
    except Exception as exc:  # FFmpeg's errors (their names vary across PyAV versions)
        raise ValueError(f"{path}: no audio could be decoded ({exc!r})") from exc
    return b"".join(chunks)

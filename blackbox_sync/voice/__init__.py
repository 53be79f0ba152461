"""Web voice calls (``call_type="webCall"``) over WebRTC, behind a blocking API (extra ``voice``).

::

    import blackbox_sync as bb
    from blackbox_sync.voice import VoiceCall

    conv = bb.Conversation(token="...", call_type="webCall")
    call = VoiceCall(conv, audio="question.wav", record="agent.wav")
    with conv:                                  # connects; the call answers the sdpInvite
        call.wait_connected(timeout=10)
        turn = call.wait_for_reply(timeout=30)  # the greeting: turn.latency, turn.text
        turn = call.ask("order.wav")            # one user turn, the agent's answer

:class:`VoiceCall` and :class:`Playback` need aiortc and load on first use; the audio helpers,
the SDP rewriting and the turn model do not.
"""

from typing import TYPE_CHECKING, Any

from blackbox_sync.voice.audio import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioSource,
    PcmSource,
    Silence,
    WavSequence,
    WavSource,
    espeak,
    level_dbfs,
    load_audio,
    speech_like,
    sweep,
    tone,
    write_wav,
)
from blackbox_sync.voice.errors import VoiceError, VoiceTimeout
from blackbox_sync.voice.sdp import SdpError
from blackbox_sync.voice.state import CallState
from blackbox_sync.voice.turns import AgentTurn

if TYPE_CHECKING:
    from blackbox_sync.voice.call import Playback, VoiceCall

_LAZY = ("Playback", "VoiceCall")

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "AgentTurn",
    "AudioSource",
    "CallState",
    "PcmSource",
    "Playback",
    "SdpError",
    "Silence",
    "VoiceCall",
    "VoiceError",
    "VoiceTimeout",
    "WavSequence",
    "WavSource",
    "espeak",
    "level_dbfs",
    "load_audio",
    "speech_like",
    "sweep",
    "tone",
    "write_wav",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            from blackbox_sync.voice import call
        except ImportError as exc:  # aiortc (or PyAV) missing
            raise ImportError(
                f"blackbox_sync.voice.{name} needs aiortc: pip install 'blackbox-sync[voice]' "
                f"({exc})"
            ) from exc
        return getattr(call, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

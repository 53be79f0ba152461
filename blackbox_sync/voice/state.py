"""The voice call's lifecycle: :class:`CallState`, the events that move it, and one table.

No I/O: :class:`~blackbox_sync.voice.VoiceCall` reports what happened (:class:`CallEvent`) and
asks :func:`next_state` where that leads, so the rule lives here once::

    idle ──invited──▶ answering ──media up──▶ connected
      │                  │                       │
      │               media failed ──▶ failed    media failed / media closed
      │                  │                       ▼
      └──stopped─────────┴──stopped─────────▶ ended

``broke`` (the answer could not be made or sent) leads to ``failed`` from any state.
"""

import enum
from typing import Dict, Tuple

__all__ = ["CallEvent", "CallState", "next_state"]


class CallState(str, enum.Enum):
    """Where a voice call is. A ``str``: ``call.state == "connected"`` keeps working."""

    IDLE = "idle"
    """No ``sdpInvite`` yet."""
    ANSWERING = "answering"
    """The offer arrived; the answer, ICE and DTLS are under way."""
    CONNECTED = "connected"
    """Media flows."""
    ENDED = "ended"
    """Over: hung up, closed, or the conversation's socket closed."""
    FAILED = "failed"
    """Over: the call could not be set up (``VoiceCall.error`` says why)."""

    def __str__(self) -> str:
        return self.value

    @property
    def over(self) -> bool:
        """True once the call can no longer carry media (``ended`` or ``failed``)."""
        return self in (CallState.ENDED, CallState.FAILED)


class CallEvent(enum.Enum):
    """What happened to a call."""

    INVITED = "invited"
    """The service's ``sdpInvite`` arrived."""
    MEDIA_UP = "media up"
    """The WebRTC connection reached ``connected`` (ICE and DTLS done)."""
    MEDIA_FAILED = "media failed"
    """The WebRTC connection reached ``failed``."""
    MEDIA_CLOSED = "media closed"
    """The WebRTC connection reached ``closed``."""
    STOPPED = "stopped"
    """``close()``, the conversation's socket closed, or the media loop stopped."""
    BROKE = "broke"
    """The answer could not be made or sent."""


_S, _E = CallState, CallEvent
_NEXT: Dict[Tuple[CallState, CallEvent], CallState] = {
    (_S.IDLE, _E.INVITED): _S.ANSWERING,
    (_S.ANSWERING, _E.MEDIA_UP): _S.CONNECTED,
    (_S.ANSWERING, _E.MEDIA_FAILED): _S.FAILED,
    # Once media flowed, the far end hanging up the media is an end, not a failure (it may not
    # say goodbye first).
    (_S.CONNECTED, _E.MEDIA_FAILED): _S.ENDED,
    (_S.CONNECTED, _E.MEDIA_CLOSED): _S.ENDED,
    **{(state, _E.STOPPED): _S.ENDED for state in (_S.IDLE, _S.ANSWERING, _S.CONNECTED)},
    **{(state, _E.BROKE): _S.FAILED for state in _S},
}


def next_state(state: CallState, event: CallEvent) -> CallState:
    """Where ``event`` takes a call in ``state``; ``state`` itself when it does not apply (a
    second invite, media news after the end)."""
    return _NEXT.get((state, event), state)

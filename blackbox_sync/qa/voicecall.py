"""Voice turns of ``webCall`` cases: one :class:`~blackbox_sync.voice.VoiceCall` per attempt.

aiortc loads only when a voice case runs. Without the voice extra :func:`open_call` raises
:class:`VoiceUnavailable`, which the runner records as an infrastructure ``error``.

A voice turn ends when the agent has spoken after the user's clip and then been quiet for the
turn-end period: no audio above the speech threshold, no text and no tool activity (a tool call
can leave the line silent while the agent waits for its result).
"""

import time
from typing import TYPE_CHECKING, Optional, Protocol

import attrs

from blackbox_sync.errors import BlackBoxError
from blackbox_sync.qa.results import ms_since
from blackbox_sync.voice import AgentTurn, AudioSource, VoiceError, VoiceTimeout

if TYPE_CHECKING:
    from blackbox_sync.voice.call import VoiceCall

INSTALL_HINT = (
    "call_type webCall needs the voice extra (aiortc): pip install 'blackbox-sync[voice]'"
)


class VoiceUnavailable(BlackBoxError):
    """The voice extra is not installed."""


class Activity(Protocol):
    """The attempt's view of text and tool frames, for the end-of-turn rule."""

    def last_activity(self, since: float) -> Optional[float]:
        """``time.monotonic()`` of the latest agent text or tool frame at or after ``since``."""

    def wait_for_frame(self, seconds: float) -> None:
        """Block until the next frame arrives or ``seconds`` pass."""


@attrs.define
class Heard:
    """One voice turn as the runner saw it; the times are ``time.monotonic()`` values."""

    turn: AgentTurn
    start: float
    """Timings count from here: the end of the user's clip, or the start of waiting."""
    end: float
    """When the turn counted as complete (or was given up)."""
    clip_started: Optional[float] = None
    failure: Optional[VoiceError] = None
    """Why the turn did not complete (a :class:`VoiceTimeout`, or the call ending)."""

    @property
    def first_audio_ms(self) -> Optional[float]:
        """Start → the agent's first audio above the speech threshold."""
        return ms_since(self.start, self.turn.first_audio_at)

    @property
    def spoke(self) -> bool:
        """True when the agent said anything in the turn (audio or text)."""
        return self.turn.spoke or bool(self.turn.texts)


def open_call(
    *, quiet_s: float, turn_s: float, connect_s: float, record_turns: Optional[str]
) -> "VoiceCall":
    """A :class:`~blackbox_sync.voice.VoiceCall` to pass to a conversation as ``voice=``."""
    try:
        from blackbox_sync.voice import VoiceCall
    except ImportError as exc:
        raise VoiceUnavailable(f"{INSTALL_HINT} ({exc})") from exc
    return VoiceCall(
        reply_silence=quiet_s,
        reply_timeout=turn_s,
        answer_timeout=connect_s,
        record_turns=record_turns,
    )


def exchange(
    call: "VoiceCall",
    clip: Optional[AudioSource],
    *,
    start: Optional[float],
    deadline: float,
    silence: float,
    activity: Activity,
) -> Heard:
    """Play ``clip`` (if any) as the user's turn, then wait for the agent's answer.

    ``start`` is where the timings count from; ``None`` means the end of the clip.
    """
    began = time.monotonic() if start is None else start
    clip_started: Optional[float] = None
    try:
        call.wait_connected(_left(deadline))
        if clip is not None:
            playback = call.play(clip)
            if not playback.wait(_left(deadline)):
                raise VoiceTimeout("the user's clip was not played before the turn timed out")
            if not playback.complete:
                raise VoiceError("the voice call ended while the user's clip played")
            clip_started = playback.started_at
            if start is None and playback.finished_at is not None:
                began = playback.finished_at
        turn = _answer(call, deadline, silence, activity)
    except VoiceError as exc:
        return Heard(_current(call), began, time.monotonic(), clip_started, exc)
    return Heard(turn, began, time.monotonic(), clip_started)


def _answer(call: "VoiceCall", deadline: float, silence: float, activity: Activity) -> AgentTurn:
    while True:
        turn = call.wait_for_reply(_left(deadline), silence=silence)
        times = (turn.last_audio_at, activity.last_activity(turn.opened_at))
        last = max((t for t in times if t is not None), default=time.monotonic())
        quiet_left = last + silence - time.monotonic()
        if quiet_left <= 0:
            return turn
        if time.monotonic() + quiet_left > deadline:
            raise VoiceTimeout("the agent's turn did not end before the turn timed out")
        activity.wait_for_frame(quiet_left)


def _current(call: "VoiceCall") -> AgentTurn:
    return call.turns[-1]


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())

"""Turns of a voice call, from what the client hears and plays (sans-IO: fed events and times).

A call has no frame that marks turns, so the client draws the lines itself. Turn 0 is what the
agent says before the user's first clip (the greeting). Each clip the client starts playing
opens the next turn: the agent's answer to it. When the call plays no clips (a custom
:class:`~blackbox_sync.voice.AudioSource`, or silence), the user's transcript ``text`` frames
open turns instead: then the transcript is all the client knows of the user's turns.

Latency is measured from the end of the user's clip (turn 0: from the moment the client sent
its answer) to the first 20 ms frame of agent audio louder than the speech threshold after it.
Agent speech while the user's clip still plays (a greeting running long, or barge-in) does not
count as the answer; the turn notes it in ``spoke_over_user``. An agent still talking when the
clip ends has a latency of about 0.
"""

from typing import List, Optional

import attrs


@attrs.define
class AgentTurn:
    """What the agent said in one turn; the times are ``time.monotonic()`` values."""

    index: int
    """0 for the greeting, then one per user clip (or user transcript text)."""
    opened_at: float
    """When the user started speaking (turn 0: when the call started)."""
    reference_at: Optional[float] = None
    """When the user stopped speaking (turn 0: when the answer was sent); latency counts from it."""
    first_audio_at: Optional[float] = None
    """When the first agent frame above the speech threshold arrived after the user's turn."""
    last_audio_at: Optional[float] = None
    """When the last agent frame above the speech threshold arrived."""
    spoke_over_user: bool = False
    """True when the agent's audio was above the threshold while the user's clip played."""
    closed_at: Optional[float] = None
    """When the next turn opened or the call ended (``None`` while the turn is current)."""
    start_sample: int = 0
    """Where the turn begins in the call's agent recording, in samples."""
    end_sample: Optional[int] = None
    texts: List[str] = attrs.field(factory=list)
    """The assistant transcript texts that arrived during the turn."""
    user_texts: List[str] = attrs.field(factory=list)
    """The user transcript texts (the service's recognition of the user's audio)."""
    audio: bytes = b""
    """The agent's audio in the turn (8 kHz 16-bit mono PCM; filled in snapshots)."""

    @property
    def latency(self) -> Optional[float]:
        """Seconds from the end of the user's turn to the first agent audio (``None``: silent)."""
        if self.first_audio_at is None or self.reference_at is None:
            return None
        return self.first_audio_at - self.reference_at

    @property
    def text(self) -> str:
        """The assistant texts joined with spaces."""
        return " ".join(t.strip() for t in self.texts if t.strip())

    @property
    def spoke(self) -> bool:
        """True once the agent answered with audio above the speech threshold."""
        return self.first_audio_at is not None

    @property
    def duration(self) -> float:
        """Seconds of agent audio recorded in the turn."""
        return len(self.audio) / 16000.0

    def __repr__(self) -> str:
        latency = "silent" if self.latency is None else f"latency {self.latency:.3f} s"
        return f"<AgentTurn {self.index} {latency} {self.text[:40]!r}>"


class TurnTracker:
    """Draws turn lines from clip starts/ends, transcript texts and agent audio levels."""

    def __init__(self, now: float) -> None:
        self.turns: List[AgentTurn] = [AgentTurn(index=0, opened_at=now)]
        self.clips_played = 0
        self.ended = False

    @property
    def current(self) -> AgentTurn:
        """The open turn (the last one)."""
        return self.turns[-1]

    def answer_sent(self, now: float) -> None:
        """The client answered the offer: the greeting's latency counts from here."""
        if self.current.index == 0 and self.current.reference_at is None:
            self.current.reference_at = now

    def user_started(self, now: float, sample: int) -> AgentTurn:
        """A user clip started playing: close the current turn, open the next."""
        self.clips_played += 1
        return self._open(now, sample)

    def user_finished(self, now: float) -> None:
        """The user's clip ended: the agent's answer is due from now on."""
        self.current.reference_at = now

    def user_text(self, now: float, text: str, sample: int) -> None:
        """A user transcript text; it opens a turn only when the call plays no clips."""
        if self.clips_played == 0 and not self.ended:
            self._open(now, sample).reference_at = now
        self.current.user_texts.append(text)

    def agent_text(self, text: str) -> None:
        """An assistant transcript text for the current turn."""
        self.current.texts.append(text)

    def agent_audio(self, now: float, speech: bool) -> None:
        """A 20 ms frame of agent audio arrived; ``speech`` when it was above the threshold."""
        if not speech or self.ended:
            return
        turn = self.current
        if turn.reference_at is None:
            turn.spoke_over_user = True
            return
        if turn.first_audio_at is None:
            turn.first_audio_at = now
        turn.last_audio_at = now

    def reply_done(self, now: float, silence: float) -> bool:
        """True once the agent spoke after the user's turn ended and then stayed quiet for
        ``silence`` seconds (speech only over the user's clip does not count)."""
        last = self.current.last_audio_at
        return last is not None and now - last >= silence

    def finish(self, now: float, sample: int) -> None:
        """The call ended: close the last turn."""
        if not self.ended:
            self.ended = True
            self.current.closed_at = now
            self.current.end_sample = sample

    def _open(self, now: float, sample: int) -> AgentTurn:
        last = self.current
        last.closed_at = now
        last.end_sample = sample
        turn = AgentTurn(index=last.index + 1, opened_at=now, start_sample=sample)
        self.turns.append(turn)
        return turn

"""The turns of a ``webCall`` case: the user's clips go out on the call, the agent's answer is
heard on it (and read from its text frames), and its audio is saved one WAV per turn."""

import os
import re
import time
from typing import TYPE_CHECKING, List, Optional, Tuple

from blackbox_sync.conversation.facade import Conversation
from blackbox_sync.protocol.messages import TextMessage, ToolRequest
from blackbox_sync.protocol.state import counts_as_activity
from blackbox_sync.qa.assertions import ToolSeen
from blackbox_sync.qa.attempt.checks import Answer, Checker
from blackbox_sync.qa.attempt.state import AttemptState
from blackbox_sync.qa.results import ErrorInfo, TurnRecord, ms_since
from blackbox_sync.qa.spec import Step
from blackbox_sync.qa.voicecall import Heard, exchange, open_call
from blackbox_sync.voice import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioSource,
    Silence,
    VoiceError,
    VoiceTimeout,
    WavSource,
)

if TYPE_CHECKING:
    from blackbox_sync.voice.call import VoiceCall


class VoiceTurns:
    """The voice call of one attempt and the turns played on it."""

    def __init__(self, state: AttemptState, checker: Checker) -> None:
        self.state = state
        self.checker = checker
        timeouts = state.settings.timeouts
        self.call: VoiceCall = open_call(
            quiet_s=state.rule.quiet_period,
            turn_s=timeouts.turn_s,
            connect_s=timeouts.connect_s,
            record_turns=self.recording_pattern(),
        )
        """Raises :class:`~blackbox_sync.qa.voicecall.VoiceUnavailable` without the extra."""
        self._clips = 0
        self._recordings: List[Tuple[TurnRecord, int]] = []

    def recording_pattern(self) -> Optional[str]:
        """Where the agent's audio goes, one WAV per turn, when the target has a record_dir."""
        job = self.state.job
        root = getattr(job.target, "record_dir", None)  # optional on a custom target
        if not root:
            return None
        folder = os.path.join(
            os.fspath(root),
            _safe(job.suite),
            _safe(job.case.id),
            f"repeat-{job.repeat}-attempt-{job.attempt}",
        )
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, "agent-turn-{turn}.wav")

    def connected(self) -> bool:
        """Wait for the call to connect; False (with the error recorded) when it did not."""
        state = self.state
        try:
            self.call.wait_connected(min(state.settings.timeouts.connect_s, state.remaining()))
        except VoiceError as exc:
            state.error = ErrorInfo("voice", f"the voice call did not connect: {exc}")
            return False
        return True

    def close(self) -> None:
        """Join the voice thread (the conversation's close starts it), then name the files."""
        self.call.close()
        pattern = self.call.record_turns
        for turn, index in self._recordings:
            path = pattern.format(turn=index) if pattern else None
            if path and os.path.exists(path):
                turn.audio = path

    def play(self, conv: Conversation, number: int, step: Step, timeout: float) -> bool:
        """Play one step: a clip (``user_audio``) or waiting for the agent (``expect_agent``);
        False stops the conversation."""
        state = self.state
        clip: Optional[AudioSource]
        if step.kind == "user_audio":
            try:
                clip = WavSource(step.audio or "")
            except (OSError, ValueError, EOFError) as exc:
                state.runner_check(f"step {number}", "user_audio", False, f"cannot play: {exc}")
                return False
            start = None
        else:
            # After the first clip, a 20 ms silent clip opens a fresh turn to wait in.
            clip = Silence(FRAME_SAMPLES / SAMPLE_RATE) if self._clips else None
            start = state.waiting_since()
        if clip is not None:
            self._clips += 1
        heard = exchange(
            self.call,
            clip,
            start=start,
            deadline=time.monotonic() + timeout,
            silence=state.quiet_ms(step) / 1000.0,
            activity=state.recorder,
        )
        if step.kind == "user_audio" and heard.clip_started is not None:
            name = os.path.basename(step.audio or "")
            seconds = round(heard.start - heard.clip_started, 2)
            data = {"audio": name, "seconds": seconds}
            state.recorder.add_entry(heard.clip_started, "user", name, data, "audio")
        ended = conv.result is not None
        if heard.failure is not None and not ended:
            return self.failed(number, step, heard, timeout)
        if ended and state.ended_by is None:
            state.ended_by = "agent"
        reason = "conversation_result" if ended else "audio_quiet"
        turn, answer = self.record(number, step, heard, reason)
        return self.checker.check_turn(number, step, answer, turn)

    def failed(self, number: int, step: Step, heard: Heard, timeout: float) -> bool:
        """A turn that did not complete: a failed check if the agent spoke, else an error."""
        state = self.state
        timed_out = isinstance(heard.failure, VoiceTimeout)
        if timed_out and heard.spoke:
            self.record(number, step, heard, "timeout")
            rule = f"audio_quiet {state.quiet_ms(step):g} ms"
            state.incomplete_turn(number, timeout, rule, heard.failure)
        elif timed_out:
            state.error = ErrorInfo("timeout", f"no reply within {timeout:g} s", number)
        else:
            state.error = ErrorInfo("voice", str(heard.failure), number)
        state.ended_by = "timeout" if timed_out else "error"
        return False

    def record(
        self, number: int, step: Step, heard: Heard, reason: str
    ) -> Tuple[TurnRecord, Answer]:
        """Keep the turn ``heard``, with what its frames said."""
        state = self.state
        opened = heard.start if heard.clip_started is None else heard.clip_started
        window = state.recorder.frames_between(opened, heard.end)
        activity = [t for t, m in window if counts_as_activity(m, state.rule)]
        texts = [
            m.text
            for _, m in window
            if isinstance(m, TextMessage) and counts_as_activity(m, state.rule) and m.text.strip()
        ]
        tools = [ToolSeen(m.tool_name, m.args) for _, m in window if isinstance(m, ToolRequest)]
        first_text = next(
            (
                t
                for t, m in window
                if t >= heard.start and isinstance(m, TextMessage) and m.from_assistant
            ),
            None,
        )
        if heard.turn.last_audio_at is not None:
            activity.append(heard.turn.last_audio_at)
        answer = Answer(" ".join(t.strip() for t in texts), texts, tools)
        turn = TurnRecord(
            step=number,
            kind=step.kind,
            user=None,
            reply=answer.text,
            reason=reason,
            first_text_ms=ms_since(heard.start, first_text),
            turn_ms=ms_since(heard.start, max(activity, default=None)),
            detected_ms=ms_since(heard.start, heard.end),
            tools=[t.name for t in tools],
            turn_end=state.settings.turn_end.describe(step.quiet_ms),
            first_audio_ms=heard.first_audio_ms,
            user_audio=os.path.basename(step.audio) if step.audio else None,
        )
        state.add_turn(turn, heard.end)
        self._recordings.append((turn, heard.turn.index))
        return turn, answer


def _safe(name: str) -> str:
    """``name`` as one path component."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "_"

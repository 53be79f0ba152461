"""Text turns: a ``user`` step asks, an ``expect_agent`` step waits; either records the turn
with its timings and checks it."""

import time
from typing import Optional

from blackbox_sync.conversation.facade import Conversation
from blackbox_sync.errors import AskTimeout
from blackbox_sync.protocol.messages import TextMessage
from blackbox_sync.protocol.reply import Reply
from blackbox_sync.protocol.state import counts_as_activity
from blackbox_sync.qa import templates
from blackbox_sync.qa.attempt.checks import Answer, Checker
from blackbox_sync.qa.attempt.errors import classify
from blackbox_sync.qa.attempt.state import AttemptState
from blackbox_sync.qa.results import TurnRecord, ms_since
from blackbox_sync.qa.spec import Step


class ChatTurns:
    """Plays the text turns of one attempt."""

    def __init__(self, state: AttemptState, checker: Checker) -> None:
        self.state = state
        self.checker = checker

    def play(self, conv: Conversation, number: int, step: Step, timeout: float) -> bool:
        """Play one ``user`` or ``expect_agent`` step; False stops the conversation."""
        state = self.state
        quiet = None if step.quiet_ms is None else step.quiet_ms / 1000.0
        text: Optional[str] = None
        if step.kind == "user":
            try:
                text = str(templates.render(step.text or "", state.vars))
            except templates.TemplateError as exc:
                state.runner_check(f"step {number}", "template", False, str(exc))
                return False
            start = time.monotonic()
            state.recorder.add_entry(start, "user", text)
        else:
            start = state.waiting_since()
        try:
            reply = (
                conv.ask(text, timeout=timeout, quiet_period=quiet)
                if text is not None
                else conv.wait_for_reply(timeout=timeout, quiet_period=quiet)
            )
        except AskTimeout as exc:
            partial = exc.reply
            if partial is None or not partial.texts:
                state.error = classify(exc, "turn", number)
                state.error.message = f"no reply within {timeout:g} s"
                state.ended_by = "timeout"
                return False
            self.record(number, step, text, partial, start)
            state.incomplete_turn(number, timeout, f"quiet {state.quiet_ms(step):g} ms", exc)
            return False
        except Exception as exc:
            state.error = classify(exc, "turn", number)
            state.ended_by = "error"
            return False
        if reply.ended and state.ended_by is None:
            state.ended_by = "agent"
        turn = self.record(number, step, text, reply, start)
        return self.checker.check_turn(number, step, Answer.of(reply), turn)

    def record(
        self, number: int, step: Step, text: Optional[str], reply: Reply, start: float
    ) -> TurnRecord:
        """Keep the turn that ``reply`` ended, timed from ``start``."""
        state = self.state
        end = time.monotonic()
        frames = state.recorder.frames_between(start, end)
        first = next(
            (t for t, m in frames if isinstance(m, TextMessage) and m.from_assistant), None
        )
        activity = [t for t, m in frames if counts_as_activity(m, state.rule)]
        turn = TurnRecord(
            step=number,
            kind=step.kind,
            user=text,
            reply=reply.text,
            reason=str(reply.reason),
            first_text_ms=ms_since(start, first),
            turn_ms=ms_since(start, max(activity, default=None)),
            detected_ms=ms_since(start, end),
            tools=[r.tool_name for r in reply.tool_requests],
            turn_end=state.settings.turn_end.describe(step.quiet_ms),
        )
        state.add_turn(turn, end)
        return turn

"""One attempt of one case: connect, play the steps in order, check, end, record.

:func:`run_attempt` is what executors run. It never raises: whatever happens becomes an
:class:`~.results.Attempt` whose status is ``passed``, ``failed`` (a check did not hold) or
``error`` (infrastructure, see :func:`~.attempt.errors.classify`). Timings are taken on this
client with a monotonic clock as frames are decoded, so latency is measured on the wire, not in
the agent. The concerns of an attempt live in :mod:`blackbox_sync.qa.attempt`; this module plays
the steps in order.
"""

from typing import Any, Dict, Optional

from blackbox_sync.conversation.facade import Conversation
from blackbox_sync.protocol.messages import ConversationResult
from blackbox_sync.protocol.state import Phase
from blackbox_sync.qa import templates
from blackbox_sync.qa.attempt.chat import ChatTurns
from blackbox_sync.qa.attempt.checks import Checker
from blackbox_sync.qa.attempt.errors import RETRYABLE_4XX, classify, http_status
from blackbox_sync.qa.attempt.job import AttemptJob
from blackbox_sync.qa.attempt.result import assemble
from blackbox_sync.qa.attempt.state import AttemptState
from blackbox_sync.qa.attempt.tools import ScriptedTools
from blackbox_sync.qa.attempt.voice import VoiceTurns
from blackbox_sync.qa.results import Attempt, ErrorInfo, now_iso, redact_attempt
from blackbox_sync.qa.spec import Step
from blackbox_sync.qa.targets import known_secrets
from blackbox_sync.qa.voicecall import VoiceUnavailable

__all__ = [
    "RETRYABLE_4XX",
    "AttemptJob",
    "AttemptRun",
    "classify",
    "http_status",
    "now_iso",
    "run_attempt",
]


def run_attempt(job: AttemptJob) -> Attempt:
    """Run one attempt; never raises. Its result holds no credential (see
    :func:`~.results.redact_attempt`), whatever the server echoed."""
    run = AttemptRun(job)
    try:
        run.run()
    except Exception as exc:  # a runner bug must still come back as a result, never hang a run
        run.state.error = ErrorInfo("internal", f"{type(exc).__name__}: {exc}", retryable=False)
    # After the run: a token minted for this attempt is among the target's secrets by now.
    return redact_attempt(assemble(run.state), known_secrets(job.target))


class AttemptRun:
    """Plays one attempt: opens the conversation, plays the steps in order, ends it, checks."""

    def __init__(self, job: AttemptJob) -> None:
        self.state = AttemptState(job)
        self.checker = Checker(self.state)
        self.chat = ChatTurns(self.state, self.checker)
        self.voice: Optional[VoiceTurns] = None
        """The voice call of a ``webCall`` case."""

    def run(self) -> None:
        """Run the attempt; what happened is in :attr:`state`."""
        state = self.state
        try:
            additional = templates.render(state.case.additional_data, state.vars)
        except templates.TemplateError as exc:
            state.runner_check("runner", "additional_data", False, str(exc))
            return
        options: Dict[str, Any] = {}
        if state.settings.call_type == "webCall":
            try:
                self.voice = VoiceTurns(state, self.checker)
            except VoiceUnavailable as exc:
                state.error = ErrorInfo("voice", str(exc), retryable=False)
                return
            options = {"call_type": "webCall", "voice": self.voice.call}
        try:
            with state.job.target.conversation(
                state.job.suite,
                additional_data=additional,
                quiet_period=state.rule.quiet_period,
                fillers=state.rule.fillers,
                connect_timeout=state.settings.timeouts.connect_s,
                **options,
            ) as conv:
                self.converse(conv)
        except Exception as exc:  # token minting or building the conversation failed
            if state.error is None:
                state.error = classify(exc, "connect")
        finally:
            if self.voice is not None:
                self.voice.close()

    def converse(self, conv: Conversation) -> None:
        """Connect ``conv``, play the steps, end it and run the conversation's checks."""
        state = self.state
        recorder = state.recorder
        for name, handler in ScriptedTools(state).handlers().items():
            conv.tool(name, handler)
        conv.on("*", recorder.on_frame)
        conv.on_close(lambda code, reason: recorder.closed.set())
        if state.case.steps and state.case.steps[0].kind == "expect_agent":
            recorder.at_step(1)  # a greeting can arrive before connect() returns: it is step 1's
        elif state.settings.talk_first:
            recorder.at_step(0)
        try:
            try:
                conv.connect(timeout=min(state.settings.timeouts.connect_s, state.remaining()))
            except Exception as exc:
                state.error = classify(exc, "connect")
                return
            state.record_id = conv.record_id
            if self.voice is not None and not self.voice.connected():
                return
            self.play(conv)
            recorder.at_step(None)
            if state.error is None and state.ended_by is None:
                self.terminate(conv, None)
        finally:
            conv.close()
            state.close_code = conv.close_code
            if conv.result is not None:
                state.result = _result_dict(conv.result)
        if state.error is None:
            self.checker.check_conversation()

    def play(self, conv: Conversation) -> None:
        """Play the case's steps in order, until one stops the conversation."""
        state = self.state
        steps = state.case.steps
        if state.settings.talk_first and steps and steps[0].kind != "expect_agent":
            state.recorder.at_step(0)
            if not self.turn(conv, 0, Step(kind="expect_agent")):  # the greeting, unchecked
                return
        for number, step in enumerate(steps, start=1):
            if state.error is not None:
                return
            state.recorder.at_step(number)
            if step.kind == "wait":
                state.recorder.closed.wait(min(step.seconds, state.remaining()))  # a pause
                continue
            if step.kind == "terminate":
                self.terminate(conv, number)
                continue
            if conv.phase is Phase.ENDED or conv.closed:
                state.runner_check(
                    f"step {number}",
                    "conversation_open",
                    False,
                    f"the conversation had already ended ({state.ended_by or 'closed'})",
                )
                return
            if not self.turn(conv, number, step):
                return

    def turn(self, conv: Conversation, number: int, step: Step) -> bool:
        """Play one turn step, by text or on the call; False stops the conversation."""
        state = self.state
        remaining = state.remaining()
        if remaining <= 0:
            state.runner_check(
                f"step {number}", "conversation_s", False, "conversation time limit reached"
            )
            return False
        timeout = min(step.timeout_s or state.settings.timeouts.turn_s, remaining)
        if self.voice is not None:
            return self.voice.play(conv, number, step, timeout)
        return self.chat.play(conv, number, step, timeout)

    def terminate(self, conv: Conversation, number: Optional[int]) -> None:
        """End the conversation from this side (a ``terminate`` step, or after the last step)."""
        state = self.state
        if state.ended_by is None and conv.phase is not Phase.ENDED and not conv.closed:
            state.ended_by = "client"
        try:
            conv.terminate(timeout=min(state.settings.timeouts.terminate_s, state.remaining()))
        except Exception as exc:
            state.error = classify(exc, "terminate", number)
            state.ended_by = "error"
        if state.ended_by is None:
            state.ended_by = "agent"


def _result_dict(result: ConversationResult) -> Dict[str, Any]:
    return {
        "status": None if result.status is None else str(result.status),
        "error_message": None if result.error_message is None else str(result.error_message),
        "data": result.result if isinstance(result.result, dict) else None,
    }

"""The case's checks: after each agent turn (with captures), and over the whole conversation."""

import re
from typing import List

import attrs

from blackbox_sync.protocol.messages import ErrorMessage, ToolRequest
from blackbox_sync.protocol.reply import Reply
from blackbox_sync.qa.assertions import CheckEnv, InfraError, Observed, ToolSeen, evaluate
from blackbox_sync.qa.attempt.state import AttemptState
from blackbox_sync.qa.results import ErrorInfo, TurnRecord
from blackbox_sync.qa.spec import Check, Step


@attrs.define
class Answer:
    """What turn checks read from one agent turn."""

    text: str
    texts: List[str]
    tools: List[ToolSeen]

    @classmethod
    def of(cls, reply: Reply) -> "Answer":
        """The answer of a text turn."""
        tools = [ToolSeen(r.tool_name, r.args) for r in reply.tool_requests]
        return cls(reply.text, list(reply.texts), tools)


class Checker:
    """Evaluates the case's checks into the attempt's state."""

    def __init__(self, state: AttemptState) -> None:
        self.state = state
        job = state.job
        self.env = CheckEnv(judge=job.judge, judge_cache=job.judge_cache, base_dir=job.base_dir)
        self.target_kind = str(getattr(job.target, "kind", ""))  # a custom target may have none

    def check_turn(self, number: int, step: Step, answer: Answer, turn: TurnRecord) -> bool:
        """Capture the step's variables and evaluate its checks; False: stop (a judge failed)."""
        state = self.state
        scope = f"step {number}"
        for var, pattern in step.capture.items():
            found = re.search(pattern, answer.text)
            if found is None:
                state.runner_check(
                    scope, "capture", False, f"{var}: no match for {pattern!r}", f"capture {var}"
                )
                continue
            value = found.group(1) if found.re.groups else found.group(0)
            state.vars[var] = turn.captured[var] = value
        observed = Observed(
            scope="turn",
            text=answer.text,
            texts=list(answer.texts),
            tools=list(answer.tools),
            first_text_ms=[turn.first_text_ms],
            turn_ms=[turn.turn_ms],
            first_audio_ms=[turn.first_audio_ms],
            turns=len(state.turns),
            transcript=state.recorder.snapshot(),
            vars=dict(state.vars),
            target=self.target_kind,
        )
        return self.evaluate(step.expect, observed, scope)

    def check_conversation(self) -> None:
        """The conversation's checks, and one failed check per tool the case does not script."""
        state = self.state
        frames = state.recorder.frames()
        tools = [ToolSeen(m.tool_name, m.args) for _, m in frames if isinstance(m, ToolRequest)]
        for name in sorted({t.name for t in tools} - set(state.case.tools)):
            state.runner_check(
                "conversation",
                "tool_scripted",
                False,
                f"the agent requested tool {name!r}, which the case does not script "
                "(the client answered with an error)",
                f"tool {name} scripted",
            )
        turns = state.turns
        observed = Observed(
            scope="conversation",
            text="\n".join(t.reply for t in turns if t.reply),
            texts=[text for t in turns for text in ([t.reply] if t.reply else [])],
            tools=tools,
            first_text_ms=[t.first_text_ms for t in turns],
            turn_ms=[t.turn_ms for t in turns],
            turns=len(turns),
            transcript=state.recorder.snapshot(),
            vars=dict(state.vars),
            target=self.target_kind,
            ended_by=state.ended_by,
            result=state.result,
            error_frames=[str(m.message) for _, m in frames if isinstance(m, ErrorMessage)],
            first_audio_ms=[t.first_audio_ms for t in turns],
        )
        self.evaluate(state.case.expect_conversation, observed, "conversation")

    def evaluate(self, checks: List[Check], observed: Observed, scope: str) -> bool:
        """Evaluate ``checks``; False when one could not be judged (an infrastructure error)."""
        for check in checks:
            try:
                self.state.checks.append(evaluate(check, observed, self.env, scope))
            except InfraError as exc:
                self.state.error = ErrorInfo("judge", str(exc))
                return False
        return True

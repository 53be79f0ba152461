"""What one attempt has found so far, shared by the concerns that play and check it."""

import time
from typing import Any, Dict, List, Optional

from blackbox_sync.protocol.state import TurnRule
from blackbox_sync.qa.attempt.job import AttemptJob
from blackbox_sync.qa.attempt.recording import Recorder
from blackbox_sync.qa.results import CheckResult, ErrorInfo, TurnRecord, now_iso
from blackbox_sync.qa.spec import Step


class AttemptState:
    """The case, its clock and recording, and what the attempt found: checks, turns, captured
    variables, the first infrastructure error and who ended the conversation."""

    def __init__(self, job: AttemptJob) -> None:
        self.job = job
        self.case = job.case
        self.settings = job.case.settings
        self.rule: TurnRule = self.settings.turn_end.rule()
        self.t0 = time.monotonic()
        self.started_at = now_iso()
        self.deadline = self.t0 + self.settings.timeouts.conversation_s
        self.recorder = Recorder(self.t0, self.rule, voice=self.settings.call_type == "webCall")
        self.vars: Dict[str, Any] = {**job.case.vars, "case_id": job.case.id, "repeat": job.repeat}
        self.checks: List[CheckResult] = []
        self.turns: List[TurnRecord] = []
        self.error: Optional[ErrorInfo] = None
        self.ended_by: Optional[str] = None
        self.result: Optional[Dict[str, Any]] = None
        self.record_id: Optional[str] = None
        self.close_code: Optional[int] = None
        self.mark: Optional[float] = None
        """When the last turn ended: an ``expect_agent`` step times the agent from here."""

    def remaining(self) -> float:
        """Seconds left of the case's conversation time limit."""
        return max(0.0, self.deadline - time.monotonic())

    def quiet_ms(self, step: Step) -> float:
        """The quiet period this step's turn uses: its own, else the case's."""
        return self.settings.turn_end.quiet_ms if step.quiet_ms is None else step.quiet_ms

    def waiting_since(self) -> float:
        """Where an ``expect_agent`` turn counts from: the end of the last turn, else when the
        conversation became ready."""
        return self.mark if self.mark is not None else self.recorder.ready_time()

    def add_turn(self, turn: TurnRecord, end: float) -> None:
        """Keep ``turn``, which ended at ``end``."""
        self.turns.append(turn)
        self.mark = end

    def runner_check(
        self, scope: str, kind: str, passed: bool, message: str, label: Optional[str] = None
    ) -> None:
        """Record a check the runner itself makes (a step that could not play, say)."""
        self.checks.append(CheckResult(scope, kind, label or kind, passed, message))

    def incomplete_turn(self, number: int, timeout: float, rule: str, why: object) -> None:
        """The agent spoke but its turn did not end within ``timeout``: a failed check."""
        self.runner_check(
            f"step {number}",
            "turn_complete",
            False,
            f"the reply did not complete within {timeout:g} s (rule: {rule}): {why}",
        )
        self.ended_by = "timeout"

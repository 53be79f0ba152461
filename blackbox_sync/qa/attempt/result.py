"""The finished attempt: its status from the checks and the error, and everything recorded."""

import os
import socket
import threading
import time

from blackbox_sync.qa.assertions import weighted_score
from blackbox_sync.qa.attempt.state import AttemptState
from blackbox_sync.qa.results import Attempt, Status


def assemble(state: AttemptState) -> Attempt:
    """The :class:`~blackbox_sync.qa.results.Attempt` that ``state`` amounts to (not redacted)."""
    score = weighted_score(state.checks)
    min_score = state.settings.pass_if.min_score
    if state.error is not None:
        status = Status.ERROR
    elif min_score is None:
        failed = any(not c.passed and c.weight > 0 for c in state.checks)
        status = Status.FAILED if failed else Status.PASSED
    else:
        status = Status.PASSED if score is None or score >= min_score else Status.FAILED
    if state.error is not None and state.ended_by is None:
        state.ended_by = "error"
    return Attempt(
        number=state.job.attempt,
        status=status,
        started_at=state.started_at,
        duration_s=round(time.monotonic() - state.t0, 3),
        error=state.error,
        checks=state.checks,
        score=score,
        turns=state.turns,
        transcript=state.recorder.snapshot(),
        ended_by=state.ended_by,
        result=state.result,
        record_id=state.record_id,
        close_code=state.close_code,
        vars={k: v for k, v in state.vars.items() if k not in ("case_id", "repeat")},
        worker=f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}",
    )

"""The canonical result model: every report format is written from these classes.

A :class:`CaseResult` is one conversation of a suite, with its repeats, each repeat with its
attempts (an attempt is retried only after an infrastructure error). One ``CaseResult`` is one
JSONL line; :data:`SCHEMA` versions the layout. Nothing here holds a token or an API key:
every attempt passes through :func:`redact_attempt` before anything reads it.
"""

import enum
import json
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Tuple, overload

import attrs
import cattrs

from blackbox_sync.redact import redact_json

SCHEMA = "blackbox_sync.qa/1"
"""Written into every record; bumped when a field changes meaning or goes away."""


class Status(str, enum.Enum):
    """The outcome of an attempt, a repeat or a case."""

    PASSED = "passed"
    FAILED = "failed"
    """A check did not hold: the agent's behaviour is wrong."""
    ERROR = "error"
    """Infrastructure: connect failure, unexpected close, an ``error`` frame, no reply in time."""

    def __str__(self) -> str:
        return self.value


@attrs.define
class ErrorInfo:
    """Why an attempt ended in :attr:`Status.ERROR`."""

    kind: str
    """``connect``, ``auth``, ``closed``, ``server_error``, ``timeout``, ``terminate``, ``voice``
    (a ``webCall`` without the voice extra, or whose media never flowed) or ``internal``."""
    message: str
    step: Optional[int] = None
    retryable: bool = True


@attrs.define
class CheckResult:
    """One assertion's outcome."""

    scope: str
    """``turn 2`` (the step's number, 1-based), ``conversation``, or ``runner`` for checks the
    runner adds (a capture that found nothing, a tool the case did not script)."""
    kind: str
    label: str
    passed: bool
    message: str = ""
    weight: float = 1.0
    score: Optional[float] = None
    negated: bool = False


@attrs.define
class Entry:
    """One line of a transcript. ``t_ms`` counts from the start of the attempt (monotonic)."""

    t_ms: float
    role: str
    """``user``, ``assistant``, ``tool_request``, ``tool_response``, ``tool_result``, ``event``,
    ``error`` or ``result``."""
    text: str = ""
    data: Any = None
    flags: Tuple[str, ...] = ()
    """``filler`` or ``partial`` for assistant texts that are not reply text."""
    step: Optional[int] = None
    """The step (1-based) that was playing; ``None`` before the first and after the last."""


@attrs.define
class TurnRecord:
    """One agent turn, after a ``user`` or ``user_audio`` step or an ``expect_agent`` step.

    In a ``webCall`` case the timings count from the end of the user's clip.
    """

    step: int
    """The step's number in the case, 1-based."""
    kind: str
    user: Optional[str]
    reply: str
    reason: str
    """Why the turn counted as complete (``quiet``, ``conversation_result``, ...)."""
    first_text_ms: Optional[float]
    """Send (or start of waiting) → the agent's first text of any kind, on this client."""
    turn_ms: Optional[float]
    """Send → the agent's last activity in the turn; the quiet period is not counted."""
    detected_ms: float
    """Send → the turn counted as complete (includes the quiet period)."""
    tools: List[str] = attrs.field(factory=list)
    captured: Dict[str, Any] = attrs.field(factory=dict)
    turn_end: Dict[str, Any] = attrs.field(factory=dict)
    """The end-of-turn rule this turn used: the case's, or the step's own ``quiet_ms``."""
    first_audio_ms: Optional[float] = None
    """``webCall``: end of the user's clip (or the start of waiting) → the agent's first audio
    above the speech threshold, on this client."""
    user_audio: Optional[str] = None
    """``user_audio`` steps: the clip's file name."""
    audio: Optional[str] = None
    """The agent's audio in this turn, as a WAV file (when the target has a ``record_dir``)."""


@attrs.define
class Attempt:
    """One connection's worth of a case."""

    number: int
    status: Status
    started_at: str
    duration_s: float
    error: Optional[ErrorInfo] = None
    checks: List[CheckResult] = attrs.field(factory=list)
    score: Optional[float] = None
    turns: List[TurnRecord] = attrs.field(factory=list)
    transcript: List[Entry] = attrs.field(factory=list)
    ended_by: Optional[str] = None
    """``agent``, ``client``, ``error`` or ``timeout``."""
    result: Optional[Dict[str, Any]] = None
    """The ``conversationResult``: ``status``, ``error_message`` and its payload."""
    record_id: Optional[str] = None
    close_code: Optional[int] = None
    vars: Dict[str, Any] = attrs.field(factory=dict)
    worker: str = ""
    """``host:pid:thread`` that ran the attempt (useful on a cluster)."""

    @property
    def failed_checks(self) -> List[CheckResult]:
        """The checks that did not hold."""
        return [c for c in self.checks if not c.passed]


@attrs.define
class Repeat:
    """One repeat of a case; its status is its last attempt's."""

    index: int
    status: Status
    attempts: List[Attempt] = attrs.field(factory=list)

    @property
    def final(self) -> Attempt:
        """The attempt that decided the repeat."""
        return self.attempts[-1]


@attrs.define
class CaseResult:
    """One conversation of a suite, as written to a JSONL line."""

    suite: str
    id: str
    status: Status
    run_id: str
    repeats: List[Repeat]
    pass_rate: float
    min_pass_rate: float
    turn_end: Dict[str, Any]
    target: Dict[str, Any]
    started_at: str
    duration_s: float
    description: str = ""
    tags: List[str] = attrs.field(factory=list)
    where: str = ""
    schema: str = SCHEMA

    @property
    def key(self) -> Tuple[str, str]:
        """``(suite, id)``: what ``--resume`` matches on."""
        return (self.suite, self.id)

    @property
    def attempts(self) -> int:
        """Attempts over all repeats."""
        return sum(len(r.attempts) for r in self.repeats)

    @property
    def shown(self) -> Attempt:
        """The attempt reports show: the first that errored, else failed, else the first."""
        for status in (Status.ERROR, Status.FAILED):
            for repeat in self.repeats:
                if repeat.status is status:
                    return repeat.final
        return self.repeats[0].final

    @property
    def summary(self) -> str:
        """One line: why the case did not pass (empty when it passed)."""
        if self.status is Status.PASSED:
            return ""
        shown = self.shown
        if shown.error is not None:
            return f"{shown.error.kind}: {shown.error.message}"
        failed = shown.failed_checks
        if failed:
            first = failed[0]
            more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
            return f"{first.scope}: {first.label}: {first.message}{more}"
        return f"pass rate {self.pass_rate:.0%} < {self.min_pass_rate:.0%}"


@attrs.define
class RunInfo:
    """A run's header record (one per invocation; a resumed run appends another)."""

    run_id: str
    started_at: str
    target: Dict[str, Any]
    suites: List[str]
    client_version: str
    record: str = "run"
    schema: str = SCHEMA


converter = cattrs.Converter()


def now_iso() -> str:
    """The UTC time now, ISO 8601 with milliseconds and ``Z`` (how results write times)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@overload
def ms_since(start: float, t: float) -> float: ...
@overload
def ms_since(start: float, t: Optional[float]) -> Optional[float]: ...
def ms_since(start: float, t: Optional[float]) -> Optional[float]:
    """Milliseconds from ``start`` to ``t`` (monotonic seconds), to 0.1 ms, as results keep
    timings; ``None`` when ``t`` is (nothing was timed)."""
    return None if t is None else round((t - start) * 1000.0, 1)


def redact_attempt(attempt: Attempt, secrets: Iterable[str]) -> Attempt:
    """``attempt`` with each of ``secrets``, and every ``token=``/``authorization=`` value and
    bearer credential, masked in every string it holds.

    Server texts (``error`` frames, close reasons, replies, results) are untrusted and may echo
    a credential; this is the one place they are cleaned before any report or terminal sees
    them.
    """
    data = redact_json(converter.unstructure(attempt), *secrets)
    try:
        return converter.structure(data, Attempt)
    except (cattrs.BaseValidationError, ValueError, TypeError):
        # A secret so short that it matched a field name or a status: keep nothing it touched.
        return Attempt(
            number=attempt.number,
            status=Status.ERROR,
            started_at=attempt.started_at,
            duration_s=attempt.duration_s,
            error=ErrorInfo(
                "internal", "the result could not be cleaned of credentials", retryable=False
            ),
            ended_by="error",
        )


def to_dict(obj: Any) -> Dict[str, Any]:
    """Plain JSON data for a result object."""
    data: Dict[str, Any] = converter.unstructure(obj)
    if isinstance(obj, CaseResult):
        data["record"] = "case"
    return data


def case_from_dict(data: Dict[str, Any]) -> CaseResult:
    """A :class:`CaseResult` from a JSONL record (unknown keys are ignored)."""
    clean = {k: v for k, v in data.items() if k != "record"}
    return converter.structure(clean, CaseResult)


def dumps(obj: Any) -> str:
    """One compact JSON line."""
    return json.dumps(to_dict(obj), ensure_ascii=False, separators=(",", ":"), default=str)

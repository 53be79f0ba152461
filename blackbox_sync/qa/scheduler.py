"""The runner's scheduler: conversations in parallel on any ``concurrent.futures.Executor``.

One driver thread (the caller's) decides what starts when: at most ``max_in_flight`` attempts at
once, at most ``rate`` starts per second (retries included), infrastructure errors retried after
a backoff, and each case handed to ``on_case`` the moment its last repeat is decided. Workers
only run :func:`~.execute.run_attempt`, so a ``dask.distributed`` executor, a process pool or a
thread pool all work; the scheduler never shares a lock with a worker.
"""

import collections
import concurrent.futures
import heapq
import itertools
import queue
import time
import uuid
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import attrs

from blackbox_sync.qa.attempt.job import AttemptJob
from blackbox_sync.qa.execute import run_attempt
from blackbox_sync.qa.results import (
    Attempt,
    CaseResult,
    ErrorInfo,
    Repeat,
    Status,
    now_iso,
    redact_attempt,
)
from blackbox_sync.qa.spec import Case
from blackbox_sync.qa.targets import known_secrets

MAX_BACKOFF_S = 30.0
STOP_GRACE_S = 5.0
"""How long an interrupted run waits for its closed conversations' attempts to wind down."""

CaseKey = Tuple[str, str]
OnCase = Callable[[CaseResult], None]


class RateLimiter:
    """At most ``rate`` starts per second, evenly spaced (a token bucket of one)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._clock = clock
        self._next: Optional[float] = None

    def wait_time(self) -> float:
        """Seconds until the next start is allowed (0: now)."""
        if self._next is None:
            return 0.0
        return max(0.0, self._next - self._clock())

    def take(self) -> None:
        """Count a start now."""
        now = self._clock()
        base = now if self._next is None else max(now, self._next)
        self._next = base + self.interval


@attrs.define
class CaseTask:
    """A case to run, with what its suite gives it."""

    suite: str
    base_dir: Optional[str]
    judge: Any
    """The judge for ``judge`` checks: a callable, a ``module:function`` reference, or None."""
    case: Case


@attrs.define
class _CaseRun:
    suite: str
    case: Case
    started_at: str = ""
    t0: Optional[float] = None
    """When the case's first attempt was handed to the executor."""
    attempts: Dict[int, List[Attempt]] = attrs.field(factory=dict)
    final: Dict[int, Status] = attrs.field(factory=dict)


@attrs.define
class Scheduler:
    """Runs the attempts of case tasks."""

    target: object
    executor: concurrent.futures.Executor
    run_id: str
    max_in_flight: int = 8
    rate: Optional[float] = None
    judge_cache: Optional[str] = None
    on_case: Sequence[OnCase] = ()
    clock: Callable[[], float] = time.monotonic
    on_stop: Optional[Callable[[], None]] = None
    """Called when the run is interrupted, before waiting for the attempts in flight: it should
    make them end now (the runner closes their conversations)."""
    stop_grace_s: float = STOP_GRACE_S

    def run(self, tasks: Sequence[CaseTask]) -> List[CaseResult]:
        """Run every case to its end; returns results in the order they finished."""
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        limiter = RateLimiter(self.rate, self.clock) if self.rate else None
        runs: Dict[CaseKey, _CaseRun] = {}
        ready: Deque[AttemptJob] = collections.deque()
        for task in tasks:
            runs[(task.suite, task.case.id)] = _CaseRun(task.suite, task.case)
            for repeat in range(1, task.case.settings.repeat + 1):
                ready.append(self._job(task, repeat))
        delayed: List[Tuple[float, int, AttemptJob]] = []
        order = itertools.count()
        done: queue.Queue[Tuple[AttemptJob, concurrent.futures.Future[Attempt]]] = queue.Queue()
        in_flight: Dict[int, concurrent.futures.Future[Attempt]] = {}
        results: List[CaseResult] = []
        try:
            while ready or delayed or in_flight:
                now = self.clock()
                while delayed and delayed[0][0] <= now:
                    ready.append(heapq.heappop(delayed)[2])
                wait: Optional[float] = None
                while ready and len(in_flight) < self.max_in_flight:
                    if limiter is not None and limiter.wait_time() > 0:
                        wait = limiter.wait_time()
                        break
                    if limiter is not None:
                        limiter.take()
                    job = ready.popleft()
                    run = runs[(job.suite, job.case.id)]
                    if run.t0 is None:
                        run.t0, run.started_at = self.clock(), now_iso()
                    future = self.executor.submit(run_attempt, job)
                    in_flight[id(future)] = future
                    future.add_done_callback(_report_to(done, job))
                waits = [
                    w for w in (wait, delayed[0][0] - now if delayed else None) if w is not None
                ]
                try:
                    job, future = done.get(timeout=min(waits) if waits else None)
                except queue.Empty:
                    continue
                in_flight.pop(id(future), None)
                attempt = _attempt_of(job, future)
                run = runs[(job.suite, job.case.id)]
                run.attempts.setdefault(job.repeat, []).append(attempt)
                retries = job.case.settings.retries
                if _retry(attempt, job.attempt, retries):
                    backoff = min(
                        MAX_BACKOFF_S, job.case.settings.retry_backoff_s * 2 ** (job.attempt - 1)
                    )
                    retry = attrs.evolve(job, attempt=job.attempt + 1, nonce=uuid.uuid4().hex)
                    heapq.heappush(delayed, (self.clock() + backoff, next(order), retry))
                    continue
                run.final[job.repeat] = attempt.status
                if len(run.final) == job.case.settings.repeat:
                    result = self._case_result(run)
                    results.append(result)
                    for callback in self.on_case:
                        callback(result)
        except BaseException:
            self._stop(list(in_flight.values()))
            raise
        return results

    def _stop(self, in_flight: List["concurrent.futures.Future[Attempt]"]) -> None:
        """Cancel what has not started, end what runs, and give it a moment to finish; results
        that come in now are dropped, so an interrupted case is never recorded as finished."""
        for future in in_flight:
            future.cancel()
        if self.on_stop is not None:
            self.on_stop()
        concurrent.futures.wait(in_flight, timeout=self.stop_grace_s)

    def _job(self, task: CaseTask, repeat: int) -> AttemptJob:
        return AttemptJob(
            suite=task.suite,
            case=task.case,
            target=self.target,
            repeat=repeat,
            attempt=1,
            judge=task.judge,
            judge_cache=self.judge_cache,
            base_dir=task.base_dir,
        )

    def _case_result(self, run: _CaseRun) -> CaseResult:
        settings = run.case.settings
        repeats = [
            Repeat(index, run.final[index], run.attempts[index]) for index in sorted(run.final)
        ]
        passed = sum(1 for r in repeats if r.status is Status.PASSED)
        pass_rate = passed / len(repeats)
        if any(r.status is Status.ERROR for r in repeats):
            status = Status.ERROR  # infrastructure noise makes the pass rate meaningless
        elif pass_rate >= settings.pass_if.min_pass_rate:
            status = Status.PASSED
        else:
            status = Status.FAILED
        describe = getattr(self.target, "describe", None)
        return CaseResult(
            suite=run.suite,
            id=run.case.id,
            status=status,
            run_id=self.run_id,
            repeats=repeats,
            pass_rate=round(pass_rate, 4),
            min_pass_rate=settings.pass_if.min_pass_rate,
            turn_end=settings.turn_end.describe(),
            target=describe() if callable(describe) else {},
            started_at=run.started_at,
            duration_s=round(self.clock() - (run.t0 or self.clock()), 3),
            description=run.case.description,
            tags=list(run.case.tags),
            where=run.case.where,
        )


def _report_to(
    done: "queue.Queue[Tuple[AttemptJob, concurrent.futures.Future[Attempt]]]", job: AttemptJob
) -> Callable[["concurrent.futures.Future[Attempt]"], None]:
    """A done-callback that hands the finished future to the driver thread."""

    def callback(future: "concurrent.futures.Future[Attempt]") -> None:
        done.put((job, future))

    return callback


def _retry(attempt: Attempt, number: int, retries: int) -> bool:
    return (
        attempt.status is Status.ERROR
        and attempt.error is not None
        and attempt.error.retryable
        and number <= retries
    )


def _attempt_of(job: AttemptJob, future: "concurrent.futures.Future[Attempt]") -> Attempt:
    """The worker's attempt, or an ``error`` attempt when the executor itself failed."""
    try:
        return future.result()
    except BaseException as exc:  # cancelled, a worker died, pickling failed...
        failed = Attempt(
            number=job.attempt,
            status=Status.ERROR,
            started_at="",
            duration_s=0.0,
            error=ErrorInfo("executor", f"{type(exc).__name__}: {exc}", retryable=True),
            ended_by="error",
        )
        return redact_attempt(failed, known_secrets(job.target))

"""``qa.run()``: load suites, pick the cases, choose the target and executor, stream results."""

import concurrent.futures
import contextlib
import fnmatch
import os
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Union

import attrs

from blackbox_sync import __version__
from blackbox_sync.qa import stopping
from blackbox_sync.qa.loader import load_suite
from blackbox_sync.qa.progress import Progress
from blackbox_sync.qa.report import RunReport
from blackbox_sync.qa.results import CaseResult, RunInfo
from blackbox_sync.qa.scheduler import CaseTask, Scheduler
from blackbox_sync.qa.spec import Case, Suite
from blackbox_sync.qa.store import JsonlSink, keys_to_skip, read_jsonl
from blackbox_sync.qa.targets import EmulatorTarget, hosted_emulator

SuiteSource = Union[Suite, str, "os.PathLike[str]"]
CaseKey = Tuple[str, str]


def _suites(suites: Union[SuiteSource, Sequence[SuiteSource]]) -> List[Suite]:
    items: Sequence[SuiteSource] = (
        suites if isinstance(suites, (list, tuple)) else [suites]  # type: ignore[list-item]
    )
    return [s if isinstance(s, Suite) else load_suite(s) for s in items]


def select(
    suites: Sequence[Suite],
    *,
    ids: Sequence[str] = (),
    tags: Sequence[str] = (),
    skip: Sequence[Tuple[str, str]] = (),
) -> List[Tuple[Suite, Case]]:
    """The cases to run: ids matching any glob in ``ids``, carrying any tag in ``tags``, and
    not in ``skip`` (``(suite, id)`` keys)."""
    skipped = set(skip)
    chosen = []
    for suite in suites:
        for case in suite.cases:
            if (suite.name, case.id) in skipped:
                continue
            if ids and not any(fnmatch.fnmatchcase(case.id, pattern) for pattern in ids):
                continue
            if tags and not set(tags) & set(case.tags):
                continue
            chosen.append((suite, case))
    return chosen


def with_overrides(
    case: Case,
    *,
    quiet_ms: Optional[float] = None,
    retries: Optional[int] = None,
    repeat: Optional[int] = None,
    talk_first: Optional[bool] = None,
) -> Case:
    """``case`` with command-line overrides of its settings (``quiet_ms`` overrides every
    turn's, a step's own included)."""
    settings = case.settings
    if quiet_ms is not None:
        settings = attrs.evolve(
            settings, turn_end=attrs.evolve(settings.turn_end, quiet_ms=quiet_ms)
        )
        case = attrs.evolve(case, steps=[attrs.evolve(s, quiet_ms=None) for s in case.steps])
    if retries is not None:
        settings = attrs.evolve(settings, retries=retries)
    if repeat is not None:
        settings = attrs.evolve(settings, repeat=repeat)
    if talk_first is not None:
        settings = attrs.evolve(settings, talk_first=talk_first)
    return attrs.evolve(case, settings=settings)


@contextlib.contextmanager
def _target(
    target: Any, suites: List[Suite], agent: Optional[str], record_dir: Optional[str] = None
) -> Iterator[Any]:
    if target is None or target == "emulator":
        with hosted_emulator(suites, agent, record_dir=record_dir) as hosted:
            yield hosted
    elif isinstance(target, str):
        raise ValueError("target is 'emulator', an Emulator, or a target object (qa.LiveTarget)")
    elif hasattr(target, "conversation") and hasattr(target, "describe"):
        if record_dir is not None and attrs.has(type(target)) and hasattr(target, "record_dir"):
            target = attrs.evolve(target, record_dir=record_dir)
        yield target
    elif hasattr(target, "base_url") and hasattr(target, "token"):
        yield EmulatorTarget.of(target, record_dir)  # a running blackbox_sync.testing.Emulator
    else:
        raise TypeError(f"not a target: {target!r}")


@contextlib.contextmanager
def _executor(
    executor: Optional[concurrent.futures.Executor], workers: int
) -> Iterator[concurrent.futures.Executor]:
    if executor is not None:
        yield executor
        return
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="blackbox-qa")
    try:
        yield pool
    except KeyboardInterrupt:
        # The scheduler already closed the conversations and waited a little: an attempt still
        # busy (in a tool handler, a wait step) must not hold the interrupt up.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True, cancel_futures=True)


def _merge(
    previous: Sequence[CaseResult], fresh: Sequence[CaseResult], selected: Set[CaseKey]
) -> List[CaseResult]:
    """Earlier results of the selected cases, with this run's replacing them: a case left out
    of this run (another ``--tag``) must not decide its report or exit code."""
    merged: Dict[CaseKey, CaseResult] = {r.key: r for r in previous if r.key in selected}
    for result in fresh:
        merged.pop(result.key, None)
        merged[result.key] = result
    return list(merged.values())


def run(
    suites: Union[SuiteSource, Sequence[SuiteSource]],
    *,
    target: Any = None,
    agent: Optional[str] = None,
    executor: Optional[concurrent.futures.Executor] = None,
    max_in_flight: int = 8,
    rate: Optional[float] = None,
    judge: Optional[Union[str, Callable[..., Any]]] = None,
    judge_cache: Optional[str] = None,
    jsonl: Optional[Union[str, "os.PathLike[str]"]] = None,
    resume: Optional[Union[str, "os.PathLike[str]"]] = None,
    rerun: Optional[str] = None,
    ids: Sequence[str] = (),
    tags: Sequence[str] = (),
    quiet_ms: Optional[float] = None,
    retries: Optional[int] = None,
    repeat: Optional[int] = None,
    talk_first: Optional[bool] = None,
    progress: Union[bool, str] = False,
    on_result: Optional[Callable[[CaseResult], None]] = None,
    record_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> RunReport:
    """Run suites and return a :class:`~.report.RunReport`.

    ``target``: ``None``/``"emulator"`` starts the bundled emulator with each suite's agent file
    (``agent`` overrides it), a running ``Emulator`` is used as it is, or pass a
    :class:`~.targets.LiveTarget`. ``executor``: any ``concurrent.futures.Executor`` (a
    ``dask.distributed`` client's ``get_executor()`` spreads a run over a cluster); by default a
    thread pool of ``max_in_flight`` threads. ``rate`` caps conversations started per second.
    ``jsonl`` streams each result as it finishes; ``resume`` skips cases already in that file
    and appends to it; ``rerun`` (``failed``, ``error``, ``not-passed``) runs those again too.
    The report holds the selected cases only, earlier results included. ``record_dir`` saves
    the agent's audio of every ``webCall`` turn there, one WAV each (``turn.audio`` names it).

    Ctrl-C closes the conversations in flight and raises :class:`~.stopping.RunInterrupted`
    (a ``KeyboardInterrupt``) with the finished cases; interrupted ones are not recorded, so
    ``resume`` runs them again.
    """
    loaded = _suites(suites)
    previous: List[CaseResult] = []
    if rerun and resume is None:
        raise ValueError("rerun needs resume=<results.jsonl> to know what failed")
    if resume is not None:
        _, previous = read_jsonl(resume)
        jsonl = jsonl or resume
    skip = keys_to_skip(previous, rerun)
    selected = {(suite.name, case.id) for suite, case in select(loaded, ids=ids, tags=tags)}
    chosen = select(loaded, ids=ids, tags=tags, skip=sorted(skip))
    tasks = [
        CaseTask(
            suite.name,
            suite.base_dir,
            judge if judge is not None else suite.judge,
            with_overrides(
                case, quiet_ms=quiet_ms, retries=retries, repeat=repeat, talk_first=talk_first
            ),
        )
        for suite, case in chosen
    ]
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    audio = os.fspath(record_dir) if record_dir is not None else None
    with _target(target, loaded, agent, audio) as resolved:
        info = RunInfo(
            run_id=uuid.uuid4().hex[:12],
            started_at=started_at,
            target=resolved.describe(),
            suites=[s.name for s in loaded],
            client_version=__version__,
        )
        finished: List[CaseResult] = []
        sink = JsonlSink(jsonl, info, append=resume is not None) if jsonl else None
        mode = progress if isinstance(progress, str) else ("auto" if progress else "none")
        bar = Progress(len(tasks), mode)
        # On disk first: a case counts as finished once its line is written.
        callbacks = [c for c in (sink, finished.append, bar, on_result) if c is not None]
        interrupted = False
        try:
            with (
                stopping.tracking(info.run_id) as open_conversations,
                _executor(executor, max_in_flight) as pool,
            ):
                scheduler = Scheduler(
                    target=stopping.StoppableTarget.wrap(resolved, info.run_id),
                    executor=pool,
                    run_id=info.run_id,
                    max_in_flight=max_in_flight,
                    rate=rate,
                    judge_cache=judge_cache,
                    on_case=callbacks,
                    on_stop=open_conversations.close_all,
                )
                scheduler.run(tasks)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            if sink is not None:
                sink.close()
    report = RunReport(
        info, _merge(previous, finished, selected), round(time.monotonic() - started, 3)
    )
    if interrupted:
        raise stopping.RunInterrupted(report, len(tasks) - len(finished)) from None
    return report

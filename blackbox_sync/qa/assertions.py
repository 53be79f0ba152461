"""Assertion types: each is a function of what was observed and the check's value.

Turn checks see one agent turn; conversation checks (``expect_conversation``) see them all (text
checks then read every agent reply, joined by newlines; latency checks hold for every turn).
A custom ``python`` check receives the same :class:`Observed` object.
"""

import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import attrs

from blackbox_sync.errors import BlackBoxError
from blackbox_sync.qa import refs, templates
from blackbox_sync.qa.judge import Judge, JudgeRequest, cache_for
from blackbox_sync.qa.results import CheckResult, Entry
from blackbox_sync.qa.spec import Check


class InfraError(BlackBoxError):
    """Raised by a check whose own machinery failed (a judge that raised): the attempt is an
    ``error``, not a failure of the agent."""


@attrs.define
class ToolSeen:
    """A tool request from the agent."""

    name: str
    args: Any


@attrs.define
class Observed:
    """What a check can look at. ``turns`` counts agent turns so far (greeting included)."""

    scope: str
    text: str
    texts: List[str]
    tools: List[ToolSeen]
    first_text_ms: List[Optional[float]]
    turn_ms: List[Optional[float]]
    turns: int
    transcript: List[Entry]
    vars: Dict[str, Any]
    target: str = ""
    """``emulator`` or ``live``: latency against the emulator is synthetic."""
    ended_by: Optional[str] = None
    result: Optional[Dict[str, Any]] = None
    error_frames: List[str] = attrs.field(factory=list)
    first_audio_ms: List[Optional[float]] = attrs.field(factory=list)
    """Per turn of a ``webCall`` case: end of the user's clip → the agent's first audio."""


@attrs.define
class Outcome:
    """What an assertion function (also a custom ``python`` check) returns."""

    passed: bool
    message: str = ""
    score: Optional[float] = None
    undecided: bool = False
    """Nothing to judge by (no agent text was timed, say): the check fails, negated or not."""


@attrs.define
class CheckEnv:
    """Run-wide things checks need."""

    judge: Optional[Union[str, Judge]] = None
    """A callable or a ``module:function`` reference."""
    judge_cache: Optional[str] = None
    base_dir: Optional[str] = None


AssertFn = Callable[[Observed, Any, CheckEnv], Outcome]


def _excerpt(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _text_check(test: Callable[[str, Any], bool], says: str) -> AssertFn:
    def check(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
        ok = test(obs.text, value)
        return Outcome(ok, f"{'' if ok else 'not '}{says} {value!r}; got {_excerpt(obs.text)}")

    return check


def _max_length(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
    size = len(obs.text)
    return Outcome(size <= value, f"{size} characters (max {value})")


def _args_match(expected: Any, actual: Any, exact: bool) -> bool:
    if exact:
        return bool(expected == actual)
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and _args_match(v, actual[k], False) for k, v in expected.items()
        )
    return bool(expected == actual)


def _names(obs: Observed) -> List[str]:
    return [t.name for t in obs.tools]


def _tool_called(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
    spec = {"name": value} if isinstance(value, str) else value
    calls = [t for t in obs.tools if t.name == spec["name"]]
    if not calls:
        return Outcome(False, f"{spec['name']} not called; tools called: {_names(obs)}")
    if "args" not in spec:
        return Outcome(True, f"{spec['name']} called {len(calls)}×")
    exact = spec.get("mode", "partial") == "exact"
    if any(_args_match(spec["args"], c.args, exact) for c in calls):
        return Outcome(True, f"{spec['name']} called with matching args")
    seen = [c.args for c in calls]
    mode = "exact" if exact else "partial"
    return Outcome(False, f"{spec['name']} args ({mode}) {spec['args']!r} not in {seen!r}")


def _tool_not_called(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
    count = _names(obs).count(value)
    return Outcome(count == 0, f"{value} called {count}×")


def _tool_sequence(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
    spec = {"steps": value} if isinstance(value, list) else value
    steps: Sequence[str] = spec["steps"]
    names = _names(obs)
    if spec.get("mode", "in_order") == "exact":
        ok = names == list(steps)
    else:
        remaining = iter(names)
        ok = all(step in remaining for step in steps)  # a subsequence, in order
    return Outcome(ok, f"expected {list(steps)} ({spec.get('mode', 'in_order')}); got {names}")


def _tool_count(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
    name = value.get("name")
    count = len(obs.tools) if name is None else _names(obs).count(name)
    ok = (
        ("count" not in value or count == value["count"])
        and ("min" not in value or count >= value["min"])
        and ("max" not in value or count <= value["max"])
    )
    bounds = {k: v for k, v in value.items() if k != "name"}
    return Outcome(ok, f"{name or 'tools'} called {count}× (want {bounds})")


def _latency(field: str, what: str = "text") -> AssertFn:
    def check(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
        values: List[Optional[float]] = getattr(obs, field)
        note = " (emulator: synthetic)" if obs.target == "emulator" else ""
        if not values or any(v is None for v in values):
            # Without a measurement "not slower than X" is as unknown as "faster than X".
            return Outcome(False, f"no agent {what} was measured{note}", undecided=True)
        worst = max(v for v in values if v is not None)
        return Outcome(worst <= value, f"{worst:.0f} ms (max {value:g} ms){note}")

    return check


def _flat_result(obs: Observed) -> Dict[str, Any]:
    if obs.result is None:
        return {}
    payload = obs.result.get("data")
    flat = dict(payload) if isinstance(payload, dict) else {}
    flat.update({k: v for k, v in obs.result.items() if k != "data" and v is not None})
    return flat


def _result(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
    if obs.result is None:
        # "not result: {status: Failed}" must not pass because there was no result at all.
        return Outcome(False, "no conversationResult arrived", undecided=True)
    flat = _flat_result(obs)
    wrong = {k: flat.get(k) for k, v in value.items() if not _args_match(v, flat.get(k), False)}
    if wrong:
        return Outcome(False, f"expected {value!r}; got {wrong!r}")
    return Outcome(True, f"result matches {value!r}")


def _ended_by(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
    return Outcome(obs.ended_by == value, f"ended by {obs.ended_by} (want {value})")


def _max_turns(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
    return Outcome(obs.turns <= value, f"{obs.turns} agent turns (max {value})")


def _no_error_frames(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
    return Outcome(not obs.error_frames, f"error frames: {obs.error_frames}")


def _python(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
    spec: Dict[str, Any] = {"function": value} if isinstance(value, str) else value
    fn = refs.as_callable(spec["function"], env.base_dir)
    answer = fn(obs, **spec.get("args", {}))
    if isinstance(answer, Outcome):
        return answer
    if isinstance(answer, tuple) and len(answer) == 2:
        return Outcome(bool(answer[0]), str(answer[1]))
    if isinstance(answer, bool):
        return Outcome(answer, "")
    raise TypeError(f"{refs.label(fn)} returned {type(answer).__name__}; want bool or Outcome")


def _judge(obs: Observed, value: Any, env: CheckEnv) -> Outcome:
    spec = {"criteria": value} if isinstance(value, str) else value
    criteria = spec["criteria"]
    if isinstance(criteria, list):
        criteria = "\n".join(f"- {c}" for c in criteria)
    judge: Any = spec.get("judge") or env.judge
    if judge is None:
        return Outcome(False, "no judge configured (--judge module:function or defaults.judge)")
    fn = refs.as_callable(judge, env.base_dir)
    transcript = tuple(
        (e.role, e.text) for e in obs.transcript if e.role in ("user", "assistant") and not e.flags
    )
    request = JudgeRequest(criteria, transcript, obs.text if obs.scope == "turn" else None)
    try:
        verdict, cached = cache_for(env.judge_cache).grade(refs.label(judge), fn, request)
    except Exception as exc:
        raise InfraError(f"judge {refs.label(judge)} raised {type(exc).__name__}: {exc}") from exc
    threshold = float(spec.get("threshold", 0.7))
    note = " (cached)" if cached else ""
    return Outcome(
        verdict.score >= threshold,
        f"score {verdict.score:.2f} (threshold {threshold:g}){note}: {verdict.reason}",
        verdict.score,
    )


ASSERTIONS: Dict[str, AssertFn] = {
    "equals": _text_check(lambda t, v: t.strip() == str(v).strip(), "equal to"),
    "contains": _text_check(lambda t, v: str(v) in t, "containing"),
    "icontains": _text_check(lambda t, v: str(v).casefold() in t.casefold(), "containing"),
    "not_contains": _text_check(lambda t, v: str(v) not in t, "free of"),
    "starts_with": _text_check(lambda t, v: t.lstrip().startswith(str(v)), "starting with"),
    "regex": _text_check(lambda t, v: re.search(str(v), t) is not None, "matching"),
    "contains_any": _text_check(lambda t, v: any(str(x) in t for x in v), "containing any of"),
    "contains_all": _text_check(lambda t, v: all(str(x) in t for x in v), "containing all of"),
    "max_length": _max_length,
    "tool_called": _tool_called,
    "tool_not_called": _tool_not_called,
    "tool_sequence": _tool_sequence,
    "tool_count": _tool_count,
    "first_text_ms": _latency("first_text_ms"),
    "first_audio_ms": _latency("first_audio_ms", "audio"),
    "turn_ms": _latency("turn_ms"),
    "result": _result,
    "ended_by": _ended_by,
    "max_turns": _max_turns,
    "no_error_frames": _no_error_frames,
    "python": _python,
    "judge": _judge,
}


def evaluate(check: Check, obs: Observed, env: CheckEnv, scope: str) -> CheckResult:
    """Run one check. Raises :class:`InfraError` only for a judge that failed."""

    def result(passed: bool, message: str, score: Optional[float] = None) -> CheckResult:
        return CheckResult(
            scope=scope,
            kind=check.kind,
            label=check.label(),
            passed=passed,
            message=message,
            weight=check.weight,
            score=score,
            negated=check.negate,
        )

    fn = ASSERTIONS.get(check.kind)
    if fn is None:
        return result(False, f"unknown assertion type {check.kind!r}")
    try:
        value = templates.render(check.value, obs.vars)
    except templates.TemplateError as exc:
        return result(False, str(exc))
    try:
        outcome = fn(obs, value, env)
    except InfraError:
        raise
    except Exception as exc:  # a check's own bug or a custom check that raised: that check fails
        return result(False, f"raised {type(exc).__name__}: {exc}")
    if check.negate:
        passed = not outcome.passed and not outcome.undecided
        return result(passed, f"NOT: {outcome.message}", outcome.score)
    return result(outcome.passed, outcome.message, outcome.score)


def weighted_score(checks: Sequence[CheckResult]) -> Optional[float]:
    """Passed weight over total weight; ``None`` without weighted checks."""
    total = sum(c.weight for c in checks)
    if total <= 0:
        return None
    return sum(c.weight for c in checks if c.passed) / total

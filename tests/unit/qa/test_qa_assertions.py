"""Assertion types, negation and weights, templates, the judge cache and the rate limiter.

Pure functions on observed data: no sockets here (the runner tests cover the wire).
"""

from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from blackbox_sync import qa
from blackbox_sync.qa import templates
from blackbox_sync.qa.assertions import CheckEnv, InfraError, evaluate, weighted_score
from blackbox_sync.qa.results import CheckResult
from blackbox_sync.qa.scheduler import RateLimiter


def observed(
    text: str = "Order ORD-1 is shipped.",
    tools: Optional[List[qa.ToolSeen]] = None,
    **extra: Any,
) -> qa.Observed:
    values: Dict[str, Any] = {
        "scope": "turn",
        "text": text,
        "texts": [text],
        "tools": tools or [],
        "first_text_ms": [120.0],
        "turn_ms": [400.0],
        "turns": 2,
        "transcript": [qa.Entry(0, "user", "where?"), qa.Entry(5, "assistant", text)],
        "vars": {"order": "ORD-1"},
        "target": "live",
    }
    values.update(extra)
    return qa.Observed(**values)


def check(kind: str, value: Any, obs: Optional[qa.Observed] = None, **options: Any) -> CheckResult:
    return evaluate(qa.Check(kind, value, **options), obs or observed(), CheckEnv(), "step 1")


@pytest.mark.parametrize(
    ("kind", "value", "passed"),
    [
        ("equals", " Order ORD-1 is shipped. ", True),
        ("equals", "Order ORD-1", False),
        ("contains", "shipped", True),
        ("contains", "Shipped", False),
        ("icontains", "SHIPPED", True),
        ("not_contains", "sorry", True),
        ("not_contains", "ORD", False),
        ("starts_with", "Order", True),
        ("starts_with", "shipped", False),
        ("regex", r"ORD-\d+ is (shipped|lost)", True),
        ("regex", r"^shipped", False),
        ("contains_any", ["lost", "shipped"], True),
        ("contains_any", ["lost", "stolen"], False),
        ("contains_all", ["ORD-1", "shipped"], True),
        ("contains_all", ["ORD-1", "lost"], False),
        ("max_length", 23, True),
        ("max_length", 22, False),
    ],
)
def test_text_assertions(kind: str, value: Any, passed: bool) -> None:
    result = check(kind, value)
    assert result.passed is passed, result.message
    assert check(kind, value, negate=True).passed is not passed


def test_failure_messages_show_what_came_back() -> None:
    result = check("contains", "lost")
    assert result.message == "not containing 'lost'; got 'Order ORD-1 is shipped.'"
    assert check("contains", "lost", negate=True).message.startswith("NOT: not containing")


def test_templates_fill_expected_values() -> None:
    assert check("contains", "{{order}} is shipped").passed
    missing = check("contains", "{{nope}}")
    assert not missing.passed
    assert missing.message == "unknown variable {{nope}}"


TOOLS = [
    qa.ToolSeen("lookup", {"sku": "A", "qty": 2, "meta": {"src": "web", "v": 1}}),
    qa.ToolSeen("discount", {"sku": "A"}),
    qa.ToolSeen("lookup", {"sku": "B", "qty": 1}),
]


@pytest.mark.parametrize(
    ("kind", "value", "passed"),
    [
        ("tool_called", "lookup", True),
        ("tool_called", "refund", False),
        ("tool_called", {"name": "lookup", "args": {"sku": "B"}}, True),
        ("tool_called", {"name": "lookup", "args": {"meta": {"src": "web"}}}, True),
        ("tool_called", {"name": "lookup", "args": {"sku": "C"}}, False),
        ("tool_called", {"name": "lookup", "args": {"sku": "B"}, "mode": "exact"}, False),
        ("tool_called", {"name": "lookup", "args": {"sku": "B", "qty": 1}, "mode": "exact"}, True),
        ("tool_not_called", "refund", True),
        ("tool_not_called", "discount", False),
        ("tool_sequence", ["lookup", "lookup"], True),
        ("tool_sequence", ["discount", "lookup"], True),
        ("tool_sequence", ["lookup", "discount", "discount"], False),
        ("tool_sequence", {"steps": ["lookup", "discount"], "mode": "exact"}, False),
        ("tool_sequence", {"steps": ["lookup", "discount", "lookup"], "mode": "exact"}, True),
        ("tool_count", {"name": "lookup", "count": 2}, True),
        ("tool_count", {"min": 4}, False),
        ("tool_count", {"max": 3}, True),
        ("tool_count", {"name": "refund", "max": 0}, True),
    ],
)
def test_tool_assertions(kind: str, value: Any, passed: bool) -> None:
    result = check(kind, value, observed(tools=TOOLS))
    assert result.passed is passed, result.message


def test_latency_assertions_take_the_worst_turn_and_say_when_synthetic() -> None:
    many = observed(first_text_ms=[100.0, 900.0], turn_ms=[200.0, 1000.0], target="emulator")
    first = check("first_text_ms", 1000, many)
    assert first.passed
    assert first.message == "900 ms (max 1000 ms) (emulator: synthetic)"
    assert not check("turn_ms", 999, many).passed
    silent = check("first_text_ms", 1000, observed(first_text_ms=[None]))
    assert not silent.passed
    assert silent.message == "no agent text was measured"


@pytest.mark.parametrize("kind", ["first_text_ms", "turn_ms"])
@pytest.mark.parametrize("negate", [False, True])
def test_a_latency_check_without_a_measurement_fails_even_negated(kind: str, negate: bool) -> None:
    nothing = observed(first_text_ms=[None], turn_ms=[None], target="emulator")
    for obs in (nothing, observed(first_text_ms=[], turn_ms=[])):
        result = check(kind, 50, obs, negate=negate)
        assert not result.passed, result.message
        assert "no agent text was measured" in result.message
    assert check(kind, 50, observed(), negate=True).passed  # measured and slower: NOT holds


@pytest.mark.parametrize("negate", [False, True])
def test_a_result_check_without_a_result_fails_even_negated(negate: bool) -> None:
    result = check("result", {"status": "Failed"}, observed(result=None), negate=negate)
    assert not result.passed, result.message
    assert "no conversationResult arrived" in result.message
    completed = observed(result={"status": "Completed"})
    assert check("result", {"status": "Failed"}, completed, negate=True).passed


def test_conversation_assertions() -> None:
    result = {
        "status": "Completed",
        "error_message": None,
        "data": {"finishReason": "agent", "analysis": {"score": 5, "tags": ["a"]}},
    }
    obs = observed(ended_by="agent", result=result, error_frames=["Too large message"])
    assert check("result", {"status": "Completed", "finishReason": "agent"}, obs).passed
    assert check("result", {"analysis": {"score": 5}}, obs).passed
    wrong = check("result", {"status": "Failed"}, obs)
    assert not wrong.passed
    assert "'status': 'Completed'" in wrong.message
    assert not check("result", {"status": "Completed"}, observed()).passed
    assert check("ended_by", "agent", obs).passed
    assert not check("ended_by", "client", obs).passed
    assert check("max_turns", 2, obs).passed
    assert not check("max_turns", 1, obs).passed
    assert not check("no_error_frames", True, obs).passed
    assert check("no_error_frames", True, observed()).passed


def polite(obs: qa.Observed, word: str = "please") -> qa.Outcome:
    return qa.Outcome(word in obs.text, f"looked for {word}")


def as_tuple(obs: qa.Observed) -> Any:
    return (False, "tuple reason")


def broken(obs: qa.Observed) -> bool:
    raise RuntimeError("boom")


def test_python_checks() -> None:
    ok = check("python", {"function": f"{__name__}:polite", "args": {"word": "shipped"}})
    assert ok.passed
    assert ok.message == "looked for shipped"
    assert not check("python", f"{__name__}:polite").passed
    assert check("python", f"{__name__}:as_tuple").message == "tuple reason"
    raised = check("python", f"{__name__}:broken")
    assert not raised.passed
    assert raised.message == "raised RuntimeError: boom"


class CountingJudge:
    def __init__(self, score: float) -> None:
        self.score = score
        self.requests: List[qa.JudgeRequest] = []

    def __call__(self, request: qa.JudgeRequest) -> qa.Verdict:
        self.requests.append(request)
        return qa.Verdict(self.score, "because")


def test_judge_threshold_and_cache(tmp_path: Path) -> None:
    judge = CountingJudge(0.8)
    env = CheckEnv(judge=judge, judge_cache=str(tmp_path / "verdicts.jsonl"))
    spec = qa.Check("judge", {"criteria": ["polite", "mentions status"], "threshold": 0.75})
    first = evaluate(spec, observed(), env, "step 1")
    assert first.passed
    assert first.score == 0.8
    assert first.message == "score 0.80 (threshold 0.75): because"
    (request,) = judge.requests
    assert request.criteria == "- polite\n- mentions status"
    assert request.reply == "Order ORD-1 is shipped."
    assert request.transcript == (("user", "where?"), ("assistant", "Order ORD-1 is shipped."))
    again = evaluate(spec, observed(), env, "step 1")
    assert again.message.endswith("(cached): because")
    assert len(judge.requests) == 1
    other_transcript = observed(text="Order ORD-1 is lost.")
    evaluate(qa.Check("judge", "polite"), other_transcript, env, "step 1")
    assert len(judge.requests) == 2  # another transcript is another question
    strict = evaluate(
        qa.Check("judge", {"criteria": "polite", "threshold": 0.9}), observed(), env, "s"
    )
    assert not strict.passed


def test_judge_answers_can_be_numbers_or_bools(tmp_path: Path) -> None:
    env = CheckEnv(judge=lambda request: True, judge_cache=str(tmp_path / "a.jsonl"))
    assert evaluate(qa.Check("judge", "anything"), observed(), env, "s").score == 1.0
    env = CheckEnv(judge=lambda request: 0.2, judge_cache=str(tmp_path / "b.jsonl"))
    assert not evaluate(qa.Check("judge", "anything"), observed(), env, "s").passed


def test_a_judge_that_raises_is_an_infrastructure_problem(tmp_path: Path) -> None:
    def down(request: qa.JudgeRequest) -> qa.Verdict:
        raise ConnectionError("LLM API unreachable")

    env = CheckEnv(judge=down, judge_cache=str(tmp_path / "c.jsonl"))
    with pytest.raises(InfraError, match="LLM API unreachable"):
        evaluate(qa.Check("judge", "polite"), observed(), env, "s")


def test_without_a_judge_the_check_fails_with_a_hint() -> None:
    result = check("judge", "polite")
    assert not result.passed
    assert "no judge configured" in result.message


def test_a_cache_file_is_reused_by_a_new_cache(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.jsonl"
    request = qa.JudgeRequest("polite", (("user", "hi"),), "hello")
    judge = CountingJudge(0.5)
    qa.JudgeCache(path).grade("j", judge, request)
    with path.open("a", encoding="utf-8") as torn:
        torn.write('{"key": "x", "sco')  # a crash mid-write
    verdict, cached = qa.JudgeCache(path).grade("j", judge, request)
    assert cached
    assert verdict.score == 0.5
    assert len(judge.requests) == 1


NOTEBOOK_CELL = """
def grade(request):
    return {score}
"""


def notebook_judge(score: float) -> Any:
    """``grade`` as a notebook defines it: the same module and name each time the cell runs."""
    namespace: Dict[str, Any] = {"__name__": "__main__"}
    exec(compile(NOTEBOOK_CELL.format(score=score), "<cell>", "exec"), namespace)
    return namespace["grade"]


def test_a_redefined_judge_is_not_served_old_verdicts_from_memory(tmp_path: Path) -> None:
    criteria = f"polite {tmp_path.name}"  # the in-memory cache is per process: a fresh question
    first, edited = notebook_judge(0.9), notebook_judge(0.1)
    assert qa_label(first) == qa_label(edited)

    def grade(judge: Any, cache: Optional[str] = None) -> CheckResult:
        env = CheckEnv(judge=judge, judge_cache=cache)
        return evaluate(qa.Check("judge", criteria), observed(), env, "s")

    assert grade(first).score == 0.9
    assert "(cached)" in grade(first).message
    again = grade(edited)
    assert again.score == 0.1
    assert "(cached)" not in again.message
    assert "(cached)" in grade(notebook_judge(0.1)).message  # the same code again: same judge
    counting = CountingJudge(0.5)
    assert grade(counting).score == 0.5
    assert grade(CountingJudge(0.6)).score == 0.6  # another object
    assert "(cached)" in grade(counting).message
    file = str(tmp_path / "verdicts.jsonl")
    assert grade(first, file).score == 0.9
    assert grade(edited, file).score == 0.9  # a cache file keys by name only, as documented


def qa_label(judge: Any) -> str:
    from blackbox_sync.qa import refs

    return refs.label(judge)


def test_weights() -> None:
    results = [
        CheckResult("s", "contains", "a", True, weight=3),
        CheckResult("s", "contains", "b", False, weight=1),
        CheckResult("s", "contains", "c", False, weight=0),
    ]
    assert weighted_score(results) == 0.75
    assert weighted_score([]) is None


def test_template_rendering() -> None:
    values = {"n": 3, "args": {"sku": "A-1"}, "name": "Ada"}
    assert templates.render("{{n}}", values) == 3  # a lone template keeps its type
    assert templates.render("x{{ n }}y", values) == "x3y"
    assert templates.render({"k": ["{{args.sku}}", 1]}, values) == {"k": ["A-1", 1]}
    assert templates.render("no templates {here}", values) == "no templates {here}"
    with pytest.raises(templates.TemplateError):
        templates.render("{{args.missing}}", values)
    assert templates.names({"a": "{{x}} {{y.z}}", "b": ["{{w}}"]}) == {"x", "y.z", "w"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_spaces_starts_evenly() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4.0, clock)
    assert limiter.wait_time() == 0.0
    limiter.take()
    assert limiter.wait_time() == pytest.approx(0.25)
    clock.now += 0.1
    assert limiter.wait_time() == pytest.approx(0.15)
    clock.now += 0.15
    assert limiter.wait_time() == 0.0
    limiter.take()
    clock.now += 10  # idle time does not bank a burst
    limiter.take()
    assert limiter.wait_time() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="rate must be positive"):
        RateLimiter(0)

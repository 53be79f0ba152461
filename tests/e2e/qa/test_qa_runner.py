"""The QA runner against the emulator over loopback: outcomes, retries, repeats, parallelism,
tools, captures, streaming, resume, live-target secrecy, and a dask.distributed executor."""

import concurrent.futures
import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from testkit import ROOT

import blackbox_sync as bb
from blackbox_sync import qa
from blackbox_sync.qa.store import read_jsonl
from blackbox_sync.testing import (
    AgentContext,
    CallTool,
    DropAfter,
    Emulator,
    Rule,
    ScriptedAgent,
)

HERE = Path(__file__).resolve().parent
ERROR_FRAME = {
    "type": "error",
    "timestamp": "2025-01-01T00:00:00Z",
    "channelId": None,
    "data": {"message": "Internal agent error"},
}


def suite(*conversations: Dict[str, Any], **settings: Any) -> qa.Suite:
    defaults = {
        "turn_end": {"quiet_ms": 100},
        "timeouts": {"connect_s": 5, "turn_s": 3, "terminate_s": 3},
        "retry_backoff_s": 0,
        **settings,
    }
    data = {"suite": "t", "defaults": defaults, "conversations": list(conversations)}
    return qa.load_suite_data(data, base_dir=str(HERE))


def run(emulator: Emulator, s: qa.Suite, **options: Any) -> qa.RunReport:
    options.setdefault("target", emulator)
    return qa.run(s, progress="none", **options)


ORDER_AGENT = ScriptedAgent(
    [
        Rule(
            r"(?P<order>ORD-\d+)",
            regex=True,
            fillers=["um"],
            tools=[CallTool("checkOrderStatus", {"orderNumber": "{match[order]}"})],
            reply=["One moment.", "Order {match[order]} is {result[status]}."],
        ),
        Rule("ticket", "Opened ticket T-{turn}42."),
        Rule(r"status of (?P<t>T-\d+)", "{match[t]} is open.", regex=True),
        Rule("crash", raw_frames=[ERROR_FRAME]),
        Rule("bye", "Goodbye!", end_conversation=True),
        Rule("secret tool", tools=[CallTool("undeclared", {})], reply="done"),
        Rule("chatty", ["more"] * 40, chunk_delay=0.05),
        Rule("silent", ()),
    ],
    default="You said: {user}",
    greeting=None,
)

CHECK_STATUS = {"result": {"status": "{{args.orderNumber}} shipped"}}


@pytest.fixture
def agent(emulator: Emulator) -> Emulator:
    emulator.default_agent = ORDER_AGENT
    return emulator


class TestOutcomes:
    def test_passed_and_failed_with_the_turn_recorded(self, agent: Emulator) -> None:
        report = run(
            agent,
            suite(
                {
                    "id": "ok",
                    "tools": {"checkOrderStatus": CHECK_STATUS},
                    "steps": [
                        {
                            "user": "Where is ORD-7?",
                            "expect": [
                                {"contains": "ORD-7 is ORD-7 shipped"},
                                {
                                    "tool_called": {
                                        "name": "checkOrderStatus",
                                        "args": {"orderNumber": "ORD-7"},
                                    }
                                },
                                {"first_text_ms": 5000},
                            ],
                        }
                    ],
                    "expect_conversation": [
                        {"ended_by": "client"},
                        {"result": {"status": "Completed"}},
                    ],
                },
                {"id": "bad", "steps": [{"user": "hello", "expect": [{"contains": "bonjour"}]}]},
            ),
        )
        assert report.counts == {"passed": 1, "failed": 1, "error": 0}
        assert report.exit_code == qa.EXIT_FAILED
        ok = report.get("ok")
        attempt = ok.shown
        assert ok.turn_end == {"rule": "quiet", "quiet_ms": 100, "fillers": ["um"]}
        assert ok.target["kind"] == "emulator"
        (turn,) = attempt.turns
        assert turn.reply == "One moment. Order ORD-7 is ORD-7 shipped."
        assert turn.reason == "quiet"
        assert turn.tools == ["checkOrderStatus"]
        assert turn.first_text_ms is not None
        assert turn.turn_ms is not None
        assert turn.first_text_ms <= turn.turn_ms <= turn.detected_ms
        roles = [e.role for e in attempt.transcript]
        assert roles.index("user") < roles.index("tool_request") < roles.index("tool_response")
        assert roles.index("tool_response") < roles.index("tool_result")
        assert [e.flags for e in attempt.transcript if e.text == "um"] == [("filler",)]
        assert attempt.result is not None
        assert attempt.result["status"] == "Completed"
        assert attempt.record_id in {r.record_id for r in agent.conversations}
        bad = report.get("bad")
        assert bad.status is qa.Status.FAILED
        assert (
            bad.summary
            == "step 1: contains: bonjour: not containing 'bonjour'; got 'You said: hello'"
        )

    def test_a_rejected_token_is_an_error_and_not_retried(self, agent: Emulator) -> None:
        target = qa.EmulatorTarget(base_url=agent.base_url, token="wrong-token")
        report = run(agent, suite({"id": "a", "steps": [{"user": "hi"}]}, retries=2), target=target)
        case = report.get("a")
        assert case.status is qa.Status.ERROR
        assert case.attempts == 1
        assert case.shown.error is not None
        assert case.shown.error.kind == "auth"
        assert report.exit_code == qa.EXIT_ERROR

    def test_an_unreachable_service_is_retried_then_an_error(self, agent: Emulator) -> None:
        with Emulator() as gone:
            url = gone.base_url
        # close_timeout: Conversation.connect() waits that long after a refused handshake.
        target = qa.EmulatorTarget(base_url=url, token="tok", options={"close_timeout": 0.1})
        report = run(agent, suite({"id": "a", "steps": [{"user": "hi"}]}, retries=2), target=target)
        case = report.get("a")
        assert case.status is qa.Status.ERROR
        assert [a.error.kind for a in case.repeats[0].attempts if a.error] == ["connect"] * 3

    def test_an_unexpected_close_is_retried_and_the_retry_passes(self, agent: Emulator) -> None:
        agent.arm_fault(DropAfter(2))  # connection event, echo: then the TCP connection drops
        report = run(
            agent, suite({"id": "a", "steps": [{"user": "hi", "expect": [{"contains": "hi"}]}]})
        )
        case = report.get("a")
        assert case.status is qa.Status.PASSED
        first, second = case.repeats[0].attempts
        assert first.status is qa.Status.ERROR
        assert first.error is not None
        assert first.error.kind == "closed"
        assert (first.number, second.number) == (1, 2)
        assert second.status is qa.Status.PASSED

    def test_no_reply_before_the_timeout_is_an_error(self, agent: Emulator) -> None:
        s = suite({"id": "a", "steps": [{"user": "silent", "timeout_s": 0.5}]}, retries=0)
        case = run(agent, s).get("a")
        assert case.status is qa.Status.ERROR
        assert case.shown.error is not None
        assert (case.shown.error.kind, case.shown.error.message) == (
            "timeout",
            "no reply within 0.5 s",
        )
        assert case.shown.ended_by == "timeout"

    def test_a_reply_that_never_completes_is_a_failure(self, agent: Emulator) -> None:
        s = suite({"id": "a", "steps": [{"user": "chatty", "timeout_s": 0.5}]}, retries=2)
        case = run(agent, s).get("a")
        assert case.status is qa.Status.FAILED
        assert case.attempts == 1
        (check,) = case.shown.failed_checks
        assert check.kind == "turn_complete"
        assert "did not complete within 0.5 s (rule: quiet 100 ms)" in check.message

    def test_an_error_frame_is_a_server_error(self, agent: Emulator) -> None:
        case = run(agent, suite({"id": "a", "steps": [{"user": "crash"}]}, retries=1)).get("a")
        assert case.status is qa.Status.ERROR
        assert case.attempts == 2
        assert case.summary == "server_error: Internal agent error"

    def test_failed_checks_are_never_retried(self, agent: Emulator) -> None:
        s = suite(
            {"id": "a", "steps": [{"user": "hi", "expect": [{"contains": "nope"}]}]}, retries=3
        )
        assert run(agent, s).get("a").attempts == 1

    def test_weights_and_min_score(self, agent: Emulator) -> None:
        checks = [{"contains": "said", "weight": 3}, {"contains": "nope", "weight": 1}]
        informational = [{"contains": "said"}, {"contains": "nope", "weight": 0}]
        report = run(
            agent,
            suite(
                {
                    "id": "score",
                    "pass_if": {"min_score": 0.7},
                    "steps": [{"user": "hi", "expect": checks}],
                },
                {"id": "strict", "steps": [{"user": "hi", "expect": checks}]},
                {"id": "info", "steps": [{"user": "hi", "expect": informational}]},
            ),
        )
        assert report.get("score").status is qa.Status.PASSED
        assert report.get("score").shown.score == 0.75
        assert report.get("strict").status is qa.Status.FAILED
        assert report.get("info").status is qa.Status.PASSED


class TestConversations:
    def test_talk_first_greeting(self, agent: Emulator) -> None:
        agent.default_agent = ScriptedAgent(
            greeting=["Hi!", "How can I help?"], default="Sure: {user}"
        )
        report = run(
            agent,
            suite(
                {
                    "id": "explicit",
                    "steps": [
                        {
                            "expect_agent": [
                                {"equals": "Hi! How can I help?"},
                                {"first_text_ms": 5000},
                            ]
                        },
                        {"user": "x", "expect": [{"equals": "Sure: x"}]},
                    ],
                },
                {
                    "id": "implicit",
                    "talk_first": True,
                    "steps": [{"user": "y", "expect": [{"equals": "Sure: y"}]}],
                },
            ),
        )
        assert report.counts["passed"] == 2, [c.summary for c in report.cases]
        implicit = report.get("implicit").shown
        assert [t.step for t in implicit.turns] == [0, 1]
        assert implicit.turns[0].reply == "Hi! How can I help?"

    def test_captures_feed_later_steps(self, agent: Emulator) -> None:
        case = run(
            agent,
            suite(
                {
                    "id": "a",
                    "steps": [
                        {
                            "user": "open a ticket",
                            "capture": {"ticket": r"T-(\d+)", "whole": r"T-\d+"},
                        },
                        {
                            "user": "status of T-{{ticket}}",
                            "expect": [{"equals": "{{whole}} is open."}],
                        },
                    ],
                }
            ),
        ).get("a")
        assert case.status is qa.Status.PASSED, case.summary
        assert case.shown.vars == {"ticket": "142", "whole": "T-142"}
        assert case.shown.turns[0].captured == {"ticket": "142", "whole": "T-142"}

    def test_a_capture_that_finds_nothing_fails(self, agent: Emulator) -> None:
        case = run(
            agent, suite({"id": "a", "steps": [{"user": "hi", "capture": {"n": r"\d+"}}]})
        ).get("a")
        assert case.status is qa.Status.FAILED
        assert case.summary.startswith("step 1: capture n: n: no match")

    def test_vars_reach_additional_data(self, agent: Emulator) -> None:
        agent.default_agent = ScriptedAgent(default="Hello {data[name]} from {data[city]}")
        s = suite(
            {
                "id": "a",
                "vars": {"who": "Ada"},
                "additional_data": {"name": "{{who}}", "city": "Paris"},
                "steps": [{"user": "hi", "expect": [{"equals": "Hello Ada from Paris"}]}],
            }
        )
        assert run(agent, s).get("a").status is qa.Status.PASSED
        assert agent.conversations[-1].additional_data == {"name": "Ada", "city": "Paris"}

    def test_tool_results_handlers_sequences_and_errors(self, agent: Emulator) -> None:
        agent.default_agent = ScriptedAgent(
            [
                Rule(
                    "go",
                    tools=[
                        CallTool("seq", {}),
                        CallTool("seq", {}),
                        CallTool("seq", {}),
                        CallTool("fn", {"x": 2}),
                        CallTool("err", {}),
                    ],
                    reply="{results[seq]} {results[fn]} {results[err]}",
                )
            ]
        )
        s = suite(
            {
                "id": "a",
                "tools": {
                    "seq": {"results": [1, 2]},
                    "fn": {"handler": "test_qa_runner:double"},
                    "err": {"error": "db down"},
                },
                "steps": [
                    {"user": "go", "expect": [{"equals": "2 {'doubled': 4} {'error': 'db down'}"}]}
                ],
                "expect_conversation": [
                    {
                        "tool_sequence": {
                            "steps": ["seq", "seq", "seq", "fn", "err"],
                            "mode": "exact",
                        }
                    },
                    {"tool_count": {"name": "seq", "count": 3}},
                ],
            }
        )
        case = run(agent, s).get("a")
        assert case.status is qa.Status.PASSED, case.summary
        responses = [e.data for e in case.shown.transcript if e.role == "tool_response"]
        assert responses == [1, 2, 2, {"doubled": 4}, {"error": "db down"}]

    def test_an_unscripted_tool_fails_the_conversation(self, agent: Emulator) -> None:
        case = run(agent, suite({"id": "a", "steps": [{"user": "secret tool"}]})).get("a")
        assert case.status is qa.Status.FAILED
        assert "requested tool 'undeclared', which the case does not script" in case.summary

    def test_the_agent_ending_early_fails_the_remaining_steps(self, agent: Emulator) -> None:
        report = run(
            agent,
            suite(
                {"id": "early", "steps": [{"user": "bye"}, {"user": "still there?"}]},
                {
                    "id": "ended",
                    "steps": [
                        {"user": "bye", "expect": [{"equals": "Goodbye!"}]},
                        {"terminate": True},
                    ],
                    "expect_conversation": [
                        {"ended_by": "agent"},
                        {"result": {"finishReason": "agent"}},
                    ],
                },
            ),
        )
        early = report.get("early")
        assert early.status is qa.Status.FAILED
        assert early.summary.startswith(
            "step 2: conversation_open: the conversation had already ended (agent)"
        )
        assert report.get("ended").status is qa.Status.PASSED, report.get("ended").summary

    def test_wait_and_terminate_steps(self, agent: Emulator) -> None:
        case = run(
            agent,
            suite(
                {
                    "id": "a",
                    "steps": [
                        {"user": "one"},
                        {"wait": 0.05},
                        {"user": "two"},
                        {"terminate": True},
                    ],
                    "expect_conversation": [
                        {"max_turns": 2},
                        {"ended_by": "client"},
                        {"no_error_frames": True},
                    ],
                }
            ),
        ).get("a")
        assert case.status is qa.Status.PASSED, case.summary
        assert [e.text for e in case.shown.transcript if e.role == "user"] == ["one", "two"]


def double(x: int) -> Dict[str, int]:
    return {"doubled": x * 2}


ANSWERS: Iterator[str] = iter(())


def alternating(text: str, context: AgentContext) -> str:
    return next(ANSWERS)


def test_repeats_give_a_pass_rate(agent: Emulator) -> None:
    global ANSWERS
    ANSWERS = itertools.cycle(["yes", "no"])
    agent.default_agent = ScriptedAgent(handler=alternating)
    step = {"user": "?", "expect": [{"equals": "yes"}]}
    report = run(
        agent,
        suite(
            {"id": "a", "repeat": 5, "pass_if": {"min_pass_rate": 0.6}, "steps": [step]},
            {"id": "b", "repeat": 5, "pass_if": {"min_pass_rate": 0.6}, "steps": [step]},
        ),
        max_in_flight=1,  # one at a time, so the answers alternate in a known order
    )
    a, b = report.get("a"), report.get("b")
    assert (a.status, a.pass_rate, len(a.repeats)) == (qa.Status.PASSED, 0.6, 5)
    assert (b.status, b.pass_rate) == (qa.Status.FAILED, 0.4)
    assert [r.status.value for r in b.repeats] == ["failed", "passed", "failed", "passed", "failed"]
    assert b.summary.startswith("step 1: equals: yes")


BARRIER = threading.Barrier(3)


def meet(**args: Any) -> Dict[str, bool]:
    BARRIER.wait(timeout=10)  # passes only when three conversations are in flight together
    return {"met": True}


class CountingTarget:
    """An emulator target that counts conversations open at once."""

    def __init__(self, inner: qa.EmulatorTarget) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.lock = threading.Lock()
        self.open = 0
        self.peak = 0

    def describe(self) -> Dict[str, Any]:
        return self.inner.describe()

    @contextlib.contextmanager
    def conversation(self, suite: str, **options: Any) -> Iterator[bb.Conversation]:
        with self.lock:
            self.open += 1
            self.peak = max(self.peak, self.open)
        try:
            with self.inner.conversation(suite, **options) as conv:
                yield conv
        finally:
            with self.lock:
                self.open -= 1


def test_conversations_run_in_parallel_within_the_bound(agent: Emulator) -> None:
    BARRIER.reset()
    agent.default_agent = ScriptedAgent([Rule("meet", tools=[CallTool("meet", {})], reply="met")])
    cases = [
        {
            "id": f"c{i}",
            "tools": {"meet": {"handler": "test_qa_runner:meet"}},
            "steps": [{"user": "meet"}],
        }
        for i in range(6)
    ]
    target = CountingTarget(qa.EmulatorTarget.of(agent))
    report = run(agent, suite(*cases), target=target, max_in_flight=3, rate=100)
    assert report.counts["passed"] == 6, [c.summary for c in report.cases]
    assert target.peak == 3


def test_any_executor_can_run_the_attempts(agent: Emulator) -> None:
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="mine") as pool:
        report = run(agent, suite({"id": "a", "steps": [{"user": "hi"}]}), executor=pool)
        assert ":mine" in report.get("a").shown.worker
        assert pool.submit(lambda: 1).result() == 1  # the caller's executor is left running


class TestStreamingAndResume:
    CASES = [{"id": f"c{i}", "steps": [{"user": f"m{i}"}]} for i in range(4)]

    def test_each_result_is_on_disk_when_it_is_reported(
        self, agent: Emulator, tmp_path: Path
    ) -> None:
        path = tmp_path / "run.jsonl"
        seen: List[str] = []

        def on_result(result: qa.CaseResult) -> None:
            ids = [json.loads(line).get("id") for line in path.read_text().splitlines()]
            assert result.id in ids
            seen.append(result.id)

        run(agent, suite(*self.CASES), jsonl=path, on_result=on_result)
        assert sorted(seen) == ["c0", "c1", "c2", "c3"]
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert records[0]["record"] == "run"
        assert records[0]["schema"] == qa.SCHEMA
        assert all(r["schema"] == qa.SCHEMA and r["record"] == "case" for r in records[1:])

    def test_resume_runs_only_what_is_missing(self, agent: Emulator, tmp_path: Path) -> None:
        path = tmp_path / "run.jsonl"
        run(agent, suite(*self.CASES), jsonl=path, ids=["c0", "c2"])
        with path.open("a") as torn:
            torn.write('{"record": "case", "id": "c1", "sta')  # killed mid-write
        again: List[str] = []
        report = run(agent, suite(*self.CASES), resume=path, on_result=lambda r: again.append(r.id))
        assert sorted(again) == ["c1", "c3"]
        assert sorted(c.id for c in report.cases) == ["c0", "c1", "c2", "c3"]
        runs, cases = read_jsonl(path)
        assert len(runs) == 2
        assert sorted(c.id for c in cases) == ["c0", "c1", "c2", "c3"]

    def test_rerun_failed(self, agent: Emulator, tmp_path: Path) -> None:
        path = tmp_path / "run.jsonl"
        cases = [
            {"id": "good", "steps": [{"user": "a", "expect": [{"contains": "a"}]}]},
            {"id": "bad", "steps": [{"user": "b", "expect": [{"contains": "zzz"}]}]},
        ]
        first = run(agent, suite(*cases), jsonl=path)
        assert first.get("bad").status is qa.Status.FAILED
        again: List[str] = []
        report = run(
            agent,
            suite(*cases),
            resume=path,
            rerun="failed",
            on_result=lambda r: again.append(r.id),
        )
        assert again == ["bad"]
        assert report.get("bad").run_id != first.get("bad").run_id
        assert report.get("good").run_id == first.get("good").run_id
        with pytest.raises(ValueError, match="rerun needs resume"):
            run(agent, suite(*cases), rerun="failed")

    def test_resume_reports_only_the_selected_cases(self, agent: Emulator, tmp_path: Path) -> None:
        path = tmp_path / "run.jsonl"
        cases = [
            {"id": "good", "tags": ["smoke"], "steps": [{"user": "a"}]},
            {"id": "bad", "steps": [{"user": "b", "expect": [{"contains": "zzz"}]}]},
        ]
        assert run(agent, suite(*cases), jsonl=path).exit_code == qa.EXIT_FAILED
        smoke = run(agent, suite(*cases), resume=path, tags=["smoke"])
        assert [c.id for c in smoke.cases] == ["good"]
        assert smoke.exit_code == qa.EXIT_OK


def test_an_interrupt_closes_the_conversations_in_flight(agent: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    slow = {"timeouts": {"connect_s": 5, "turn_s": 60, "conversation_s": 120}}
    cases = [{"id": "fast", "steps": [{"user": "a"}]}] + [
        {"id": f"quiet{i}", "steps": [{"user": "silent"}, {"user": "silent"}]} for i in range(3)
    ]

    def ctrl_c(result: qa.CaseResult) -> None:
        # The quiet conversations must be blocked in ask() when the interrupt comes.
        agent.wait_for_frame(count=4, where=lambda f: f.get("content") in ("a", "silent"))
        raise KeyboardInterrupt

    with pytest.raises(qa.RunInterrupted) as stopped:
        run(agent, suite(*cases, **slow), jsonl=path, max_in_flight=4, on_result=ctrl_c)
    assert [c.id for c in stopped.value.report.cases] == ["fast"]
    assert stopped.value.unfinished == 3
    assert [c.id for c in read_jsonl(path)[1]] == ["fast"]
    assert isinstance(stopped.value, KeyboardInterrupt)
    for record in agent.conversations:  # closed by the interrupt, not by their turn timeout
        agent.wait_for_conversation_end(timeout=10, record_id=record.record_id)


def test_live_targets_never_write_credentials(agent: Emulator, tmp_path: Path) -> None:
    with bb.Client(api_key=agent.api_key, base_url=agent.base_url) as client:
        created = client.agents.create("qa", {"primaryLanguage": "en-US"})
        integration = client.web_integrations.create(str(created.agent_id), "qa-web")
    minted = qa.LiveTarget(
        base_url=agent.base_url, api_key=agent.api_key, integration_id=integration.integration_id
    )
    reused = qa.LiveTarget(base_url=agent.base_url, token=agent.token)
    s = suite(
        *[
            {"id": f"c{i}", "steps": [{"user": "hi", "expect": [{"contains": "nope"}]}]}
            for i in range(2)
        ]
    )
    outputs = []
    for index, target in enumerate((minted, reused)):
        report = run(agent, s, target=target, jsonl=tmp_path / f"{index}.jsonl")
        assert report.counts["failed"] == 2, [c.summary for c in report.cases]
        report.write_dir(tmp_path / str(index))
        outputs += [repr(target), repr(report), report._repr_html_(), report.markdown()]
    assert minted.describe() == {
        "kind": "live",
        "auth": "minted",
        "base_url": agent.base_url,
        "integration_id": integration.integration_id,
    }
    secrets = {agent.api_key, agent.token} | {r.token for r in agent.conversations if r.token}
    assert len(secrets) == 4  # the key, the reused token and two minted ones
    outputs += [p.read_text(encoding="utf-8") for p in tmp_path.rglob("*") if p.is_file()]
    for secret in secrets:
        assert all(secret not in text for text in outputs)
    grants = {g.integration_id for g in agent.tokens}
    assert integration.integration_id not in grants  # minted tokens were revoked afterwards


DASK_SCRIPT = r"""
import json, os, sys
from distributed import Client, LocalCluster
from blackbox_sync import qa
from blackbox_sync.testing import Emulator, Rule, ScriptedAgent, CallTool

agent = ScriptedAgent([Rule("order", tools=[CallTool("lookupPrice", {"sku": "SKU-7"})],
                            reply="{result[price]} EUR")])
suite = qa.load_suite_data({
    "suite": "dask",
    "defaults": {"turn_end": {"quiet_ms": 100}},
    "tools": {"lookupPrice": {"handler": "order_desk_tools:lookup_price"}},
    "conversations": [
        {"id": f"c{i}", "steps": [{"user": "order", "expect": [{"equals": "5.5 EUR"}]}]}
        for i in range(4)
    ],
}, base_dir=sys.argv[1])
with Emulator(agent=agent) as emulator, LocalCluster(
    n_workers=1, threads_per_worker=4, processes=True, dashboard_address=None
) as cluster, Client(cluster) as client:
    report = qa.run(suite, target=emulator, executor=client.get_executor(), max_in_flight=4)
print(json.dumps({"counts": report.counts, "driver": os.getpid(),
                  "workers": sorted({c.shown.worker.split(":")[1] for c in report.cases}),
                  "summaries": [c.summary for c in report.cases]}))
"""


def test_a_dask_distributed_executor_runs_the_suite(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    examples = ROOT / "examples" / "qa"
    out = subprocess.run(
        [sys.executable, "-c", DASK_SCRIPT, str(examples)],
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["counts"] == {"passed": 4, "failed": 0, "error": 0}, result["summaries"]
    assert result["workers"]
    assert str(result["driver"]) not in result["workers"]

"""Scripted agents without sockets: rules, turns, templates and agent files."""

import json
from pathlib import Path
from typing import Any, List

import pytest
from testkit import ROOT

from blackbox_sync.testing import (
    AgentContext,
    AgentFileError,
    CallTool,
    End,
    Pause,
    Rule,
    Say,
    ScriptedAgent,
    SendRaw,
)
from blackbox_sync.testing.agents.scripted import Step, Turn

EXAMPLES = ROOT / "examples" / "agents"


def play(turn: Turn, tool_results: Any = ()) -> List[Step]:
    """Run a turn to its end, answering tool calls from ``tool_results`` in order."""
    answers = iter(tool_results)
    steps: List[Step] = []
    answer: Any = None
    while True:
        try:
            step = turn.send(answer)
        except StopIteration:
            return steps
        steps.append(step)
        answer = next(answers) if isinstance(step, CallTool) else None


def context(**fields: Any) -> AgentContext:
    return AgentContext(record_id="rec-1", **fields)


class TestRule:
    def test_script_order_and_delays(self) -> None:
        rule = Rule(
            "x",
            ["a", "b"],
            fillers=["um"],
            partials=["p"],
            tools=[CallTool("t")],
            raw_frames=["raw"],
            delay=0.5,
            chunk_delay=0.1,
            end_conversation=True,
        )
        assert rule.script() == [
            Pause(0.5),
            SendRaw("raw"),
            Pause(0.1),
            Say("um"),
            Pause(0.1),
            Say("p", partial=True),
            CallTool("t"),
            Pause(0.1),
            Say("a"),
            Pause(0.1),
            Say("b"),
            End(),
        ]

    def test_matching_is_case_insensitive_and_substring_by_default(self) -> None:
        assert Rule("Order").match("my ORDER please") == {0: "ORDER"}
        assert Rule("a.c").match("abc") is None  # not a regex unless asked
        assert Rule("a.c", regex=True).match("xabc") == {0: "abc"}
        assert Rule("").match("anything") == {0: ""}

    def test_bad_rules_fail_at_construction(self) -> None:
        with pytest.raises(ValueError, match="either steps"):
            Rule("x", "text", steps=[Say("y")])
        with pytest.raises(ValueError, match="times"):
            Rule("x", times=0)
        with pytest.raises(ValueError, match="delay"):
            Rule("x", delay=-1)
        with pytest.raises(TypeError):
            Rule("x", [1])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="not a step"):
            Rule("x", steps=["text"])  # type: ignore[list-item]
        import re

        with pytest.raises(re.error):
            Rule("(", regex=True)


class TestTurns:
    def test_tool_results_feed_later_templates(self) -> None:
        agent = ScriptedAgent(
            [
                Rule(
                    r"ORD-\d+",
                    "Order {match[0]} is {result[status]}.",
                    regex=True,
                    tools=[CallTool("check", {"n": "{match[0]}"})],
                )
            ]
        )
        ctx = context()
        steps = play(agent.respond("where is ORD-9", ctx), [{"status": "late"}])
        assert steps == [
            CallTool("check", {"n": "ORD-9"}, id="tool-1"),
            Say("Order ORD-9 is late."),
        ]
        assert ctx.results == {"check": {"status": "late"}}
        steps = play(agent.respond("and ORD-10", ctx), [{"status": "early"}])
        assert steps[0] == CallTool("check", {"n": "ORD-10"}, id="tool-2")

    def test_templates_see_the_context(self) -> None:
        ctx = context(additional_data={"name": "Ann"}, turn=3)
        ctx.state["mood"] = "good"
        agent = ScriptedAgent(default="{data[name]} #{turn} {state[mood]} {record_id} {user}")
        assert play(agent.respond("hi", ctx)) == [Say("Ann #3 good rec-1 hi")]

    def test_handler_results_of_every_shape(self) -> None:
        def handler(text: str, ctx: AgentContext) -> Any:
            return {
                "none": None,
                "str": "one",
                "rule": Rule("", ["a", "b"]),
                "list": ["x", Pause(1)],
            }[text]

        agent = ScriptedAgent(handler=handler)
        assert play(agent.respond("none", context())) == []
        assert play(agent.respond("str", context())) == [Say("one")]
        assert play(agent.respond("rule", context())) == [Say("a"), Say("b")]
        assert play(agent.respond("list", context())) == [Say("x"), Pause(1)]

    def test_a_handler_producing_junk_raises(self) -> None:
        agent = ScriptedAgent(handler=lambda text, ctx: [42])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="neither text nor a step"):
            play(agent.respond("x", context()))

    def test_greeting_of_every_shape(self) -> None:
        assert play(ScriptedAgent().greet(context())) == []
        assert play(ScriptedAgent(greeting="Hi").greet(context())) == [Say("Hi")]
        assert play(ScriptedAgent(greeting=["Hi", "There"]).greet(context())) == [
            Say("Hi"),
            Say("There"),
        ]
        rule = Rule("", "Hi", fillers=["um"])
        assert play(ScriptedAgent(greeting=rule).greet(context())) == [Say("um"), Say("Hi")]


class TestAgentFiles:
    def test_full_dict(self) -> None:
        agent = ScriptedAgent.from_dict(
            {
                "name": "demo",
                "echo": False,
                "tool_timeout": 3,
                "announce_tool_calls": True,
                "greeting": {"reply": ["Hi", "There"], "delay": 0.1},
                "default": None,
                "rules": [
                    {
                        "regex": r"ORD-\d+",
                        "fillers": "um",
                        "partials": ["Let"],
                        "tools": [
                            {"name": "check", "args": {"n": "{match[0]}"}, "timeout": 2, "id": "c1"}
                        ],
                        "reply": "It is {result[status]}.",
                        "chunk_delay": 0.05,
                        "times": 2,
                        "raw_frames": ['{"type": "x"}', {"type": "y"}],
                    },
                    {
                        "match": "bye",
                        "steps": [
                            {"say": "Bye"},
                            {"partial": "..."},
                            {"pause": 0.1},
                            {"tool": {"name": "log"}},
                            {"raw": {"type": "z"}},
                            {"end": {"status": "Failed", "error_message": "done"}},
                        ],
                    },
                ],
            }
        )
        assert (agent.name, agent.echo, agent.tool_timeout, agent.announce_tool_calls) == (
            "demo",
            False,
            3.0,
            True,
        )
        assert agent.default is None
        assert agent.greeting == Rule("", ["Hi", "There"], delay=0.1)
        first, second = agent.rules
        assert first == Rule(
            r"ORD-\d+",
            "It is {result[status]}.",
            regex=True,
            fillers=["um"],
            partials=["Let"],
            tools=[CallTool("check", {"n": "{match[0]}"}, id="c1", timeout=2.0)],
            chunk_delay=0.05,
            times=2,
            raw_frames=['{"type": "x"}', {"type": "y"}],
        )
        assert second.steps == (
            Say("Bye"),
            Say("...", partial=True),
            Pause(0.1),
            CallTool("log"),
            SendRaw({"type": "z"}),
            End("Failed", "done"),
        )

    def test_defaults(self) -> None:
        agent = ScriptedAgent.from_dict({})
        assert agent.rules == []
        assert play(agent.respond("x", context())) == [Say("You said: x")]
        assert agent.greeting is None

    @pytest.mark.parametrize(
        ("data", "where"),
        [
            ([], "agent: expected a mapping"),
            ({"rulez": []}, "unknown key(s) 'rulez'"),
            ({"rules": {}}, "rules: expected a list"),
            ({"rules": [{"reply": "x"}]}, "rules[0]: give exactly one of 'match'"),
            ({"rules": [{"match": "a", "regex": "b"}]}, "rules[0]: give exactly one"),
            ({"rules": [{"match": "a", "replies": "x"}]}, "rules[0]: unknown key(s) 'replies'"),
            ({"rules": [{"match": "a", "reply": [1]}]}, "rules[0].reply[0]: expected str"),
            ({"rules": [{"match": "a", "delay": "1"}]}, "rules[0].delay: expected a number"),
            ({"rules": [{"match": "a", "times": True}]}, "rules[0].times: expected int"),
            (
                {"rules": [{"match": "a", "tools": [{"args": {}}]}]},
                "rules[0].tools[0]: a tool needs a 'name'",
            ),
            (
                {"rules": [{"match": "a", "steps": [{"shout": "x"}]}]},
                "rules[0].steps[0]: unknown step 'shout'",
            ),
            ({"rules": [{"match": "a", "steps": [{"say": "x", "pause": 1}]}]}, "one-key mapping"),
            ({"rules": [{"match": "a", "raw_frames": [1]}]}, "rules[0].raw_frames[0]"),
            ({"rules": [{"regex": "("}]}, "rules[0]:"),
            ({"greeting": {"match": "x"}}, "greeting: unknown key(s) 'match'"),
            ({"echo": "yes"}, "echo: expected bool"),
        ],
    )
    def test_mistakes_say_where(self, data: Any, where: str) -> None:
        with pytest.raises(AgentFileError) as info:
            ScriptedAgent.from_dict(data)
        assert where in str(info.value)
        assert isinstance(info.value, ValueError)

    def test_json_file(self, tmp_path: Path) -> None:
        path = tmp_path / "agent.json"
        path.write_text(
            json.dumps({"rules": [{"match": "hi", "reply": "Hello"}]}), encoding="utf-8"
        )
        agent = ScriptedAgent.from_file(path)
        assert play(agent.respond("hi", context())) == [Say("Hello")]

    def test_yaml_file(self, tmp_path: Path) -> None:
        pytest.importorskip("yaml")
        path = tmp_path / "agent.yml"
        path.write_text("rules:\n  - match: hi\n    reply: [Hello, There]\n", encoding="utf-8")
        agent = ScriptedAgent.from_file(str(path))
        assert play(agent.respond("HI", context())) == [Say("Hello"), Say("There")]

    def test_file_errors_name_the_file(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.json"
        bad.write_text("{not json", encoding="utf-8")
        with pytest.raises(AgentFileError, match=r"bad\.json: not valid JSON"):
            ScriptedAgent.from_file(bad)
        wrong = tmp_path / "wrong.json"
        wrong.write_text('{"rules": [{"match": 1}]}', encoding="utf-8")
        with pytest.raises(AgentFileError, match=r"wrong.json: rules\[0\].match: expected str"):
            ScriptedAgent.from_file(wrong)
        with pytest.raises(AgentFileError, match=r"end in \.json, \.yaml or \.yml"):
            ScriptedAgent.from_file(tmp_path / "agent.txt")

    @pytest.mark.parametrize("name", ["order-support.yaml", "echo.json"])
    def test_example_agents_load_and_answer(self, name: str) -> None:
        if name.endswith(".yaml"):
            pytest.importorskip("yaml")
        agent = ScriptedAgent.from_file(EXAMPLES / name)
        assert play(agent.greet(context()))
        assert play(agent.respond("something else", context()))

    def test_order_example_script(self) -> None:
        pytest.importorskip("yaml")
        agent = ScriptedAgent.from_file(EXAMPLES / "order-support.yaml")
        steps = play(agent.respond("where is ORD-12345?", context()), [{"status": "shipped"}])
        said = [s.text for s in steps if isinstance(s, Say) and not s.partial]
        assert said == ["um", "Let me check that for you.", "Order ORD-12345 is shipped."]
        assert (
            CallTool("checkOrderStatus", {"orderNumber": "ORD-12345"}, id="tool-1", timeout=10.0)
            in steps
        )
        assert isinstance(play(agent.respond("thanks, bye", context()))[-1], End)

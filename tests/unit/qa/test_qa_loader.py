"""QA case files: the schema, line-numbered problems, the CSV shorthand, built specs."""

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from testkit import ROOT, suite_problems, write

from blackbox_sync import qa
from blackbox_sync.qa.sources import csv_check

EXAMPLE = ROOT / "examples" / "qa" / "suite.yaml"


class TestExampleSuite:
    def test_the_example_suite_loads(self) -> None:
        suite = qa.load_suite(EXAMPLE)
        assert suite.name == "order-desk"
        assert len(suite.cases) >= 10
        ids = [c.id for c in suite.cases]
        assert "deliberate-failure" in ids
        assert "deliberate-infra-error" in ids
        assert suite.emulator_agent is not None
        assert Path(suite.emulator_agent).name == "agent.yaml"

    def test_defaults_and_suite_keys_are_merged_into_each_case(self) -> None:
        suite = qa.load_suite(EXAMPLE)
        case = next(c for c in suite.cases if c.id == "vars-and-additional-data")
        assert case.settings.turn_end.quiet_ms == 250
        assert case.settings.talk_first is True
        assert case.vars == {"shop": "Example Shop", "user_name": "Ada"}
        assert case.additional_data["shop"] == "{{shop}}"
        assert set(case.tools) == {"checkOrderStatus", "lookupPrice", "applyDiscount"}
        repeated = next(c for c in suite.cases if c.id == "stable-under-repeat")
        assert repeated.settings.repeat == 5
        assert repeated.settings.pass_if.min_pass_rate == 0.8

    def test_the_example_suite_is_valid_against_the_shipped_schema(self) -> None:
        yaml: Any = importlib.import_module("yaml")
        data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator(qa.SUITE_SCHEMA).validate(data)

    def test_schema_command_prints_the_schema(self) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "blackbox_sync.qa", "schema"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(out.stdout) == qa.SUITE_SCHEMA


class TestProblems:
    def test_unknown_key_points_at_its_line(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            "conversations:\n  - id: a\n    steps:\n      - user: hi\n        expct: []\n",
        )
        (line,) = suite_problems(path)
        assert line.startswith("s.yaml:5:9: conversations[0].steps[0].expct: unknown key 'expct'")

    def test_every_problem_is_reported_with_its_line(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            "\n".join(
                [
                    "suite: s",  # 1
                    "defaults:",  # 2
                    "  repeat: 0",  # 3
                    "conversations:",  # 4
                    "  - id: a",  # 5
                    "    steps:",  # 6
                    "      - user: hi",  # 7
                    "        wait: 1",  # 8
                    "      - user: 5",  # 9
                    "  - steps: [{user: x}]",  # 10
                    "",
                ]
            ),
        )
        found = suite_problems(path)
        assert any(p.startswith("s.yaml:3:") and "minimum" in p for p in found), found
        assert any(
            p.startswith("s.yaml:7:") and "exactly one of: user, expect_agent" in p for p in found
        ), found
        assert any(p.startswith("s.yaml:9:") and "not of type 'string'" in p for p in found)
        assert any(p.startswith("s.yaml:10:") and "'id' is a required property" in p for p in found)

    def test_yaml_syntax_errors_have_a_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, "s.yaml", "conversations:\n  - id: [a\n")
        (line,) = suite_problems(path)
        assert line.startswith("s.yaml:3:") or line.startswith("s.yaml:2:")
        assert "not valid YAML" in line

    def test_duplicate_yaml_keys_are_errors(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            "conversations:\n  - id: a\n    id: b\n    steps: [{user: hi}]\n",
        )
        (line,) = suite_problems(path)
        assert line.startswith("s.yaml:3:5:")
        assert "duplicate key 'id'" in line

    def test_json_files_get_lines_too(self, tmp_path: Path) -> None:
        text = json.dumps(
            {"conversations": [{"id": "a", "steps": [{"user": "hi", "expect": [{"nope": 1}]}]}]},
            indent=2,
        )
        (line,) = suite_problems(write(tmp_path, "s.json", text))
        number = next(i for i, t in enumerate(text.splitlines(), 1) if '"nope"' in t)
        assert line.startswith(f"s.json:{number}:")
        assert "unknown key 'nope'" in line

    def test_json_syntax_error(self, tmp_path: Path) -> None:
        (line,) = suite_problems(write(tmp_path, "s.json", '{"conversations": [\n  {"id": }\n]}'))
        assert line.startswith("s.json:2:")
        assert "not valid JSON" in line

    def test_checks_the_schema_cannot_express(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            "\n".join(
                [
                    "tools:",  # 1
                    "  t: {handler: 'no_such_module_xyz:f'}",  # 2
                    "conversations:",  # 3
                    "  - id: a",  # 4
                    "    steps:",  # 5
                    "      - user: 'order {{missing}}'",  # 6
                    "        expect:",  # 7
                    "          - {contains: x, regex: y}",  # 8
                    "          - ended_by: agent",  # 9
                    "          - regex: '(unclosed'",  # 10
                    "      - terminate: true",  # 11
                    "      - user: after",  # 12
                    "  - id: a",  # 13
                    "    steps: [{user: hi}]",  # 14
                    "",
                ]
            ),
        )
        found = "\n".join(suite_problems(path))
        assert "s.yaml:2:" in found
        assert "cannot import 'no_such_module_xyz'" in found
        assert "s.yaml:6:" in found
        assert "unknown variable {{missing}}" in found
        assert "s.yaml:8:" in found
        assert "exactly one assertion type, got contains, regex" in found
        assert "s.yaml:9:" in found
        assert "use expect_conversation" in found
        assert "s.yaml:10:" in found
        assert "bad regular expression" in found
        assert "s.yaml:12:" in found
        assert "no step may follow 'terminate'" in found
        assert "s.yaml:13:" in found
        assert "duplicate conversation id 'a'" in found

    def test_captured_variables_are_known_to_later_steps(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            "conversations:\n  - id: a\n    steps:\n"
            "      - {user: hi, capture: {ticket: 'T-\\d+'}}\n"
            "      - user: 'about {{ticket}}'\n"
            "        expect: [{contains: '{{ticket}}'}]\n",
        )
        suite = qa.load_suite(path)
        assert suite.cases[0].steps[0].capture == {"ticket": "T-\\d+"}

    def test_validate_command_prints_problems_and_exits_2(self, tmp_path: Path) -> None:
        bad = write(tmp_path, "bad.yaml", "conversations:\n  - id: a\n    steps: []\n")
        out = subprocess.run(
            [sys.executable, "-m", "blackbox_sync.qa", "validate", str(EXAMPLE), str(bad)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == qa.EXIT_USAGE
        assert "suite.yaml: OK" in out.stdout
        assert f"{bad}:3:" in out.stderr


class TestCsv:
    def test_rows_become_single_turn_conversations(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "faq.csv",
            "id,input,expected,expected_tone,tags,city\n"
            "a,Where is {{city}}?,contains:Paris,!icontains:sorry,x;y,Paris\n"
            ",hello,Hello there,,,\n",
        )
        suite = qa.load_suite(path)
        assert suite.name == "faq"
        first, second = suite.cases
        assert first.id == "a"
        assert first.tags == ("x", "y")
        assert first.vars == {"city": "Paris"}
        assert first.steps[0].text == "Where is {{city}}?"
        assert [(c.kind, c.value, c.negate) for c in first.steps[0].expect] == [
            ("contains", "Paris", False),
            ("icontains", "sorry", True),
        ]
        assert second.id == "row-2"
        assert [(c.kind, c.value) for c in second.steps[0].expect] == [("equals", "Hello there")]

    def test_cells(self) -> None:
        assert csv_check("contains_any:a|b") == {"contains_any": ["a", "b"]}
        assert csv_check("max_length:80") == {"max_length": 80}
        assert csv_check("first_text_ms:1500") == {"first_text_ms": 1500.0}
        assert csv_check("Note: plain text") == {"equals": "Note: plain text"}
        assert csv_check("!tool_called:x") == {"tool_called": "x", "not": True}

    def test_values_lose_the_space_after_the_colon_unless_quoted(self, tmp_path: Path) -> None:
        assert csv_check("contains: Paris") == {"contains": "Paris"}
        assert csv_check("! regex:  \\d+ ") == {"regex": "\\d+", "not": True}
        assert csv_check("contains:' Paris '") == {"contains": " Paris "}
        assert csv_check('equals:"a: b "') == {"equals": "a: b "}
        assert csv_check("contains_any: a | 'b ' ") == {"contains_any": ["a", "b "]}
        assert csv_check("tool_called: lookup") == {"tool_called": "lookup"}
        path = write(
            tmp_path,
            "spaced.csv",
            'input,expected,expected_2\nhi,contains: Paris,"contains:"" x """\n',
        )
        (case,) = qa.load_suite(path).cases
        assert [c.value for c in case.steps[0].expect] == ["Paris", " x "]

    def test_bad_cells_point_at_their_row(self, tmp_path: Path) -> None:
        path = write(tmp_path, "f.csv", "input,expected\nhi,max_length:lots\n")
        (line,) = suite_problems(path)
        assert line.startswith("f.csv:2:")
        assert "max_length needs a number" in line

    def test_a_csv_needs_an_input_column(self, tmp_path: Path) -> None:
        (line,) = suite_problems(write(tmp_path, "f.csv", "question,expected\nhi,x\n"))
        assert "needs an 'input' column" in line


def test_suites_can_be_built_from_data() -> None:
    suite = qa.load_suite_data(
        {"suite": "inline", "conversations": [{"id": "a", "steps": [{"user": "hi"}]}]}
    )
    assert suite.name == "inline"
    assert suite.cases[0].steps[0].kind == "user"
    with pytest.raises(qa.SuiteFileError, match="<data>: conversations"):
        qa.load_suite_data({"conversations": []})


def _alias_bomb() -> str:
    """Nine levels of nine aliases each: under 500 bytes, 9^9 strings once expanded."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join([*lines, "conversations: *a8"]) + "\n"


HOSTILE_FILES = [
    ("bomb.yaml", _alias_bomb(), ":2:10: not valid YAML: aliases (*name) are not allowed"),
    (
        "deep.yaml",
        "suite: x\nconversations: " + "[" * 20_000 + "]" * 20_000 + "\n",
        ":2:",
    ),
    (
        "block.yaml",
        "suite: x\nconversations:\n" + "".join("  " * i + "-\n" for i in range(1, 200)),
        ":102:201: not valid YAML: nested more than 100 levels deep",
    ),
    (
        "deep.json",
        '{"suite": "x",\n "conversations": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
        ":2:118: not valid JSON: nested more than 100 levels deep",
    ),
    (
        "big.csv",
        "input,expected\nhi,fine\n" + "x" * (129 * 1024) + ",y\n",
        ":3:1: not valid CSV: field larger than field limit",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "message"), HOSTILE_FILES, ids=[f[0] for f in HOSTILE_FILES]
)
def test_hostile_suite_files_are_one_line_numbered_error_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, message: str
) -> None:
    from blackbox_sync.cli.qa import main

    path = write(tmp_path, name, text)
    started = time.monotonic()
    status = main(["validate", str(path)])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert status == 2
    assert elapsed < 2.0
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert err.startswith(f"{path}:")
    assert message in err


def test_anchors_without_aliases_still_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "anchored.yaml",
        "conversations:\n  - &first\n    id: a\n    steps: [{user: hi}]\n",
    )
    assert [c.id for c in qa.load_suite(path).cases] == ["a"]

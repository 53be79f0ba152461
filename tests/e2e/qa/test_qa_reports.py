"""The example suite end to end through the CLI, every report format read back, and a killed
run resumed.

The HTML report is opened in headless Chromium (``apt-get install -y chromium``); the test
skips when it is not installed.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Set

import pytest
from testkit import ROOT

from blackbox_sync import qa
from blackbox_sync.qa.progress import Progress
from blackbox_sync.qa.store import read_jsonl

EXAMPLE = ROOT / "examples" / "qa" / "suite.yaml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def qa_cli(*args: str, timeout: float = 60) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "blackbox_sync.qa", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, object]:
    """The README's command: the example suite on the emulator, every format in one folder."""
    out = tmp_path_factory.mktemp("qa-report")
    done = qa_cli(
        "run", str(EXAMPLE), "--target", "emulator", "-o", str(out), "--progress", "lines"
    )
    return {"dir": out, "process": done}


def test_the_run_exits_4_and_prints_a_line_per_conversation(example_run: Dict[str, object]) -> None:
    done = example_run["process"]
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == qa.EXIT_FAILED_AND_ERROR, done.stderr
    lines = done.stdout.splitlines()
    status_lines = [
        line for line in lines if line.split(" ", 1)[0] in ("PASSED", "FAILED", "ERROR")
    ]
    assert len(status_lines) == 13
    assert any(line.startswith("FAILED  order-desk / deliberate-failure") for line in lines)
    assert any(
        line.startswith("ERROR   order-desk / deliberate-infra-error") and "1 retry" in line
        for line in lines
    )
    assert "13 conversations: 11 passed, 1 failed, 1 errors" in done.stdout


def test_junit_xml(example_run: Dict[str, object]) -> None:
    root = ET.parse(Path(str(example_run["dir"])) / "junit.xml").getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("13", "1", "1")
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "order-desk"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert len(cases) == 13
    failure = cases["deliberate-failure"].find("failure")
    assert failure is not None
    assert failure.get("type") == "assertion"
    assert "refund approved" in (failure.get("message") or "")
    assert cases["deliberate-failure"].find("error") is None
    error = cases["deliberate-infra-error"].find("error")
    assert error is not None
    assert error.get("type") == "server_error"
    assert cases["deliberate-infra-error"].find("failure") is None

    def props(name: str) -> Dict[str, str]:
        return {p.get("name", ""): p.get("value", "") for p in cases[name].iter("property")}

    assert props("deliberate-infra-error")["attempts"] == "2"
    assert props("stable-under-repeat")["repeats"] == "5"
    assert props("stable-under-repeat")["pass_rate"] == "1.0"
    assert props("greeting")["turn_end"] == "quiet 250 ms, fillers: um"
    out = cases["order-status"].findtext("system-out") or ""
    assert "user: Where is my order ORD-12345?" in out
    assert "assistant: Order ORD-12345 is shipped." in out
    assert "assistant: um (filler)" in out
    assert 'tool_request: checkOrderStatus {"orderNumber": "ORD-12345"}' in out
    assert "turn end: quiet 250 ms, fillers: um" in out
    for name, case in cases.items():
        if name not in ("deliberate-failure", "deliberate-infra-error"):
            assert case.find("failure") is None
            assert case.find("error") is None


def test_csv(example_run: Dict[str, object]) -> None:
    path = Path(str(example_run["dir"])) / "results.csv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["conversation"] for r in rows} == {c.id for c in qa.load_suite(EXAMPLE).cases}
    failed = [
        r for r in rows if r["conversation"] == "deliberate-failure" and r["passed"] == "False"
    ]
    assert [r["check"] for r in failed] == ["contains: refund approved"]
    (error,) = [r for r in rows if r["conversation"] == "deliberate-infra-error"]
    assert (error["status"], error["error_kind"], error["attempts"]) == (
        "error",
        "server_error",
        "2",
    )
    informational = [r for r in rows if r["check"] == "informational: not an exact greeting"]
    assert [(r["passed"], r["weight"], r["status"]) for r in informational] == [
        ("False", "0.0", "passed")
    ]
    repeats = {r["repeat"] for r in rows if r["conversation"] == "stable-under-repeat"}
    assert repeats == {"1", "2", "3", "4", "5"}


def test_markdown(example_run: Dict[str, object]) -> None:
    text = (Path(str(example_run["dir"])) / "summary.md").read_text(encoding="utf-8")
    assert "**13 conversations: 11 passed, 1 failed, 1 errors**" in text
    assert "| ⚠️ | order-desk | deliberate-infra-error | 2 |" in text
    assert "### Failed checks" in text
    assert "✗ step 1: contains: refund approved" in text


def test_jsonl(example_run: Dict[str, object]) -> None:
    path = Path(str(example_run["dir"])) / "results.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records[0]["record"] == "run"
    assert records[0]["target"]["kind"] == "emulator"
    cases = records[1:]
    assert len(cases) == 13
    for record in cases:
        assert record["schema"] == qa.SCHEMA
        assert record["turn_end"] == {"rule": "quiet", "quiet_ms": 250.0, "fillers": ["um"]}
    runs, results = read_jsonl(path)
    assert len(runs) == 1
    assert {r.status.value for r in results} == {"passed", "failed", "error"}


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
def test_html_in_headless_chromium(example_run: Dict[str, object], tmp_path: Path) -> None:
    html = Path(str(example_run["dir"])) / "report.html"
    source = html.read_text(encoding="utf-8")
    assert "src=" not in source  # self-contained: nothing to fetch
    assert "<link" not in source
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = ET.fromstring(_xml_safe(done.stdout))  # Chromium serialises the DOM it rendered
    sections = {s.get("id"): s for s in dom.iter("section")}
    failed = sections["case-order-desk-deliberate-failure"]
    assert failed.get("data-status") == "failed"
    assert "failed" in (failed.get("class") or "")
    marker_rows = [r for r in failed.iter("tr") if r.get("class") == "check failed"]
    assert len(marker_rows) == 1
    assert "refund approved" in "".join(marker_rows[0].itertext())
    error = sections["case-order-desk-deliberate-infra-error"]
    assert "infrastructure error (server_error): Internal agent error" in "".join(error.itertext())
    order = "".join(sections["case-order-desk-order-status"].itertext())
    assert "Where is my order ORD-12345?" in order
    assert "Order ORD-12345 is shipped." in order
    assert sum(1 for s in sections.values() if s.get("data-status") == "passed") == 11
    assert len(sections) == 13


def _xml_safe(dom: str) -> str:
    """Chromium's dump is HTML; these few fixes let an XML parser read our report's DOM."""
    start = dom.index("<html")
    text = dom[start:]
    for void in ("meta", "input", "br"):
        text = _close_void(text, void)
    return text.replace("&nbsp;", "\u00a0")


def _close_void(text: str, tag: str) -> str:
    out, pos = [], 0
    needle = f"<{tag}"
    while True:
        start = text.find(needle, pos)
        if start < 0:
            out.append(text[pos:])
            return "".join(out)
        end = text.index(">", start)
        chunk = text[start:end]
        out.append(text[pos:start] + (chunk if chunk.endswith("/") else chunk + "/") + ">")
        pos = end + 1


def test_reports_are_rebuilt_from_the_jsonl(example_run: Dict[str, object], tmp_path: Path) -> None:
    results = Path(str(example_run["dir"])) / "results.jsonl"
    done = qa_cli(
        "report",
        str(results),
        "--junit",
        str(tmp_path / "j.xml"),
        "--html",
        str(tmp_path / "r.html"),
    )
    assert done.returncode == 0, done.stderr
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("13", "1", "1")
    report = qa.RunReport.from_jsonl(results)
    assert report.exit_code == qa.EXIT_FAILED_AND_ERROR
    html = report._repr_html_()
    assert "deliberate-infra-error" in html
    assert 'class="check failed"' in html
    pandas = pytest.importorskip("pandas")
    frame = report.to_dataframe()
    assert isinstance(frame, pandas.DataFrame)
    assert len(frame) == 13
    assert dict(frame["status"].value_counts()) == {"passed": 11, "failed": 1, "error": 1}
    checks = report.to_dataframe("check")
    assert set(checks["conversation"]) == set(frame["conversation"])


def test_a_bad_suite_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("conversations:\n  - id: x\n    steps: [{usr: hi}]\n", encoding="utf-8")
    done = qa_cli("run", str(bad))
    assert done.returncode == qa.EXIT_USAGE
    assert f"{bad}:3:" in done.stderr


def test_the_progress_bar_counts_and_closes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("tqdm")
    report = qa.RunReport.from_jsonl(_results_of_a_tiny_run(tmp_path))
    bar = Progress(len(report.cases), "bar")
    for case in report.cases:
        bar(case)
    bar.close()
    captured = capsys.readouterr()
    assert "passed=1, failed=1, error=0" in captured.err
    assert "FAILED  tiny / b" in captured.out  # printed above the bar


def _results_of_a_tiny_run(folder: Path) -> Path:
    suite = folder / "tiny.yaml"
    suite.write_text(
        "suite: tiny\ndefaults: {turn_end: {quiet_ms: 100}}\nconversations:\n"
        "  - {id: a, steps: [{user: hi, expect: [{contains: hi}]}]}\n"
        "  - {id: b, steps: [{user: hi, expect: [{contains: nope}]}]}\n",
        encoding="utf-8",
    )
    qa.run(suite, target="emulator", jsonl=folder / "r.jsonl")
    return folder / "r.jsonl"


SLOW_AGENT = """
default: {reply: "ok", delay: 0.2}
"""


def test_a_killed_run_resumes_with_only_the_missing_conversations(tmp_path: Path) -> None:
    (tmp_path / "agent.yaml").write_text(SLOW_AGENT, encoding="utf-8")
    ids = [f"c{i}" for i in range(8)]
    conversations = "".join(f"  - {{id: {i}, steps: [{{user: hi}}]}}\n" for i in ids)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "suite: s\ntarget: {emulator: {agent: agent.yaml}}\n"
        "defaults: {turn_end: {quiet_ms: 100}}\nconversations:\n" + conversations,
        encoding="utf-8",
    )
    results = tmp_path / "run.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "blackbox_sync.qa",
            "run",
            str(suite),
            "-j",
            "1",
            "--jsonl",
            str(results),
            "--progress",
            "lines",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    try:
        finished = 0
        while finished < 3:  # each line is printed after its result is on disk
            line = proc.stdout.readline()
            assert line, "the run ended before it could be killed"
            finished += line.startswith("PASSED")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
        proc.stdout.close()
    _, before = read_jsonl(results)
    first: Set[str] = {r.id for r in before}
    assert 3 <= len(first) < len(ids)
    done = qa_cli("run", str(suite), "--resume", str(results), "--progress", "lines")
    assert done.returncode == 0, done.stderr
    second = {line.split()[3] for line in done.stdout.splitlines() if line.startswith("PASSED")}
    assert second == set(ids) - first
    case_lines: List[str] = [
        json.loads(line)["id"]
        for line in results.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("record") == "case"
    ]
    assert sorted(case_lines) == sorted(ids)  # every conversation exactly once
    assert f"{len(ids)} conversations: {len(ids)} passed" in done.stdout
    assert os.path.getsize(results) > 0


ONE_CASE = """\
conversations:
  - id: hello
    turn_end: {quiet_ms: 50}
    steps:
      - user: hi
        expect: [{python: "hooks:remove_reports"}]
"""
HOOKS = """\
import shutil
from pathlib import Path


def remove_reports(observed):
    shutil.rmtree(Path(__file__).parent / "reports")  # the folder vanishes mid-run
    return True
"""


@pytest.mark.parametrize(
    ("option", "name", "problem"),
    [
        ("--html", "missing-dir/r.html", "the folder"),
        ("--junit", "", "is a folder, not a file"),
        ("--out-dir", "suite.yaml", "is a file, not a folder"),
    ],
)
def test_an_unwritable_report_path_stops_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, name: str, problem: str
) -> None:
    from blackbox_sync.cli.qa import main

    suite = tmp_path / "suite.yaml"
    suite.write_text(ONE_CASE.replace('\n        expect: [{python: "hooks:remove_reports"}]', ""))
    started = time.monotonic()
    status = main(["run", str(suite), option, str(tmp_path / name), "--progress", "none"])
    err = capsys.readouterr().err
    assert status == qa.EXIT_USAGE
    assert time.monotonic() - started < 2.0  # no emulator, no conversation
    assert err.count("\n") == 1
    assert err.startswith(f"error: {option} ")
    assert problem in err
    assert not (tmp_path / "results.jsonl").exists()


def test_a_report_that_fails_at_the_end_keeps_the_jsonl_and_exits_5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from blackbox_sync.cli.qa import main

    (tmp_path / "suite.yaml").write_text(ONE_CASE, encoding="utf-8")
    (tmp_path / "hooks.py").write_text(HOOKS, encoding="utf-8")
    (tmp_path / "reports").mkdir()
    jsonl = tmp_path / "results.jsonl"
    status = main(
        [
            "run", str(tmp_path / "suite.yaml"), "--html", str(tmp_path / "reports" / "r.html"),
            "--jsonl", str(jsonl), "--progress", "none",
        ]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert status == qa.EXIT_REPORTS
    assert "error: could not write the reports: " in printed.err
    assert f"the results are in {jsonl}" in printed.err
    assert "Traceback" not in printed.err
    assert "1 conversations: 1 passed" in printed.out
    _, cases = read_jsonl(jsonl)
    assert [c.status.value for c in cases] == ["passed"]

"""A Markdown summary for GitHub step summaries and pull-request comments.

Counts first, then every conversation that did not pass with its failed checks or its error;
passing conversations are listed only while the table stays short.
"""

from pathlib import Path
from typing import List, Union

from blackbox_sync.qa.reports.common import check_line, counts
from blackbox_sync.qa.results import CaseResult, RunInfo, Status

MAX_PASSED_ROWS = 50


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(run: RunInfo, cases: List[CaseResult]) -> str:
    """The Markdown text."""
    tally = counts(cases)
    icon = {"passed": "✅", "failed": "❌", "error": "⚠️"}
    lines = [
        f"## QA: {', '.join(run.suites)}",
        "",
        f"**{len(cases)} conversations: {tally['passed']} passed, {tally['failed']} failed, "
        f"{tally['error']} errors** — target `{run.target.get('kind', '?')}`, run `{run.run_id}`",
        "",
        "| | suite | conversation | attempts | time | details |",
        "|---|---|---|---|---|---|",
    ]
    order = {Status.ERROR: 0, Status.FAILED: 1, Status.PASSED: 2}
    shown = sorted(cases, key=lambda c: order[c.status])
    if tally["passed"] > MAX_PASSED_ROWS:
        shown = [c for c in shown if c.status is not Status.PASSED]
    for case in shown:
        lines.append(
            f"| {icon[case.status.value]} | {_cell(case.suite)} | {_cell(case.id)} | "
            f"{case.attempts} | {case.duration_s:.1f} s | {_cell(case.summary)} |"
        )
    if tally["passed"] > MAX_PASSED_ROWS:
        lines.append(f"| ✅ | | {tally['passed']} passing conversations not listed | | | |")
    failing = [c for c in cases if c.status is Status.FAILED]
    if failing:
        lines += ["", "### Failed checks", ""]
        for case in failing:
            lines.append(f"- **{case.suite} / {case.id}**")
            lines += [f"  - {check_line(c)}" for c in case.shown.failed_checks]
    return "\n".join(lines) + "\n"


def write(path: Union[str, Path], run: RunInfo, cases: List[CaseResult]) -> None:
    """Write the Markdown file."""
    Path(path).write_text(render(run, cases), encoding="utf-8")

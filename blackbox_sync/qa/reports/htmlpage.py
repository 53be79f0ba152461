"""A single self-contained HTML report: no external files, scripts or fonts.

Each conversation is a section (open when it did not pass) with its transcript; a failed check is
shown right after the turn it belongs to, marked ``check failed``. Checkboxes filter by status.
The same fragments give notebooks their ``_repr_html_``.
"""

import json
from html import escape
from pathlib import Path
from typing import Dict, List, Optional, Union

from blackbox_sync.qa.reports.common import (
    counts,
    entry_text,
    ms,
    runs_text,
    turn_end_text,
    turn_rule_note,
)
from blackbox_sync.qa.results import Attempt, CaseResult, CheckResult, Entry, RunInfo, Status

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5rem;color:#1d1f23}
h1{font-size:1.35rem;margin:0 0 .4rem}
.summary span{display:inline-block;margin-right:.8rem;font-weight:600}
.passed .badge,.count.passed{color:#137333}.failed .badge,.count.failed{color:#b3261e}
.error .badge,.count.error{color:#8a4b00}
.badge{font-weight:700;text-transform:uppercase;font-size:.8rem;margin-right:.5rem}
section.case{border:1px solid #d9dce1;border-radius:6px;margin:.5rem 0;padding:.3rem .7rem}
section.case.failed{border-left:5px solid #b3261e}section.case.error{border-left:5px solid #c77700}
section.case.passed{border-left:5px solid #188038}
summary{cursor:pointer}.meta{color:#5f6368;font-size:.85rem;margin:.3rem 0}
table.transcript{border-collapse:collapse;width:100%;margin:.4rem 0}
table.transcript td{padding:.15rem .4rem;vertical-align:top;border-top:1px solid #eef0f2}
td.t{color:#80868b;white-space:nowrap;text-align:right;width:6rem}td.role{width:8rem;color:#5f6368}
tr.user td.text{font-weight:600}tr.assistant td.text{color:#174ea6}
tr.flagged td.text{color:#9aa0a6;font-style:italic}
tr.tool_request td,tr.tool_response td,tr.tool_result td{font-family:monospace;font-size:.85rem}
tr.error td{color:#b3261e}
tr.check.failed td{background:#fce8e6;color:#a50e0e;font-weight:600}
div.failure{background:#fce8e6;color:#a50e0e;padding:.3rem .5rem;border-radius:4px}
div.infra{background:#fef7e0;color:#7a4100;padding:.3rem .5rem;border-radius:4px}
ul.checks{margin:.3rem 0;padding-left:1.2rem}li.check.failed{color:#a50e0e}
li.check.passed{color:#137333}nav.filters label{margin-right:1rem}
"""

SCRIPT = """
document.querySelectorAll('nav.filters input').forEach(function (box) {
  box.addEventListener('change', function () {
    document.querySelectorAll('section.case.' + box.dataset.status).forEach(function (s) {
      s.style.display = box.checked ? '' : 'none';
    });
  });
});
"""


def _entry_row(entry: Entry) -> str:
    classes = [entry.role] + (["flagged"] if entry.flags else [])
    return (
        f'<tr class="entry {" ".join(classes)}"><td class="t">{entry.t_ms:.0f} ms</td>'
        f'<td class="role">{escape(entry.role)}</td>'
        f'<td class="text">{escape(entry_text(entry))}</td></tr>'
    )


def _check_row(check: CheckResult) -> str:
    return (
        f'<tr class="check failed"><td class="t">✗</td><td class="role">{escape(check.scope)}</td>'
        f'<td class="text">{escape(check.label)} — {escape(check.message)}</td></tr>'
    )


def transcript_table(attempt: Attempt) -> str:
    """The transcript with each failed check right after the turn it belongs to."""
    failed: Dict[Optional[int], List[CheckResult]] = {}
    for check in attempt.failed_checks:
        step = int(check.scope.split()[1]) if check.scope.startswith("step ") else None
        failed.setdefault(step, []).append(check)
    rows: List[str] = []
    shown_steps = set()
    entries = attempt.transcript
    for index, entry in enumerate(entries):
        rows.append(_entry_row(entry))
        following = entries[index + 1].step if index + 1 < len(entries) else None
        if entry.step is not None and following != entry.step:
            rows.extend(_check_row(c) for c in failed.get(entry.step, []))
            shown_steps.add(entry.step)
    for step, checks in failed.items():  # conversation checks, and steps with no entries
        if step not in shown_steps:
            rows.extend(_check_row(c) for c in checks)
    return f'<table class="transcript">{"".join(rows)}</table>'


def _checks_list(attempt: Attempt) -> str:
    items = "".join(
        f'<li class="check {"passed" if c.passed else "failed"}">{"✓" if c.passed else "✗"} '
        f"{escape(c.scope)}: {escape(c.label)}"
        f"{' — ' + escape(c.message) if c.message else ''}</li>"
        for c in attempt.checks
    )
    return f'<ul class="checks">{items}</ul>' if items else ""


def case_section(case: CaseResult) -> str:
    """One conversation's section."""
    shown = case.shown
    status = case.status.value
    open_attr = "" if case.status is Status.PASSED else " open"
    summary = f" — {escape(case.summary)}" if case.summary else ""
    repeats = ""
    if len(case.repeats) > 1:
        marks = " ".join(f"#{r.index}: {r.status.value}" for r in case.repeats)
        repeats = (
            f'<div class="meta">repeats: {escape(marks)} — pass rate {case.pass_rate:.0%} '
            f"(needs {case.min_pass_rate:.0%})</div>"
        )
    problem = ""
    if shown.error is not None:
        problem = (
            f'<div class="infra">infrastructure error ({escape(shown.error.kind)}): '
            f"{escape(shown.error.message)}</div>"
        )
    elif case.status is Status.FAILED:
        problem = f'<div class="failure">{escape(case.summary)}</div>'
    timings = "; ".join(
        f"step {t.step}: first text {ms(t.first_text_ms)}"
        + ("" if t.first_audio_ms is None else f", first audio {ms(t.first_audio_ms)}")
        + f", turn {ms(t.turn_ms)}{turn_rule_note(case, t)}"
        for t in shown.turns
    )
    runs = f", {escape(runs_text(case))}" if runs_text(case) else ""
    tags = f" — tags: {escape(', '.join(case.tags))}" if case.tags else ""
    return (
        f'<section class="case {status}" data-status="{status}" '
        f'id="case-{escape(case.suite)}-{escape(case.id)}">'
        f'<details{open_attr}><summary><span class="badge">{status}</span>'
        f"<b>{escape(case.suite)} / {escape(case.id)}</b>{summary} "
        f'<span class="meta">({case.duration_s:.2f} s{runs})</span>'
        f"</summary>"
        f'<div class="meta">{escape(case.description)}{tags}</div>'
        f'<div class="meta">turn end: {escape(turn_end_text(case.turn_end))}; ended by '
        f"{escape(shown.ended_by or '?')}; attempt {shown.number}; {escape(timings)}</div>"
        f"{repeats}{problem}{transcript_table(shown)}{_checks_list(shown)}"
        f"</details></section>"
    )


def summary_html(run: RunInfo, cases: List[CaseResult]) -> str:
    """The heading, counts and run facts."""
    tally = counts(cases)
    spans = "".join(
        f'<span class="count {name}">{tally[name]} {name}</span>'
        for name in ("passed", "failed", "error")
    )
    target = escape(json.dumps(run.target, sort_keys=True))
    return (
        f"<h1>QA report: {escape(', '.join(run.suites) or 'suite')}</h1>"
        f'<p class="summary"><span>{len(cases)} conversations</span>{spans}</p>'
        f'<p class="meta">run {escape(run.run_id)} — started {escape(run.started_at)} — '
        f"target {target} — blackbox-sync {escape(run.client_version)}</p>"
    )


def page(run: RunInfo, cases: List[CaseResult]) -> str:
    """The whole document."""
    filters = "".join(
        f'<label><input type="checkbox" data-status="{s.value}" checked> {s.value}</label>'
        for s in Status
    )
    order = {Status.ERROR: 0, Status.FAILED: 1, Status.PASSED: 2}
    ordered = sorted(cases, key=lambda c: order[c.status])
    sections = "".join(case_section(c) for c in ordered)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>QA report: {escape(', '.join(run.suites))}</title>"
        f"<style>{STYLE}</style></head><body><header>{summary_html(run, cases)}"
        f'<nav class="filters">{filters}</nav></header><main>{sections}</main>'
        f"<script>{SCRIPT}</script></body></html>"
    )


def write(path: Union[str, Path], run: RunInfo, cases: List[CaseResult]) -> None:
    """Write the HTML file."""
    Path(path).write_text(page(run, cases), encoding="utf-8")

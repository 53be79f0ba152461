"""JUnit XML: a ``<testsuite>`` per suite, a ``<testcase>`` per conversation.

Failed checks become ``<failure>``, infrastructure problems ``<error>``; repeats are folded into
one testcase with its pass rate as a property; the transcript and timings go to
``<system-out>``. CI systems (GitLab, Jenkins, GitHub test reporters) read this shape.
"""

import json
import re
import xml.etree.ElementTree as ET
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Union

from blackbox_sync.qa.reports.common import attempt_text, check_line, counts, turn_end_text
from blackbox_sync.qa.results import CaseResult, RunInfo, Status

# XML 1.0 cannot carry most control characters, whatever the escaping.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\N{REPLACEMENT CHARACTER}", text)


def _property(parent: ET.Element, name: str, value: object) -> None:
    ET.SubElement(parent, "property", name=name, value=_clean(str(value)))


def build(run: RunInfo, cases: List[CaseResult]) -> ET.Element:
    """The ``<testsuites>`` element."""
    by_suite: Dict[str, List[CaseResult]] = OrderedDict()
    for case in cases:
        by_suite.setdefault(case.suite, []).append(case)
    total = counts(cases)
    root = ET.Element(
        "testsuites",
        name="blackbox-sync qa",
        tests=str(len(cases)),
        failures=str(total["failed"]),
        errors=str(total["error"]),
        time=f"{sum(c.duration_s for c in cases):.3f}",
    )
    for suite, members in by_suite.items():
        tally = counts(members)
        element = ET.SubElement(
            root,
            "testsuite",
            name=suite,
            tests=str(len(members)),
            failures=str(tally["failed"]),
            errors=str(tally["error"]),
            skipped="0",
            time=f"{sum(c.duration_s for c in members):.3f}",
            timestamp=min(c.started_at for c in members),
        )
        properties = ET.SubElement(element, "properties")
        _property(properties, "run_id", run.run_id)
        _property(properties, "target", json.dumps(run.target, sort_keys=True))
        _property(properties, "client_version", run.client_version)
        for case in members:
            _testcase(element, case)
    return root


def _testcase(parent: ET.Element, case: CaseResult) -> None:
    element = ET.SubElement(
        parent, "testcase", classname=case.suite, name=case.id, time=f"{case.duration_s:.3f}"
    )
    properties = ET.SubElement(element, "properties")
    _property(properties, "pass_rate", case.pass_rate)
    _property(properties, "repeats", len(case.repeats))
    _property(properties, "attempts", case.attempts)
    _property(properties, "turn_end", turn_end_text(case.turn_end))
    if case.tags:
        _property(properties, "tags", ",".join(case.tags))
    shown = case.shown
    if case.status is Status.ERROR and shown.error is not None:
        error = ET.SubElement(element, "error", message=_clean(case.summary), type=shown.error.kind)
        error.text = _clean(f"{shown.error.kind}: {shown.error.message}")
    elif case.status is Status.FAILED:
        failure = ET.SubElement(element, "failure", message=_clean(case.summary), type="assertion")
        lines = [check_line(c) for c in shown.failed_checks]
        if len(case.repeats) > 1:
            lines.insert(0, f"pass rate {case.pass_rate:.0%} (needs {case.min_pass_rate:.0%})")
        failure.text = _clean("\n".join(lines))
    out = ET.SubElement(element, "system-out")
    out.text = _clean(attempt_text(case, shown))


def write(path: Union[str, Path], run: RunInfo, cases: List[CaseResult]) -> None:
    """Write the JUnit XML file."""
    tree = ET.ElementTree(build(run, cases))
    ET.indent(tree)
    tree.write(str(path), encoding="utf-8", xml_declaration=True)

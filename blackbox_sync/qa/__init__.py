"""Batch QA for BlackBox agents: scripted multi-turn conversations, checks, reports.

>>> from blackbox_sync import qa
>>> report = qa.run("examples/qa/suite.yaml", target="emulator")   # doctest: +SKIP
>>> report.counts, report.exit_code                                 # doctest: +SKIP

Case files are YAML, JSON or a CSV shorthand (see ``docs`` in the README and
``blackbox-sync qa schema``). Conversations run in parallel on any
``concurrent.futures.Executor``; each result is streamed to JSONL as it finishes and every
report format (JUnit XML, HTML, CSV, Markdown) is written from the same result model.
Needs the ``qa`` extra (PyYAML, jsonschema, tqdm); pandas is optional.
"""

from blackbox_sync.qa.assertions import Observed, Outcome, ToolSeen
from blackbox_sync.qa.judge import JudgeCache, JudgeRequest, Verdict
from blackbox_sync.qa.loader import load_suite, load_suite_data
from blackbox_sync.qa.report import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_FAILED_AND_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REPORTS,
    EXIT_USAGE,
    RunReport,
)
from blackbox_sync.qa.results import (
    SCHEMA,
    Attempt,
    CaseResult,
    CheckResult,
    Entry,
    Status,
    TurnRecord,
)
from blackbox_sync.qa.runner import run
from blackbox_sync.qa.schema import SUITE_SCHEMA
from blackbox_sync.qa.sources import SuiteFileError
from blackbox_sync.qa.spec import (
    Case,
    Check,
    PassIf,
    Settings,
    Step,
    Suite,
    Timeouts,
    ToolScript,
    TurnEndSpec,
)
from blackbox_sync.qa.stopping import RunInterrupted
from blackbox_sync.qa.targets import EmulatorTarget, LiveTarget, Target, hosted_emulator

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_FAILED_AND_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REPORTS",
    "EXIT_USAGE",
    "SCHEMA",
    "SUITE_SCHEMA",
    "Attempt",
    "Case",
    "CaseResult",
    "Check",
    "CheckResult",
    "EmulatorTarget",
    "Entry",
    "JudgeCache",
    "JudgeRequest",
    "LiveTarget",
    "Observed",
    "Outcome",
    "PassIf",
    "RunInterrupted",
    "RunReport",
    "Settings",
    "Status",
    "Step",
    "Suite",
    "SuiteFileError",
    "Target",
    "Timeouts",
    "ToolScript",
    "ToolSeen",
    "TurnEndSpec",
    "TurnRecord",
    "Verdict",
    "hosted_emulator",
    "load_suite",
    "load_suite_data",
    "run",
]

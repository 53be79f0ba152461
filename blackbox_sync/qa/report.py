"""What ``qa.run()`` returns: the run's results, their counts, the exit code, every format.

In Jupyter the report shows itself as an HTML table (``_repr_html_``); ``to_dataframe()`` gives
pandas a row per conversation (or per check), when pandas is installed.
"""

import importlib
from html import escape
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import attrs

from blackbox_sync.qa.reports import csvtable, htmlpage
from blackbox_sync.qa.reports import junit as junit_report
from blackbox_sync.qa.reports import markdown as markdown_report
from blackbox_sync.qa.reports.common import counts
from blackbox_sync.qa.results import CaseResult, RunInfo, Status, dumps
from blackbox_sync.qa.store import read_jsonl

EXIT_OK = 0
EXIT_FAILED = 1
"""At least one conversation failed a check; none had an infrastructure error."""
EXIT_USAGE = 2
"""Bad command line or suite file (argparse uses 2 as well)."""
EXIT_ERROR = 3
"""At least one infrastructure error; no check failed."""
EXIT_FAILED_AND_ERROR = 4
"""Both failures and infrastructure errors."""
EXIT_REPORTS = 5
"""The run finished but a report could not be written (the JSONL results are kept); says
nothing about the checks."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (SIGINT), the shells' 128 + 2; finished cases are in the JSONL."""

PathLike = Union[str, Path]


@attrs.define
class RunReport:
    """The results of a run (with, after ``--resume``, the earlier runs' results)."""

    run: RunInfo
    cases: List[CaseResult]
    wall_s: float = 0.0

    @property
    def counts(self) -> Dict[str, int]:
        """Conversations by status: ``passed``, ``failed``, ``error``."""
        return counts(self.cases)

    def by_status(self, status: Union[Status, str]) -> List[CaseResult]:
        """The conversations with ``status``."""
        wanted = Status(status)
        return [c for c in self.cases if c.status is wanted]

    @property
    def passed(self) -> List[CaseResult]:
        """Conversations that passed."""
        return self.by_status(Status.PASSED)

    @property
    def failed(self) -> List[CaseResult]:
        """Conversations that failed a check."""
        return self.by_status(Status.FAILED)

    @property
    def errors(self) -> List[CaseResult]:
        """Conversations that hit an infrastructure error (after their retries)."""
        return self.by_status(Status.ERROR)

    @property
    def exit_code(self) -> int:
        """0 all passed, 1 failures, 3 infrastructure errors, 4 both."""
        failed, error = bool(self.failed), bool(self.errors)
        if failed and error:
            return EXIT_FAILED_AND_ERROR
        if error:
            return EXIT_ERROR
        return EXIT_FAILED if failed else EXIT_OK

    def get(self, case_id: str, suite: Optional[str] = None) -> CaseResult:
        """The result of one conversation; KeyError when absent."""
        for case in self.cases:
            if case.id == case_id and suite in (None, case.suite):
                return case
        raise KeyError(case_id)

    def __repr__(self) -> str:
        c = self.counts
        return (
            f"<RunReport {len(self.cases)} conversations: {c['passed']} passed, "
            f"{c['failed']} failed, {c['error']} errors>"
        )

    # --- writers ---------------------------------------------------------------------------------

    def write(
        self,
        *,
        jsonl: Optional[PathLike] = None,
        junit: Optional[PathLike] = None,
        html: Optional[PathLike] = None,
        csv: Optional[PathLike] = None,
        markdown: Optional[PathLike] = None,
    ) -> None:
        """Write any of the formats (``jsonl`` writes a fresh file with every result)."""
        if jsonl is not None:
            lines = [dumps(self.run), *(dumps(c) for c in self.cases)]
            Path(jsonl).write_text("\n".join(lines) + "\n", encoding="utf-8")
        if junit is not None:
            junit_report.write(junit, self.run, self.cases)
        if html is not None:
            htmlpage.write(html, self.run, self.cases)
        if csv is not None:
            csvtable.write(csv, self.cases)
        if markdown is not None:
            markdown_report.write(markdown, self.run, self.cases)

    def write_dir(self, directory: PathLike) -> Dict[str, Path]:
        """Every format into ``directory`` (``junit.xml``, ``report.html``, ``results.csv``,
        ``summary.md``); returns the paths by format."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "junit": folder / "junit.xml",
            "html": folder / "report.html",
            "csv": folder / "results.csv",
            "markdown": folder / "summary.md",
        }
        self.write(
            junit=paths["junit"], html=paths["html"], csv=paths["csv"], markdown=paths["markdown"]
        )
        return paths

    def markdown(self) -> str:
        """The Markdown summary as text."""
        return markdown_report.render(self.run, self.cases)

    # --- notebooks -------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        rows = "".join(
            f'<tr class="{c.status.value}"><td>{c.status.value}</td><td>{escape(c.suite)}</td>'
            f"<td>{escape(c.id)}</td><td>{c.pass_rate:.0%}</td><td>{c.attempts}</td>"
            f"<td>{c.duration_s:.2f} s</td><td>{escape(c.summary)}</td></tr>"
            for c in self.cases
        )
        details = "".join(
            htmlpage.case_section(c) for c in self.cases if c.status is not Status.PASSED
        )
        return (
            f"<div>{htmlpage.summary_html(self.run, self.cases)}"
            "<table><thead><tr><th>status</th><th>suite</th><th>conversation</th>"
            "<th>pass rate</th><th>attempts</th><th>time</th><th>details</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{details}</div>"
        )

    def to_dataframe(self, level: str = "case") -> Any:
        """A pandas DataFrame: a row per conversation (``level="case"``) or per check
        (``level="check"``, the CSV's rows). Needs pandas."""
        try:  # optional, and typed only with pandas-stubs: imported by name
            pd: Any = importlib.import_module("pandas")
        except ImportError:
            raise ImportError("to_dataframe() needs pandas: pip install pandas") from None
        if level == "check":
            return pd.DataFrame(list(csvtable.rows(self.cases)), columns=csvtable.COLUMNS)
        if level != "case":
            raise ValueError("level is 'case' or 'check'")
        records = []
        for case in self.cases:
            shown = case.shown
            firsts = [t.first_text_ms for t in shown.turns if t.first_text_ms is not None]
            records.append(
                {
                    "suite": case.suite,
                    "conversation": case.id,
                    "status": case.status.value,
                    "pass_rate": case.pass_rate,
                    "repeats": len(case.repeats),
                    "attempts": case.attempts,
                    "duration_s": case.duration_s,
                    "failed_checks": len(shown.failed_checks),
                    "error_kind": shown.error.kind if shown.error else None,
                    "ended_by": shown.ended_by,
                    "max_first_text_ms": max(firsts) if firsts else None,
                    "tags": ",".join(case.tags),
                    "summary": case.summary,
                }
            )
        return pd.DataFrame.from_records(records)

    @classmethod
    def from_jsonl(cls, path: PathLike) -> "RunReport":
        """Rebuild a report from a results file (the latest record of each conversation)."""
        runs, cases = read_jsonl(path)
        if not runs:
            raise ValueError(f"{path}: no run record; is this a blackbox-sync qa results file?")
        run = attrs.evolve(runs[-1], suites=sorted({c.suite for c in cases}) or runs[-1].suites)
        return cls(run, cases)

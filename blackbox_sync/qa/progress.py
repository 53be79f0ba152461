"""Progress while a run goes: a tqdm bar on a terminal, one line per conversation otherwise.

The bar shows passed/failed/error counts and tqdm's ETA, and prints each conversation that did
not pass above itself; the line mode (CI logs, pipes) prints every conversation as it finishes.
"""

import importlib
import importlib.util
import sys
from typing import Any, Dict, Optional, TextIO

from blackbox_sync.qa.reports.common import runs_text
from blackbox_sync.qa.results import CaseResult, Status

MODES = ("auto", "bar", "lines", "none")


def line(result: CaseResult) -> str:
    """``FAILED  suite / id  (1.23 s)  why``."""
    why = f"  {result.summary}" if result.summary else ""
    extra = f", {runs_text(result)}" if runs_text(result) else ""
    return (
        f"{result.status.value.upper():<7} {result.suite} / {result.id}  "
        f"({result.duration_s:.2f} s{extra}){why}"
    )


class Progress:
    """Call it with each finished case; ``close()`` at the end."""

    def __init__(self, total: int, mode: str = "auto", out: Optional[TextIO] = None) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode is one of {', '.join(MODES)}")
        self.out = out or sys.stdout
        self.counts: Dict[str, int] = {s.value: 0 for s in Status}
        self._bar: Any = None
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() and _has_tqdm() else "lines"
        self.mode = mode
        if mode == "bar":
            tqdm = importlib.import_module("tqdm")  # no type stubs to rely on: by name
            # tqdm's monitor thread would outlive the run; a bar updated per case needs none.
            bar_class = type("QaBar", (tqdm.tqdm,), {"monitor_interval": 0})
            self._bar = bar_class(total=total, unit="conv", dynamic_ncols=True)

    def __call__(self, result: CaseResult) -> None:
        self.counts[result.status.value] += 1
        if self._bar is not None:
            if result.status is not Status.PASSED:
                self._bar.write(line(result))
            self._bar.set_postfix(self.counts, refresh=False)
            self._bar.update(1)
        elif self.mode == "lines":
            print(line(result), file=self.out, flush=True)

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _has_tqdm() -> bool:
    return importlib.util.find_spec("tqdm") is not None

"""Streamed JSONL results, and reading them back for ``--resume`` and ``--rerun``.

Each finished case is appended as one line and flushed at once, so a killed run keeps every case
it finished. A run starts with a ``run`` header line; a resumed run appends its own header. A
torn last line (the process died mid-write) is skipped on reading and fenced off with a newline
before appending.
"""

import json
import os
import threading
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple, Union

from blackbox_sync.qa.results import CaseResult, RunInfo, Status, case_from_dict, dumps

Key = Tuple[str, str]


class JsonlSink:
    """Appends each :class:`CaseResult` to ``path`` the moment it is given one (``append=False``
    empties the file first: a fresh run)."""

    def __init__(
        self, path: Union[str, "os.PathLike[str]"], run: RunInfo, append: bool = True
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        if not append:
            self.path.write_text("", encoding="utf-8")
        torn = (
            self.path.exists()
            and self.path.stat().st_size > 0
            and not _ends_with_newline(self.path)
        )
        self._file = self.path.open("a", encoding="utf-8")
        if torn:
            self._file.write("\n")
        self._write(dumps(run))

    def _write(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def __call__(self, result: CaseResult) -> None:
        self._write(dumps(result))

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if not self._file.closed:
                self._file.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def read_jsonl(path: Union[str, "os.PathLike[str]"]) -> Tuple[List[RunInfo], List[CaseResult]]:
    """The run headers, and the latest result of each case in order of first appearance."""
    runs: List[RunInfo] = []
    latest: Dict[Key, CaseResult] = {}
    file = Path(path)
    if not file.exists():
        return runs, []
    for line in file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue  # torn by a kill mid-write
        if not isinstance(data, dict):
            continue
        if data.get("record") == "run":
            runs.append(
                RunInfo(
                    run_id=str(data.get("run_id", "")),
                    started_at=str(data.get("started_at", "")),
                    target=dict(data.get("target") or {}),
                    suites=list(data.get("suites") or []),
                    client_version=str(data.get("client_version", "")),
                )
            )
        elif data.get("record") == "case":
            try:
                result = case_from_dict(data)
            except Exception:  # a record from an incompatible schema: not ours to reuse
                continue
            latest.pop(result.key, None)  # a rerun's record replaces, and moves to the end
            latest[result.key] = result
    return runs, list(latest.values())


RERUN_CHOICES = {
    "failed": {Status.FAILED},
    "error": {Status.ERROR},
    "not-passed": {Status.FAILED, Status.ERROR},
}


def keys_to_skip(previous: Iterable[CaseResult], rerun: Optional[str] = None) -> Set[Key]:
    """Cases a resumed run leaves alone: every recorded case, except those ``rerun`` names."""
    again = RERUN_CHOICES[rerun] if rerun else set()
    return {r.key for r in previous if r.status not in again}

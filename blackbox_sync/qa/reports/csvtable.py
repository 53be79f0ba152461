"""CSV for spreadsheets: one row per conversation × repeat × check.

A repeat with no checks (an infrastructure error before any turn) still gets one row, so every
conversation appears.
"""

import csv
from pathlib import Path
from typing import Any, Dict, Iterator, List, Union

from blackbox_sync.qa.results import CaseResult

COLUMNS = [
    "suite", "conversation", "status", "pass_rate", "repeat", "attempts", "attempt_status",
    "scope", "check", "kind", "passed", "weight", "score", "message", "error_kind",
    "error_message", "ended_by", "duration_s", "max_first_text_ms", "max_turn_ms",
    "max_first_audio_ms",
]  # fmt: skip


def rows(cases: List[CaseResult]) -> Iterator[Dict[str, Any]]:
    """The rows, as dicts keyed by :data:`COLUMNS`."""
    for case in cases:
        for repeat in case.repeats:
            attempt = repeat.final
            firsts = [t.first_text_ms for t in attempt.turns if t.first_text_ms is not None]
            turns = [t.turn_ms for t in attempt.turns if t.turn_ms is not None]
            audio = [t.first_audio_ms for t in attempt.turns if t.first_audio_ms is not None]
            base = {
                "suite": case.suite,
                "conversation": case.id,
                "status": case.status.value,
                "pass_rate": case.pass_rate,
                "repeat": repeat.index,
                "attempts": len(repeat.attempts),
                "attempt_status": attempt.status.value,
                "error_kind": attempt.error.kind if attempt.error else "",
                "error_message": attempt.error.message if attempt.error else "",
                "ended_by": attempt.ended_by or "",
                "duration_s": attempt.duration_s,
                "max_first_text_ms": max(firsts) if firsts else "",
                "max_turn_ms": max(turns) if turns else "",
                "max_first_audio_ms": max(audio) if audio else "",
            }
            if not attempt.checks:
                yield base
            for check in attempt.checks:
                yield {
                    **base,
                    "scope": check.scope,
                    "check": check.label,
                    "kind": check.kind,
                    "passed": check.passed,
                    "weight": check.weight,
                    "score": "" if check.score is None else check.score,
                    "message": check.message,
                }


def write(path: Union[str, Path], cases: List[CaseResult]) -> None:
    """Write the CSV file (UTF-8, header row first)."""
    with Path(path).open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows(cases))

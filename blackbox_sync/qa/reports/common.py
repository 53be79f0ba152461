"""Text pieces every report format shares: transcript lines, check lines, counts."""

import json
from typing import Any, Dict, Iterable, List, Optional

from blackbox_sync.qa.results import Attempt, CaseResult, CheckResult, Entry, Status, TurnRecord


def data_text(data: Any, limit: int = 300) -> str:
    """Tool arguments or results as compact JSON, cut to ``limit`` characters."""
    text = json.dumps(data, ensure_ascii=False, default=str, separators=(",", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def entry_text(entry: Entry) -> str:
    """What one transcript entry says, without its time."""
    flags = f" ({', '.join(entry.flags)})" if entry.flags else ""
    if entry.role in ("tool_request", "tool_response", "tool_result"):
        return f"{entry.text} {data_text(entry.data)}"
    if entry.role == "result":
        detail = f" ({entry.data})" if entry.data else ""
        return f"status {entry.text or '?'}{detail}"
    return f"{entry.text}{flags}"


def transcript_lines(entries: Iterable[Entry]) -> List[str]:
    """``[  123.4 ms] role: text`` lines."""
    return [f"[{e.t_ms:9.1f} ms] {e.role}: {entry_text(e)}" for e in entries]


def check_line(check: CheckResult) -> str:
    """``✓ step 2: contains: 'x' — message``."""
    mark = "✓" if check.passed else "✗"
    message = f" — {check.message}" if check.message else ""
    return f"{mark} {check.scope}: {check.label}{message}"


def attempt_text(case: CaseResult, attempt: Attempt) -> str:
    """A plain-text account of one attempt: settings, error, checks, turns, transcript."""
    lines = [
        f"{case.suite} / {case.id}: {case.status} (attempt {attempt.number}, "
        f"{attempt.duration_s:.2f} s, ended by {attempt.ended_by or '?'})",
        f"turn end: {turn_end_text(case.turn_end)}",
    ]
    if attempt.error is not None:
        lines.append(f"ERROR {attempt.error.kind}: {attempt.error.message}")
    lines += [check_line(c) for c in attempt.checks]
    for turn in attempt.turns:
        audio = "" if turn.first_audio_ms is None else f"first audio {ms(turn.first_audio_ms)}, "
        lines.append(
            f"step {turn.step} ({turn.kind}): first text {ms(turn.first_text_ms)}, {audio}"
            f"turn {ms(turn.turn_ms)}, detected {ms(turn.detected_ms)}, reason {turn.reason}"
            f"{turn_rule_note(case, turn)}"
        )
        if turn.audio:
            lines.append(f"  agent audio: {turn.audio}")
    lines.append("transcript:")
    lines += transcript_lines(attempt.transcript)
    return "\n".join(lines)


def runs_text(case: CaseResult) -> str:
    """``5 repeats, pass rate 80%, 1 retry``: how often a case ran, when more than once."""
    parts = []
    if len(case.repeats) > 1:
        parts.append(f"{len(case.repeats)} repeats, pass rate {case.pass_rate:.0%}")
    retries = case.attempts - len(case.repeats)
    if retries:
        parts.append(f"{retries} {'retry' if retries == 1 else 'retries'}")
    return ", ".join(parts)


def ms(value: Optional[float]) -> str:
    """``123 ms`` or ``-``."""
    return "-" if value is None else f"{value:.0f} ms"


def turn_end_text(rule: Dict[str, Any]) -> str:
    """``quiet 250 ms, fillers: um``."""
    fillers = ", ".join(rule.get("fillers") or []) or "none"
    return f"{rule.get('rule', 'quiet')} {rule.get('quiet_ms', '?'):g} ms, fillers: {fillers}"


def turn_rule_note(case: CaseResult, turn: TurnRecord) -> str:
    """``, turn end: quiet 500 ms, ...`` when the turn used a rule other than the case's."""
    if not turn.turn_end or turn.turn_end == case.turn_end:
        return ""
    return f", turn end: {turn_end_text(turn.turn_end)}"


def counts(cases: Iterable[CaseResult]) -> Dict[str, int]:
    """Cases by status, every status present."""
    out = {s.value: 0 for s in Status}
    for case in cases:
        out[case.status.value] += 1
    return out

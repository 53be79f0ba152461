"""QA runner at scale: N conversations of T turns against the emulator, M in flight.

The emulator runs in its own process (``blackbox-sync emulator``), so this process holds only
the runner: M runner threads, one reader thread per open conversation, and the scheduler. The
report gives wall time, conversations per second, peak RSS and threads (sampled every 50 ms),
threads before and after, and whether every conversation finished exactly once.

    python bench/qa_scale.py [--conversations 1000] [--turns 3] [--in-flight 200]
                             [--quiet-ms 200] [--rate 0]
"""

import argparse
import json
import re
import resource
import selectors
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

from blackbox_sync import qa
from blackbox_sync.qa.store import read_jsonl

TOKEN = "bench-token"


def start_emulator() -> Tuple["subprocess.Popen[str]", str]:
    """``blackbox-sync emulator`` on a free port; returns the process and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "blackbox_sync", "emulator", "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 20
        while True:
            if not selector.select(max(0.0, deadline - time.monotonic())):
                raise RuntimeError("the emulator did not start")
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the emulator exited early")
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                return proc, found.group(1)


def rss_kib() -> int:
    """Resident set size now, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Sampler:
    """Samples threads and RSS every ``interval`` seconds while the run goes."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_threads = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_threads = max(self.peak_threads, threading.active_count() - 1)
            self.peak_rss = max(self.peak_rss, rss_kib())

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def build_suite(conversations: int, turns: int, quiet_ms: float) -> qa.Suite:
    steps = [
        {"user": f"turn {t} of {{{{case_id}}}}", "expect": [{"contains": f"turn {t} of"}]}
        for t in range(1, turns + 1)
    ]
    return qa.load_suite_data(
        {
            "suite": "scale",
            "defaults": {
                "turn_end": {"quiet_ms": quiet_ms},
                "timeouts": {"connect_s": 60, "turn_s": 60, "terminate_s": 60},
                "retries": 0,  # an error must show up as an error, not be hidden by a retry
            },
            "conversations": [{"id": f"c{i:05d}", "steps": steps} for i in range(conversations)],
        }
    )


def percentiles(values: List[float]) -> Dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "max": round(ordered[-1], 1),
    }


def main(argv: "List[str] | None" = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--quiet-ms", type=float, default=200.0)
    parser.add_argument("--rate", type=float, default=0.0, help="starts per second (0: no cap)")
    args = parser.parse_args(argv)

    suite = build_suite(args.conversations, args.turns, args.quiet_ms)
    emulator, base_url = start_emulator()
    try:
        target = qa.EmulatorTarget(base_url=base_url, token=TOKEN)
        threads_before = threading.active_count()
        rss_before = rss_kib()
        with tempfile.TemporaryDirectory() as folder:
            jsonl = Path(folder) / "results.jsonl"
            started = time.monotonic()
            with Sampler() as sampler:
                report = qa.run(
                    suite,
                    target=target,
                    max_in_flight=args.in_flight,
                    rate=args.rate or None,
                    jsonl=jsonl,
                )
            wall = time.monotonic() - started
            _, on_disk = read_jsonl(jsonl)
            lines = sum(1 for line in jsonl.read_text().splitlines() if '"record":"case"' in line)
        threads_after = threading.active_count()
    finally:
        emulator.terminate()
        emulator.wait(10)
        if emulator.stdout is not None:
            emulator.stdout.close()

    attempts = [c.shown for c in report.cases]
    turns = [t for a in attempts for t in a.turns]
    figures: Dict[str, Any] = {
        "conversations": args.conversations,
        "turns_each": args.turns,
        "in_flight": args.in_flight,
        "quiet_ms": args.quiet_ms,
        "counts": report.counts,
        "unique_results": len({c.id for c in report.cases}),
        "jsonl_case_lines": lines,
        "jsonl_unique": len(on_disk),
        "wall_s": round(wall, 2),
        "conversations_per_s": round(args.conversations / wall, 1),
        "rss_before_mib": round(rss_before / 1024, 1),
        "peak_rss_mib": round(max(sampler.peak_rss, rss_before) / 1024, 1),
        "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads_before": threads_before,
        "peak_threads": sampler.peak_threads,
        "threads_after": threads_after,
        "first_text_ms": percentiles([t.first_text_ms for t in turns if t.first_text_ms]),
        "turn_detected_ms": percentiles([t.detected_ms for t in turns]),
        "conversation_s": percentiles([a.duration_s for a in attempts]),
        "errors": sorted({c.summary for c in report.cases if c.status is not qa.Status.PASSED})[:5],
    }
    print(json.dumps(figures, indent=2))
    return figures


def _iter_ok(figures: Dict[str, Any]) -> Iterator[str]:
    if figures["counts"]["passed"] != figures["conversations"]:
        yield "not every conversation passed"
    if figures["unique_results"] != figures["conversations"]:
        yield "conversations were lost"
    if figures["jsonl_case_lines"] != figures["conversations"]:
        yield "the JSONL does not hold exactly one line per conversation"
    if figures["threads_after"] != figures["threads_before"]:
        yield "threads did not return to the baseline"


if __name__ == "__main__":
    problems = list(_iter_ok(main()))
    for problem in problems:
        print("PROBLEM:", problem, file=sys.stderr)
    sys.exit(1 if problems else 0)

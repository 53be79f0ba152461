"""Run every benchmark, one after another, and print their figures.

    python bench/run_all.py           # full size (several minutes; run on an idle machine)
    python bench/run_all.py --quick   # small sizes, for CI: checks they run, figures are rough

Exits non-zero only when a benchmark fails to run; a missed target is printed, not fatal (a
shared CI machine is no place to judge speed).
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
FULL: Dict[str, List[str]] = {
    "throughput.py": [],
    "ask_latency.py": [],
    "tool_dispatch.py": [],
    "footprint.py": [],
    "import_time.py": [],
    "soak.py": [],
    "qa_scale.py": [],
}
QUICK: Dict[str, List[str]] = {
    "throughput.py": ["--frames", "5000", "--rounds", "1"],
    "ask_latency.py": ["--asks", "300", "--rounds", "1"],
    "tool_dispatch.py": ["--calls", "300", "--rounds", "1"],
    "footprint.py": ["--counts", "1", "100"],
    "import_time.py": ["--runs", "5"],
    "soak.py": ["--sequential", "50", "--concurrent", "50", "--no-heap"],
    "qa_scale.py": ["--conversations", "100", "--in-flight", "50"],
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("only", nargs="*", help="benchmark scripts to run (default: all)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    failed = []
    for script, extra in plan.items():
        if args.only and script not in args.only:
            continue
        print(f"=== {script} {' '.join(extra)}", flush=True)
        start = time.monotonic()
        result = subprocess.run([sys.executable, str(HERE / script), *extra], timeout=3600)
        print(f"=== {script}: exit {result.returncode} in {time.monotonic() - start:.0f} s\n")
        if result.returncode:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak figures outside pytest: sequential and concurrent conversations under random faults.

The same run as ``tests/e2e/conversation/test_soak.py`` (``bench/fault_soak.py``),
printing the outcomes, the faults fired, threads, open file descriptors, RSS and live Python heap.

    python bench/soak.py [--sequential 1000] [--concurrent 200] [--rate 0.05] [--seed 20260601]
"""

import argparse
import logging
import sys
from pathlib import Path

from blackbox_sync.testing import Emulator

# bench/ is a folder of scripts, not a package: its soak driver is imported by path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_soak import soak


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=20260601)
    parser.add_argument("--no-heap", action="store_true", help="skip tracemalloc (faster)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # thousands of expected warnings
    failed = False
    with Emulator(seed=args.seed) as emu:
        runs = []
        if args.sequential:
            runs.append(soak(emu, args.sequential, rate=args.rate, trace_heap=not args.no_heap))
        if args.concurrent:
            runs.append(
                soak(
                    emu,
                    args.concurrent,
                    concurrency=args.concurrent,
                    rate=args.rate,
                    trace_heap=not args.no_heap,
                    connect_timeout=5.0,
                )
            )
        for report in runs:
            print(report.summary())
            leaked = report.after.threads != report.before.threads or (
                report.after.fds != report.before.fds
            )
            failed = failed or bool(report.untyped) or leaked
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

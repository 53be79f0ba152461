"""Import time of ``blackbox_sync`` in a fresh interpreter, against its own dependencies.

Each figure is the median of ``--runs`` fresh processes, timed inside the process around the
import statement alone (interpreter start-up excluded). Target: ``import blackbox_sync`` under
150 ms. Also lists the slowest modules it pulls in (``python -X importtime``) and checks that the
optional heavy ones (aiohttp, the emulator, voice, QA) are not imported by it.

    python bench/import_time.py [--runs 15]
"""

import argparse
import re
import statistics
import subprocess
import sys
from typing import Dict, List, Tuple

TARGET_MS = 150.0
SUBJECTS = {
    "blackbox_sync": "import blackbox_sync",
    "what it imports": "import websocket, attrs, cattrs",  # requests loads with the REST client
    "websocket-client": "import websocket",
    "requests": "import requests",
}
HEAVY = ("aiohttp", "blackbox_sync.testing", "blackbox_sync.voice", "blackbox_sync.qa", "aiortc")


def time_import(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return float(out.strip()) * 1000


def slowest(limit: int = 8) -> Tuple[List[Tuple[float, str]], List[str]]:
    """The slowest modules imported directly by ``blackbox_sync`` (cumulative ms), and the names
    of all modules it imported."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import blackbox_sync"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows: List[Tuple[float, str]] = []
    modules: List[str] = []
    for line in err.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            modules.append(match.group(4))
            if len(match.group(3)) == 3:  # one level below the top: blackbox_sync's own imports
                rows.append((int(match.group(2)) / 1000, match.group(4)))
    return sorted(rows, reverse=True)[:limit], modules


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    medians: Dict[str, float] = {}
    for name, statement in SUBJECTS.items():
        medians[name] = statistics.median(time_import(statement) for _ in range(args.runs))
    print(f"import time, median of {args.runs} fresh processes (start-up excluded)")
    for name, ms in medians.items():
        print(f"  {name:18s} {ms:7.1f} ms")
    own = medians["blackbox_sync"] - medians["what it imports"]
    verdict = "met" if medians["blackbox_sync"] < TARGET_MS else "MISSED"
    print(
        f"import blackbox_sync: {medians['blackbox_sync']:.1f} ms "
        f"({medians['blackbox_sync'] / TARGET_MS:.2f}x of the {TARGET_MS:.0f} ms target: "
        f"{verdict}); {medians['blackbox_sync'] / medians['what it imports']:.2f}x the "
        f"dependencies it imports, {own:+.1f} ms of its own"
    )
    top, modules = slowest()
    listed = ", ".join(f"{module} {ms:.1f}" for ms, module in top)
    print(f"  slowest imports under blackbox_sync (cumulative ms): {listed}")
    pulled = sorted({m for m in modules for h in HEAVY if m == h or m.startswith(h + ".")})
    print(f"  optional heavy modules imported: {', '.join(pulled) if pulled else 'none'}")
    print(f"  requests imported by it: {'yes' if 'requests' in modules else 'no (lazily)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

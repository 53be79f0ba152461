"""Memory and threads per open, idle conversation, at 1, 100 and 1,000 open conversations.

The emulator runs in its own process; each count is measured in a fresh client process (after
one conversation opened and closed, so imports and caches are paid for) as the growth of
resident memory (RSS) and of ``threading.active_count()`` once all are open, divided by the
count. Targets: under 1 MiB and at most one thread per idle conversation.

    python bench/footprint.py [--counts 1 100 1000]
"""

import argparse
import gc
import json
import os
import re
import resource
import subprocess
import sys
import threading
from typing import Any, Dict, List, Tuple

TARGET_MIB = 1.0


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(base_url: str, token: str, count: int) -> Dict[str, Any]:
    import blackbox_sync as bb

    def open_one() -> "bb.Conversation":
        return bb.Conversation(token=token, base_url=base_url).connect(timeout=30)

    open_one().close()
    gc.collect()
    rss0, threads0 = rss(), threading.active_count()
    conversations = [open_one() for _ in range(count)]
    gc.collect()
    rss1, threads1 = rss(), threading.active_count()
    assert all(c.phase is bb.Phase.READY for c in conversations)
    for conv in conversations:
        conv.close()
    return {
        "count": count,
        "rss_per_conversation": (rss1 - rss0) / count,
        "threads_per_conversation": (threads1 - threads0) / count,
        "rss_before": rss0,
        "rss_after": rss1,
    }


def start_emulator(token: str) -> Tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    proc = subprocess.Popen(
        [sys.executable, "-m", "blackbox_sync", "emulator", "--port", "0", "--token", token],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return proc, match.group(1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--child", nargs=3, metavar=("BASE_URL", "TOKEN", "COUNT"))
    args = parser.parse_args()
    if args.child:
        base_url, token, count = args.child
        print(json.dumps(child(base_url, token, int(count))))
        return 0

    # A thousand sockets on each side: raise the soft limit to the hard one for both processes.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    token = "bench-token"
    emulator, base_url = start_emulator(token)
    results: List[Dict[str, Any]] = []
    try:
        for count in args.counts:
            out = subprocess.run(
                [sys.executable, __file__, "--child", base_url, token, str(count)],
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        emulator.terminate()
        emulator.wait(10)
    print("open, idle conversations (default options; the emulator in another process)")
    for r in results:
        mib = r["rss_per_conversation"] / 2**20
        print(
            f"  {r['count']:5d} open: {r['rss_per_conversation'] / 1024:7.1f} KiB RSS and "
            f"{r['threads_per_conversation']:.2f} threads per conversation "
            f"(RSS {r['rss_before'] / 2**20:.1f} -> {r['rss_after'] / 2**20:.1f} MiB)  "
            f"[{mib / TARGET_MIB:.2f}x of the 1 MiB target]"
        )
    worst = max(r["rss_per_conversation"] for r in results) / 2**20
    threads = max(r["threads_per_conversation"] for r in results)
    ok = worst < TARGET_MIB and threads <= 1.0
    print(
        f"worst: {worst * 1024:.1f} KiB and {threads:.2f} threads per conversation "
        f"(targets < 1 MiB, <= 1 thread: {'met' if ok else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

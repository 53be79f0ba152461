"""Soak runs: many conversations against an emulator with faults armed at random.

Used by ``tests/e2e/conversation/test_soak.py`` and ``bench/soak.py`` (bench, not the package: no
user needs it installed). Each conversation
connects, asks a question that needs a client-side tool, asks another, and terminates; every
call has a timeout. A
conversation ends *completed* (``terminate()`` returned a result) or with the name of the typed
:class:`~blackbox_sync.BlackBoxError` it raised; anything else is reported as ``untyped:<name>``,
which a soak test treats as a failure. Threads, open file descriptors and resident memory are
measured before and after, with every connection closed on both sides.
"""

import gc
import importlib
import os
import threading
import time
import tracemalloc
from typing import Any, Callable, Dict, List, Optional, Tuple

import attrs

import blackbox_sync as bb
from blackbox_sync.testing.agents.scripted import CallTool, Rule, ScriptedAgent
from blackbox_sync.testing.emulator import Emulator
from blackbox_sync.testing.faults.catalogue import (
    DOCUMENTED_ERRORS,
    HANDSHAKE,
    OPEN,
    Close,
    Delay,
    Drop,
    Duplicate,
    ErrorFrame,
    FailedOpen,
    Fault,
    Malform,
    On,
    Refuse,
    Reorder,
    Stall,
    Uniform,
)

COMPLETED = "completed"

# Short timeouts: a soak waits out every stall it meets, so they set its running time.
CLIENT_OPTIONS: Dict[str, Any] = {
    "quiet_period": 0.05,
    "connect_timeout": 1.0,
    "close_timeout": 0.5,
    "ping_interval": 0.5,
    "ping_timeout": 0.5,
    "tool_timeout": 1.0,
}
ASK_TIMEOUT = 3.0
TERMINATE_TIMEOUT = 1.0


def soak_agent() -> ScriptedAgent:
    """An agent that uses a client tool for orders, splits replies and says a filler."""
    return ScriptedAgent(
        [
            Rule(
                "order",
                ["One moment.", "Order {result[id]} is {result[status]}."],
                fillers=["um"],
                tools=[CallTool("lookup", {"id": "ORD-1"})],
            )
        ],
        default=["Sure.", "Anything else?"],
    )


def chaos(rate: float = 0.05) -> List[Fault]:
    """A fault of every kind, each striking any eligible moment with about ``rate`` chance."""

    def every(fault: Callable[..., Fault], *args: Any, share: float = 1.0, **kw: Any) -> Fault:
        return fault(*args, times=None, probability=min(1.0, rate * share), **kw)

    return [
        every(Refuse, 503, share=0.5),
        every(Refuse, None, share=0.25),
        every(Stall, when=HANDSHAKE, share=0.1),
        every(Delay, Uniform(0.0, 0.05), when=HANDSHAKE),
        every(Close, 1011, "before init", when=OPEN, share=0.25),
        every(Stall, when=OPEN, share=0.1),
        every(FailedOpen, "agent unavailable", when=On("event"), share=0.25),
        every(Drop, when=On("text"), share=0.5),
        every(Close, 1011, "internal error", when=On("text"), share=0.25),
        every(Close, 4000, "application close", when=On("text"), share=0.25),
        every(Stall, when=On("text"), share=0.1),
        every(Delay, Uniform(0.0, 0.05), when=On("text")),
        every(Malform, "random", when=On("text")),
        every(Duplicate, when=On("text")),
        every(Reorder, when=On("text")),
        every(ErrorFrame, DOCUMENTED_ERRORS[-1], when=On("text"), share=0.25),
        every(Drop, when=On("websocketToolRequest"), share=0.5),
        every(Delay, Uniform(0.0, 0.1), when=On("websocketToolRequest")),
        every(Duplicate, when=On("websocketToolRequest")),
        every(Stall, when=On("terminate", "client"), share=0.25),
    ]


def one_conversation(emu: Emulator, **options: Any) -> str:
    """Run one conversation; return ``"completed"``, a typed error's class name, or
    ``"untyped:<class>"`` for anything else that escaped."""
    conv = bb.Conversation(token=emu.token, base_url=emu.base_url, **{**CLIENT_OPTIONS, **options})
    conv.tool("lookup", lambda id: {"id": id, "status": "shipped"})
    try:
        conv.connect()
        conv.ask("Where is my order?", timeout=ASK_TIMEOUT)
        conv.ask("Thanks!", timeout=ASK_TIMEOUT)
        result = conv.terminate(timeout=TERMINATE_TIMEOUT)
        return COMPLETED if result is not None else "ended without a result"
    except bb.BlackBoxError as exc:
        return type(exc).__name__
    except Exception as exc:  # the bug a soak exists to find
        return f"untyped:{type(exc).__name__}: {exc}"
    finally:
        conv.close()


@attrs.define
class Usage:
    """What the process holds at one moment."""

    threads: int
    fds: Optional[int]
    rss: Optional[int]
    """Resident memory in bytes."""
    heap: Optional[int] = None
    """Bytes of live Python objects, when :mod:`tracemalloc` is tracing."""

    @classmethod
    def now(cls) -> "Usage":
        """Measure, after a full garbage collection."""
        gc.collect()
        fds, rss = _open_fds(), _rss()  # first: the first call may import psutil
        heap = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
        return cls(threading.active_count(), fds, rss, heap)


@attrs.define
class SoakReport:
    """The outcome of a soak run."""

    mode: str
    conversations: int
    seconds: float
    outcomes: Dict[str, int]
    firings: Dict[str, int]
    before: Usage
    after: Usage

    @property
    def untyped(self) -> List[str]:
        """Outcomes that were neither completed nor a typed error."""
        return [o for o in self.outcomes if o.startswith("untyped:")]

    @property
    def heap_growth_kib(self) -> Optional[float]:
        """Live Python objects after minus before, in KiB (a leak shows here, not in RSS,
        which also holds what the allocator keeps for reuse)."""
        if self.before.heap is None or self.after.heap is None:
            return None
        return (self.after.heap - self.before.heap) / 1024

    @property
    def rss_growth_mib(self) -> Optional[float]:
        """Resident memory after minus before, in MiB."""
        if self.before.rss is None or self.after.rss is None:
            return None
        return (self.after.rss - self.before.rss) / 2**20

    def summary(self) -> str:
        """A few lines for a terminal or a README."""
        done = self.outcomes.get(COMPLETED, 0)
        growth = self.rss_growth_mib
        lines = [
            f"{self.mode}: {self.conversations} conversations in {self.seconds:.1f} s, "
            f"{done} completed, {self.conversations - done} with a typed error",
            "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            "  faults fired: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.firings.items()))
            + f" (total {sum(self.firings.values())})",
            f"  threads {self.before.threads} -> {self.after.threads}, "
            f"open fds {self.before.fds} -> {self.after.fds}, "
            f"RSS {_mib(self.before.rss)} -> {_mib(self.after.rss)} MiB"
            + (f" ({growth:+.1f} MiB)" if growth is not None else ""),
        ]
        heap = self.heap_growth_kib
        if heap is not None:
            lines.append(f"  Python heap {heap:+.1f} KiB (tracemalloc)")
        return "\n".join(lines)


def soak(
    emu: Emulator,
    count: int,
    *,
    concurrency: int = 1,
    rate: float = 0.05,
    warmup: int = 20,
    trace_heap: bool = False,
    **options: Any,
) -> SoakReport:
    """Run ``count`` conversations, ``concurrency`` at a time (1: one after another), with the
    :func:`chaos` faults armed at ``rate``. ``warmup`` fault-free conversations first bring the
    process to its steady state, so that the memory figure shows growth, not start-up.
    ``trace_heap`` also counts live Python objects with :mod:`tracemalloc` (slower)."""
    emu.default_agent = soak_agent()
    for _ in range(warmup):
        one_conversation(emu, **options)
    _settle(emu)
    emu.default_agent = soak_agent()  # reset() brought back the emulator's first agent
    tracing = trace_heap and not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    before = Usage.now()
    for fault in chaos(rate):
        emu.arm_fault(fault)
    outcomes: Dict[str, int] = {}
    lock = threading.Lock()
    started = time.monotonic()

    def run(n: int) -> None:
        for _ in range(n):
            outcome = one_conversation(emu, **options)
            with lock:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

    if concurrency <= 1:
        run(count)
    else:
        shares = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]
        threads = [
            threading.Thread(target=run, args=(n,), name=f"soak-{i}") for i, n in enumerate(shares)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        del threads  # not to be counted as live objects below
    seconds = time.monotonic() - started
    emu.disarm_faults()
    firings: Dict[str, int] = {}
    for firing in emu.fault_firings:
        firings[firing.kind] = firings.get(firing.kind, 0) + 1
    _settle(emu)
    after = Usage.now()
    if tracing:
        tracemalloc.stop()
    mode = "sequential" if concurrency <= 1 else f"{concurrency} concurrent"
    return SoakReport(mode, count, seconds, outcomes, firings, before, after)


def _settle(emu: Emulator) -> None:
    """Close the emulator's side of every connection and forget its journal."""
    emu.reset()


def _psutil() -> Any:
    # Optional (not a dependency); imported by name so that type checking needs no stubs.
    try:
        return importlib.import_module("psutil")
    except ImportError:
        return None


def _open_fds() -> Optional[int]:
    psutil = _psutil()
    if psutil is not None and hasattr(psutil.Process(), "num_fds"):
        return int(psutil.Process().num_fds())
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _rss() -> Optional[int]:
    psutil = _psutil()
    if psutil is not None:
        return int(psutil.Process().memory_info().rss)
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _mib(value: Optional[int]) -> str:
    return "?" if value is None else f"{value / 2**20:.1f}"


def fd_details() -> List[Tuple[int, str]]:
    """The open file descriptors and what they point to (for a leak's error message)."""
    out: List[Tuple[int, str]] = []
    try:
        for name in sorted(os.listdir("/proc/self/fd"), key=int):
            try:
                out.append((int(name), os.readlink(f"/proc/self/fd/{name}")))
            except OSError:
                continue
    except OSError:
        pass
    return out

"""Soak: many conversations against the emulator with faults armed at random.

Every conversation must end completed or with a typed error, and the process must hold no more
threads or file descriptors afterwards than before, and no unbounded memory.

CI runs 200 sequential and 200 concurrent conversations. The full size (1,000 sequential, 200
concurrent, plus 1,000 more sequential to show that memory stays flat) runs with::

    BLACKBOX_SOAK=full python -m pytest tests/test_soak.py -s
"""

import os
from typing import Iterator, Set

import pytest

import blackbox_sync as bb
from blackbox_sync.testing import Emulator
from blackbox_sync.testing.fault_soak import COMPLETED, SoakReport, fd_details, soak

FULL = os.environ.get("BLACKBOX_SOAK", "").lower() == "full"
SEQUENTIAL = 1000 if FULL else 200
CONCURRENT = 200


def _subclasses(cls: type) -> Set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


TYPED = {c.__name__ for c in _subclasses(bb.BlackBoxError) | {bb.BlackBoxError}}
# A terminate() that the service answers by closing without a result returns None, as documented.
ACCEPTED = {COMPLETED, "ended without a result"} | TYPED
# Resident memory may grow while allocator arenas fill up with a few hundred threads' worth of
# objects; a leak of even 20 KiB per conversation would pass this over a full run.
RSS_BOUND_MIB = 48


@pytest.fixture
def soak_emulator() -> Iterator[Emulator]:
    with Emulator(seed=20260601) as emu:
        yield emu


def check(report: SoakReport) -> None:
    print("\n" + report.summary())
    assert not report.untyped, report.outcomes
    assert set(report.outcomes) <= ACCEPTED, report.outcomes
    assert sum(report.outcomes.values()) == report.conversations
    assert report.outcomes.get(COMPLETED, 0) > 0
    assert sum(report.firings.values()) >= report.conversations // 2, report.firings
    assert report.after.threads == report.before.threads
    assert report.after.fds == report.before.fds, fd_details()
    growth = report.rss_growth_mib
    assert growth is None or growth < RSS_BOUND_MIB, report.summary()


@pytest.mark.timeout(900)
def test_sequential_conversations_under_random_faults(soak_emulator: Emulator) -> None:
    check(soak(soak_emulator, SEQUENTIAL))


@pytest.mark.timeout(300)
def test_concurrent_conversations_under_random_faults(soak_emulator: Emulator) -> None:
    check(soak(soak_emulator, CONCURRENT, concurrency=CONCURRENT))


@pytest.mark.skipif(not FULL, reason="full soak only (BLACKBOX_SOAK=full)")
@pytest.mark.timeout(1800)
def test_memory_stays_flat_over_a_second_thousand(soak_emulator: Emulator) -> None:
    first = soak(soak_emulator, SEQUENTIAL)
    second = soak(soak_emulator, SEQUENTIAL, warmup=0)
    check(second)
    assert first.after.rss is not None
    assert second.after.rss is not None
    print(f"second thousand: RSS {(second.after.rss - first.after.rss) / 2**20:+.1f} MiB")
    assert (second.after.rss - first.after.rss) / 2**20 < 8

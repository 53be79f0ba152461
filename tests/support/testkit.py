"""Helpers shared by several test modules (imported as ``testkit``: setup.cfg puts tests/support
on the path)."""

import queue
import subprocess
import threading
from pathlib import Path
from typing import Any, List, Optional, Protocol

import pytest

import blackbox_sync as bb
from blackbox_sync.testing import Agent

ROOT = Path(__file__).resolve().parents[2]
"""The project's top folder (README.md, examples/, docs/)."""


class Connect(Protocol):
    """The ``connect`` fixture: a conversation against the test's emulator, connected unless
    ``connect=False``; ``agent`` becomes the emulator's default agent; ``options`` go to
    :class:`blackbox_sync.Conversation`."""

    def __call__(
        self, agent: Optional[Agent] = None, *, connect: bool = True, **options: Any
    ) -> bb.Conversation: ...


class HasPhase(Protocol):
    """A conversation, or its state: anything with a ``phase``."""

    @property
    def phase(self) -> bb.Phase: ...


def phase_now(subject: HasPhase) -> bb.Phase:
    """``subject.phase`` read afresh: mypy keeps a checked ``phase`` narrowed across the calls
    that change it, so a second ``assert x.phase is …`` reads as unreachable without this."""
    return subject.phase


def start_reader(proc: "subprocess.Popen[str]", lines: "queue.Queue[str]") -> threading.Thread:
    """A started thread that puts each line ``proc`` prints into ``lines`` until its output ends."""

    def read() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=read)
    reader.start()
    return reader


def stop_process(proc: "subprocess.Popen[Any]", reader: Optional[threading.Thread] = None) -> None:
    """End ``proc`` (politely, then by force), join its output ``reader``, close its pipe."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    if reader is not None:
        reader.join(5)
    if proc.stdout is not None:
        proc.stdout.close()


def write(folder: Path, name: str, text: str) -> Path:
    """A UTF-8 text file ``name`` in ``folder``."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def suite_problems(path: Path) -> List[str]:
    """The problems loading the QA suite at ``path`` reports, each with its file name."""
    from blackbox_sync import qa

    with pytest.raises(qa.SuiteFileError) as info:
        qa.load_suite(path)
    return [p.format(path.name) for p in info.value.problems]
